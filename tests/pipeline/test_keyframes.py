"""Fast mode's keyframes: chosen by coverage on clips made in code (a steady pan, a strong pan, cuts), the
cap, 1- and 2-frame shots, and keyframes given by hand."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from conftest import pan_clip, photo
from reverie.errors import ReverieError
from reverie.io.sequences import format_frame_range
from reverie.pipeline.keyframes import (
    DEFAULT_COVERAGE,
    DEFAULT_MAX_KEYFRAMES,
    Keyframe,
    choose_keyframes,
    coverage_of,
    describe,
    parse_keyframes,
)

H, W = 72, 96
FIRST = 1001


def textured(seed: int, width: int) -> np.ndarray:
    """photo() with fine grain on top: texture DIS can follow everywhere, as on a real plate (on the smooth
    photo alone, flat areas leave up to 40% of a frame untrusted between neighbours)."""
    rng = np.random.default_rng(seed)
    grain = cv2.GaussianBlur(rng.uniform(-1, 1, (H, width, 3)).astype(np.float32), (0, 0), 1.2)
    return (photo(H, width, seed) + 0.5 * grain).clip(0, 1).astype(np.float32)


def pan(seed: int, frames: int, step: int) -> list[np.ndarray]:
    """The camera pans right over a textured plate by `step` px a frame: each frame loses step/W of
    the one before at its left edge."""
    plate = textured(seed, W + frames * step)
    return [plate[:, t * step : t * step + W].copy() for t in range(frames)]


class Shot:
    """A clip as choose_keyframes sees it: numbers from 1001 and a reader that counts its calls."""

    def __init__(self, clip: list[np.ndarray]) -> None:
        self.clip = clip
        self.frames = list(range(FIRST, FIRST + len(clip)))
        self.reads: list[int] = []

    def read(self, number: int) -> np.ndarray:
        self.reads.append(number)
        return self.clip[number - FIRST]

    def choose(self, **options) -> list[Keyframe]:
        return choose_keyframes(self.frames, self.read, **options)

    def coverage(self, keyframes: list[Keyframe]) -> list[float]:
        covered = coverage_of(self.frames, self.clip_reader, [k.number for k in keyframes])
        return [covered[n] for n in self.frames]

    def clip_reader(self, number: int) -> np.ndarray:
        return self.clip[number - FIRST]


def numbers(keyframes: list[Keyframe]) -> list[int]:
    return [k.number for k in keyframes]


def test_defaults_suit_a_100_frame_shot() -> None:
    assert 2 < DEFAULT_MAX_KEYFRAMES <= 10
    assert 0.5 < DEFAULT_COVERAGE < 1


def test_a_steady_pan_needs_only_the_first_and_last_frame() -> None:
    # conftest's pan: smooth photo, 2 px a frame, a square crossing it. Coverage seen: 1.0, 0.89, 0.86,
    # 0.86, 0.88, 1.0 (the square's trail and the flat areas are what is lost).
    shot = Shot(pan_clip(frames=6, h=H, w=W, pan=2, speed=3))
    keyframes = shot.choose()
    assert keyframes == [Keyframe(1001, "first frame"), Keyframe(1006, "last frame")]
    assert min(shot.coverage(keyframes)) >= DEFAULT_COVERAGE
    assert shot.reads == shot.frames  # each frame read once, in order


def strong_pan() -> Shot:
    """20 frames panning 8 px of 96 a frame: 152 px in all, so the middle frames show ground neither
    the first nor the last frame does (seen with those two alone: 0.90 at 1002, 0.73 at 1004, 0.32 at
    1012). A pan shorter than the frame is covered by its two ends: 16 frames of 6 px gave 0.98."""
    return Shot(pan(seed=3, frames=20, step=8))


def test_a_strong_pan_gets_keyframes_in_between_until_every_frame_is_covered() -> None:
    shot = strong_pan()
    assert min(shot.coverage([Keyframe(1001, ""), Keyframe(1020, "")])) < 0.5
    keyframes = shot.choose()
    # Seen: 1001, 1004, 1007, 1013, 1017, 1020, then every frame at 0.82 or more.
    assert numbers(keyframes)[0] == 1001 and numbers(keyframes)[-1] == 1020
    inside = keyframes[1:-1]
    reachable = r"only \d+% of the plate is reachable from keyframes 10\d\d, 1020"
    assert inside and all(re.fullmatch(reachable, k.reason) for k in inside)
    assert min(shot.coverage(keyframes)) >= DEFAULT_COVERAGE
    assert keyframes[-1].reason == "last frame"  # nothing left under coverage: no note
    assert len(keyframes) <= 6


def test_the_first_frame_failing_is_chosen_and_said_why() -> None:
    shot = strong_pan()
    before = shot.coverage([Keyframe(1001, ""), Keyframe(1020, "")])
    first_failing = next(n for n, c in zip(shot.frames, before, strict=True) if c < DEFAULT_COVERAGE)
    added = shot.choose()[1]
    assert added.number == first_failing
    percent = int(before[first_failing - FIRST] * 100)
    assert added.reason == f"only {percent}% of the plate is reachable from keyframes 1001, 1020"


def test_a_cut_makes_its_first_frame_a_keyframe() -> None:
    # 1001-1005 pan slowly over one plate; 1006-1011 pan fast over another, so the last frame alone
    # reaches only part of 1006 (seen: 0.60; 0.11 of 1006 passes the check from 1005, by chance).
    shot = Shot(pan(seed=1, frames=5, step=2) + pan(seed=7, frames=6, step=8))
    keyframes = shot.choose()
    assert numbers(keyframes) == [1001, 1006, 1011]
    cut = re.fullmatch(r"a cut: only (\d+)% of the plate continues from frame 1005", keyframes[1].reason)
    assert cut and int(cut[1]) < 25
    assert min(shot.coverage(keyframes)) >= DEFAULT_COVERAGE


def test_a_cut_the_last_keyframe_already_covers_needs_no_keyframe_of_its_own() -> None:
    # Coverage looks both ways: after the cut, the shot pans slowly to its last frame, which reaches
    # back to the cut (seen: 0.90 at 1006); painting 1006 too would teach the network nothing new.
    shot = Shot(pan(seed=1, frames=5, step=2) + pan(seed=7, frames=5, step=2))
    keyframes = shot.choose()
    assert numbers(keyframes) == [1001, 1010]
    assert shot.coverage(keyframes)[5] >= DEFAULT_COVERAGE


def test_the_cap_is_respected_and_the_shortfall_reported() -> None:
    shot = strong_pan()
    keyframes = shot.choose(max_keyframes=2)
    assert numbers(keyframes) == [1001, 1020]
    covered = shot.coverage(keyframes)
    short = [n for n, c in zip(shot.frames, covered, strict=True) if c < DEFAULT_COVERAGE]
    assert keyframes[-1].reason == (
        f"last frame; {len(short)} frames stay below 80% coverage ({format_frame_range(short)}; the "
        f"least {int(min(covered) * 100)}%): raise --max-keyframes above 2"
    )
    three = shot.choose(max_keyframes=3)
    assert len(three) == 3 and three[-1].reason.endswith("raise --max-keyframes above 3")


def test_a_cap_of_one_takes_the_middle_frame() -> None:
    shot = Shot(pan(seed=3, frames=5, step=2))
    [keyframe] = shot.choose(max_keyframes=1)
    assert keyframe.number == 1003 and keyframe.reason.startswith("the middle frame")


def test_one_and_two_frame_shots_are_their_own_keyframes_without_reading() -> None:
    one = Shot(pan(seed=0, frames=1, step=2))
    assert one.choose() == [Keyframe(1001, "the only frame")]
    two = Shot(pan(seed=0, frames=2, step=2))
    assert two.choose() == [Keyframe(1001, "first frame"), Keyframe(1002, "last frame")]
    assert one.reads == two.reads == []


def test_the_choice_is_deterministic_and_gaps_in_numbers_are_consecutive_frames() -> None:
    shot = strong_pan()
    frames = [n * n for n in range(1, 21)]  # 1, 4, 9, ..., 400

    def read(number: int) -> np.ndarray:
        return shot.clip[frames.index(number)]

    first = choose_keyframes(frames, read)
    assert first == choose_keyframes(frames, read)
    assert numbers(first) == [frames[k.number - FIRST] for k in shot.choose()]


def test_bad_choice_arguments() -> None:
    with pytest.raises(ReverieError, match=r"^--max-keyframes 0 must be 1 or more$"):
        choose_keyframes([1, 2, 3], lambda n: np.zeros((8, 8, 3), np.float32), max_keyframes=0)
    with pytest.raises(ReverieError, match="no frames"):
        choose_keyframes([], lambda n: np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="must be some of the shot's frames"):
        coverage_of([1, 2], lambda n: np.zeros((8, 8, 3), np.float32), [3])


def test_describe_gives_one_line_a_keyframe() -> None:
    keyframes = [Keyframe(1001, "first frame"), Keyframe(1096, "last frame")]
    assert describe(keyframes) == ["keyframe 1001: first frame", "keyframe 1096: last frame"]


SHOT = list(range(1001, 1097))


def test_parse_keyframes_by_hand() -> None:
    assert parse_keyframes("1001,1040,1096", SHOT) == [
        Keyframe(1001, "chosen by hand"),
        Keyframe(1040, "chosen by hand"),
        Keyframe(1096, "chosen by hand"),
    ]
    assert numbers(parse_keyframes(" 1096 , 1001,01040 ", SHOT)) == [1001, 1040, 1096]
    assert numbers(parse_keyframes("1050", SHOT)) == [1050]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2000", "keyframe 2000 is outside the shot's frames 1001-1096"),
        ("1001,1000", "keyframe 1000 is outside the shot's frames 1001-1096"),
        ("9" * 5000, f"keyframe {'9' * 18}... is outside the shot's frames 1001-1096"),
        ("1040, 1001,1040", "keyframe 1040 is given twice in '1040, 1001,1040'"),
        ("", "no keyframes given: write frame numbers like 1001,1040"),
        (" , ", "no keyframes given: write frame numbers like 1001,1040"),
        ("abc", "keyframes must be frame numbers like 1001,1040, not 'abc'"),
        ("1001,,1040", "keyframes must be frame numbers like 1001,1040, not '1001,,1040'"),
        ("1001,", "keyframes must be frame numbers like 1001,1040, not '1001,'"),
        ("1001-1040", "keyframes must be frame numbers like 1001,1040, not '1001-1040'"),
        ("-1001", "keyframes must be frame numbers like 1001,1040, not '-1001'"),
        ("1001;1040", "keyframes must be frame numbers like 1001,1040, not '1001;1040'"),
        ("1e3", "keyframes must be frame numbers like 1001,1040, not '1e3'"),
        ("١٠٠١", "keyframes must be frame numbers like 1001,1040, not '١٠٠١'"),
        ("1001\n1040", "keyframes must be frame numbers like 1001,1040, not '1001\\n1040'"),
        ("x" * 100, f"keyframes must be frame numbers like 1001,1040, not '{'x' * 40}...'"),
    ],
)
def test_parse_keyframes_refuses_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ReverieError) as caught:
        parse_keyframes(text, SHOT)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_parse_keyframes_names_a_gappy_shot_as_its_runs() -> None:
    with pytest.raises(ReverieError, match=r"^keyframe 4 is outside the shot's frames 1-3, 5-6$"):
        parse_keyframes("4", [1, 2, 3, 5, 6])
