"""Shots end to end at tiny sizes: temporal coherence, resuming after kill -9, EXR and video in and out,
and every bad input ending in one line and exit 2 with nothing overwritten."""

import json
import signal
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import CLI_WITH_TINY_NETWORK, pan_clip, photo, save_png, stripes, write_layered
from reverie.app.cli import main
from reverie.app.samples import sample_painting
from reverie.farm.driver import render_shot
from reverie.io.sequences import open_sequence, read_frame, write_frame
from reverie.io.video import encode_video, open_video
from reverie.look import Look
from reverie.pipeline.shot import ShotSpec
from reverie.runtime import Runtime
from reverie.version import __version__


class Events:
    def __init__(self) -> None:
        self.finished: list[dict] = []

    def shot_started(self, frames, finished) -> None:
        pass

    def frame_started(self, number, index, todo, iterations) -> None:
        pass

    def iteration(self, event) -> None:
        pass

    def frame_finished(self, number, entry) -> None:
        self.finished.append({"number": number, **entry})


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def write_clip(folder: Path, frames: list[np.ndarray], suffix: str = "png", first: int = 1) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        write_frame(folder / f"plate.{first + i:04d}.{suffix}", frame)
    return str(folder / f"plate.%04d.{suffix}")


@pytest.fixture()
def style(tmp_path) -> Path:
    return save_png(tmp_path / "painting.png", sample_painting(96))


TINY = ("--size", "40", "--iterations", "3", "--first-iterations", "3", "-q")


@pytest.mark.vgg
def test_temporal_coherence_halves_flicker_and_keeps_the_style(tmp_path, style):
    """At equal iterations, clearly less flicker than independent frames, style loss within 10%.
    Measured here: 0.57x the flicker (0.0091 against 0.0161) and a lower style loss (the warm start
    helps). This tiny clip's flicker floor is about 0.007 (flow at 48x64: weight 4 reaches 0.0068), and
    independent frames no longer flicker from L-BFGS-B's first step, which once threw every pixel to 0
    or 255 (0.024 then), so the issue's half is a real-size figure (README), not this clip's."""
    plates = write_clip(tmp_path / "in", pan_clip(3, 48, 64, pan=3, speed=5))
    runs = {}
    for weight in (0.0, 1.0):
        look = Look(
            u=4, size=64, iterations=20, first_iterations=20, styles=(str(style),), temporal_weight=weight
        )
        events = Events()
        spec = ShotSpec(plates, str(tmp_path / f"w{weight}" / "paint.%04d.png"))
        report = render_shot(spec, look, Runtime(), events)
        runs[weight] = (report.flicker, statistics.fmean(e["losses"]["style"] for e in events.finished))
    (independent, style_off), (coherent, style_on) = runs[0.0], runs[1.0]
    assert coherent <= 0.65 * independent, runs
    assert style_on <= 1.1 * style_off, runs


def test_killed_render_resumes_every_frame_exactly_once(tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(6, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    args = ["render", plates, "-o", str(out), "--style", str(style), "--size", "40", "--iterations", "60"]
    code = CLI_WITH_TINY_NETWORK
    render = subprocess.Popen([sys.executable, "-c", code, *args, "-q"])
    manifest = tmp_path / "out" / "paint.manifest.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(_frames(manifest)) < 2:
        time.sleep(0.05)
    render.send_signal(signal.SIGKILL)
    render.wait()
    finished = _frames(manifest)
    assert 2 <= len(finished) < 6
    before = {n: (_frame(out, n).stat().st_mtime_ns, _frame(out, n).read_bytes()) for n in finished}

    rerun = subprocess.run([sys.executable, "-c", code, *args, "-q"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    after = _frames(manifest)
    assert sorted(after) == [1, 2, 3, 4, 5, 6]
    for n, (mtime, data) in before.items():  # finished frames untouched
        assert _frame(out, n).stat().st_mtime_ns == mtime and _frame(out, n).read_bytes() == data
    report = json.loads((tmp_path / "out" / "paint.report.json").read_text())
    assert report["rendered"] == 6 - len(finished) and report["skipped_finished"] == len(finished)
    # The chain resumed from the last finished frame: the first new frame started from it, not anew.
    first_new = min(set(after) - set(finished))
    assert after[first_new]["chained"] is True
    for n in range(1, 7):
        assert read_frame(_frame(out, n)).shape == (32, 40, 3)


def _frames(manifest: Path) -> dict[int, dict]:
    try:
        return {int(k): v for k, v in json.loads(manifest.read_text())["frames"].items()}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _frame(pattern: Path, number: int) -> Path:
    return Path(str(pattern) % number)


def test_exr_acescg_in_gives_exr_out_in_acescg_with_the_range_kept(capsys, tmp_path, style):
    scene = [photo(32, 40, seed=s) * 4.0 for s in range(2)]  # scene-linear, highlights up to 4
    scene[0][4:8, 4:8] = 12.0
    plates = write_clip(tmp_path / "in", scene, suffix="exr")
    out = tmp_path / "out" / "paint.####.exr"
    code, _, err = run(
        capsys, "render", plates, "-o", out, "--style", style, "--input-colorspace", "ACEScg", *TINY
    )
    assert code == 0, err
    painted = open_sequence(str(out))
    assert painted.colorspace == "ACEScg" and painted.frames == (1, 2)
    manifest = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())
    assert manifest["key"]["colorspace"] == "ACEScg"
    first = painted.read(1)
    assert first.dtype == np.float32 and first.shape == (32, 40, 3)
    assert first.max() > 2.0  # scene-linear values above display white survive the round trip
    assert first.max() <= 12.0 * 1.01  # and never beyond the plate's own range


def test_a_layer_of_multi_part_exr_plates_is_painted_and_named_in_the_key(capsys, tmp_path, style):
    (tmp_path / "in").mkdir()
    for n in (1, 2):
        write_layered(tmp_path / "in" / f"plate.{n:04d}.exr", 0.25, 0.5 + 0.1 * n, 2.0)
    plates, out = tmp_path / "in" / "plate.%04d.exr", tmp_path / "out" / "paint.%04d.exr"
    code, _, err = run(capsys, "render", plates, "-o", out, "--style", style, "--layer", "normals", *TINY)
    assert code == 2 and "no layer 'normals'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    code, _, err = run(capsys, "render", plates, "-o", out, "--style", style, "--layer", "diffuse", *TINY)
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "paint.manifest.json").read_text())["key"]["layer"] == "diffuse"
    code, _, err = run(capsys, "render", plates, "-o", out, "--style", style, *TINY)  # the first part's RGB
    assert code == 2 and "another render" in err, err


def test_video_in_gives_video_out_with_the_same_frames_and_rate(capsys, tmp_path, style):
    source = tmp_path / "plate.mp4"
    encode_video(pan_clip(4, 32, 48), source, fps=Fraction(24000, 1001), codec="h264")
    out = tmp_path / "painted.mov"
    code, _, err = run(capsys, "render", source, "-o", out, "--style", style, *TINY)
    assert code == 0, err
    painted = open_video(out)
    assert painted.frames == (1, 2, 3, 4) and painted.rate == Fraction(24000, 1001)
    assert (tmp_path / "painted.frames" / "painted.manifest.json").exists()


def test_frames_and_a_prores_video_beside_them(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(3, 32, 40), first=1001)
    out = tmp_path / "out" / "paint.%04d.png"
    code, _, err = run(
        capsys, "render", plates, "-o", out, "--style", style, "--encode", "prores", "--fps", "25",
        "--frames", "1001-1002", *TINY,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("paint.*.png")) == [
        "paint.1001.png",
        "paint.1002.png",
    ]
    video = open_video(tmp_path / "out" / "paint.mov")
    assert video.frames == (1, 2) and video.rate == 25


def test_every_painted_frame_and_the_video_say_where_they_came_from(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(2, 32, 40), suffix="exr", first=1001)
    out = tmp_path / "out" / "paint.%04d.dpx"
    common = ("--style", style, "--input-colorspace", "ACEScg", "--output-colorspace", "ACEScct", *TINY)
    code, _, err = run(capsys, "render", plates, "-o", out, "--encode", "h264", *common)
    assert code == 0, err
    key = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())["key"]
    code, printed, err = run(capsys, "look", "show", tmp_path / "out" / "paint.1002.dpx")
    assert code == 0, err
    tags = json.loads(printed)
    assert tags["look"] == key["look"] and tags["frame"] == "1002" and tags["colorspace"] == "ACEScct"
    assert tags["source"] == str((tmp_path / "in" / "plate.1002.exr").absolute())
    assert tags["version"] == __version__
    code, printed, err = run(capsys, "look", "show", tmp_path / "out" / "paint.mp4")
    assert code == 0, err
    assert json.loads(printed)["look"] == key["look"] and json.loads(printed)["frames"] == "1001-1002"
    code, _, err = run(capsys, "look", "show", tmp_path / "in" / "plate.1001.exr")  # a plate: not painted
    assert code == 2 and "no Reverie tags" in err and len(err.strip().splitlines()) == 1, err


def test_flicker_command_measures_a_finished_render(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(3, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    assert run(capsys, "render", plates, "-o", out, "--style", style, *TINY)[0] == 0
    report = json.loads((tmp_path / "out" / "paint.report.json").read_text())
    code, printed, err = run(capsys, "flicker", out, "--input", plates, "--json", tmp_path / "f.json")
    assert code == 0, err
    assert "frame 2:" in printed and "frame 3:" in printed and "flicker" in printed
    measured = json.loads((tmp_path / "f.json").read_text())
    assert len(measured["per_frame"]) == 2
    # The render's own figure (from the frames in memory) and the command's (from the files) agree.
    assert measured["mean"] == pytest.approx(report["flicker"], rel=0.05, abs=1e-6)


def test_rerun_of_a_finished_shot_renders_nothing(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(2, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    assert run(capsys, "render", plates, "-o", out, "--style", style, *TINY)[0] == 0
    mtimes = [p.stat().st_mtime_ns for p in sorted((tmp_path / "out").glob("paint.*.png"))]
    assert run(capsys, "render", plates, "-o", out, "--style", style, *TINY)[0] == 0
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "out").glob("paint.*.png"))] == mtimes
    assert json.loads((tmp_path / "out" / "paint.report.json").read_text())["rendered"] == 0


def test_another_look_is_refused_then_forced(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(2, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    assert run(capsys, "render", plates, "-o", out, "--style", style, *TINY)[0] == 0
    frame = tmp_path / "out" / "paint.0001.png"
    mtime = frame.stat().st_mtime_ns
    code, _, err = run(capsys, "render", plates, "-o", out, "--style", style, *TINY, "--u", "2")
    assert code == 2 and "another render" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert frame.stat().st_mtime_ns == mtime
    code, _, err = run(capsys, "render", plates, "-o", out, "--style", style, *TINY, "--u", "2", "--force")
    assert code == 0, err
    assert frame.stat().st_mtime_ns != mtime


def test_plates_read_in_another_colourspace_are_another_render(capsys, tmp_path, style):
    """Defect: the key named the output's colourspace only, so plates re-read as linear into the same
    sRGB output resumed and mixed frames painted from other pixels."""
    plates = write_clip(tmp_path / "in", pan_clip(2, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    srgb = ("--output-colorspace", "sRGB", *TINY)
    assert run(capsys, "render", plates, "-o", out, "--style", style, *srgb)[0] == 0
    frame = tmp_path / "out" / "paint.0001.png"
    mtime = frame.stat().st_mtime_ns
    code, _, err = run(
        capsys, "render", plates, "-o", out, "--style", style, "--input-colorspace", "linear", *srgb
    )
    assert code == 2 and "another render" in err and len(err.strip().splitlines()) == 1, err
    # The plates' own colourspace named by an alias is the same render: nothing to paint.
    code, _, err = run(
        capsys, "render", plates, "-o", out, "--style", style, "--input-colorspace", "srgb", *srgb
    )
    assert code == 0, err
    assert frame.stat().st_mtime_ns == mtime


def test_flicker_is_measured_between_consecutive_frames_only(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(4, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    assert run(capsys, "render", plates, "-o", out, "--style", style, "--frames", "1-2,4", *TINY)[0] == 0
    frames = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())["frames"]
    assert frames["2"]["flicker"] > 0
    assert "flicker" not in frames["1"] and "flicker" not in frames["4"]  # 4 follows 2: a gap


def test_other_weights_or_precision_are_another_render(capsys, tmp_path, style):
    """Defect: the manifest's key named neither the weights nor the precision, so a resumed render
    could mix frames painted with other weights (or a checkpoint rewritten under the same name)."""
    plates = write_clip(tmp_path / "in", pan_clip(2, 32, 40))
    out = tmp_path / "out" / "paint.%04d.png"
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"first checkpoint")  # the stand-in network ignores it; the key must not
    base = ["render", plates, "-o", out, "--style", style, *TINY, "--weights", weights]
    assert run(capsys, *base, "--frames", "1")[0] == 0
    key = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())["key"]
    assert key["precision"] == "fp32" and len(key["weights"]) == 64
    code, _, err = run(capsys, *base, "--precision", "bf16")
    assert code == 2 and "precision fp32 there, bf16 now" in err, err
    weights.write_bytes(b"other checkpoint")
    code, _, err = run(capsys, *base)
    assert code == 2 and "weights" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "paint.0002.png").exists()


def _bad_shots(tmp: Path, style: Path) -> dict[str, tuple[list, str]]:
    gappy = write_clip(tmp / "gappy", pan_clip(5, 32, 40))
    (tmp / "gappy" / "plate.0003.png").unlink()
    (tmp / "gappy" / "plate.0004.png").unlink()
    mixed = write_clip(tmp / "mixed", pan_clip(2, 32, 40))
    write_frame(tmp / "mixed" / "plate.0003.png", photo(40, 40))
    good = write_clip(tmp / "good", pan_clip(2, 32, 40))
    cut = tmp / "cut.mov"
    encode_video(pan_clip(4, 32, 48), cut, fps=24, codec="prores")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    foreign = tmp / "foreign"
    foreign.mkdir()
    save_png(foreign / "paint.0001.png", stripes(32, 40))
    out = str(tmp / "o" / "paint.%04d.png")
    return {
        "gaps": ([gappy, "-o", out], "missing frames 3-4"),
        "sizes": ([mixed, "-o", out], "40x40"),
        "truncated video": ([cut, "-o", out], "truncated"),
        "colourspace": ([good, "-o", out, "--input-colorspace", "ACEScgg"], "ACEScg"),
        "no frame number": ([good, "-o", str(tmp / "o" / "paint.png")], "no frame number"),
        "foreign frames": ([good, "-o", str(foreign / "paint.%04d.png")], "--force"),
        "not a shot": ([str(tmp / "good" / "plate.0001.png"), "-o", out], "reverie stylize"),
        "bad codec": ([good, "-o", out, "--encode", "mpeg2"], "prores or h264"),
    }


def test_bad_shots_fail_in_one_line_and_touch_nothing(capsys, tmp_path, style):
    foreign_frame = tmp_path / "foreign" / "paint.0001.png"
    for name, (args, expected) in _bad_shots(tmp_path, style).items():
        before = foreign_frame.read_bytes()
        code, _, err = run(capsys, "render", *args, "--style", style, *TINY)
        assert code == 2, (name, err)
        assert err.startswith("reverie: error:") and len(err.strip().splitlines()) == 1, (name, err)
        assert expected in err, (name, err)
        assert "Traceback" not in err
        assert foreign_frame.read_bytes() == before
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("paint.*.png"))


def test_missing_frames_render_with_allow_gaps(capsys, tmp_path, style):
    plates = write_clip(tmp_path / "in", pan_clip(4, 32, 40))
    (tmp_path / "in" / "plate.0002.png").unlink()
    out = tmp_path / "out" / "paint.%04d.png"
    code, _, err = run(capsys, "render", plates, "-o", out, "--style", style, "--allow-gaps", *TINY)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("paint.*.png")) == [
        "paint.0001.png",
        "paint.0003.png",
        "paint.0004.png",
    ]
