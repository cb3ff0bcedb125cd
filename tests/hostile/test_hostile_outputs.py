"""Attacks on the outputs, through the real CLI: a render never writes over its inputs, never replaces
a file it did not make unless forced, never shares an output with a render running at the same time,
and leaves nothing behind (a stale lock, an orphan worker) when it is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLI_WITH_TINY_NETWORK, pan_clip, photo, save_png, stripes
from reverie.app.cli import main
from reverie.io.outputs import output_lock
from reverie.io.sequences import write_frame
from reverie.io.video import encode_video

STILL = ("--size", "32", "--iterations", "2", "--quiet")
TINY = (*STILL, "--first-iterations", "2")


def run(capsys, *args: object) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    plates = tmp_path / "plates"
    plates.mkdir()
    for n, frame in enumerate(pan_clip(2, 32, 40), start=1):
        write_frame(plates / f"plate.{n:04d}.png", frame)
    video = tmp_path / "victim.mp4"
    encode_video(pan_clip(2, 32, 40), video, fps=24, codec="h264")
    return {
        "plate": save_png(tmp_path / "plate.png", photo(32, 40)),
        "style": save_png(tmp_path / "painting.png", stripes(40, 40)),
        "plates": plates,
        "video": video,
    }


def _digest(path: Path) -> bytes:
    return path.read_bytes()


def test_a_still_never_writes_over_its_plate_or_painting_even_forced(capsys, files):
    for target in (files["plate"], files["style"]):
        before = _digest(target)
        for force in ((), ("--force",)):
            code, err = run(
                capsys, "stylize", files["plate"], "--style", files["style"], "-o", target, *force, *STILL
            )
            assert code == 2 and err.count("\n") == 1 and "is the input" in err, err
        assert _digest(target) == before


def test_a_still_through_a_symlink_or_another_name_is_still_the_plate(capsys, files, tmp_path):
    link = tmp_path / "link.png"
    link.symlink_to(files["plate"])
    before = _digest(files["plate"])
    for name in (link, tmp_path / "plates" / ".." / "plate.png"):
        code, err = run(
            capsys, "stylize", files["plate"], "--style", files["style"], "-o", name, "--force", *STILL
        )
        assert code == 2 and "is the input" in err, err
    assert _digest(files["plate"]) == before


def test_an_existing_still_is_replaced_only_with_force(capsys, files, tmp_path):
    other = save_png(tmp_path / "someone_elses.png", photo(8, 8, seed=3))
    before = _digest(other)
    code, err = run(capsys, "stylize", files["plate"], "--style", files["style"], "-o", other, *STILL)
    assert code == 2 and "already exists" in err and "--force" in err, err
    assert _digest(other) == before and not Path(f"{other}.json").exists()
    code, err = run(
        capsys, "stylize", files["plate"], "--style", files["style"], "-o", other, "--force", *STILL
    )
    assert code == 0, err
    assert _digest(other) != before and Path(f"{other}.json").is_file()
    assert not Path(f"{other}.lock").exists()  # the lock goes with the render


def test_a_video_render_never_writes_over_its_plate_even_forced(capsys, files):
    before = _digest(files["video"])
    for force in ((), ("--force",)):
        code, err = run(
            capsys, "render", files["video"], "-o", files["video"], "--style", files["style"], *force, *TINY
        )
        assert code == 2 and err.count("\n") == 1 and "is the input" in err, err
    assert _digest(files["video"]) == before


def test_frames_that_are_the_plates_are_refused_under_any_name(capsys, files, tmp_path):
    plates = files["plates"]
    linked = tmp_path / "linked"
    linked.symlink_to(plates)
    before = _digest(plates / "plate.0001.png")
    for output in (plates / "plate.%04d.png", linked / "plate.####.png"):
        code, err = run(
            capsys,
            "render",
            plates / "plate.%04d.png",
            "-o",
            output,
            "--style",
            files["style"],
            "--force",
            *TINY,
        )
        assert code == 2 and "is the input" in err, err
    assert _digest(plates / "plate.0001.png") == before


def test_an_unrelated_video_is_replaced_only_with_force_and_a_finished_render_may_run_again(
    capsys, files, tmp_path
):
    other = tmp_path / "other.mp4"
    encode_video(pan_clip(3, 16, 16), other, fps=24, codec="h264")
    before = _digest(other)
    args = ("render", files["plates"] / "plate.%04d.png", "-o", other, "--style", files["style"], *TINY)
    code, err = run(capsys, *args)
    assert code == 2 and "already exists" in err and "--force" in err, err
    assert _digest(other) == before
    code, err = run(capsys, *args, "--force")
    assert code == 0, err
    assert _digest(other) != before
    code, err = run(capsys, *args)  # the same render again: its manifest vouches for the video
    assert code == 0, err


def test_a_manifest_with_the_render_key_is_on_disk_before_the_first_frame(
    capsys, files, tmp_path, monkeypatch
):
    """A kill between the first frame and the first manifest write left a render that could not resume."""
    from reverie.pipeline import steps

    out = tmp_path / "out"
    seen = []

    def paint_step(worker, job, step, previous_from, on_iteration=None):
        manifest = json.loads((out / "paint.manifest.json").read_text())
        seen.append((manifest["key"]["look"], list(out.glob("paint.0*.png"))))
        raise KeyboardInterrupt  # interrupted as the first frame starts

    monkeypatch.setattr(steps, "paint_step", paint_step)
    monkeypatch.setattr("reverie.farm.driver.paint_step", paint_step)
    with pytest.raises(SystemExit):
        main(
            [
                "render",
                str(files["plates"] / "plate.%04d.png"),
                "-o",
                str(out / "paint.%04d.png"),
                "--style",
                str(files["style"]),
                *TINY,
            ]
        )
    assert seen and seen[0][0] and seen[0][1] == []
    monkeypatch.undo()
    code, err = run(
        capsys,
        "render",
        files["plates"] / "plate.%04d.png",
        "-o",
        out / "paint.%04d.png",
        "--style",
        files["style"],
        *TINY,
    )
    assert code == 0, err
    assert sorted(json.loads((out / "paint.manifest.json").read_text())["frames"]) == ["1", "2"]


def test_an_output_held_in_this_process_is_refused_and_free_once_released(capsys, files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = (
        "render",
        files["plates"] / "plate.%04d.png",
        "-o",
        out / "paint.%04d.png",
        "--style",
        files["style"],
    )
    with output_lock(out / "paint.lock", "the first render"):
        code, err = run(capsys, *args, "--u", "6", *TINY)
    assert code == 2 and err.count("\n") == 1, err
    assert "being rendered by this very command" in err, err  # held here, as by another shot of a batch
    assert not list(out.glob("paint.0*.png"))  # nothing mixed in
    code, err = run(capsys, *args, *TINY)  # released: the next render goes ahead
    assert code == 0, err


def _cli(*args: object) -> subprocess.Popen:
    argv = [sys.executable, "-c", CLI_WITH_TINY_NETWORK, *map(str, args)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_renders_started_together_never_mix_and_a_killed_one_leaves_no_stale_lock(files, tmp_path):
    plates, out = files["plates"] / "plate.%04d.png", tmp_path / "conc" / "paint.%04d.png"
    # Long enough that it still holds the lock when the second has started (it is killed below).
    slow = ("--size", "32", "--iterations", "20000", "--first-iterations", "20000", "-q")
    first = _cli("render", plates, "-o", out, "--style", files["style"], "--u", "4", *slow)
    try:
        _wait_for(
            lambda: (
                (tmp_path / "conc" / "paint.lock").is_file()
                and (tmp_path / "conc" / "paint.lock").stat().st_size
            )
        )
        second = _cli("render", plates, "-o", out, "--style", files["style"], "--u", "6", *TINY)
        err = second.communicate(timeout=60)[1]
        assert second.returncode == 2 and f"pid {first.pid}" in err, err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = _cli("render", plates, "-o", out, "--style", files["style"], "--force", *TINY)
    err = third.communicate(timeout=120)[1]
    assert third.returncode == 0, err  # the kernel dropped the killed render's lock
    manifest = json.loads((tmp_path / "conc" / "paint.manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2"]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_worker_processes_die_with_a_killed_driver(files, tmp_path):
    slow = ("--size", "32", "--iterations", "400", "--first-iterations", "400", "-q")
    driver = _cli(
        "render",
        files["plates"] / "plate.%04d.png",
        "-o",
        tmp_path / "o" / "p.%04d.png",
        "--style",
        files["style"],
        "--workers",
        "2",
        "--threads",
        "1",
        *slow,
    )
    try:
        _wait_for(lambda: len(_children(driver.pid)) >= 2)
        children = _children(driver.pid)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in children), seconds=15)
