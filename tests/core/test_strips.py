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
