import subprocess
import sys

import pytest

from reverie.errors import ReverieError
from reverie.look import Look, crop_box, parse_crop


def test_defaults_are_the_films():
    look = Look()
    assert (look.u, look.iterations, look.size, look.network) == (4.0, 512, 512, "vgg16")
    assert (look.init, look.optimizer, look.style_scale, look.tv_weight) == ("content", "lbfgs", 1.2, 0.0)
    assert look.layers().content == ("conv4_2",)
    assert look.layers().style == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert look.layers().style_weights == (0.2,) * 5
    assert look.describe_u() == "u=4 (style:content 1e4)"
    assert look.ratio == 1e4


def test_toml_round_trip_and_stable_hash():
    look = Look(u=3, styles=("a.jpg", "b.jpg"), style_weights=(0.7, 0.3), style_crop=(0.1, 0.1, 0.5, 0.5))
    again = Look.from_toml(look.to_toml())
    assert again == look
    assert again.hash() == look.hash()
    # The same look hashes the same in another process (no dependence on dict order or id()).
    code = "from reverie.look import Look; import sys; print(Look.from_toml(sys.stdin.read()).hash())"
    out = subprocess.run([sys.executable, "-c", code], input=look.to_toml(), capture_output=True, text=True)
    assert out.stdout.strip() == look.hash()


def test_hash_follows_choices():
    assert Look(u=3).hash() != Look(u=4).hash()
    assert Look(color="content").hash() != Look().hash()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"u": 50}, "useful range"),
        ({"u": float("nan")}, "finite number"),
        ({"network": "resnet"}, "vgg16 or vgg19"),
        ({"iterations": 0}, "iterations"),
        ({"color": "sepia"}, "style or content or match"),
        ({"style_crop": (-1, 0, 10, 10)}, "X,Y >= 0"),
        ({"styles": ("a.jpg",), "style_weights": (0.5, 0.5)}, "one weight per style"),
    ],
)
def test_invalid_choices_are_refused(changes, message):
    with pytest.raises(ReverieError, match=message):
        Look().replace(**changes)


def test_bad_toml_is_a_user_error():
    with pytest.raises(ReverieError, match="not valid TOML"):
        Look.from_toml("u = = 3")
    with pytest.raises(ReverieError, match="unknown setting"):
        Look.from_toml("colour = 'style'")


def test_crop_in_pixels_and_fractions():
    assert crop_box(parse_crop("10,20,30,40"), 100, 100) == (10, 20, 40, 60)
    assert crop_box(parse_crop("0.5,0,0.5,0.25"), 200, 80) == (100, 0, 200, 20)
    with pytest.raises(ReverieError, match="does not fit the 100x100 style image"):
        crop_box(parse_crop("50,50,60,10"), 100, 100)
    with pytest.raises(ReverieError, match="four numbers"):
        parse_crop("1,2,3")


def test_whole_numbers_and_floats_are_the_same_look():
    assert Look(u=3, style_crop=(0, 0, 10, 10)) == Look(u=3.0, style_crop=(0.0, 0.0, 10.0, 10.0))
    assert Look(u=3).hash() == Look(u=3.0).hash()
