"""Fast mode's keyframes: the few frames of a shot painted with the full look, for a small network to learn
the look from (issue 15).

Chosen automatically: the first and last frame, plus each frame where the plate stops being covered, i.e.
where too much of it cannot be reached from any keyframe by following consistency-checked optical flow
(flow.py) frame by frame, forward from an earlier keyframe or backward from a later one. Content no
keyframe shows is content the network never saw painted. Or chosen by hand: ``--keyframes 1001,1040``.

Coverage model. A pixel of frame t is reachable from keyframe k when some consistency-checked flow
carries it there: the flow between t and k measured directly, or the chain of flows through the frames
between (the reach mask starts all-true at k and is carried one frame at a time, warped along the flow
and cut by that pair's consistency mask). Either fails where the material is new (disocclusions, the
edge a pan brings in, a new set after a cut); each also fails where the other holds: a direct flow
loses large moves on small frames, a chain loses every frame's false alarms for good (on the Sintel
shot, 48 frames of a slow push-in, the chain alone fell to 53% between first and last frame, where the
direct flows keep 62-100%). A frame's coverage is the share of its pixels reachable from the keyframe
before it or the one after it (the nearest on each side: a farther one sees the frame through more
change).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from reverie.errors import ReverieError
from reverie.io.sequences import format_frame_range
from reverie.pipeline.flow import consistency_mask, optical_flow, warp
from reverie.pipeline.plan import DEFAULT_MAX_KEYFRAMES

DEFAULT_COVERAGE = 0.8
"""The share of each frame that must stay reachable from a keyframe. Not higher: the consistency check is
strict (grain, blur, motion boundaries and the edge a pan brings in count as unreachable), so real
plates rarely reach 95% even between neighbouring frames, and a higher bar would spend keyframes on
noise. Not lower: the network carries a look over to similar unseen texture, but when over a fifth of a
frame is material no keyframe shows (a new set, a face turning in) it has to guess. On the Sintel shot
(48 frames) it takes 4 keyframes: 1, 14, 28, 48."""

_THIN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

_CUT = 0.25
"""A frame of which less than this can be trusted from the frame before it is called a cut (or a whip
pan: to the flow they are the same)."""

_MAX_DIGITS = 18
"""Longer digit strings are no frame number (and int() refuses over 4,300 digits)."""

_EXAMPLE = "1001,1040"


@dataclass(frozen=True)
class Keyframe:
    """A frame to paint with the full look, and why (in words for the terminal)."""

    number: int
    reason: str


def choose_keyframes(
    frames: Sequence[int],
    read: Callable[[int], np.ndarray],
    *,
    max_keyframes: int = DEFAULT_MAX_KEYFRAMES,
    coverage: float = DEFAULT_COVERAGE,
    max_side: int = 256,
) -> list[Keyframe]:
    """Keyframes for a shot, sorted by number: the first and last frame, then, while some frame's
    coverage is under `coverage` and fewer than `max_keyframes` are chosen, the first such frame in time.

    frames: the shot's frame numbers in order (gaps allowed: consecutive means next in this list).
    read(n): frame n as (H, W, 3) float32 display RGB in 0..1; each frame is read once, in order.
    max_side: flows are measured on copies whose long side is at most this; only those are held.

    The first failing frame rather than the worst: it is where the keyframes so far stop covering the
    plate (the issue's rule, and a reason an artist can check), so for a cut it is the first frame after
    the cut, where the worst could fall anywhere inside the new material. It does not look ahead for a
    later frame whose backward reach would cover the gap as well, so a long strong move can take a
    keyframe more than it needs (the 20-frame, 8-px test pan: 6 where 5 would do). If the cap stops the
    search with frames still under coverage, the last keyframe's reason says how many and which. A cap
    of 1 takes the middle frame (it reaches both ways). Deterministic.
    """
    _check_choice(frames, max_keyframes, coverage, max_side)
    count = len(frames)
    if count <= min(2, max_keyframes):  # nothing between first and last to measure
        return _named(frames, _ends(count, max_keyframes))
    shot = _ShotMotion.measure(frames, read, max_side)
    reasons = _ends(count, max_keyframes)
    covered = shot.coverage(sorted(reasons))
    while (failing := np.flatnonzero(covered < coverage)).size and len(reasons) < max_keyframes:
        index = int(failing[0])
        reasons[index] = _why(index, sorted(reasons), covered[index], shot, frames)
        covered = shot.coverage(sorted(reasons))
    _note_shortfall(reasons, covered, coverage, frames, max_keyframes)
    return _named(frames, reasons)


def coverage_of(
    frames: Sequence[int],
    read: Callable[[int], np.ndarray],
    keyframes: Sequence[int],
    *,
    max_side: int = 256,
) -> dict[int, float]:
    """Each frame's coverage (share of its pixels reachable from a keyframe, 0..1) for the given keyframe
    numbers: for checking keyframes chosen by hand, or reporting. Frames and read as choose_keyframes."""
    position = {n: i for i, n in enumerate(frames)}
    unknown = [k for k in keyframes if k not in position]
    if unknown or not keyframes:
        raise ValueError(f"keyframes {list(keyframes)} must be some of the shot's frames")
    if len(frames) == 1:
        return {frames[0]: 1.0}
    shot = _ShotMotion.measure(frames, read, max_side)
    covered = shot.coverage(sorted({position[k] for k in keyframes}))
    return {n: float(c) for n, c in zip(frames, covered, strict=True)}


def parse_keyframes(text: str, frames: Sequence[int]) -> list[Keyframe]:
    """Keyframes chosen by hand, ``1001,1040,1096`` (spaces allowed), sorted by number.

    One-line ReverieErrors for an empty list, anything but frame numbers, a number outside `frames`, and
    a number given twice.
    """
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise ReverieError(f"no keyframes given: write frame numbers like {_EXAMPLE}")
    numbers: list[int] = []
    for item in items:
        number = _frame_number(item, text)
        if number not in frames:
            shown = item if len(item) <= _MAX_DIGITS else item[:_MAX_DIGITS] + "..."
            raise ReverieError(f"keyframe {shown} is outside the shot's frames {_span(frames)}")
        if number in numbers:
            raise ReverieError(f"keyframe {number} is given twice in {_shown(text)}")
        numbers.append(number)
    return [Keyframe(n, "chosen by hand") for n in sorted(numbers)]


def describe(keyframes: Sequence[Keyframe]) -> list[str]:
    """One line per keyframe for the terminal: ``keyframe 1001: first frame``."""
    return [f"keyframe {k.number}: {k.reason}" for k in keyframes]


# ------------------------------------------------------------------------------------------ the choice


def _check_choice(frames: Sequence[int], max_keyframes: int, coverage: float, max_side: int) -> None:
    if not frames:
        raise ReverieError("the shot has no frames to choose keyframes from")
    if len(set(frames)) != len(frames):
        raise ValueError(f"the shot's frames repeat: {_span(frames)}")
    if max_keyframes < 1:
        raise ReverieError(f"--max-keyframes {max_keyframes} must be 1 or more")
    if not 0.0 <= coverage <= 1.0:
        raise ValueError(f"coverage {coverage} must be between 0 and 1")
    if max_side < 8:
        raise ValueError(f"max_side {max_side} is too small to measure motion (8 or more)")


def _ends(count: int, max_keyframes: int) -> dict[int, str]:
    """The keyframes every choice starts from, by index: first and last (one if the shot or cap is 1)."""
    if count == 1:
        return {0: "the only frame"}
    if max_keyframes == 1:
        return {(count - 1) // 2: "the middle frame, the one keyframe --max-keyframes 1 allows"}
    return {0: "first frame", count - 1: "last frame"}


def _why(index: int, keys: list[int], covered: float, shot: _ShotMotion, frames: Sequence[int]) -> str:
    """Why frame `index` (not yet a keyframe) becomes one, given the keyframes `keys` (indices)."""
    continuing = shot.continuity(index)
    if continuing < _CUT:
        return f"a cut: only {_percent(continuing)} of the plate continues from frame {frames[index - 1]}"
    around = [k for k in keys if k < index][-1:] + [k for k in keys if k > index][:1]
    which = ", ".join(str(frames[k]) for k in around)
    plural = "s" if len(around) > 1 else ""
    return f"only {_percent(covered)} of the plate is reachable from keyframe{plural} {which}"


def _note_shortfall(
    reasons: dict[int, str], covered: np.ndarray, coverage: float, frames: Sequence[int], cap: int
) -> None:
    """When the cap stopped the choice, say so on the last keyframe (describe() lists it last)."""
    short = np.flatnonzero(covered < coverage)
    if not short.size:
        return
    numbers = [frames[i] for i in short.tolist()]
    several = f"{len(numbers)} frames stay" if len(numbers) > 1 else "1 frame stays"
    note = (
        f"{several} below {_percent(coverage)} coverage ({format_frame_range(numbers)}; the least "
        f"{_percent(float(covered.min()))}): raise --max-keyframes above {cap}"
    )
    last = max(reasons)
    reasons[last] = f"{reasons[last]}; {note}"


def _named(frames: Sequence[int], reasons: dict[int, str]) -> list[Keyframe]:
    return [Keyframe(frames[i], reasons[i]) for i in sorted(reasons)]


def _percent(share: float) -> str:
    # Rounded down: a frame at 79.6% against an 80% bar must not read "only 80%".
    return f"{math.floor(share * 100 + 1e-9)}%"


# ---------------------------------------------------------------------------------- the coverage model


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class _Pair:
    """The motion between frames i and i+1 of a shot, at the reduced size.

    forward: (H, W, 2) flow i -> i+1; backward: i+1 -> i. float16: a 256-px flow needs no finer step
    than 1/8 px, and it halves what a long shot holds.
    trust_forward: (H, W) bool, at frame i: where warping frame i+1 along `forward` can be trusted;
    trust_backward: the same at frame i+1, for `backward`.
    """

    forward: np.ndarray
    backward: np.ndarray
    trust_forward: np.ndarray
    trust_backward: np.ndarray

    @classmethod
    def measure(cls, earlier: np.ndarray, later: np.ndarray) -> _Pair:
        forward = optical_flow(earlier, later, max_side=None)
        backward = optical_flow(later, earlier, max_side=None)
        return cls(
            forward.astype(np.float16),
            backward.astype(np.float16),
            consistency_mask(forward, backward) > 0.5,
            consistency_mask(backward, forward) > 0.5,
        )


class _ShotMotion:
    """The shot's frames at the reduced size, the motion between consecutive ones, and the reach of
    keyframes into every frame, measured on demand and kept.

    Holds the reduced frames and consecutive flows (about 22 bytes a reduced pixel per frame: 0.8 MB at
    256x144, 80 MB for 100 frames) and each direct reach mask measured (1 byte a pixel), so adding a
    keyframe measures only the direct flows of its gaps.
    """

    def __init__(self, frames: list[np.ndarray], pairs: list[_Pair]) -> None:
        self.frames = frames
        self.pairs = pairs
        self.count = len(frames)
        self.shape = frames[0].shape[:2]
        self._direct: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def measure(cls, frames: Sequence[int], read: Callable[[int], np.ndarray], max_side: int) -> _ShotMotion:
        reduced = [_reduced(read(number), max_side) for number in frames]
        return cls(reduced, [_Pair.measure(a, b) for a, b in itertools.pairwise(reduced)])

    def continuity(self, index: int) -> float:
        """The share of frame `index` trusted from the frame before it (0 for the first frame)."""
        return float(self.pairs[index - 1].trust_backward.mean()) if index > 0 else 0.0

    def coverage(self, keys: list[int]) -> np.ndarray:
        """(count,) float: each frame's share reachable from the keyframes `keys` (sorted indices)."""
        covered = np.empty(self.count)
        bounds: list[int | None] = [None, *keys, None]
        for before, after in itertools.pairwise(bounds):
            first = 0 if before is None else before
            last = self.count - 1 if after is None else after
            covered[first : last + 1] = self._gap(before, after, first, last)
        return covered

    def _gap(self, before: int | None, after: int | None, first: int, last: int) -> np.ndarray:
        """Coverage of frames first..last, between the keyframes `before` and `after` (None: none)."""
        reach = [np.zeros(self.shape, dtype=bool) for _ in range(first, last + 1)]
        for key, stop in ((before, last), (after, first)):
            if key is None:
                continue
            for index, chained in zip(_walk(key, stop), self._carry(key, stop), strict=True):
                reach[index - first] |= chained | self._reach_directly(key, index)
        return np.array([r.mean() for r in reach])

    def _reach_directly(self, key: int, index: int) -> np.ndarray:
        """(H, W) bool at frame `index`: where the consistency-checked flow to keyframe `key` holds."""
        if key == index:
            return np.ones(self.shape, dtype=bool)
        found = self._direct.get((key, index))
        if found is None:
            to_key = optical_flow(self.frames[index], self.frames[key], max_side=None)
            from_key = optical_flow(self.frames[key], self.frames[index], max_side=None)
            trusted = consistency_mask(to_key, from_key) > 0.5
            # Failures thinner than 3 px are the outlines of moving things (the check is strict at
            # motion boundaries), not material no keyframe shows: they do not count.
            thin = cv2.morphologyEx((~trusted).astype(np.uint8), cv2.MORPH_OPEN, _THIN)
            found = self._direct[(key, index)] = thin == 0
        return found

    def _carry(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Reach masks (H, W) bool of frames start, start +- 1, ..., stop from a keyframe at `start`."""
        reach = np.ones(self.shape, dtype=bool)
        yield reach
        step = 1 if stop >= start else -1
        for index in range(start, stop, step):
            if step > 0:  # to frame index + 1, whose pixels look back along the backward flow
                pair = self.pairs[index]
                flow, trust = pair.backward, pair.trust_backward
            else:  # to frame index - 1, whose pixels look ahead along the forward flow
                pair = self.pairs[index - 1]
                flow, trust = pair.forward, pair.trust_forward
            # Bilinear then halved: a reachable region keeps its area instead of eroding a pixel a frame.
            reach = (warp(reach.astype(np.float32), flow.astype(np.float32)) >= 0.5) & trust
            yield reach


def _walk(start: int, stop: int) -> range:
    """Indices start, start +- 1, ..., stop."""
    return range(start, stop + 1) if stop >= start else range(start, stop - 1, -1)


def _reduced(image: np.ndarray, max_side: int) -> np.ndarray:
    """A copy with the long side at most `max_side` (area-averaged), so the full frame can be let go."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) frame, got shape {image.shape}")
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------- by hand


def _frame_number(item: str, text: str) -> int:
    if re.fullmatch(r"[0-9]+", item, flags=re.ASCII) is None:
        raise ReverieError(f"keyframes must be frame numbers like {_EXAMPLE}, not {_shown(text)}")
    if len(item.lstrip("0")) > _MAX_DIGITS:
        return -1  # no shot has it: reported as outside the shot
    return int(item)


def _span(frames: Sequence[int]) -> str:
    return format_frame_range(frames) if frames else "(none)"


def _shown(text: str, limit: int = 40) -> str:
    """The user's text quoted for a one-line message: repr escapes newlines; a long one is cut short."""
    text = str(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")
