"""Fast mode end to end, tiny: keyframes painted by the look, a network trained on them, every frame
painted by it; reuse, retrain, resume, the artist's keyframes, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CLI_WITH_TINY_NETWORK, pan_clip, save_png, stripes, tiny_network, write_show_config
from reverie.app.cli import main
from reverie.core.distill import TrainConfig
from reverie.errors import ReverieError
from reverie.farm.driver import render_batch
from reverie.farm.executors import InProcess
from reverie.farm.fast import FastOptions, render_fast, render_shot_fast
from reverie.io.sequences import read_frame, write_frame
from reverie.look import Look
from reverie.pipeline.shot import ShotSpec
from reverie.pipeline.steps import Worker
from reverie.runtime import Runtime

QUICK = TrainConfig(steps=12, patch=24, batch=2)


class Events:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.finished: list[int] = []
        self.trained = 0

    def stage(self, stage: str, text: str) -> None:
        self.stages.append(stage)

    def training(self, step: int, total: int, loss: float) -> None:
        self.trained = step

    def batch_started(self, shots, frames, finished) -> None:
        pass

    def step_started(self, shot, number, iterations) -> None:
        pass

    def iteration(self, event) -> None:
        pass

    def frame_finished(self, shot, number, entry) -> None:
        self.finished.append(number)

    def frame_failed(self, shot, number, error) -> None:
        raise AssertionError(error)

    def workers(self, alive) -> None:
        pass


@pytest.fixture()
def shot(tmp_path: Path) -> tuple[str, Look]:
    folder = tmp_path / "in"
    folder.mkdir()
    for n, frame in enumerate(pan_clip(5, 32, 40), start=1):
        write_frame(folder / f"plate.{n:04d}.png", frame)
    style = save_png(tmp_path / "painting.png", stripes(48, 48))
    return str(folder / "plate.%04d.png"), Look(size=32, iterations=4, styles=(str(style),))


def _fast(spec: ShotSpec, look: Look, options: FastOptions, events: Events | None = None):
    return render_fast(
        spec, look, Runtime(), InProcess(Worker(build_network=tiny_network)), events or Events(), options
    )


def test_a_fast_render_paints_every_frame_with_one_network_and_reuses_it(capsys, shot, tmp_path):
    out = tmp_path / "out" / "paint.%04d.png"
    spec = ShotSpec(shot[0], str(out))
    events = Events()
    report = _fast(spec, shot[1], FastOptions(keyframes="1,5", train=QUICK), events)
    assert [k.number for k in report.keyframes] == [1, 5] and report.trained and events.trained == 12
    assert sorted(events.finished) == [1, 1, 2, 3, 4, 5, 5]  # the keyframes' render, then every frame
    manifest = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())
    assert (
        sorted(manifest["frames"]) == ["1", "2", "3", "4", "5"]
        and manifest["key"]["fast"] == report.model.digest
    )
    assert report.model.path == tmp_path / "out" / "paint.fast.pt" and report.model.path.is_file()
    keyframes = list((tmp_path / "out").glob("paint.keyframes-*/paint.0001.png"))
    assert len(keyframes) == 1
    frames = [read_frame(Path(str(out) % n)) for n in range(1, 6)]
    assert all(f.shape == (32, 40, 3) and np.isfinite(f).all() for f in frames)
    with pytest.raises(SystemExit) as shown_exit:  # what the saved network was trained on
        main(["look", "show", str(report.model.path)])
    assert shown_exit.value.code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["key"]["keyframes"] == [1, 5] and shown["report"]["steps"] == 12
    again = _fast(spec, shot[1], FastOptions(keyframes="1,5", train=QUICK))
    assert not again.trained and again.model.digest == report.model.digest
    assert again.frames.shots[0].report.rendered == 0  # all there already


def test_another_keyframe_set_retrains_and_its_frames_need_force(shot, tmp_path):
    out = str(tmp_path / "out" / "paint.%04d.png")
    first = _fast(ShotSpec(shot[0], out), shot[1], FastOptions(keyframes="1,5", train=QUICK))
    with pytest.raises(ReverieError, match="another render"):
        _fast(ShotSpec(shot[0], out), shot[1], FastOptions(keyframes="1,3,5", train=QUICK))
    second = _fast(ShotSpec(shot[0], out, force=True), shot[1], FastOptions(keyframes="1,3,5", train=QUICK))
    assert second.trained and second.model.digest != first.model.digest
    forced = _fast(ShotSpec(shot[0], out), shot[1], FastOptions(keyframes="1,3,5", retrain=True, train=QUICK))
    assert forced.trained


def test_the_artists_keyframes_train_the_network(shot, tmp_path):
    painted = tmp_path / "painted"
    painted.mkdir()
    for n in (1, 4):  # "paint one frame, Reverie paints the shot": a red wash over the plate
        plate = read_frame(Path(shot[0] % n))
        write_frame(
            painted / f"mine.{n:04d}.png", (0.5 * plate + 0.5 * np.array([1.0, 0.0, 0.0])).astype(np.float32)
        )
    out = tmp_path / "out" / "paint.%04d.png"
    options = FastOptions(keyframe_images=str(painted / "mine.%04d.png"), train=QUICK)
    report = render_shot_fast(ShotSpec(shot[0], str(out)), Look(size=32), options)  # the Python entry point
    assert [k.number for k in report.keyframes] == [1, 4] and report.trained
    assert sorted(json.loads((tmp_path / "out" / "paint.manifest.json").read_text())["frames"]) == [
        str(n) for n in range(1, 6)
    ]
    assert not list((tmp_path / "out").glob("paint.keyframes-*"))  # nothing painted by the look


def test_keyframe_images_of_another_aspect_are_one_line(shot, tmp_path):
    painted = tmp_path / "painted"
    painted.mkdir()
    write_frame(painted / "mine.0001.png", np.zeros((40, 40, 3), np.float32))
    options = FastOptions(keyframe_images=str(painted / "mine.%04d.png"), train=QUICK)
    with pytest.raises(ReverieError, match="aspect ratio"):
        _fast(ShotSpec(shot[0], str(tmp_path / "o" / "p.%04d.png")), Look(size=32), options)


@pytest.mark.parametrize(
    ("files", "keyframes", "words"),
    [
        ({1: (32, 40), 3: (64, 80)}, None, "different sizes"),  # one is of another size
        ({1: (32, 40)}, "1,2", "mine.0002.png does not exist"),  # one of those named is missing
        ({1: b"not a png"}, None, "cannot read"),
        ({}, None, "no painted keyframe"),
    ],
)
def test_bad_keyframe_images_are_one_line_and_write_nothing(shot, tmp_path, files, keyframes, words):
    painted = tmp_path / "painted"
    painted.mkdir()
    for n, content in files.items():
        path = painted / f"mine.{n:04d}.png"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            write_frame(path, np.full((*content, 3), 0.5, np.float32))
    out = tmp_path / "o"
    options = FastOptions(keyframes=keyframes, keyframe_images=str(painted / "mine.%04d.png"), train=QUICK)
    with pytest.raises(ReverieError, match=words):
        _fast(ShotSpec(shot[0], str(out / "p.%04d.png")), Look(size=32), options)
    assert not any(p.is_file() and p.suffix != ".lock" for p in out.rglob("*"))


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.png"))}


def test_force_repaints_the_frames_not_the_keyframes(shot, tmp_path):
    out = str(tmp_path / "out" / "paint.%04d.png")
    _fast(ShotSpec(shot[0], out), shot[1], FastOptions(keyframes="1,5", train=QUICK))
    (folder,) = (tmp_path / "out").glob("paint.keyframes-*")
    painted = _mtimes(folder)
    forced = _fast(ShotSpec(shot[0], out, force=True), shot[1], FastOptions(keyframes="1,5", train=QUICK))
    assert forced.frames.shots[0].report.rendered == 5 and _mtimes(folder) == painted
    steadier = shot[1].replace(temporal_weight=3.0)  # plays no part in a keyframe or the network
    assert list((tmp_path / "out").glob("paint.keyframes-*")) == [folder]
    again = _fast(ShotSpec(shot[0], out, force=True), steadier, FastOptions(keyframes="1,5", train=QUICK))
    assert not again.trained and _mtimes(folder) == painted


def test_retrain_replaces_only_fast_frames_and_refuses_before_any_keyframe(shot, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_frame(out / "paint.0002.png", np.zeros((32, 40, 3), np.float32))  # made by hand: no manifest
    before = (out / "paint.0002.png").read_bytes()
    retrain = FastOptions(keyframes="1,5", retrain=True, train=QUICK)
    with pytest.raises(ReverieError, match="no Reverie manifest"):
        _fast(ShotSpec(shot[0], str(out / "paint.%04d.png")), shot[1], retrain)
    gatys = tmp_path / "gatys"
    worker = InProcess(Worker(build_network=tiny_network))
    spec = ShotSpec(shot[0], str(gatys / "paint.%04d.png"))
    render_batch([(spec, shot[1])], Runtime(), worker, Events(), [None])  # a full-look render
    frames = {p.name: p.read_bytes() for p in gatys.glob("paint.0*.png")}
    with pytest.raises(ReverieError, match="not fast mode"):
        _fast(spec, shot[1], retrain)
    assert (out / "paint.0002.png").read_bytes() == before
    assert {p.name: p.read_bytes() for p in gatys.glob("paint.0*.png")} == frames and len(frames) == 5
    assert not list(out.glob("paint.keyframes-*")) and not list(gatys.glob("paint.keyframes-*"))


def test_the_artists_keyframes_are_never_written_over(shot, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for n in (1, 5):
        write_frame(out / f"paint.{n:04d}.png", read_frame(Path(shot[0] % n)))
    before = (out / "paint.0001.png").read_bytes()
    options = FastOptions(keyframe_images=str(out / "paint.%04d.png"), train=QUICK)
    with pytest.raises(ReverieError, match="never writes over its own inputs"):
        _fast(ShotSpec(shot[0], str(out / "paint.%04d.png"), force=True), Look(size=32), options)
    assert (out / "paint.0001.png").read_bytes() == before


def test_keyframes_painted_at_another_size_give_frames_at_the_plates_size(shot, tmp_path):
    painted = tmp_path / "painted"
    painted.mkdir()
    for n in (1, 5):  # painted at 3/4 of the plate's size
        write_frame(painted / f"mine.{n:04d}.png", np.full((24, 30, 3), 0.5, np.float32))
    out = tmp_path / "out" / "paint.%04d.png"
    options = FastOptions(keyframe_images=str(painted / "mine.%04d.png"), train=QUICK)
    _fast(ShotSpec(shot[0], str(out)), Look(size=32), options)
    assert {read_frame(Path(str(out) % n)).shape for n in range(1, 6)} == {(32, 40, 3)}


def test_a_damaged_network_file_says_retrain(shot, tmp_path):
    out = str(tmp_path / "out" / "paint.%04d.png")
    report = _fast(ShotSpec(shot[0], out), shot[1], FastOptions(keyframes="1,5", train=QUICK))
    report.model.path.write_bytes(b"not a network")
    with pytest.raises(ReverieError, match="--retrain"):
        _fast(ShotSpec(shot[0], out), shot[1], FastOptions(keyframes="1,5", train=QUICK))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--keyframes", "1,9"), "outside"),
        (("--keyframes", "1,1"), "given twice"),
        (("--keyframe-images", "x.png"), "pattern"),
        (("--max-keyframes", "0"), "1 or more"),
        (("--keyframes", "1,5", "--max-keyframes", "3"), "leave out --max-keyframes"),
        (("--keyframe-images", "p.%04d.png", "--max-keyframes", "3"), "leave out --max-keyframes"),
        (("--chunk", "4"), "leave out"),
    ],
)
def test_bad_fast_options_are_one_line(capsys, shot, tmp_path, args, words):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "render",
                shot[0],
                "-o",
                str(tmp_path / "o" / "p.%04d.png"),
                "--style",
                shot[1].styles[0],
                "--fast",
                *args,
                "-q",
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, err


def test_fast_options_without_fast_are_one_line(capsys, shot, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["render", shot[0], "-o", str(tmp_path / "o" / "p.%04d.png"), "--retrain", "-q"])
    assert exit_info.value.code == 2 and "add --fast" in capsys.readouterr().err


def test_a_fast_render_killed_while_training_resumes_without_repainting_its_keyframes(shot, tmp_path):
    """kill -9 in the middle of the training: the painted keyframes stay (the rerun does not repaint
    them), no half-written network is left to load, and the rerun trains and paints every frame."""
    out = tmp_path / "out" / "paint.%04d.png"
    args = ["render", shot[0], "-o", str(out), "--style", shot[1].styles[0], "--size", "32"]
    args += ["--iterations", "4", "--fast", "--keyframes", "1,5", "--train-steps", "100000", "-q"]
    render = subprocess.Popen([sys.executable, "-c", CLI_WITH_TINY_NETWORK, *args])
    deadline = time.monotonic() + 120
    folder = None
    while time.monotonic() < deadline and render.poll() is None:
        found = list((tmp_path / "out").glob("paint.keyframes-*/paint.manifest.json"))
        if found and len(json.loads(found[0].read_text() or "{}").get("frames", {})) == 2:
            folder = found[0].parent
            break
        time.sleep(0.05)
    time.sleep(1.0)  # well into the 100000 steps
    render.send_signal(signal.SIGKILL)
    render.wait()
    assert folder is not None, "the keyframes were never painted"
    keys = {p: p.stat().st_mtime_ns for p in folder.glob("paint.*.png")}
    assert len(keys) == 2 and not (tmp_path / "out" / "paint.fast.pt").exists()
    args[args.index("100000")] = "20"
    rerun = subprocess.run(
        [sys.executable, "-c", CLI_WITH_TINY_NETWORK, *args], capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.glob("paint.*.png")} == keys  # not repainted
    manifest = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3", "4", "5"]
    assert (tmp_path / "out" / "paint.fast.pt").is_file()


def test_a_fast_render_through_a_shows_config_paints_its_keyframes_on_the_shows_display(shot, tmp_path):
    """The keyframes are display images of the chosen display: here the show's sRGB-like one, which the
    studio config has no name for. Another view paints other keyframes, in their own folder."""
    config = str(write_show_config(tmp_path))
    out = tmp_path / "out" / "paint.%04d.png"
    spec = ShotSpec(shot[0], str(out), ocio_config=config)
    report = _fast(spec, shot[1], FastOptions(keyframes="1,5", train=QUICK))
    assert report.trained
    manifest = json.loads((tmp_path / "out" / "paint.manifest.json").read_text())
    assert manifest["key"]["colorspace"] == "show_srgb" and manifest["key"]["ocio"]["view"] == "Standard"
    painted = json.loads(next((tmp_path / "out").glob("paint.keyframes-*/paint.manifest.json")).read_text())
    assert painted["key"]["colorspace"] == "show_srgb"
    luma = ShotSpec(
        shot[0],
        str(tmp_path / "luma" / "paint.%04d.png"),
        ocio_config=config,
        view="Luma",
        output_colorspace="show_luma",  # the luma view cannot be inverted back to the plates' sRGB
    )
    _fast(luma, shot[1], FastOptions(keyframes="1,5", train=QUICK))
    folders = {p.name for p in (tmp_path / "out").glob("paint.keyframes-*")}
    folders |= {p.name for p in (tmp_path / "luma").glob("paint.keyframes-*")}
    assert len(folders) == 2
