"""Tests for reverie.io.sequences: frame ranges, patterns, and tiny frames written to tmp_path."""

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from reverie.errors import ReverieError
from reverie.io.sequences import (
    FRAME_SUFFIXES,
    SequencePattern,
    check_frame_writable,
    format_frame_range,
    open_sequence,
    parse_frame_range,
    parse_pattern,
    require_pattern,
    write_frame,
)


def _smooth(h=24, w=32):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 0.25 + 0.5 * (x + y) / (w + h)], axis=2)


def _hdr(h=16, w=24, seed=0):
    """Scene-linear-like values: negatives, mid tones and highlights far above 1."""
    return np.random.default_rng(seed).uniform(-0.5, 40.0, (h, w, 3)).astype(np.float32)


def _read(path):
    inp = oiio.ImageInput.open(str(path))
    try:
        return inp.spec().format, inp.spec().get_int_attribute("oiio:BitsPerSample"), inp.read_image("float")
    finally:
        inp.close()


def _shot(tmp_path, frames, *, suffix="exr", size=(24, 16), name="plate.{:04d}"):
    for n in frames:
        image = np.full((size[1], size[0], 3), n / 10000, np.float32)
        write_frame(tmp_path / (name.format(n) + "." + suffix), image)
    return str(tmp_path / (name.replace("{:04d}", "####") + "." + suffix))


def _one_line(err):
    message = str(err.value)
    assert "\n" not in message and message
    return message


def _no_temp_files(directory):
    return not [p for p in Path(directory).iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ frame ranges


@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
        ("1001", [1001]),
        ("1-5,8,10-12", [1, 2, 3, 4, 5, 8, 10, 11, 12]),
        ("8, 1-3, 2-4", [1, 2, 3, 4, 8]),
        (" 1001 - 1003 ", [1001, 1002, 1003]),
        ("0", [0]),
    ],
)
def test_parse_frame_range(text, frames):
    assert parse_frame_range(text) == frames


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("1-5,,8", "empty"),
        ("abc", "cannot read frame range"),
        ("1-2-3", "cannot read frame range"),
        ("1.5", "cannot read frame range"),
        ("1100-1001", "runs backwards: write it as 1001-1100"),
        ("-5", "negative"),
        ("-3-5", "negative"),
        ("1--5", "negative"),
        ("1-100000000", "over"),
    ],
)
def test_parse_frame_range_errors(text, words):
    with pytest.raises(ReverieError) as err:
        parse_frame_range(text)
    message = _one_line(err)
    assert words in message
    if words in ("empty", "cannot read frame range", "negative"):
        assert "1001-1100" in message  # an example of the syntax


def test_format_frame_range():
    assert format_frame_range([1010, 1003, 1004, 1005]) == "1003-1005, 1010"
    assert format_frame_range(range(0, 40, 2), limit=3) == "0, 2, 4 (+17 more)"


# -------------------------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("text", "prefix", "digits", "suffix"),
    [
        ("shots/plate.%04d.exr", "shots/plate.", 4, ".exr"),
        ("plate.%d.png", "plate.", 1, ".png"),
        ("plate.####.dpx", "plate.", 4, ".dpx"),
        ("plate_##_v2.tif", "plate_", 2, "_v2.tif"),
        ("shots/#####.exr", "shots/", 5, ".exr"),
        ("v%03d/plate.#.exr", "v%03d/plate.", 1, ".exr"),  # only the file name holds the frame number
    ],
)
def test_parse_pattern(text, prefix, digits, suffix):
    assert parse_pattern(text) == SequencePattern(text, prefix, digits, suffix)


def test_pattern_paths():
    assert parse_pattern("a/plate.%04d.exr").path(7) == Path("a/plate.0007.exr")
    assert parse_pattern("plate.####.exr").path(12345) == Path("plate.12345.exr")
    assert parse_pattern("plate.%d.exr").path(7) == Path("plate.7.exr")
    assert parse_pattern(Path("x") / "f.##.png").path(3) == Path("x/f.03.png")


@pytest.mark.parametrize("text", ["plate.exr", "shot%04d/plate.exr", "plate.%s.exr", "100%.png"])
def test_parse_pattern_without_token(text):
    assert parse_pattern(text) is None


def test_two_tokens_is_an_error():
    with pytest.raises(ReverieError, match="keep only one") as err:
        parse_pattern("plate.%04d.####.exr")
    _one_line(err)


def test_require_pattern():
    assert require_pattern("out.####.exr").digits == 4
    expected = r"out\.mov has no frame number: write it like out\.%04d\.exr"
    with pytest.raises(ReverieError, match=expected) as err:
        require_pattern("out.mov")
    _one_line(err)


def test_glob_frames_respects_padding(tmp_path):
    names = "p.1001.exr p.1002.exr p.10000.exr p.01003.exr p.999.exr p.1004.png q.1005.exr".split()
    for name in names:
        (tmp_path / name).touch()
    assert parse_pattern(str(tmp_path / "p.####.exr")).glob_frames() == [1001, 1002, 10000]
    assert parse_pattern(str(tmp_path / "p.%d.exr")).glob_frames() == [999, 1001, 1002, 10000]
    assert parse_pattern(str(tmp_path / "missing" / "p.####.exr")).glob_frames() == []


def test_frame_suffixes():
    assert set(FRAME_SUFFIXES) == {".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg"}


# ------------------------------------------------------------------------------------------- writing


def test_exr_keeps_values_above_one_and_below_zero(tmp_path):
    image = _hdr()
    write_frame(tmp_path / "f.exr", image)
    fmt, _, back = _read(tmp_path / "f.exr")
    assert fmt == "half"
    np.testing.assert_allclose(back, image, rtol=1e-3, atol=1e-3)
    assert back.min() < 0 and back.max() > 30


def test_exr_float_and_non_finite_values(tmp_path):
    image = _hdr()
    image[0, 0] = [np.nan, np.inf, -np.inf]
    write_frame(tmp_path / "f.exr", image, bit_depth=32)
    fmt, _, back = _read(tmp_path / "f.exr")
    assert fmt == "float"
    np.testing.assert_array_equal(back[1:], image[1:])
    assert back[0, 0, 0] == 0 and np.isfinite(back).all()
    write_frame(tmp_path / "h.exr", np.full((2, 2, 3), 1e6, np.float32))  # over the half range
    assert np.isfinite(_read(tmp_path / "h.exr")[2]).all()


@pytest.mark.parametrize(("suffix", "bits", "stored"), [("png", 16, "uint16"), ("tif", 16, "uint16")])
def test_16_bit_round_trip(tmp_path, suffix, bits, stored):
    image = _smooth()
    write_frame(tmp_path / f"f.{suffix}", image)
    fmt, _, back = _read(tmp_path / f"f.{suffix}")
    assert fmt == stored
    np.testing.assert_allclose(back, image, atol=0.5 / 65535 + 1e-7)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_8_bit_override(tmp_path, suffix):
    write_frame(tmp_path / f"f.{suffix}", _smooth(), bit_depth=8)
    fmt, _, back = _read(tmp_path / f"f.{suffix}")
    assert fmt == "uint8"
    np.testing.assert_allclose(back, _smooth(), atol=0.5 / 255 + 1e-7)


def test_dpx_is_10_bit_rounded_to_nearest_code(tmp_path):
    codes = np.arange(1024)
    image = np.repeat((codes / 1023).astype(np.float32)[None, :, None], 3, axis=2)
    write_frame(tmp_path / "codes.dpx", image)
    _, bits, back = _read(tmp_path / "codes.dpx")
    assert bits == 10
    np.testing.assert_array_equal(np.rint(back[0, :, 0] * 1023), codes)
    write_frame(tmp_path / "f.dpx", _smooth())
    # 0.5 * 1023 = 511.5 is a tie, so allow a hair over half a code.
    np.testing.assert_allclose(_read(tmp_path / "f.dpx")[2], _smooth(), atol=0.5 / 1023 + 1e-5)


def test_jpeg(tmp_path):
    write_frame(tmp_path / "f.jpg", _smooth())
    fmt, _, back = _read(tmp_path / "f.jpg")
    assert fmt == "uint8"
    np.testing.assert_allclose(back, _smooth(), atol=0.03)


def test_integer_formats_clip(tmp_path):
    image = _hdr()
    write_frame(tmp_path / "f.png", image)
    np.testing.assert_allclose(_read(tmp_path / "f.png")[2], np.clip(image, 0, 1), atol=1e-4)


@pytest.mark.parametrize(("name", "bits"), [("f.jpg", 16), ("f.exr", 8), ("f.png", 32), ("f.dpx", 8)])
def test_unsupported_bit_depth(tmp_path, name, bits):
    with pytest.raises(ReverieError, match=f"at {bits} bits") as err:
        write_frame(tmp_path / name, _smooth(), bit_depth=bits)
    _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_failures_leave_old_file(tmp_path):
    target = tmp_path / "f.exr"
    write_frame(target, _smooth())
    assert _no_temp_files(tmp_path)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_frame(target, np.zeros((4, 4), np.float32))
    assert target.read_bytes() == before and _no_temp_files(tmp_path)


def test_unsupported_suffix(tmp_path):
    target = tmp_path / "f.gif"
    target.write_bytes(b"old")
    with pytest.raises(ReverieError, match=r"'\.gif' is not supported for frames; use \.exr, \.dpx") as err:
        write_frame(target, _smooth())
    _one_line(err)
    assert target.read_bytes() == b"old" and _no_temp_files(tmp_path)


def test_write_to_missing_directory(tmp_path):
    with pytest.raises(ReverieError, match="does not exist") as err:
        write_frame(tmp_path / "nope" / "f.exr", _smooth())
    _one_line(err)


def test_check_frame_writable(tmp_path):
    check_frame_writable(tmp_path / "f.dpx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ReverieError, match="not supported"):
        check_frame_writable(tmp_path / "f.mov")
    with pytest.raises(ReverieError, match="does not exist"):
        check_frame_writable(tmp_path / "nope" / "f.exr")


# ------------------------------------------------------------------------------------------- reading


def test_open_sequence_finds_frames_and_reads(tmp_path):
    pattern = _shot(tmp_path, range(1001, 1006))
    seq = open_sequence(pattern)
    assert seq.frames == (1001, 1002, 1003, 1004, 1005)
    assert seq.size == (24, 16) and len(seq) == 5
    assert seq.fps == 24.0 and seq.colorspace == "ACEScg"
    assert seq.path(1003) == tmp_path / "plate.1003.exr"
    frame = seq.read(1003)
    assert frame.shape == (16, 24, 3) and frame.dtype == np.float32
    np.testing.assert_allclose(frame, 0.1003, rtol=1e-3)


def test_open_sequence_with_percent_pattern_fps_and_colorspace(tmp_path):
    _shot(tmp_path, [1, 2], suffix="png")
    seq = open_sequence(str(tmp_path / "plate.%04d.png"), fps=25, colorspace="srgb")
    assert seq.fps == 25.0 and seq.colorspace == "sRGB Encoded Rec.709 (sRGB)"
    with pytest.raises(ReverieError, match="unknown colourspace"):
        open_sequence(str(tmp_path / "plate.%04d.png"), colorspace="srbg")
    with pytest.raises(ReverieError, match="fps must be a positive number"):
        open_sequence(str(tmp_path / "plate.%04d.png"), fps=0)


def test_open_sequence_respects_frames(tmp_path):
    pattern = _shot(tmp_path, range(1001, 1011))
    assert open_sequence(pattern, "1003-1005,1009").frames == (1003, 1004, 1005, 1009)


def test_missing_frames_are_listed(tmp_path):
    pattern = _shot(tmp_path, [*range(1001, 1003), *range(1006, 1010), *range(1011, 1021)])
    with pytest.raises(ReverieError) as err:
        open_sequence(pattern, "1001-1020")
    message = _one_line(err)
    assert "missing frames 1003-1005, 1010 of 1001-1020" in message
    assert "--allow-gaps" in message


def test_allow_gaps_drops_missing_frames(tmp_path):
    pattern = _shot(tmp_path, [1001, 1002, 1005])
    seq = open_sequence(pattern, "1001-1006", allow_gaps=True)
    assert seq.frames == (1001, 1002, 1005)


def test_hole_on_disk_without_frames_needs_allow_gaps(tmp_path):
    pattern = _shot(tmp_path, [1001, 1002, 1005])
    with pytest.raises(ReverieError, match="missing frames 1003-1004 of 1001-1005"):
        open_sequence(pattern)
    assert open_sequence(pattern, allow_gaps=True).frames == (1001, 1002, 1005)


def test_requested_frames_none_on_disk(tmp_path):
    pattern = _shot(tmp_path, [1, 2])
    with pytest.raises(ReverieError, match=r"none of frames 5-6 exist .* \(on disk: 1-2\)") as err:
        open_sequence(pattern, "5-6", allow_gaps=True)
    _one_line(err)


def test_no_frame_token(tmp_path):
    with pytest.raises(ReverieError, match=r"no frame number: .*%04d.*####.*reverie stylize") as err:
        open_sequence(str(tmp_path / "plate.exr"))
    _one_line(err)


def test_no_frames_on_disk(tmp_path):
    with pytest.raises(ReverieError, match=r"no frames match .*plate\.####\.exr") as err:
        open_sequence(str(tmp_path / "plate.####.exr"))
    _one_line(err)
    with pytest.raises(ReverieError, match="does not exist"):
        open_sequence(str(tmp_path / "nope" / "plate.####.exr"))


def test_no_frames_hints_at_other_padding(tmp_path):
    _shot(tmp_path, [1, 2], name="plate.{:04d}")
    with pytest.raises(ReverieError, match=r"found plate\.0001\.exr: the padding differs"):
        open_sequence(str(tmp_path / "plate.##.exr"))


def test_unsupported_frame_suffix(tmp_path):
    with pytest.raises(ReverieError, match=r"'\.gif' are not supported") as err:
        open_sequence(str(tmp_path / "plate.####.gif"))
    _one_line(err)


def test_different_size_frame(tmp_path):
    pattern = _shot(tmp_path, [1001, 1002])
    write_frame(tmp_path / "plate.1003.exr", np.zeros((20, 24, 3), np.float32))
    with pytest.raises(ReverieError) as err:
        open_sequence(pattern)
    message = _one_line(err)
    assert "frame 1003" in message and "24x20" in message and "24x16" in message


def test_garbage_file_named_exr(tmp_path):
    pattern = _shot(tmp_path, [1001, 1003])
    (tmp_path / "plate.1002.exr").write_bytes(b"this is not an EXR file at all\n" * 8)
    with pytest.raises(ReverieError, match=r"cannot read .*plate\.1002\.exr") as err:
        open_sequence(pattern)
    _one_line(err)


def test_empty_frame_file(tmp_path):
    pattern = _shot(tmp_path, [1001])
    (tmp_path / "plate.1002.exr").write_bytes(b"")
    with pytest.raises(ReverieError, match=r"plate\.1002\.exr is empty"):
        open_sequence(pattern)


@pytest.mark.parametrize("suffix", ["exr", "png", "dpx", "tif", "jpg"])
def test_truncated_frame(tmp_path, suffix):
    pattern = _shot(tmp_path, [1001, 1002], suffix=suffix, size=(48, 40))
    path = tmp_path / f"plate.1002.{suffix}"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ReverieError, match=rf"plate\.1002\.{suffix}") as err:
        open_sequence(pattern).read(1002)
    _one_line(err)


def test_greyscale_and_alpha(tmp_path):
    grey = np.linspace(0, 1, 6 * 8, dtype=np.float32).reshape(6, 8, 1)
    for n, names in enumerate([("Y",), ("Y", "A"), ("R", "G", "B", "A")], 1):
        spec = oiio.ImageSpec(8, 6, len(names), "float")
        spec.channelnames = names
        planes = [np.ones_like(grey) if c == "A" else grey for c in names]
        out = oiio.ImageOutput.create("openexr")
        out.open(str(tmp_path / f"g.{n:04d}.exr"), spec)
        out.write_image(np.concatenate(planes, axis=2))
        out.close()
    seq = open_sequence(str(tmp_path / "g.####.exr"))
    for n in seq.frames:
        np.testing.assert_array_equal(seq.read(n), np.repeat(grey, 3, axis=2))


def test_data_window_is_placed_in_display_window(tmp_path):
    spec = oiio.ImageSpec(4, 2, 3, "float")
    spec.x, spec.y = 3, 1
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, 8, 6
    out = oiio.ImageOutput.create("openexr")
    out.open(str(tmp_path / "d.0001.exr"), spec)
    out.write_image(np.full((2, 4, 3), 2.0, np.float32))
    out.close()
    seq = open_sequence(str(tmp_path / "d.####.exr"))
    assert seq.size == (8, 6)
    frame = seq.read(1)
    assert frame.shape == (6, 8, 3) and frame.sum() == 2.0 * 2 * 4 * 3
    assert (frame[1:3, 3:7] == 2.0).all()


def test_frame_changed_after_open(tmp_path):
    pattern = _shot(tmp_path, [1, 2])
    seq = open_sequence(pattern)
    write_frame(tmp_path / "plate.0002.exr", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ReverieError, match="changed during the run") as err:
        seq.read(2)
    _one_line(err)


def test_frame_deleted_after_open(tmp_path):
    pattern = _shot(tmp_path, [1, 2])
    seq = open_sequence(pattern)
    os.remove(tmp_path / "plate.0002.exr")
    with pytest.raises(ReverieError, match="does not exist"):
        seq.read(2)
