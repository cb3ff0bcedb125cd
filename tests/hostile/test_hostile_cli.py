"""Hostile input to the real command line: each case is one line on stderr and exit code 2, never a
traceback, a progress bar or minutes of waiting (issue 16, "tracebacks where one line belongs").

Every case runs the CLI in a process of its own, with its own stderr file descriptor (so Rich's bars
and Ray's native log lines would show), its exit status and a timeout. Starting Python and torch for
each of some forty cases would take two minutes on two cores, so the processes are forked from one
that has imported the CLI (with the tiny stand-in network) once; one case also runs as a fresh
process to show that the two agree.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import CLI_WITH_TINY_NETWORK, pan_clip, photo, save_png, stripes
from reverie.errors import ReverieError
from reverie.farm.executors import check_reachable
from reverie.io.sequences import write_frame

TINY = ("--size", "32", "--iterations", "1")
SHOT = ("render", "plates/plate.%04d.png", "--style", "paint.png", *TINY, "--first-iterations", "1")
ONE_LINE_SECONDS = 30

# A process that has imported the CLI forks one child per request line (JSON: argv, cwd, stderr file,
# timeout) and answers with the child's exit status (or "timeout", after killing it).
_FORK_SERVER = (
    CLI_WITH_TINY_NETWORK.removesuffix("; main(sys.argv[1:])")
    + """
import json, os, signal, time, traceback
for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(job["cwd"])
            for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, job["out"], os.O_WRONLY | os.O_CREAT),
                                    (2, job["err"], os.O_WRONLY | os.O_CREAT)):
                os.dup2(os.open(path, flags), fd)
            try:
                main(job["argv"])
                code = 0
            except SystemExit as ended:
                code = ended.code if isinstance(ended.code, int) else (0 if ended.code is None else 1)
            except BaseException:
                traceback.print_exc()  # as Python itself would, exit status 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + job["timeout"]
    while not (done := os.waitpid(pid, os.WNOHANG))[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    if not done[0]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(done[1]) if done[0] else "timeout"), flush=True)
"""
)


class Cli:
    """`run(*argv)` -> (exit status, stderr): the CLI in a forked process of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count = folder, 0
        self.server = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, *argv: object, timeout: float = ONE_LINE_SECONDS) -> tuple[int | str, str]:
        self.count += 1
        out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        job = {"argv": [str(a) for a in argv], "cwd": str(self.folder), "out": str(out), "err": str(err)}
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(json.dumps({**job, "timeout": timeout}) + "\n")
        self.server.stdin.flush()
        code = json.loads(self.server.stdout.readline())
        return code, err.read_text()

    def close(self) -> None:
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=30)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plates, a painting, a mask of the wrong shape, and the hostile looks, batches and manifests."""
    root = tmp_path_factory.mktemp("hostile_cli")
    save_png(root / "plate.png", photo(32, 40))
    save_png(root / "paint.png", stripes(40, 40))
    save_png(root / "square.png", np.ones((40, 40, 3), np.float32))
    (root / "plates").mkdir()
    for n, frame in enumerate(pan_clip(2, 32, 40), start=1):
        write_frame(root / "plates" / f"plate.{n:04d}.png", frame)
    look = 'styles = ["paint.png"]\n'
    looks = {
        "masks": look + "style_masks = [1]",
        "umap": look + "u_map = 5",
        "layers": look + 'style_layers = ["conv99_9"]\nstyle_layer_weights = [1.0]',
        "nan": look + 'style_layers = ["conv1_1"]\nstyle_layer_weights = [nan]',
        "deep": "u = " + "[" * 5000 + "]" * 5000,
        "digits": "iterations = 1" + "0" * 5000,
        "wide": "iterations = 1" + "0" * 4000,
    }
    for name, text in looks.items():
        (root / f"{name}.toml").write_text(text)
    (root / "bom.toml").write_bytes(b"\xef\xbb\xbf" + look.encode())
    (root / "big.toml").write_bytes(b"#" * (10 * 2**20))
    shot = '[[shot]]\ninput = "plates/plate.%04d.png"\noutput = "b/p.%04d.png"\nstyle = "paint.png"\n'
    (root / "deep-batch.toml").write_text(shot + "u = " + "[" * 5000 + "]" * 5000)
    (root / "digits-batch.toml").write_text(shot + "output_size = 1" + "0" * 5000)
    for name, text in {
        "deep": '{"a":' * 5000 + "1" + "}" * 5000,
        "digits": '{"version": 1, "key": {}, "frames": {"1": {"seconds": 1' + "0" * 5000 + "}}}",
        "other": '{"version": 1, "key": {"look": "0123456789abcdef"}, "frames": {}}',
    }.items():
        (root / f"m-{name}").mkdir()
        (root / f"m-{name}" / "p.manifest.json").write_text(text)
    return root


@pytest.fixture(scope="module")
def cli(folder: Path) -> Iterator[Cli]:
    runner = Cli(folder)
    yield runner
    runner.close()


def one_line(code: int | str, err: str) -> str:
    """The message of a refused command: exit 2 and exactly one line, no traceback."""
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (code, err)
    assert err.startswith("reverie: error: ")
    return err


@pytest.mark.parametrize("size", ["nanG", "infG", "1e400", "-3G"])
def test_max_memory_must_be_a_finite_positive_size(cli, size):
    err = one_line(
        *cli.run("stylize", "plate.png", "--style", "paint.png", "-o", "o.png", *TINY, "--max-memory", size)
    )
    assert f"--max-memory '{size}' must be a finite positive size like 8G" in err


@pytest.mark.parametrize(
    ("look", "message"),
    [
        ("masks", "style_masks must be image paths (text in quotes), got 1"),
        ("umap", "u_map must be an image path (text in quotes), got 5"),
        ("layers", "vgg16 has no layer 'conv99_9'; its layers: conv1_1, conv1_2"),
        ("nan", "style_layer_weights[0] is nan: give a finite number"),
    ],
)
def test_look_validate_and_stylize_refuse_the_same_look(cli, look, message):
    validated = one_line(*cli.run("look", "validate", f"{look}.toml"))
    painted = one_line(*cli.run("stylize", "plate.png", "--look", f"{look}.toml", "-o", f"{look}.png", *TINY))
    assert message in validated and message in painted
    assert not (cli.folder / f"{look}.png").exists() and not (cli.folder / f"{look}.png.json").exists()


def test_a_fresh_process_says_the_same(cli, folder):
    fresh = subprocess.run(
        [sys.executable, "-c", CLI_WITH_TINY_NETWORK, "look", "validate", "layers.toml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (fresh.returncode, fresh.stderr) == cli.run("look", "validate", "layers.toml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("look", "validate", "deep.toml"), "deep.toml nests values more than 32 levels deep"),
        (("look", "validate", "digits.toml"), "digits.toml holds a number too long to read"),
        (
            ("look", "validate", "wide.toml"),
            "wide.toml: iterations is a number too large (about 4001 digits)",
        ),
        (
            ("look", "validate", "big.toml"),
            "look file big.toml is 10 MB; the limit is 64 KB: give a TOML look",
        ),
        (("render", "--batch", "deep-batch.toml", *TINY), "deep-batch.toml nests values more than 32 levels"),
        (("render", "--batch", "digits-batch.toml", *TINY), "digits-batch.toml holds a number too long"),
        ((*SHOT, "-o", "m-deep/p.%04d.png"), "manifest m-deep/p.manifest.json nests values more than 32"),
        ((*SHOT, "-o", "m-digits/p.%04d.png"), "manifest m-digits/p.manifest.json holds a number too long"),
    ],
)
def test_structured_text_is_read_within_bounds(cli, argv, message):
    assert message in one_line(*cli.run(*argv))


def test_a_look_with_a_byte_order_mark_is_valid(cli):
    code, err = cli.run("look", "validate", "bom.toml")
    assert code == 0 and err == "", err


@pytest.mark.parametrize("fps", ["0", "nan", "inf", "-1"])
def test_fps_must_be_a_positive_rate(cli, fps):
    err = one_line(*cli.run(*SHOT, "-o", "fps/p.%04d.png", "--fps", fps))
    assert f"'--fps': '{fps}' is not a positive number; give the sequence's frame rate" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--mask", "square.png"), "mask square.png is 40x40 but the plate is 40x32"),
        (("--init", "nope.png"), "nope.png does not exist"),
        (("--style-crop", "0,0,500,500"), "style crop 0,0,500,500 does not fit the 40x40 style image"),
        (("--size", "4096", "--max-memory", "100M"), "working size needs about"),
    ],
)
def test_errors_met_before_painting_print_no_progress(cli, argv, message):
    assert message in one_line(
        *cli.run("stylize", "plate.png", "--style", "paint.png", "-o", "p.png", *TINY, *argv)
    )
    shot = [a for a in argv if a not in ("--max-memory", "100M")]  # the worker's memory: a frame's failure
    if "--size" not in argv:
        assert message in one_line(*cli.run(*SHOT, "-o", "progress/p.%04d.png", *shot))


def test_shot_errors_met_before_rendering_print_no_progress(cli):
    err = one_line(
        *cli.run("render", "plates/plate.%04d.png", "--style", "nope.png", *TINY, "-o", "x/p.%04d.png")
    )
    assert "nope.png does not exist" in err
    assert "holds frames of another render" in one_line(*cli.run(*SHOT, "-o", "m-other/p.%04d.png"))
    err = one_line(*cli.run("stylize", "plate.png", "--style", "paint.png", *TINY, "-o", "plate.png/o.png"))
    assert "plate.png is not a directory" in err


def test_a_shot_into_an_unwritable_folder_is_one_line(cli):
    err = one_line(*cli.run(*SHOT, "-o", "plate.png/p.%04d.png"))
    assert "plate.png" in err


@pytest.fixture(params=["garbage", "silence"])
def not_ray(request) -> Iterator[str]:
    """A TCP server on loopback that accepts and then talks nonsense, or says nothing."""
    server = socket.create_server(("127.0.0.1", 0))
    stop, accepted = threading.Event(), []

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)  # held open until the test ends
            if request.param == "garbage":
                conn.sendall(b"+OK not a Ray cluster at all\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in [*accepted, server]:
        conn.close()


def test_an_address_that_is_not_ray_is_refused_promptly(cli, not_ray):
    started = time.monotonic()
    with pytest.raises(ReverieError, match=f"^{not_ray} answers but is not a Ray cluster: it "):
        check_reachable(not_ray)
    assert time.monotonic() - started < 3
    err = one_line(*cli.run(*SHOT, "-o", "ray/p.%04d.png", "--farm", "ray", "--address", not_ray, timeout=20))
    assert f"{not_ray} answers but is not a Ray cluster" in err
