"""Where a painted frame came from, in its header: every frame format keeps the tags, read back by
OpenImageIO, with the standard attributes where the format has them."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from reverie.io.sequences import read_frame, read_tags, write_frame

TAGS = {
    "look": "3f2a" * 16,
    "version": "1.2.3",
    "source": "/show/plates/" + "long_folder_name/" * 12 + "plate.1001.exr",
    "frame": "1001",
    "colorspace": "ARRI LogC4",
}


@pytest.mark.parametrize("suffix", ["exr", "dpx", "tif", "png", "jpg"])
def test_every_format_keeps_the_tags_and_the_standard_attributes(tmp_path, suffix):
    path = tmp_path / f"paint.1001.{suffix}"
    image = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    write_frame(path, image, tags=TAGS)
    assert read_tags(path) == TAGS
    spec = oiio.ImageInput.open(str(path)).spec()
    assert spec.getattribute("Software") == "Reverie 1.2.3"
    if suffix != "jpg":  # JPEG has no DocumentName: the source is in the tags only
        assert TAGS["source"].startswith(spec.getattribute("DocumentName"))  # DPX keeps 200 characters
    assert read_frame(path).shape == (12, 16, 3)  # the pixels are unchanged by the header


def test_a_frame_without_tags_or_with_anothers_description_has_none(tmp_path):
    plain = tmp_path / "plain.0001.exr"
    write_frame(plain, np.zeros((4, 4, 3), np.float32))
    assert read_tags(plain) == {}
    foreign = tmp_path / "foreign.tif"
    spec = oiio.ImageSpec(4, 4, 3, "uint8")
    spec.attribute("ImageDescription", "reverie scan, not a record")
    out = oiio.ImageOutput.create(str(foreign))
    out.open(str(foreign), spec)
    out.write_image(np.zeros((4, 4, 3), np.uint8))
    out.close()
    assert read_tags(foreign) == {}
