"""The engine: a Painter keeps its networks (keyed by the weights' content) and the paintings' Gram
targets, and reads a frame's masks and u-map once, whatever the passes and tiles."""

import os

import numpy as np
import torch

from conftest import photo, save_png, stripes, tiny_network
from reverie import Look, Painter, Runtime
from reverie.engine import still


def test_a_rewritten_weights_file_is_read_again_and_the_same_bytes_are_not(tmp_path):
    """Defect: the network was cached by the path's string, so a checkpoint rewritten on disk was never
    read again in a long-lived process (a farm worker, the web page)."""
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"first weights")
    builds: list[bytes] = []

    def build(network, pooling, path):
        builds.append(open(path, "rb").read())
        return tiny_network(network, pooling)

    painter = Painter(Runtime(device="cpu", weights=str(weights)), build_network=build)
    first, _ = painter.network("vgg16")
    assert painter.network("vgg16")[0] is first and len(builds) == 1
    weights.write_bytes(b"other weights")  # the same name, another checkpoint
    second, _ = painter.network("vgg16")
    assert second is not first and builds[-1] == b"other weights"
    weights.write_bytes(b"other weights")  # rewritten with the same bytes: nothing to read again
    os.utime(weights, ns=(1, 1))
    assert painter.network("vgg16")[0] is second and len(builds) == 2


def test_a_paintings_grams_are_computed_once_per_painter(tmp_path):
    """Every frame of a shot has the same style targets: the network sees the painting once."""
    seen: list[tuple] = []

    def build(network, pooling, path):
        net, source = tiny_network(network, pooling)
        forward = net.forward

        def counting(image, layers):
            seen.append(tuple(image.shape))
            return forward(image, layers)

        net.forward = counting
        return net, source

    painter = Painter(Runtime(device="cpu"), build_network=build)
    look = Look(size=32, iterations=2)
    painting = stripes(40, 40)
    painter.stylize(photo(24, 32), painting, look)
    style_shape = next(s for s in seen if s[-2:] != (24, 32))
    painter.stylize(photo(24, 32, seed=3), painting, look)  # another frame, the same painting
    assert seen.count(style_shape) == 1
    painter.stylize(photo(24, 32), 1 - painting, look)  # another painting is computed anew
    assert seen.count(style_shape) == 2


def test_masks_and_the_painting_are_prepared_once_per_pass_not_per_tile(tmp_path, monkeypatch):
    """Defect: each tile and pass read the masks and u-map from disk again and hashed the painting
    again; now they are read once per frame, and the painting prepared once per pass."""
    plate = photo(48, 64)
    mask = save_png(tmp_path / "mask.png", np.ones((48, 64, 3), np.float32))
    u_map = save_png(tmp_path / "u.png", np.full((48, 64, 3), 0.5, np.float32))
    reads: list[str] = []
    read_image = still.read_image
    monkeypatch.setattr(still, "read_image", lambda p: reads.append(str(p)) or read_image(p))
    painter = Painter(Runtime(device="cpu", tile_size=40, precision="mixed"))
    prepared: list[tuple] = []
    style_grams = painter.style_grams
    monkeypatch.setattr(
        painter, "style_grams", lambda look, s: prepared.append(tuple(s.shape)) or style_grams(look, s)
    )
    look = Look(size=32, iterations=4, refine_iterations=2, style_masks=(str(mask),), u_map=str(u_map))
    events = []
    result = painter.stylize(plate, stripes(40, 40), look, output_size=64, callback=events.append)
    assert sorted(reads) == sorted([str(mask), str(u_map)])
    assert len(prepared) == 2  # the working pass and one refine pass (of 4 tiles, 2 phases each)
    assert result.iterations == len(events) == 4 + 4 * 2


def test_a_tiled_pass_reports_the_whole_frames_losses_and_every_tiles_iterations():
    """Defect: a tiled refine reported the last tile's losses and the mean iterations per tile."""
    plate, painting = photo(48, 64), stripes(40, 40)
    look = Look(size=32, iterations=6, refine_iterations=4)
    whole = Painter(Runtime(device="cpu")).stylize(plate, painting, look, output_size=64)
    last_tile: list = []
    tiled = Painter(Runtime(device="cpu", tile_size=40)).stylize(
        plate, painting, look, output_size=64, callback=last_tile.append
    )
    assert tiled.iterations == 6 + 4 * 4 == len(last_tile)  # 2x2 tiles of 4 iterations each
    # The same frame painted whole or in tiles has about the same losses; one tile has a fraction.
    assert 0.5 < tiled.losses.content / whole.losses.content < 2
    assert tiled.losses.content > 1.5 * last_tile[-1].losses.content


def test_the_painter_applies_its_threads_once_as_it_is_made():
    threads = torch.get_num_threads()
    try:
        Painter(Runtime(device="cpu", threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
