"""End to end: `reverie ui` started as a user starts it, driven in headless Debian chromium by Playwright.

Upload a plate and a painting, move the u slider, run a tiny preview and see the image change, save
the look and read the downloaded TOML. Needs Debian's chromium (`apt-get install chromium`; `.ci/run`
installs it). REVERIE_UI_SCREENSHOT=path.png keeps a screenshot of the finished page.
"""

import io
import os
import re
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from conftest import photo, save_png
from reverie.app.samples import sample_painting

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def server(tmp_path):
    """`reverie ui --port 0` in its own process; yields the address it printed."""
    (tmp_path / "root").mkdir()
    command = [sys.executable, "-c", "from reverie.app.cli import main; main()", "ui", "--port", "0",
               "--root", str(tmp_path / "root"), "--device", "cpu"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert match, f"no address printed: {line!r}"
    yield match.group(0)
    process.terminate()
    assert process.wait(timeout=20) == 0 or process.returncode == -15


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32) / 255


def test_a_director_previews_a_look_and_saves_it(server, tmp_path):
    assert CHROMIUM, "the end-to-end test needs Debian's chromium: apt-get install chromium"
    content, style = tmp_path / "plate.png", tmp_path / "painting.png"
    save_png(content, photo(48, 64))
    save_png(style, sample_painting(96))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.set_input_files("#content-file", str(content))
        thumb = page.locator("#content-thumb")
        expect(thumb).to_have_attribute("src", re.compile(r"/api/images/img-\d+\.png"))
        page.set_input_files("#style-file", str(style))
        expect(page.locator("#style-size")).to_contain_text("96 × 72")  # uploaded and read by the server
        page.locator("#u").fill("3")
        expect(page.locator("#u-label")).to_contain_text("3")
        page.fill("#iterations", "8")
        page.fill("#size", "48")

        page.click("#preview")
        image = page.locator("#preview-image")
        expect(image).to_have_attribute("data-state", "done", timeout=120_000)
        painted = _pixels(page.request.get(server + image.get_attribute("src").lstrip("/")).body())
        job = page.request.get(server + "api/jobs").json()["jobs"][0]
        assert job["state"] == "done" and job["iteration"] == 8 and job["label"].startswith("preview u=3")
        start = _pixels(page.request.get(f"{server}api/images/{_content_id(page)}.png").body())
        assert painted.shape[:2] == (36, 48)
        assert np.abs(painted - _resized(start, painted.shape)).mean() > 0.02  # the image changed

        second_tab = browser.new_page()
        second_tab.goto(server)
        expect(second_tab.locator("#jobs li.job")).to_have_count(1)  # the same queue in every tab
        expect(second_tab.locator("#jobs li.job")).to_have_attribute("data-state", "done")

        with page.expect_download() as download:
            page.click("#save-look")
        saved = tomllib.loads(open(download.value.path()).read())
        assert saved["u"] == 3 and saved["iterations"] == 8 and saved["size"] == 48
        assert saved["styles"] == ["painting.png"]
        if os.environ.get("REVERIE_UI_SCREENSHOT"):
            page.screenshot(path=os.environ["REVERIE_UI_SCREENSHOT"], full_page=True)
        browser.close()


def _content_id(page) -> str:
    return re.search(r"img-\d+", page.locator("#content-thumb").get_attribute("src")).group(0)


def _resized(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    pixels = Image.fromarray((image * 255).astype(np.uint8)).resize((shape[1], shape[0]), Image.LANCZOS)
    return np.asarray(pixels, dtype=np.float32) / 255
