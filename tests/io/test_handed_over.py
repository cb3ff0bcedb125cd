"""Frames as other tools hand them over, written here by OpenImageIO the way those tools write them:
16-bit and float TIFF, 10- and 12-bit DPX, a JPEG sequence. Each reads back to its values."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from reverie.io.sequences import open_sequence, read_frame

RAMP = np.linspace(0, 1, 4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)


def write_foreign(path, pixels: np.ndarray, dtype: str, bits: int | None = None) -> None:
    """`bits` for DPX: the codes are given exactly, in the top bits of uint16 (as OpenImageIO packs
    them), as a scanner or grading tool writes them."""
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 3, dtype)
    if bits is not None:
        spec.attribute("oiio:BitsPerSample", bits)
        pixels = (np.rint(pixels * (2**bits - 1)).astype(np.uint16) << (16 - bits)).astype(np.uint16)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(pixels)
    out.close()


@pytest.mark.parametrize(
    ("suffix", "dtype", "bits", "step"),
    [
        ("tif", "uint16", None, 1 / 65535),
        ("tif", "float", None, 0.0),
        ("tif", "half", None, 1e-3),
        ("dpx", "uint16", 10, 1 / 1023),
        ("dpx", "uint16", 12, 1 / 4095),
    ],
)
def test_frames_in_the_depths_other_tools_write(tmp_path, suffix, dtype, bits, step):
    path = tmp_path / f"plate.0001.{suffix}"
    pixels = RAMP * 4.0 if dtype in ("float", "half") else RAMP  # float TIFFs hold scene values
    write_foreign(path, pixels, dtype, bits)
    frame = read_frame(path)
    assert frame.dtype == np.float32 and frame.shape == (4, 6, 3)
    expected = np.rint(pixels / step) * step if bits else pixels  # DPX: the nearest code's value
    np.testing.assert_allclose(frame, expected, atol=max(step, 1e-7) * (4 if dtype == "half" else 0.51))


def test_a_jpeg_sequence(tmp_path):
    for n in (1, 2):
        write_foreign(tmp_path / f"plate.{n:04d}.jpg", np.full((16, 16, 3), 0.2 * n, np.float32), "uint8")
    clip = open_sequence(str(tmp_path / "plate.%04d.jpg"))
    assert clip.frames == (1, 2) and clip.colorspace == "sRGB Encoded Rec.709 (sRGB)"
    assert abs(float(clip.read(2).mean()) - 0.4) < 0.01
