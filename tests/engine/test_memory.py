from reverie.engine.memory import estimate_bytes, largest_fitting_side
from reverie.look import Look

LAYERS = (*Look().layers().content, *Look().layers().style)


def test_estimate_matches_measured_peaks_and_grows_with_pixels():
    # Measured peak RSS of CPU renders (PyTorch 2.13, fp32): 1.28 GiB at 512x384, 3.40 GiB at 1024x768.
    small = estimate_bytes("vgg16", 384, 512, LAYERS)
    large = estimate_bytes("vgg16", 768, 1024, LAYERS)
    assert 1.1 * 2**30 < small < 1.5 * 2**30
    assert 3.1 * 2**30 < large < 3.9 * 2**30
    assert estimate_bytes("vgg19", 768, 1024, LAYERS) > large
    assert estimate_bytes("vgg16", 768, 1024, ("conv1_1", "conv2_1")) < large


def test_largest_fitting_side_is_the_largest_that_fits():
    budget = 4 * 2**30
    side = largest_fitting_side("vgg16", 16 / 9, LAYERS, budget, history=8)
    fits = estimate_bytes("vgg16", round(side * 9 / 16), side, LAYERS)
    too_big = estimate_bytes("vgg16", round((side + 64) * 9 / 16), side + 64, LAYERS)
    assert fits <= budget < too_big
    portrait = largest_fitting_side("vgg16", 9 / 16, LAYERS, budget, history=8)
    assert portrait == side
