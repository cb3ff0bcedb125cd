import pytest
import torch

from reverie.core.losses import content_loss, gram, rescale_gram, style_loss, tv_loss
from reverie.core.transfer import content_scale


def test_gram_is_unnormalised_and_layout_free():
    f = torch.randn(1, 5, 7, 6)
    flat = f[0].reshape(5, -1)
    expected = flat @ flat.T
    torch.testing.assert_close(gram(f), expected)
    torch.testing.assert_close(gram(f.contiguous(memory_format=torch.channels_last)), expected)


def test_style_loss_normalisation():
    f, g = torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)
    n, m = 4, 25
    expected = ((gram(f) - gram(g)) ** 2).sum() / (4 * n**2 * m**2)
    torch.testing.assert_close(style_loss(f, gram(g)), expected)
    assert style_loss(f, gram(f)).item() == 0


def test_rescaled_gram_makes_a_larger_style_image_equivalent():
    # A style image that is the same texture repeated 2x2 has 4x the positions and 4x the Gram;
    # expressed for the frame's positions it is the same target.
    f = torch.randn(1, 3, 4, 4)
    tiled = f.repeat(1, 1, 2, 2)
    target = rescale_gram(gram(tiled), 64, 16)
    assert style_loss(f, target).item() == pytest.approx(0, abs=1e-9)


def test_content_and_tv():
    a, b = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    assert content_loss(a, b).item() == 4.0
    img = torch.zeros(1, 3, 2, 2)
    img[..., 0, 0] = 1
    assert tv_loss(img).item() == 6.0


def test_content_scale_keeps_u_at_512px():
    assert content_scale(384, 512) == 1.0
    assert content_scale(1024, 768) == 0.25


def test_bf16_gram_is_exact_forward_and_close_backward():
    # The bf16 path: an fp32 Gram of the bf16 values (products of bf16 numbers are exact in fp32) and
    # a gradient within bf16 rounding of autograd's fp32 one.
    torch.manual_seed(0)
    f = torch.randn(1, 32, 12, 10).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    weights = torch.randn(32, 32)
    fast_f = f.clone().requires_grad_(True)
    fast = gram(fast_f)
    (fast * weights).sum().backward()
    exact_f = f.float().requires_grad_(True)
    exact = gram(exact_f)
    (exact * weights).sum().backward()
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-4)
    assert fast_f.grad.dtype == torch.bfloat16
    error = (fast_f.grad.float() - exact_f.grad).norm() / exact_f.grad.norm()
    assert 0 < error < 1e-2
