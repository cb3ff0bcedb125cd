"""Tests for reverie.io.colorspace: OCIO studio config names and the display transforms, on tiny arrays."""

import numpy as np
import pytest

from reverie.errors import ReverieError
from reverie.io.colorspace import (
    NETWORK_COLORSPACE,
    SCENE_CEILING,
    default_colorspace,
    from_display,
    is_display_referred,
    resolve_colorspace,
    to_display,
)


def _grey(values):
    v = np.asarray(values, np.float32)
    return np.repeat(v[None, :, None], 3, axis=2)


def _tinted(values, amount, seed=0):
    """Grey levels with every channel moved by up to +-amount (relative): mild colours, inside the gamut."""
    v = np.asarray(values, np.float32)
    tint = 1 + amount * np.random.default_rng(seed).uniform(-1, 1, (len(v), 3))
    return (v[:, None] * tint).astype(np.float32)[None]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("ACEScg", "ACEScg"),
        ("acescg", "ACEScg"),
        ("lin_ap1", "ACEScg"),
        ("scene_linear", "ACEScg"),  # an OCIO role
        ("lin_rec709", "Linear Rec.709 (sRGB)"),
        ("srgb_tx", NETWORK_COLORSPACE),
        ("arri_logc4", "ARRI LogC4"),
        ("arri logc4", "ARRI LogC4"),
        ("sRGB", NETWORK_COLORSPACE),
        ("SRGB", NETWORK_COLORSPACE),
        ("linear", "Linear Rec.709 (sRGB)"),
        ("Linear Rec.709", "Linear Rec.709 (sRGB)"),
        ("LogC4", "ARRI LogC4"),
        ("logc3", "ARRI LogC3 (EI800)"),
        ("Rec.709", "Gamma 2.4 Encoded Rec.709"),
        ("  ACEScct ", "ACEScct"),
        ("raw", "Raw"),
    ],
)
def test_resolve_names_aliases_and_case(name, canonical):
    assert resolve_colorspace(name) == canonical


@pytest.mark.parametrize(
    ("name", "close"), [("ACEScgg", "ACEScg"), ("LogC5", "ARRI LogC4"), ("srbg", "sRGB")]
)
def test_unknown_colourspace_is_one_line_with_close_names(name, close):
    with pytest.raises(ReverieError) as info:
        resolve_colorspace(name)
    message = str(info.value)
    assert "\n" not in message
    assert f"unknown colourspace {name!r}" in message
    assert close in message


def test_unknown_colourspace_without_close_names_still_helps():
    with pytest.raises(ReverieError, match="ACEScg") as info:
        resolve_colorspace("zzzz")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("plate.1001.exr", "ACEScg"),
        ("A.HDR", "ACEScg"),
        ("scan.%04d.dpx", NETWORK_COLORSPACE),
        ("frame.png", NETWORK_COLORSPACE),
        ("clip.mov", NETWORK_COLORSPACE),
    ],
)
def test_default_colorspace_by_suffix(path, expected):
    assert default_colorspace(path) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sRGB", True),
        ("Rec.709", True),
        ("Camera Rec.709", True),
        ("sRGB - Display", True),
        ("Raw", True),
        ("ACEScg", False),
        ("ACEScct", False),
        ("LogC4", False),
        ("Linear Rec.709 (sRGB)", False),
    ],
)
def test_is_display_referred(name, expected):
    assert is_display_referred(name) is expected


def test_srgb_is_identity_clipped_float32_copy():
    image = _grey([-0.5, 0.0, 0.25, 0.5, 1.0, 2.0])
    out = to_display(image, "sRGB")
    assert out.dtype == np.float32 and out is not image
    np.testing.assert_array_equal(out, np.clip(image, 0, 1))
    np.testing.assert_array_equal(from_display(out, "sRGB"), out)


def test_acescg_round_trip_within_one_percent():
    image = np.concatenate([_grey(np.geomspace(0.01, 16, 64)), _tinted(np.geomspace(0.01, 16, 64), 0.3)], 1)
    display = to_display(image, "ACEScg")
    back = from_display(display, "ACEScg")
    np.testing.assert_allclose(back, image, rtol=0.01)


def test_acescg_display_is_in_range_and_monotonic():
    image = _grey([-1.0, 0.0, 0.001, 0.18, 1.0, 16.0, 1e4, np.inf, np.nan])
    display = to_display(image, "ACEScg")
    assert display.dtype == np.float32 and np.isfinite(display).all()
    assert display.min() >= 0 and display.max() <= 1
    ramp = display[0, 1:8, 0]
    assert (np.diff(ramp) >= 0).all() and ramp[-1] > ramp[0]
    assert 0.3 < display[0, 3, 0] < 0.4  # mid grey 0.18 -> ~0.35 through the ACES 2.0 SDR transform


def test_logc4_round_trip():
    image = _tinted(np.linspace(0.1, 0.65, 32), 0.05)  # LogC4 code values: shadows to ~10 linear
    display = to_display(image, "LogC4")
    assert display.min() >= 0 and display.max() <= 1
    np.testing.assert_allclose(from_display(display, "LogC4"), image, atol=1e-3)


def test_video_space_round_trip():
    image = _tinted(np.linspace(0.05, 0.9, 32), 0.05)
    display = to_display(image, "Rec.709")
    assert not np.allclose(display, image, atol=1e-3)  # gamma 2.4 -> sRGB is not the identity
    np.testing.assert_allclose(from_display(display, "Rec.709"), image, atol=1e-4)


def test_raw_passes_through_clipped():
    image = _grey([-1.0, 0.3, 2.0])
    np.testing.assert_array_equal(to_display(image, "Raw"), np.clip(image, 0, 1))


def test_from_display_default_ceiling_keeps_scene_values_finite():
    back = from_display(_grey([0.0, 0.5, 1.0]), "ACEScg")
    assert np.isfinite(back).all()
    np.testing.assert_allclose(back[0, 2], from_display(_grey([SCENE_CEILING]), "ACEScg")[0, 0], rtol=1e-6)
    assert 30 < back.max() < 80  # the ACES 2.0 inverse of 0.995 is ~55 scene-linear


@pytest.mark.parametrize("colorspace", ["ACEScg", "LogC4", "sRGB"])
def test_from_display_never_exceeds_the_inverse_of_the_ceiling(colorspace):
    ceiling = 0.8
    display = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    display[0, :3] = np.eye(3)  # saturated primaries at full display level
    top = from_display(_grey([ceiling]), colorspace)[0, 0, 0]
    back = from_display(display, colorspace, ceiling=ceiling)
    assert back.max() <= top
    assert back.max() > 0.9 * top  # clipped to the ceiling, not squashed


def test_works_on_non_contiguous_and_float64_input():
    image = np.random.default_rng(2).random((6, 10, 3))[:, ::2]  # float64, strided
    out = to_display(image, "ACEScg")
    assert out.shape == (6, 5, 3) and out.dtype == np.float32 and out.flags.c_contiguous


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        to_display(np.zeros((4, 4), np.float32), "ACEScg")
