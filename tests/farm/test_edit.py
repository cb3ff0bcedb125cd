"""An edit as a batch: OTIO timelines built in code, their clips turned into shots (source range plus
handles, the look from the command line or the clip's metadata, outputs by pattern), gaps, transitions
and effects reported and skipped, and every unusable clip listed in one line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from conftest import pan_clip
from reverie.app.cli import main
from reverie.errors import ReverieError
from reverie.farm.edit import load_edit
from reverie.io.sequences import write_frame
from reverie.io.video import encode_video
from reverie.look import Look

RATE = 24
STYLED: dict = {}  # filled by the autouse fixture: a look with a painting, as the command line gives
RT = otio.opentime.RationalTime


@pytest.fixture(autouse=True)
def _painting(tmp_path):
    style = tmp_path / "painting.png"
    write_frame(style, np.asarray(pan_clip(1, 48, 48)[0]))
    STYLED["look"] = Look(u=3, styles=(str(style),))
    STYLED["style"] = style


def span(start: int, frames: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(RT(start, RATE), RT(frames, RATE))


def plates(folder: Path, first: int, count: int) -> otio.schema.ImageSequenceReference:
    """`count` PNG plates numbered from `first`, and a reference to them (as an editor exports it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(pan_clip(count, 24, 32)):
        write_frame(folder / f"plate.{first + i:04d}.png", frame)
    return otio.schema.ImageSequenceReference(
        target_url_base=folder.as_uri() + "/",
        name_prefix="plate.",
        name_suffix=".png",
        start_frame=first,
        frame_zero_padding=4,
        rate=RATE,
        available_range=span(0, count),
    )


def write_timeline(path: Path, *items: otio.core.Composable) -> Path:
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for item in items:
        track.append(item)
    timeline = otio.schema.Timeline(name="cut")
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(path))
    return path


def clip(name: str, ref, start: int, frames: int, **metadata) -> otio.schema.Clip:
    made = otio.schema.Clip(name=name, media_reference=ref, source_range=span(start, frames))
    if metadata:
        made.metadata["reverie"] = metadata
    return made


def test_clips_become_shots_with_handles_and_the_rest_is_reported(tmp_path):
    (tmp_path / "warm.toml").write_text(STYLED["look"].replace(u=6, iterations=7).to_toml())
    cut = write_timeline(
        tmp_path / "cut.otio",
        clip("sh010", plates(tmp_path / "a", 1001, 10), 2, 5),  # frames 1003-1007
        otio.schema.Transition(name="dissolve", in_offset=RT(1, RATE), out_offset=RT(1, RATE)),
        clip("sh 020/b", plates(tmp_path / "b", 1, 6), 0, 3, look="warm.toml", iterations=9),
        otio.schema.Gap(duration=RT(4, RATE)),
    )
    edit = load_edit(cut, str(tmp_path / "paint/{clip}/{clip}.%04d.png"), STYLED["look"], handles=2)
    first, second = edit.shots
    assert (first.name, first.spec.frames, first.look.u) == ("sh010", "1001-1009", 3)
    assert first.spec.input == str(tmp_path / "a" / "plate.%04d.png")
    assert first.spec.output == str(tmp_path / "paint" / "sh010" / "sh010.%04d.png")
    # A name made safe for a path; the handles stop where the media does; the clip's own look.
    assert (second.name, second.spec.frames) == ("sh_020_b", "1-5")
    assert (second.look.u, second.look.iterations) == (6, 9)
    said = " | ".join(edit.skipped)
    assert "transition dissolve" in said and "gap of 4 frames" in said
    assert "sh_020_b: the media holds 0 and 2 of the 2 handles" in said


def test_a_video_clip_is_numbered_from_one(tmp_path):
    video = tmp_path / "plate.mp4"
    encode_video(pan_clip(8, 24, 32), video, fps=Fraction(RATE), codec="h264")
    ref = otio.schema.ExternalReference(target_url=video.as_uri(), available_range=span(86400, 8))
    cut = write_timeline(tmp_path / "cut.otio", clip("sh030", ref, 86403, 2))
    (shot,) = load_edit(cut, str(tmp_path / "out/{clip}.%04d.png"), STYLED["look"], handles=1).shots
    assert shot.spec.input == str(video) and shot.spec.frames == "3-6"


def test_every_unusable_clip_is_listed_in_one_line(tmp_path):
    good = plates(tmp_path / "a", 1, 4)
    cut = write_timeline(
        tmp_path / "cut.otio",
        clip("offline", otio.schema.MissingReference(), 0, 2),
        clip("long", good, 2, 5),  # frames 3-7 of a 4-frame sequence
        clip("fine", good, 0, 2),
    )
    with pytest.raises(ReverieError) as err:
        load_edit(cut, str(tmp_path / "out/{clip}.%04d.png"), STYLED["look"])
    message = str(err.value)
    assert "\n" not in message and "2 unusable clips" in message
    assert "offline: it has no media" in message and "long: its source range, frames 3-7" in message
    assert "fine" not in message


def test_two_clips_writing_one_place_and_missing_media_are_a_batchs_problems(tmp_path):
    good = plates(tmp_path / "a", 1, 4)
    gone = plates(tmp_path / "gone", 1, 4)
    for frame in (tmp_path / "gone").iterdir():
        frame.unlink()
    cut = write_timeline(
        tmp_path / "cut.otio", clip("one", good, 0, 2), clip("two", good, 1, 2), clip("lost", gone, 0, 2)
    )
    with pytest.raises(ReverieError) as err:
        load_edit(cut, str(tmp_path / "out/paint.%04d.png"), STYLED["look"])  # no {clip}: all write here
    message = str(err.value)
    assert "\n" not in message and "two:" in message and "also the output of one" in message
    assert "lost:" in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "cannot read edit"),
        ('{"OTIO_SCHEMA": "Timeline.1", "tracks": {"OTIO_SCHEMA": "Stack.1", "children": []}}', "no clip"),
    ],
)
def test_an_edit_that_does_not_parse_or_has_no_clips_is_one_line(tmp_path, content, words):
    cut = tmp_path / "cut.otio"
    cut.write_text(content)
    with pytest.raises(ReverieError, match=words) as err:
        load_edit(cut, str(tmp_path / "out/{clip}.%04d.png"))
    assert "\n" not in str(err.value)


def test_the_command_line_renders_an_edit(capsys, tmp_path):
    style = STYLED["style"]
    cut = write_timeline(
        tmp_path / "cut.otio",
        clip("sh010", plates(tmp_path / "a", 1001, 4), 1, 2),
        otio.schema.Gap(duration=RT(2, RATE)),
    )
    out = tmp_path / "paint/{clip}/{clip}.%04d.png"
    tiny = ("--size", "32", "--iterations", "2", "--first-iterations", "2")
    args = ["render", "--batch", str(cut), "--style", str(style), *tiny]
    with pytest.raises(SystemExit) as code:
        main(args)
    assert code.value.code == 2 and "--output-pattern" in capsys.readouterr().err
    with pytest.raises(SystemExit) as code:
        main([*args, "--output-pattern", str(out), "--handles", "1"])
    captured = capsys.readouterr()
    assert code.value.code == 0, captured.err
    assert "skipped: a gap of 2 frames" in captured.err
    assert sorted(p.name for p in (tmp_path / "paint" / "sh010").glob("*.png")) == [
        f"sh010.{n}.png" for n in (1001, 1002, 1003, 1004)
    ]
