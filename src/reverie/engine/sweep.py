"""Look development: render a grid of looks over a few axes and lay them out as a contact sheet.

The paper's loop: try u in whole powers of ten, crop the painting tightly, settle colour early, see how
many iterations the texture needs. An iterations axis costs one run per other combination, not one per
tile: the tiles of one run are snapshots of the same optimisation at each count, which are exactly the
images separate runs of those lengths would give (L-BFGS-B's path does not depend on its iteration cap).
Not so under mixed precision, whose float32 finish is the last 30% of each run's own iterations: there
every tile is a run of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reverie.core.transfer import IterationEvent
from reverie.engine.painter import Painter
from reverie.engine.still import finish
from reverie.errors import ReverieError
from reverie.look import Look, format_crop

# Canonical order: the iterations axis, when present, is always the sheet's columns.
AXIS_ORDER = ("styles", "network", "color", "style_crop", "u", "iterations")
AXIS_TITLES = {
    "styles": "painting",
    "network": "network",
    "color": "colour",
    "style_crop": "crop",
    "u": "u",
    "iterations": "iterations",
}
MAX_TILES = 64


@dataclass(frozen=True)
class Axis:
    name: str
    """The Look field it varies."""
    values: tuple[Any, ...]

    def label(self, value: Any) -> str:
        if self.name == "u":
            return f"u={value:g} (1e{value:g})"
        if self.name == "styles":
            return Path(value[0]).stem
        if self.name == "style_crop":
            return f"crop {format_crop(value)}"
        if self.name == "iterations":
            return f"{value} it"
        return str(value)


@dataclass(frozen=True)
class Tile:
    row: int
    col: int
    look: Look
    caption: str
    name: str
    """File stem of the tile's image and look."""


@dataclass(frozen=True)
class Plan:
    tiles: tuple[Tile, ...]
    row_axes: tuple[Axis, ...]
    col_axis: Axis
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]

    def rows(self) -> list[list[Tile]]:
        """The tiles, row by row."""
        n = len(self.col_labels)
        return [list(self.tiles[i : i + n]) for i in range(0, len(self.tiles), n)]


def parse_u_values(text: str) -> tuple[float, ...]:
    """``2,3,4`` or ``2:6`` (whole steps, both ends included)."""
    try:
        if ":" in text:
            lo, hi = (float(p) for p in text.split(":"))
            values = tuple(lo + i for i in range(int(hi - lo) + 1)) if hi >= lo else ()
        else:
            values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ReverieError(f"--u {text!r}: give values like 2,3,4 or a range like 2:6") from None
    return _axis_values("--u", values)


def parse_int_values(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ReverieError(f"{flag} {text!r}: give whole numbers like 64,128,256,512") from None
    return _axis_values(flag, values)


def parse_choice_values(text: str, flag: str, choices: Sequence[str]) -> tuple[str, ...]:
    values = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [v for v in values if v not in choices]
    if unknown:
        raise ReverieError(f"{flag}: unknown value(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    return _axis_values(flag, values)


def _axis_values(flag: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(values) < 2:
        raise ReverieError(
            f"{flag} makes a sweep axis and needs two or more values (got {len(values)}); "
            "set a single value in the look instead (--look)"
        )
    if len(set(values)) != len(values):
        raise ReverieError(f"{flag} repeats a value: each tile of a sweep axis must differ")
    return values


def axes_from_options(options: dict[str, Any]) -> list[Axis]:
    """Axes for the given options (None: not swept), in the canonical order."""
    axes = [Axis(name, tuple(options[name])) for name in AXIS_ORDER if options.get(name) is not None]
    if not axes:
        raise ReverieError("a sweep needs at least one axis, e.g. --u 2:6 or --iterations 64,128,256,512")
    return axes


def plan_sweep(base: Look, axes: Sequence[Axis], *, allow_many: bool = False) -> Plan:
    """Lay the axes out as a grid: iterations (or the last axis) across, the rest down."""
    col_axis = axes[-1]
    row_axes = tuple(axes[:-1])
    rows = list(itertools.product(*(a.values for a in row_axes)))
    count = len(rows) * len(col_axis.values)
    if count > MAX_TILES and not allow_many:
        raise ReverieError(f"this sweep has {count} tiles (over {MAX_TILES}); pass --yes to render them all")
    tiles = []
    for r, row_values in enumerate(rows):
        for c, col_value in enumerate(col_axis.values):
            pairs = [*zip(row_axes, row_values, strict=True), (col_axis, col_value)]
            look = base.replace(**{a.name: v for a, v in pairs})
            caption = " · ".join(a.label(v) for a, v in pairs)
            tiles.append(Tile(r, c, look, caption, f"r{r:02d}c{c:02d}"))
    row_labels = tuple(" · ".join(a.label(v) for a, v in zip(row_axes, vs, strict=True)) for vs in rows)
    col_labels = tuple(col_axis.label(v) for v in col_axis.values)
    return Plan(tuple(tiles), row_axes, col_axis, row_labels, col_labels)


def render_tiles(
    plate: np.ndarray,
    plan: Plan,
    painter: Painter,
    *,
    on_iteration: Callable[[IterationEvent], None] | None = None,
) -> dict[str, np.ndarray]:
    """Tile images (working size, 0..1) by tile name. One optimisation per group of tiles that differ
    only in their iteration count (see `groups`); each tile is the snapshot at its count."""
    images: dict[str, np.ndarray] = {}
    for group in groups(plan, painter.runtime.precision):
        wanted = {t.look.iterations: t for t in group}
        longest = group[0].look.replace(iterations=max(wanted))

        def snapshot(event: IterationEvent, wanted: dict[int, Tile] = wanted, look: Look = longest) -> None:
            if on_iteration is not None:
                on_iteration(event)
            tile = wanted.get(event.iteration)
            if tile is not None:
                images[tile.name] = finish(event.image, plate, look.color, look.size)

        result = painter.stylize(plate, None, longest, output_size=longest.size, callback=snapshot)
        for tile in wanted.values():
            if tile.name not in images:  # the optimiser stopped early: show where it ended
                images[tile.name] = result.image
    return images


def groups(plan: Plan, precision: str) -> list[list[Tile]]:
    """Tiles painted by one optimisation: those that differ only in their iteration count, each the
    snapshot of the longest at its count. Under mixed precision a snapshot is not what a run of its
    own length gives (that run's float32 finish starts earlier), so each tile is its own run."""
    if precision == "mixed":
        return [[tile] for tile in plan.tiles]
    found: dict[Look, list[Tile]] = {}
    for tile in plan.tiles:
        found.setdefault(tile.look.replace(iterations=1), []).append(tile)
    return list(found.values())


def total_iterations(plan: Plan, precision: str) -> int:
    return sum(max(t.look.iterations for t in g) for g in groups(plan, precision))


def axis_title(plan: Plan) -> str:
    rows = " × ".join(AXIS_TITLES[a.name] for a in plan.row_axes) or "-"
    return f"rows: {rows}   columns: {AXIS_TITLES[plan.col_axis.name]}"
