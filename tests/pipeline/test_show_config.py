"""A show's OCIO config through whole renders: --ocio-config and $OCIO name the colourspaces, the file
rules choose the plates', the key names the config, and a view that cannot be inverted, a display the
config lacks or a config that changed are refused in one line before anything is written."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHOW_CONFIG, photo, save_png, write_show_config
from reverie.app.cli import main
from reverie.app.samples import sample_painting
from reverie.errors import ReverieError
from reverie.farm.batch import load_batch
from reverie.io import colorspace as cs
from reverie.io.sequences import open_sequence, write_frame

TINY = ("--size", "40", "--iterations", "3", "--first-iterations", "3", "-q")


def run(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture()
def shot(tmp_path) -> dict[str, Path]:
    """Scene-linear EXR plates (no colourspace named: the show's file rules say show_lin), a painting
    and the show's config."""
    (tmp_path / "in").mkdir()
    for n in (1, 2):
        write_frame(tmp_path / "in" / f"plate.{n:04d}.exr", photo(32, 40, seed=n) ** 2.2 * 3.0)
    return {
        "plates": tmp_path / "in" / "plate.%04d.exr",
        "style": save_png(tmp_path / "painting.png", sample_painting(96)),
        "config": write_show_config(tmp_path),
        "out": tmp_path / "out" / "paint.%04d.exr",
    }


def manifest_key(shot) -> dict:
    return json.loads((shot["out"].parent / "paint.manifest.json").read_text())["key"]


def test_a_render_through_the_shows_config_names_it_in_the_key(capsys, shot):
    args = ("render", shot["plates"], "-o", shot["out"], "--style", shot["style"], *TINY)
    code, err = run(capsys, *args, "--ocio-config", shot["config"])
    assert code == 0, err
    key = manifest_key(shot)
    assert key["colorspace"] == "show_lin" and key["input_colorspace"] == "show_lin"  # the file rules
    assert key["ocio"] == {
        "config": cs.open_color_config(shot["config"]).digest,
        "display": "Monitor",
        "view": "Standard",
    }
    show = cs.open_color_config(shot["config"])
    frame = open_sequence(str(shot["out"]), colorspace="show_lin", color=show).read(1)
    plate = open_sequence(str(shot["plates"]), color=show).read(1)
    # Back in scene-linear, not left display-encoded (which would be about twice as bright here), and
    # through a view without a highlight roll-off nothing comes back above display white's inverse.
    assert 0.4 < np.median(frame) / np.median(plate) < 2.0
    assert np.isfinite(frame).all() and frame.max() <= 1.0 + 1e-4


def test_ocio_in_the_environment_is_the_same_render_and_another_config_is_another(capsys, shot, monkeypatch):
    args = ("render", shot["plates"], "-o", shot["out"], "--style", shot["style"], *TINY)
    assert run(capsys, *args, "--ocio-config", shot["config"])[0] == 0
    first = shot["out"].parent / "paint.0001.exr"
    mtime = first.stat().st_mtime_ns
    monkeypatch.setenv("OCIO", str(shot["config"]))
    assert run(capsys, *args) == (0, "")  # $OCIO names the same config: nothing left to paint
    assert first.stat().st_mtime_ns == mtime
    shot["config"].write_text(SHOW_CONFIG.replace("gamma: 2.4", "gamma: 2.2"))  # the show edits it
    code, err = run(capsys, *args)
    assert code == 2 and "another render" in err and len(err.strip().splitlines()) == 1, err
    assert first.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--view", "Luma"), "cannot be inverted"),
        (("--view", "Luma", "--output-colorspace", "show_srgb"), "cannot be inverted"),
        (("--display", "Monitr"), "did you mean 'Monitor'"),
        (("--view", "Standrd"), "did you mean 'Standard'"),
        (("--input-colorspace", "ACEScg"), "unknown colourspace 'ACEScg'"),
    ],
)
def test_bad_colour_settings_are_one_line_and_write_nothing(capsys, shot, flags, message):
    args = ("render", shot["plates"], "-o", shot["out"], "--style", shot["style"], *TINY)
    code, err = run(capsys, *args, "--ocio-config", shot["config"], *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not shot["out"].parent.exists() or not list(shot["out"].parent.iterdir())


def test_an_unreadable_config_says_so_in_one_line(capsys, shot, monkeypatch):
    monkeypatch.setenv("OCIO", str(shot["config"].with_name("missing.ocio")))
    code, err = run(capsys, "render", shot["plates"], "-o", shot["out"], "--style", shot["style"], *TINY)
    assert code == 2 and "does not exist" in err and "$OCIO" in err, err


def test_a_view_that_cannot_be_inverted_still_writes_its_own_colourspace(capsys, shot):
    out = shot["out"].parent / "paint.%04d.png"
    args = ("render", shot["plates"], "-o", out, "--style", shot["style"], *TINY)
    luma = ("--view", "Luma", "--output-colorspace", "show_luma")
    code, err = run(capsys, *args, "--ocio-config", shot["config"], *luma)
    assert code == 0, err
    assert json.loads((out.parent / "paint.manifest.json").read_text())["key"]["ocio"]["view"] == "Luma"


def test_a_batch_names_its_config_relative_to_itself_and_checks_the_view(shot, tmp_path):
    batch = tmp_path / "shots.toml"
    batch.write_text(
        '[defaults]\nocio_config = "show.ocio"\nstyle = "painting.png"\n\n'
        '[[shot]]\ninput = "in/plate.%04d.exr"\noutput = "out/a.%04d.exr"\n\n'
        '[[shot]]\ninput = "in/plate.%04d.exr"\noutput = "out/b.%04d.exr"\nview = "Luma"\n'
    )
    with pytest.raises(ReverieError) as err:
        load_batch(batch)
    message = str(err.value)
    assert "\n" not in message and "shot 2" in message and "cannot be inverted" in message
    assert "shot 1" not in message
    batch.write_text(batch.read_text().replace('view = "Luma"', 'view = "Standard"'))
    shots = load_batch(batch)
    assert [s.spec.ocio_config for s in shots] == [str(shot["config"])] * 2


def test_ocio_in_the_environment_names_a_batchs_colourspaces_before_anything_renders(
    capsys, shot, monkeypatch
):
    """Defect (caught in review): $OCIO was applied after the batch had been checked against the studio
    config, so a batch naming the show's colourspaces was refused, or checked under the wrong names."""
    batch = shot["config"].with_name("shots.toml")
    batch.write_text(
        '[[shot]]\ninput = "in/plate.%04d.exr"\noutput = "out/a.%04d.exr"\nstyle = "painting.png"\n'
        'output_colorspace = "show_lin"\n'
    )
    code, err = run(capsys, "render", "--batch", batch, *TINY)
    assert code == 2 and "unknown colourspace 'show_lin'" in err, err  # the studio config has none
    monkeypatch.setenv("OCIO", str(shot["config"]))
    code, err = run(capsys, "render", "--batch", batch, *TINY)
    assert code == 0, err
    key = json.loads((shot["out"].parent / "a.manifest.json").read_text())["key"]
    assert key["colorspace"] == "show_lin" and key["ocio"]["display"] == "Monitor"
