"""Several styles: blend weights, masks that confine a style to a region, and u-maps."""

import numpy as np
import pytest

from conftest import photo, save_png, stripes
from reverie import Look, ReverieError, stylize

FAST = {"size": 48, "iterations": 20, "u": 5}
HORIZONTAL, VERTICAL = stripes(64, 64), stripes(64, 64, vertical=True)

pytestmark = pytest.mark.vgg  # how styles blend and where they go is the look itself


def _orientation(image: np.ndarray) -> float:
    """Vertical over horizontal gradient energy: > 1 where horizontal stripes dominate."""
    grey = image.mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() / np.abs(np.diff(grey, axis=1)).mean())


def _halves(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    left = np.zeros((h, w, 3), np.float32)
    left[:, : w // 2] = 1
    return left, 1 - left


def test_blend_weights_move_the_result_between_the_styles():
    plate = photo(48, 48)
    mostly_h = stylize(plate, [HORIZONTAL, VERTICAL], Look(style_weights=(0.9, 0.1), **FAST)).image
    mostly_v = stylize(plate, [HORIZONTAL, VERTICAL], Look(style_weights=(0.1, 0.9), **FAST)).image
    assert _orientation(mostly_h) > 1.5 * _orientation(mostly_v)


def test_masks_confine_each_style_to_its_region(tmp_path):
    plate = photo(48, 48)
    left, right = _halves(48, 48)
    masks = (str(save_png(tmp_path / "left.png", left)), str(save_png(tmp_path / "right.png", right)))
    out = stylize(plate, [HORIZONTAL, VERTICAL], Look(style_masks=masks, **FAST)).image
    inner = slice(4, 20), slice(28, 44)  # keep away from the border between the regions
    assert _orientation(out[:, inner[0]]) > 2 * _orientation(out[:, inner[1]])


def test_u_map_keeps_the_plate_where_it_is_black(tmp_path):
    # 128 px: at 48 px the deepest style layer's receptive field spans the whole frame.
    plate = photo(96, 128)
    black_left, _ = _halves(96, 128)
    u_map = save_png(tmp_path / "umap.png", 1 - black_left)
    look = Look(u_map=str(u_map), size=128, iterations=15, u=4)
    change = np.abs(stylize(plate, HORIZONTAL, look).image - plate).mean(axis=2)
    assert change[:, 8:48].mean() < 0.5 * change[:, 80:120].mean()


def test_spatial_inputs_are_checked(tmp_path):
    plate = photo(48, 64)
    square = str(save_png(tmp_path / "square.png", np.ones((40, 40, 3), np.float32)))
    colour = np.zeros((48, 64, 3), np.float32)
    colour[..., 0] = 1
    red = str(save_png(tmp_path / "red.png", colour))
    with pytest.raises(ReverieError, match="aspect ratio"):
        stylize(plate, HORIZONTAL, Look(style_masks=(square,), size=32, iterations=1))
    with pytest.raises(ReverieError, match="not greyscale"):
        stylize(plate, HORIZONTAL, Look(u_map=red, size=32, iterations=1))
    with pytest.raises(ReverieError, match="one --mask per --style"):
        Look(styles=("a.png", "b.png"), style_masks=(square,))
