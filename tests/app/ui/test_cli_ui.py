"""`reverie ui` from the shell: bad options are one line and exit 2; a server reachable from other
machines needs its token, generated and printed once."""

import re
import subprocess
import sys

import httpx
import pytest

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
