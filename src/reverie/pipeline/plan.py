"""How a shot is cut into work that can run in parallel and still look like one unbroken take.

Independent frames (temporal weight 0) are one render each. A temporally coherent shot is a chain:
each frame starts from, and is held to, the previous painted frame, so frames cannot simply be handed to
different workers. It is cut into chunks of `chunk` frames that render in parallel, each a chain of its
own. Two chains started apart paint different strokes, so at a boundary the next chunk would jump; to
avoid that, each chunk runs on for `overlap` frames past its end (its lead-out), the next chunk renders
those same frames as its first ones, and the two are cross-faded with a linear ramp.

Why a cross-fade, and why 8 frames by default: the per-frame change across the boundary is the
difference between the two chains (D, about the change between independent paintings) spread over
overlap + 1 steps, so its contribution to the warping error falls as D / (overlap + 1)**2. Independent
frames flicker about 20x more than chained ones at film-like sizes (the README's shot figures), so 8
frames keep a boundary's flicker within about 1.3x of a chunk's inside, at the cost of 8 extra frames
per chunk. Alternatives weighed: a multi-pass scheme (Ruder et al. 2018) makes every frame equal but
needs many passes over the whole shot; seeding each chunk from the previous one is sequential.

This module is pure planning: frame numbers in, render and blend steps out. It reads and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from reverie.errors import ReverieError

DEFAULT_CHUNK = 48
"""Frames per chunk: 2 s at 24 fps, so a 10-s shot spreads over 5 workers."""
DEFAULT_OVERLAP = 8
"""Frames cross-faded at each chunk boundary (see the module's note)."""
DEFAULT_MAX_KEYFRAMES = 8
"""The cap for a shot of about 100 frames. Each keyframe costs a full Gatys render (the slow part: minutes
a frame), so 8 keep fast mode over 10x cheaper than painting all 100. Texler et al. (2020) needed 1-4
keyframes per ~100 frames in their examples; 8 leaves room for a cut or a fast move on top of that.
(Here with the other shot defaults: the CLI reads it without the shots extra.)"""


@dataclass(frozen=True)
class Step:
    """One frame painted by one chain."""

    number: int
    chain: int
    previous: int | None
    """The frame this one continues from in its chain; None starts the chain (no temporal constraint,
    more iterations)."""
    final: bool
    """True: the painted frame is the output frame. False: it is one side of a cross-fade."""


@dataclass(frozen=True)
class Blend:
    """An output frame that is the cross-fade of two chains' paintings of it."""

    number: int
    chains: tuple[int, int]
    weight: float
    """Weight of the later chain (chains[1]); the earlier one gets 1 - weight."""


@dataclass(frozen=True)
class Plan:
    chains: tuple[tuple[Step, ...], ...]
    """Each chain's steps in the order they must run (each may need the one before)."""
    blends: tuple[Blend, ...]

    def steps(self) -> list[Step]:
        return [step for chain in self.chains for step in chain]


def check_chunking(chunk: int, overlap: int) -> None:
    """One-line errors for chunk settings a shot cannot be cut with."""
    if chunk < 0:
        raise ReverieError(f"--chunk {chunk} must be 0 (one unbroken chain) or a number of frames")
    if overlap < 0:
        raise ReverieError(f"--chunk-overlap {overlap} must be 0 or more frames")
    if chunk and overlap >= chunk:
        raise ReverieError(f"--chunk-overlap {overlap} must be smaller than --chunk {chunk}")


def plan_shot(frames: tuple[int, ...], *, temporal: bool, chunk: int, overlap: int) -> Plan:
    """The steps that paint `frames` (in shot order), whatever is already finished."""
    check_chunking(chunk, overlap)
    if not temporal:
        return Plan(tuple((Step(n, i, None, True),) for i, n in enumerate(frames)), ())
    bounds = _chunk_bounds(len(frames), chunk, overlap)
    chains, blends = [], []
    for c, (start, end) in enumerate(bounds):
        lead_out = min(end + overlap, len(frames)) if c + 1 < len(bounds) else end
        overlap_in = start if c == 0 else min(start + overlap, lead_out)
        steps = []
        for i in range(start, lead_out):
            previous = frames[i - 1] if i > start else None
            steps.append(Step(frames[i], c, previous, overlap_in <= i < end))
        chains.append(tuple(steps))
        for j, i in enumerate(range(end, lead_out)):
            blends.append(Blend(frames[i], (c, c + 1), (j + 1) / (overlap + 1)))
    return Plan(tuple(chains), tuple(blends))


def _chunk_bounds(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of each chunk; a last chunk no longer than the overlap joins the one before (it
    would be all cross-fade)."""
    if not chunk or n <= chunk:
        return [(0, n)]
    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    if bounds[-1][1] - bounds[-1][0] <= overlap:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds
