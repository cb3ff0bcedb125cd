"""Batch files: settings layered as documented, paths relative to the file, every problem in one line."""

import re
from pathlib import Path

import pytest
from PIL import Image

from reverie.errors import ReverieError
from reverie.farm.batch import BatchShot, load_batch
from reverie.look import Look

VALID = 'input = "plates/plate.%04d.png"\nstyle = "styles/paint.png"\n'


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A batch's folder: three 16x16 plate frames, two paintings and two look files."""
    root = tmp_path / "job"
    (root / "plates").mkdir(parents=True)
    (root / "styles").mkdir()
    (root / "looks").mkdir()
    for n in (1, 2, 3):
        Image.new("RGB", (16, 16), (40 * n, 90, 200)).save(root / "plates" / f"plate.{n:04d}.png")
    for name in ("paint", "other"):
        Image.new("RGB", (16, 16), (200, 30, 10)).save(root / "styles" / f"{name}.png")
    paint = str(root / "styles" / "paint.png")
    (root / "looks" / "warm.toml").write_text(Look(u=3, iterations=300, styles=(paint,)).to_toml())
    (root / "looks" / "cold.toml").write_text(Look(u=6, size=256, styles=(paint,)).to_toml())
    return root


def write(folder: Path, text: str) -> Path:
    path = folder / "SHOTS.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, **kwargs) -> str:
    with pytest.raises(ReverieError) as caught:
        load_batch(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_look_files_and_shot_keys_layer_in_order(folder, tmp_path, monkeypatch):
    batch = write(
        folder,
        """
        [defaults]
        look = "looks/warm.toml"
        iterations = 200
        init = "noise"
        output_size = 64
        chunk = 10

        [[shot]]
        input = "plates/plate.%04d.png"
        output = "out/a.%04d.png"
        frames = "1-2"

        [[shot]]
        input = "plates/plate.####.png"
        output = "out/b.%04d.exr"
        look = "looks/cold.toml"
        u = 5
        style = "styles/other.png"
        init = "styles/paint.png"
        force = false
        output_size = 128
        chunk_overlap = 4
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must follow the batch file, not the working directory

    a, b = load_batch(batch, base=Look(u=2, size=128), force=True, output_size=None)

    assert isinstance(a, BatchShot)
    assert (a.name, b.name) == ("plate.%04d.png", "plate.####.png")
    assert a.spec.input == str(folder / "plates" / "plate.%04d.png")
    assert (a.spec.output, b.spec.output) == (str(folder / "out/a.%04d.png"), str(folder / "out/b.%04d.exr"))
    assert (a.spec.frames, b.spec.frames) == ("1-2", None)
    assert (a.spec.output_size, b.spec.output_size) == (64, 128)  # a None override is not given
    assert (a.spec.chunk, a.spec.chunk_overlap, b.spec.chunk, b.spec.chunk_overlap) == (10, 8, 10, 4)
    assert a.spec.force and b.spec.force  # the command line wins, also over shot 2's force = false
    # Shot 1: the defaults' look file replaces the base entirely (size back to 512), then defaults keys.
    assert (a.look.u, a.look.iterations, a.look.size) == (3.0, 200, 512)
    assert a.look.styles == (str(folder / "styles" / "paint.png"),)
    # Shot 2: its own look file, the defaults' keys over it, then its own keys over both.
    assert (b.look.u, b.look.iterations, b.look.size) == (5.0, 200, 256)
    assert b.look.styles == (str(folder / "styles" / "other.png"),)
    assert (a.look.init, b.look.init) == ("noise", str(folder / "styles" / "paint.png"))
    assert not (folder / "out").exists()  # checking writes nothing


def test_without_a_look_file_the_base_look_is_kept_under_the_keys(folder):
    paint = str(folder / "styles" / "paint.png")
    batch = write(folder, '[[shot]]\ninput = "plates/plate.%04d.png"\noutput = "out/a.%04d.png"\nu = 5\n')

    (shot,) = load_batch(batch, base=Look(u=2, iterations=77, styles=(paint,)))

    assert (shot.look.u, shot.look.iterations, shot.look.styles) == (5.0, 77, (paint,))
    assert (shot.spec.chunk, shot.spec.force) == (48, False)  # ShotSpec's own defaults


def test_every_invalid_shot_is_reported_in_one_line(folder):
    batch = write(
        folder,
        f"""
        [[shot]]
        {VALID}output = "out/a.%04d.png"

        [[shot]]
        input = "missing/b.%04d.png"
        output = "out/b.%04d.png"
        style = "styles/paint.png"

        [[shot]]
        {VALID}frames = 5
        iterations = "many"

        [[shot]]
        {VALID}output = "out/d.%04d.png"
        iteratons = 100

        [[shot]]
        {VALID}output = "out/a.%04d.png"
        chunk = 4
        chunk_overlap = 4
        """,
    )

    message = problems(batch)

    assert message.startswith(f"{batch} has 4 invalid shots: shot 2 (missing/b.%04d.png): ")
    assert re.findall(r"(?:: |; )shot (\d) \(", message) == ["2", "3", "4", "5"]  # shot 1 is fine
    assert "no frames match" in message and "does not exist" in message
    assert "shot 3 (plates/plate.%04d.png): frames must be a string" in message
    assert "output is missing" in message
    assert "iterations must be a whole number from 1 to 100000, got 'many'" in message
    assert "shot 4 (plates/plate.%04d.png): unknown key 'iteratons' (did you mean 'iterations'?)" in message
    assert "shot 5 (plates/plate.%04d.png): " in message
    assert "must be smaller than --chunk 4" in message
    assert "output out/a.%04d.png is also the output of shot 1 (plates/plate.%04d.png)" in message


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('output = "out/a.%04d.png"\nframes = "5-1"', "frame range '5-1' runs backwards"),
        ('output = "out/a.%04d.png"\nencode = "gif"', "encode 'gif' is not known: use prores or h264"),
        ('output = "out/a.%04d.png"\nfps = 0', "fps must be a positive number"),
        ('output = "out/a.%04d.png"\nbit_depth = 12', "bit_depth 12 must be 8, 10, 16 or 32"),
        ('output = "out/a.%04d.png"\nforce = "yes"', "force must be true or false, got 'yes'"),
        ('output = "out/a.%04d.png"\nchunk = -1', "--chunk -1 must be 0"),
        ('output = "out/a.%04d.png"\nstyles = "styles/paint.png"', "styles must be a list"),
        ('output = "out/a.%04d.png"\nstyles = ["styles/paint.png"]', "or styles, not both"),
        ('output = "out/a.%04d.png"\nlook = "looks/nope.toml"', "nope.toml does not exist"),
        ('output = "out/a.%04d.png"\nu = 50', "u=50 is outside -2..10"),
        ('output = "out/a.%04d.png"\ninit = "styles/none.png"', "init image /"),
        ('output = "out/a.%04d.png"\nframes = "7-9"', "none of frames 7-9 exist"),
        ('output = "out/a.png"', "has no frame number"),
        ('output = "plates/plate.####.png"', "is the input: it would paint over the plates"),
        ('output = "out/a.mp4"\nencode = "prores"', "ProRes 422 HQ cannot go in a .mp4 file"),
    ],
)
def test_a_bad_setting_is_named(folder, lines, expected):
    message = problems(write(folder, f"[[shot]]\n{VALID}{lines}\n"))

    assert message.startswith(f"{folder / 'SHOTS.toml'} has 1 invalid shot: shot 1 (plates/plate.%04d.png): ")
    assert expected in message


def test_two_spellings_of_one_output_are_a_clash(folder):
    shots = [
        'output = "out/a.%04d.png"',
        'output = "out/../out/a.####.png"',  # the same frames, written differently
        'output = "out/a.%04d.exr"',  # other frames, but the same manifest and report beside them
        'output = "out/a.mov"',  # a video's frames go to out/a.frames/: no clash
    ]
    batch = write(folder, "".join(f"[[shot]]\n{VALID}{line}\n" for line in shots))

    message = problems(batch)

    assert message.startswith(f"{batch} has 2 invalid shots: shot 2 ")
    assert "out/../out/a.####.png writes to the same place as the output out/a.%04d.png of shot 1" in message
    assert "shot 3 (plates/plate.%04d.png): output out/a.%04d.exr writes to the same place" in message
    assert "shot 4" not in message


def test_a_shot_needs_a_painting_that_exists(folder):
    batch = write(
        folder,
        '[[shot]]\ninput = "plates/plate.%04d.png"\noutput = "out/a.%04d.png"\n\n'
        '[[shot]]\ninput = "plates/plate.%04d.png"\noutput = "out/b.%04d.png"\nstyle = "styles/nope.png"\n',
    )

    message = problems(batch)

    assert "shot 1 (plates/plate.%04d.png): no style image" in message
    assert f"shot 2 (plates/plate.%04d.png): style {folder / 'styles' / 'nope.png'} does not exist" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[shot]\ninput = 1", "is not valid TOML: "),
        ("", "no [[shot]] entries"),
        ('[shot]\ninput = "a.%04d.png"', "shot must be an array of tables: write [[shot]]"),
        (f"[[shots]]\n{VALID}", "unknown table 'shots' (did you mean 'shot'?)"),
        ("defaults = 3\n[[shot]]\n" + VALID, "defaults must be a table"),
        ("[defaults]\niteratons = 3\n[[shot]]\n" + VALID, "[defaults]: unknown key 'iteratons' (did you"),
        ('[defaults]\noutput = "o.%04d.png"\n[[shot]]\n' + VALID, "[defaults]: output belongs in each"),
        ('[defaults]\nlook = "no.toml"\n[[shot]]\n' + VALID, "[defaults]: look file"),
    ],
)
def test_a_bad_file_is_named_before_its_shots(folder, text, expected):
    message = problems(write(folder, text))

    assert message.startswith(f"batch file {folder / 'SHOTS.toml'}")
    assert expected in message


def test_a_missing_directory_or_binary_batch_file_is_one_line(folder):
    (folder / "binary.toml").write_bytes(b"\xff\xfe\x00[[shot]]")

    assert "does not exist" in problems(folder / "nope.toml")
    assert "is a directory" in problems(folder)
    assert "is not a UTF-8 text file" in problems(folder / "binary.toml")


def test_command_line_settings_are_checked_once(folder):
    batch = write(folder, f'[[shot]]\n{VALID}output = "out/a.%04d.png"\n')

    assert problems(batch, encode="gif") == "command line: encode 'gif' is not known: use prores or h264"
    with pytest.raises(TypeError, match="output"):
        load_batch(batch, output="x.%04d.png")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = " + "[" * 5000 + "]" * 5000, "nests values more than 32 levels deep"),
        ("[[shot]]\n" + VALID + "output_size = 1" + "0" * 5000, "holds a number too long to read"),
        ("[[shot]]\n" + VALID + "output_size = 1" + "0" * 4000, "shot[0].output_size is a number too large"),
        ("[[shot]]\n" + VALID + "fps = nan", "shot[0].fps is nan: give a finite number"),
    ],
)
def test_hostile_batch_files_are_one_line(folder, text, expected):
    message = problems(write(folder, text))

    assert message.startswith(f"batch file {folder / 'SHOTS.toml'}") and expected in message


def test_a_batch_file_with_a_byte_order_mark_is_read(folder):
    path = folder / "SHOTS.toml"
    path.write_bytes(b"\xef\xbb\xbf" + f'[[shot]]\n{VALID}output = "out/a.%04d.png"\n'.encode())

    assert [s.name for s in load_batch(path)] == ["plate.%04d.png"]
