import torch

from reverie.core.color import keep_chroma, match_color, rgb_to_yiq, yiq_to_rgb


def _image(seed: int, tint: tuple[float, float, float]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 16, 16, generator=g) * 120
    return base + torch.tensor(tint).view(1, 3, 1, 1)


def test_yiq_round_trip():
    img = _image(0, (10, 50, 90))
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(img)), img, atol=1e-3, rtol=1e-4)


def test_match_color_takes_the_contents_statistics():
    style, content = _image(1, (120, 20, 10)), _image(2, (10, 60, 120)) * 0.8
    out = match_color(style, content)
    px = lambda t: t[0].reshape(3, -1)  # noqa: E731
    torch.testing.assert_close(px(out).mean(1), px(content).mean(1), atol=1.0, rtol=0)
    torch.testing.assert_close(torch.cov(px(out)), torch.cov(px(content)), atol=15.0, rtol=0.05)


def test_keep_chroma_keeps_the_plates_colour_and_the_results_luminance():
    result, plate = _image(3, (60, 60, 60)), _image(4, (80, 40, 20))
    out = keep_chroma(result, plate)
    # Out-of-gamut combinations are clamped to 0-255; compare the pixels that stayed in gamut.
    in_gamut = ((out > 0) & (out < 255)).all(dim=1, keepdim=True).expand(-1, 2, -1, -1)
    assert in_gamut.float().mean() > 0.9
    yiq_out, yiq_plate = rgb_to_yiq(out), rgb_to_yiq(plate)
    torch.testing.assert_close(yiq_out[:, 1:][in_gamut], yiq_plate[:, 1:][in_gamut], atol=0.5, rtol=0)
    y_in_gamut = in_gamut[:, :1]
    torch.testing.assert_close(
        yiq_out[:, :1][y_in_gamut], rgb_to_yiq(result)[:, :1][y_in_gamut], atol=0.5, rtol=0
    )
