import re
import subprocess
import sys
import time

import pytest

from reverie.errors import ReverieError
from reverie.look import DEFAULT_LAYERS, NETWORK_LAYERS, NETWORKS, Look, crop_box, parse_crop
from reverie.textfile import format_size


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


def test_the_look_knows_each_networks_layers_as_the_networks_name_them():
    from reverie.nets.googlenet import GOOGLENET_LAYERS
    from reverie.nets.weights import conv_names

    assert NETWORK_LAYERS == {
        "vgg16": tuple(conv_names("vgg16")),
        "vgg19": tuple(conv_names("vgg19")),
        "googlenet": GOOGLENET_LAYERS,
    }
    assert all(
        set(DEFAULT_LAYERS[n].content + DEFAULT_LAYERS[n].style) <= set(NETWORK_LAYERS[n]) for n in NETWORKS
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"style_layers": ("conv99_9",), "style_layer_weights": (1.0,)}, "vgg16 has no layer 'conv99_9'"),
        ({"content_layers": ("conv5_4",)}, "vgg16 has no layer 'conv5_4'; its layers: conv1_1"),
        ({"network": "googlenet", "content_layers": ("conv4_2",)}, "googlenet has no layer 'conv4_2'"),
        ({"style_layers": ("conv1_1",), "style_layer_weights": (float("nan"),)}, "must be a finite number"),
        ({"style_layers": ("conv1_1",), "style_layer_weights": (-1.0,)}, "must be >= 0"),
        ({"style_masks": (1,)}, "style_masks must be image paths"),
        ({"u_map": 5}, "u_map must be an image path"),
        ({"styles": "a.png"}, "styles must be a list"),
        ({"u": 10**400}, "u must be a finite number, got a huge number"),
    ],
)
def test_values_that_would_fail_a_render_are_refused_by_the_look(changes, message):
    with pytest.raises(ReverieError, match=re.escape(message)):
        Look().replace(**changes)


def test_a_python_caller_may_give_lists():
    look = Look(styles=["a.png"], style_crop=[0, 0, 10, 10])
    assert look == Look(styles=("a.png",), style_crop=(0, 0, 10, 10)) and hash(look)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'style_layers = ["conv1_1"]\nstyle_layer_weights = [nan]',
            "style_layer_weights[0] is nan: give a finite",
        ),
        ("u = inf", "u is inf: give a finite number"),
        ("u = 1e400", "u is inf: give a finite number"),
        ("iterations = 1" + "0" * 4000, "iterations is a number too large (about 4001 digits)"),
        ("iterations = 1" + "0" * 5000, "holds a number too long to read (over 4,300 digits)"),
        ("u = " + "[" * 5000 + "]" * 5000, "nests values more than 32 levels deep"),
        ("u = " + "[" * 40 + "]" * 40, "nests values more than 32 levels deep"),
        ("a" + ".a" * 5000 + " = 1", "nests values more than 32 levels deep"),
    ],
)
def test_hostile_toml_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "hostile.toml"
    path.write_text(text)
    with pytest.raises(ReverieError) as caught:
        Look.load(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_look_files_with_a_byte_order_mark_load_and_large_ones_are_refused_in_kb(tmp_path):
    marked = tmp_path / "windows.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + Look(u=3).to_toml().encode())
    assert Look.load(marked) == Look(u=3)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (10 * 2**20))
    with pytest.raises(
        ReverieError, match=f"look file {re.escape(str(big))} is 10 MB; the limit is 64 KB: give"
    ):
        Look.load(big)


def test_sizes_read_as_a_person_reads_them():
    assert [format_size(n) for n in (100, 1536, 64 * 2**10, 10 * 2**20)] == [
        "100 bytes",
        "1.5 KB",
        "64 KB",
        "10 MB",
    ]


def test_a_long_dotted_key_is_refused_before_the_quadratic_parse(tmp_path):
    path = tmp_path / "dotted.toml"
    path.write_text("a" + ".a" * 30_000 + " = 1")  # 60 KB: tomllib alone takes about 15 s
    started = time.monotonic()
    with pytest.raises(ReverieError, match="nests values more than 32 levels deep"):
        Look.load(path)
    assert time.monotonic() - started < 1
    # Brackets and dots inside strings and comments are text.
    path.write_text(
        'styles = ["a[[[[.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.png"]\n# '
        + "[" * 50
    )
    assert Look.load(path).styles[0].startswith("a[[[[")
