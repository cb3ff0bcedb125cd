import pytest
import torch

from reverie.core.losses import gram
from reverie.core.strips import style_grams
from reverie.look import Look

LAYERS = frozenset(Look().layers().style)


@pytest.mark.parametrize("height", [200, 203])
def test_strips_give_the_whole_images_grams(vgg16, height):
    """Strips with their context rows see exactly the features of the whole image, odd sizes included
    (ceil-mode pooling at the bottom edge)."""
    image = torch.rand(1, 3, height, 40, generator=torch.Generator().manual_seed(height)) * 255
    calls: list[int] = []

    class Counting(torch.nn.Module):
        def strip_geometry(self, layers):
            return vgg16.strip_geometry(layers)

        def forward(self, x, layers):
            calls.append(x.shape[2])
            return vgg16(x, layers)

    with torch.no_grad():
        whole = {k: (gram(f), f.shape[2] * f.shape[3]) for k, f in vgg16(image, LAYERS).items()}
        strips = style_grams(Counting(), image, LAYERS, max_pixels=192 * 40)
    assert len(calls) >= 3 and max(calls) < height  # several strips, none of them the whole image
    for layer, (g, positions) in whole.items():
        assert strips[layer][1] == positions
        # Convolutions of other shapes may pick other kernels: float rounding, far below any signal.
        torch.testing.assert_close(strips[layer][0], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()))


def test_context_rows_cover_the_receptive_field(vgg16):
    strides, halo = vgg16.strip_geometry(LAYERS)
    assert strides == {"conv1_1": 1, "conv2_1": 2, "conv3_1": 4, "conv4_1": 8, "conv5_1": 16}
    assert halo % 16 == 0 and halo >= 73  # conv5_1 of VGG16 sees 73 rows either side
    shallow_strides, shallow_halo = vgg16.strip_geometry(frozenset({"conv2_1"}))
    assert shallow_strides == {"conv2_1": 2} and shallow_halo < halo


def test_a_network_without_strip_geometry_runs_whole(vgg16):
    image = torch.rand(1, 3, 64, 64) * 255
    calls: list[tuple] = []

    def net(x, layers):
        calls.append(tuple(x.shape))
        return vgg16(x, layers)

    with torch.no_grad():
        style_grams(net, image, LAYERS, max_pixels=100)
    assert calls == [(1, 3, 64, 64)]


@pytest.mark.parametrize("guided", [False, True])
def test_an_objective_measured_in_strips_equals_it_measured_whole(guided):
    """A tiled refine's frame is measured whole in strips: the same losses as one pass over it."""
    from conftest import tiny_network
    from reverie.core.transfer import Guidance, Objective, Temporal
    from reverie.look import Look

    net, _ = tiny_network("vgg16")
    gen = torch.Generator().manual_seed(2)
    content, image = (torch.rand(1, 3, 70, 52, generator=gen) * 255 for _ in range(2))
    style = torch.rand(1, 3, 40, 40, generator=gen) * 255
    left = torch.zeros(1, 1, 70, 52)
    left[..., :26] = 1
    guidance = Guidance(masks=(left, 1 - left), u_map=torch.full((1, 1, 70, 52), 0.5)) if guided else None
    temporal = Temporal(torch.rand(1, 3, 70, 52, generator=gen) * 255, left, 1.0)
    look = Look(tv_weight=1e-3)
    objective = Objective(net, content, [style, style.flip(-1)] if guided else [style], look,
                          guidance=guidance, temporal=temporal)  # fmt: skip
    whole = objective(image).tolist()
    strips = objective.measure(image, max_pixels=20 * 52)  # strips of 20 rows and their context
    assert [strips.content, strips.style, strips.tv, strips.temporal] == pytest.approx(whole, rel=1e-4)
