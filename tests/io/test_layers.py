"""EXR plates with several layers: the first part's RGB by default, a named part or channel prefix
with --layer, and a layer the file lacks refused in one line that lists the ones it has."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_layered
from reverie.errors import ReverieError
from reverie.io.sequences import open_sequence, read_frame


@pytest.mark.parametrize(
    ("layer", "value"), [(None, 0.25), ("beauty", 0.25), ("diffuse", 0.5), ("specular", 2.0)]
)
def test_the_first_part_or_a_named_layer(tmp_path, layer, value):
    path = tmp_path / "plate.0001.exr"
    write_layered(path, 0.25, 0.5, 2.0)
    frame = read_frame(path, layer=layer)
    assert frame.shape == (6, 8, 3)
    np.testing.assert_array_equal(frame, np.full((6, 8, 3), value, np.float32))


def test_a_layer_the_plates_lack_is_one_line_listing_theirs(tmp_path):
    for n in (1, 2):
        write_layered(tmp_path / f"plate.{n:04d}.exr", 0.25, 0.5, 2.0)
    clip = open_sequence(str(tmp_path / "plate.%04d.exr"), layer="diffuse")
    assert clip.layer == "diffuse" and float(clip.read(2).mean()) == 0.5
    with pytest.raises(ReverieError) as err:
        open_sequence(str(tmp_path / "plate.%04d.exr"), layer="normals")
    message = str(err.value)
    assert "\n" not in message and "no layer 'normals'" in message
    assert "beauty, specular, diffuse" in message
