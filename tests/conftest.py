"""Shared fixtures: tiny images made in code; the real VGG16 at tiny sizes for the look's own tests, and a
tiny stand-in network with VGG16's layers for the logic around it (farm, pipeline, UI, tiles)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reverie.nets.vgg import VGGFeatures
from reverie.nets.weights import VGG_BLOCKS, VGGWeights, load_weights

if os.environ.get("PYTEST_XDIST_WORKER"):  # two test processes share the two cores: one thread each
    torch.set_num_threads(1)

TINY_CHANNELS = (8, 12, 16, 16, 16)
"""The stand-in's channels per block (VGG16's are 64 to 512): about 1/500 of its work."""


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth, colourful 'plate': gradients and a few soft discs, float RGB 0..1."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.7 - 0.4 * x * y], axis=-1)
    for _ in range(3):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.25)
        disc = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / r**2)[..., None]
        img = img * (1 - disc) + disc * rng.uniform(0, 1, 3)
    return img.clip(0, 1).astype(np.float32)


def stripes(h: int = 64, w: int = 64, vertical: bool = False, period: int = 6) -> np.ndarray:
    """A high-contrast striped 'painting' (horizontal stripes, or vertical)."""
    coord = np.arange(w if vertical else h)
    band = ((coord // (period // 2)) % 2).astype(np.float32)
    img = np.broadcast_to(band[None, :] if vertical else band[:, None], (h, w))
    colours = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.8]], dtype=np.float32)
    return (img[..., None] * colours[0] + (1 - img[..., None]) * colours[1]).astype(np.float32)


def save_png(path: Path, image: np.ndarray) -> Path:
    Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def vgg16() -> VGGFeatures:
    return VGGFeatures(load_weights("vgg16")).to(memory_format=torch.channels_last)


def tiny_network(network: str, pooling: str = "max", weights: str | None = None) -> tuple[VGGFeatures, str]:
    """A stand-in for `reverie.nets.build_network`: VGG16's layers and names (so every default layer,
    the strips and the memory estimate apply), random He-initialised filters with few channels. Its
    Gram statistics still tell textures apart, so style transfer still moves an image towards the
    painting, but it says nothing about a look: tests of the look keep the real VGG16."""
    gen = torch.Generator().manual_seed(0)
    convs, cin = {}, 3
    for block, (count, cout) in enumerate(zip(VGG_BLOCKS["vgg16"], TINY_CHANNELS, strict=True), 1):
        for index in range(1, count + 1):
            w = torch.randn(cout, cin, 3, 3, generator=gen) * (2 / (9 * cin)) ** 0.5
            convs[f"conv{block}_{index}"], cin = (w, torch.zeros(cout)), cout
    weights_ = VGGWeights("vgg16", convs, "caffe", "tiny stand-in", "0" * 64)
    return VGGFeatures(weights_, pooling), "tiny stand-in network"


@pytest.fixture(autouse=True)
def _stand_in_network(request, monkeypatch) -> None:
    """Every Painter made in a test (the CLI's, the web page's, a farm's in this process) paints with
    the tiny stand-in network, unless the test is marked `vgg`: a test of the look itself."""
    if request.node.get_closest_marker("vgg") is None:
        monkeypatch.setattr("reverie.engine.painter.build_network", tiny_network)


TESTS = str(Path(__file__).parent)
CLI_WITH_TINY_NETWORK = (
    f"import sys; sys.path.insert(0, {TESTS!r}); import conftest, reverie.engine.painter as p; "
    "p.build_network = conftest.tiny_network; from reverie.app.cli import main; main(sys.argv[1:])"
)
"""`python -c` code that runs the CLI with the stand-in network, for tests that kill a render."""


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, Path]:
    """Content and style files on disk, for the CLI."""
    return {
        "content": save_png(tmp_path / "plate.png", photo()),
        "style": save_png(tmp_path / "painting.png", stripes(80, 80)),
    }


def pan_clip(
    frames: int = 5, h: int = 64, w: int = 80, pan: int = 2, speed: int = 4, seed: int = 0
) -> list[np.ndarray]:
    """A shot with known motion: the camera pans right over a photo by `pan` px a frame (the scene moves
    left) while a red square crosses it left-to-right at `speed` px a frame on top of the pan.

    Frame t shows the photo's columns [t*pan, t*pan + w) and the square's left edge at column
    8 + t*speed (in frame coordinates), rows h/3 to h/3 + h/4. So the true backward flow (frame t to
    t-1) is +pan px in x on the background and -speed px on the square; the strip the square uncovers
    behind it is occluded in frame t-1.
    """
    wide = photo(h, w + frames * pan + 1, seed=seed)
    side, top = h // 4, h // 3
    out = []
    for t in range(frames):
        frame = wide[:, t * pan : t * pan + w].copy()
        left = 8 + t * speed
        frame[top : top + side, left : left + side] = (0.85, 0.15, 0.1)
        out.append(frame)
    return out


# A show's OCIO config, small: a scene-linear space with an alias, an sRGB-like display space, file
# rules (PNG is display sRGB, the rest linear), and a display with a plain view and a luma view (a
# singular matrix: it cannot be inverted).
SHOW_CONFIG = """\
ocio_profile_version: 2

roles:
  default: show_lin
  scene_linear: show_lin

file_rules:
  - !<Rule> {name: Pictures, extension: "png", pattern: "*", colorspace: show_srgb}
  - !<Rule> {name: Default, colorspace: show_lin}

displays:
  Monitor:
    - !<View> {name: Standard, colorspace: show_srgb}
    - !<View> {name: Luma, colorspace: show_luma}

colorspaces:
  - !<ColorSpace>
    name: show_lin
    aliases: [lin_show]
    encoding: scene-linear
  - !<ColorSpace>
    name: show_srgb
    encoding: sdr-video
    from_scene_reference: !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055, direction: inverse}
  - !<ColorSpace>
    name: show_luma
    encoding: sdr-video
    from_scene_reference: !<GroupTransform>
      children:
        - !<MatrixTransform>
          matrix: [0.2126, 0.7152, 0.0722, 0, 0.2126, 0.7152, 0.0722, 0,
                   0.2126, 0.7152, 0.0722, 0, 0, 0, 0, 1]
        - !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055, direction: inverse}
"""


def write_show_config(folder: Path, text: str = SHOW_CONFIG) -> Path:
    path = folder / "show.ocio"
    path.write_text(text)
    return path


def write_layered(path: Path, beauty: float, diffuse: float, specular: float) -> None:
    """A two-part EXR: part "beauty" (R, G, B, plus specular.R/G/B channels) and part "diffuse"
    (diffuse.R/G/B/A), each layer a flat value."""
    import OpenImageIO as oiio  # the shots extra: only the tests that need layers import it

    first = oiio.ImageSpec(8, 6, 6, "half")
    first.channelnames = ("R", "G", "B", "specular.R", "specular.G", "specular.B")
    first.attribute("name", "beauty")
    second = oiio.ImageSpec(8, 6, 4, "half")
    second.channelnames = ("diffuse.R", "diffuse.G", "diffuse.B", "diffuse.A")
    second.attribute("name", "diffuse")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), [first, second])
    out.write_image(np.concatenate([np.full((6, 8, 3), beauty), np.full((6, 8, 3), specular)], -1))
    assert out.open(str(path), second, "AppendSubimage")
    out.write_image(np.concatenate([np.full((6, 8, 3), diffuse), np.ones((6, 8, 1))], -1).astype(np.float32))
    out.close()
