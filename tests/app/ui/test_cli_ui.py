"""`reverie ui` from the shell: bad options are one line and exit 2; a server reachable from other
machines needs its token, generated and printed once."""

import io
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from reverie.app.cli import main


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "0.0.0.0", "--password", "short"], "too short"),
        (["--root", "/no/such/folder"], "does not exist"),
        (["--port", "70000"], "not a port"),
    ],
)
def test_bad_options_are_one_line(capsys, args, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["ui", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, err


def test_all_interfaces_need_the_printed_token(tmp_path):
    command = [sys.executable, "-c", "from reverie.app.cli import main; main()", "ui", "--host", "0.0.0.0",
               "--port", "0", "--root", str(tmp_path), "--device", "cpu"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://0\.0\.0\.0:(\d+)/\?token=([\w-]+)", line)
        assert match, line
        base, token = f"http://127.0.0.1:{match.group(1)}", match.group(2)
        refused = httpx.get(f"{base}/api/options")
        assert refused.status_code == 401 and token not in refused.text
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            signed_in = browser.get(f"/?token={token}")  # follows the 303; keeps the cookie
            assert signed_in.status_code == 200 and "Reverie" in signed_in.text
            assert browser.get("/api/options").status_code == 200
        bearer = httpx.get(f"{base}/api/options", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert token not in process.stdout.read()  # printed once, in the address


def test_sigterm_cleans_up_the_uploads_like_ctrl_c(tmp_path):
    """Defect: after SIGTERM (how service managers and `kill` stop a server) the uploaded plates stayed in
    the server's temporary folder; Ctrl-C removed them."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    command = [sys.executable, "-c", "from reverie.app.cli import main; main()", "ui", "--port", "0",
               "--root", str(tmp_path), "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(temp)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        match = re.search(r"http://127\.0\.0\.1:\d+/", process.stdout.readline())
        assert match
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), (200, 90, 40)).save(buffer, format="PNG")
        reply = httpx.post(f"{match.group(0)}api/images", files={"file": ("plate.png", buffer.getvalue())})
        assert reply.status_code == 200, reply.text
        (folder,) = temp.glob("reverie-ui-*")
        assert any(folder.iterdir())  # the plate and its thumbnail
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert time.monotonic() - started < 10
    assert not folder.exists()
    assert "Traceback" not in process.stderr.read()
