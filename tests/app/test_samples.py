"""Sample images for ``reverie demo``: the procedural painting and scikit-image's shipped photos."""

import importlib.machinery
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from reverie.app import samples
from reverie.app.samples import CONTENT_FILES, sample_content, sample_painting
from reverie.errors import ReverieError

HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None
needs_skimage = pytest.mark.skipif(not HAS_SKIMAGE, reason="scikit-image (reverie[demo]) is not installed")


def _laplacian_energy(img: np.ndarray) -> float:
    g = img.mean(axis=-1)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


def _hue_share(img: np.ndarray, lo_deg: float, hi_deg: float) -> float:
    """Share of clearly coloured pixels whose hue lies in [lo_deg, hi_deg)."""
    hsv = np.asarray(Image.fromarray((img * 255).round().astype(np.uint8)).convert("HSV"), np.float32)
    coloured = (hsv[..., 1] > 80) & (hsv[..., 2] > 60)
    hue = hsv[..., 0][coloured] * 360 / 256
    return float(((hue >= lo_deg) & (hue < hi_deg)).mean())


@pytest.mark.parametrize(("size", "shape"), [(64, (48, 64, 3)), (100, (75, 100, 3))])
def test_painting_is_landscape_float_rgb(size, shape):
    img = sample_painting(size)
    assert img.shape == shape
    assert img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0


def test_painting_is_deterministic_per_seed():
    assert np.array_equal(sample_painting(64, seed=3), sample_painting(64, seed=3))
    assert not np.allclose(sample_painting(64, seed=3), sample_painting(64, seed=4), atol=0.05)


def test_painting_does_not_touch_global_random_state():
    np.random.seed(0)
    before = np.random.random()
    np.random.seed(0)
    sample_painting(64)
    assert np.random.random() == before


@pytest.mark.parametrize("seed", [0, 1])
def test_painting_has_brushwork_texture(seed):
    # Style transfer copies texture: the painting must be far busier than a smooth image of the same colours.
    img = sample_painting(100, seed)
    smooth = np.linspace(0, 1, 100, dtype=np.float32)[None, :, None] * np.ones((75, 1, 3), np.float32)
    assert _laplacian_energy(img) > 0.1
    assert _laplacian_energy(img) > 20 * _laplacian_energy(smooth) + 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_painting_has_a_rich_palette(seed):
    img = sample_painting(100, seed)
    assert (img.reshape(-1, 3).std(axis=0) > 0.12).all()
    assert _hue_share(img, 190, 260) > 0.15  # ultramarine and cobalt sky
    assert _hue_share(img, 25, 65) > 0.15  # ochre and cadmium fields
    assert _hue_share(img, 75, 175) > 0.02  # viridian hedgerows and cypress


def test_painting_rejects_a_tiny_size():
    with pytest.raises(ReverieError, match="at least 8"):
        sample_painting(4)


@needs_skimage
@pytest.mark.parametrize("name", list(CONTENT_FILES))
def test_content_photo_is_float_rgb(name):
    img = sample_content(name)
    assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256
    assert img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05


@needs_skimage
def test_content_does_not_import_skimage():
    # Importing skimage is slow and could reach pooch, which downloads; the demo must stay offline.
    code = (
        "import sys; from reverie.app.samples import sample_content as c; "
        "c(); print('skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_content_without_skimage_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a)
    )
    with pytest.raises(ReverieError) as err:
        sample_content()
    hint = "pip install 'reverie[demo]' (or pip install scikit-image==0.26.0)"
    assert str(err.value) == f"sample photos come from scikit-image: {hint}"


def test_content_with_file_missing_from_skimage(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec("skimage", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(samples.importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(ReverieError, match="missing from the installed scikit-image"):
        sample_content("coffee")


def test_unknown_content_name_lists_the_names():
    with pytest.raises(ReverieError, match="chelsea, astronaut, coffee, rocket"):
        sample_content("mona_lisa")
