"""Rendering stills and sweeps to files, with progress on the terminal: inputs checked before the long
part, every file written atomically. The CLI and other shells call `render_still` and `render_sweep`
with the `Painter` they hold; shots are in `reverie.app.shots`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from reverie.core.transfer import IterationEvent
from reverie.engine.painter import Painter
from reverie.engine.still import StylizeResult, finish, planned_iterations
from reverie.engine.sweep import Plan, axis_title, render_tiles, total_iterations
from reverie.errors import ReverieError
from reverie.io.images import atomic_write_bytes, check_writable, image_size, read_image, write_image
from reverie.io.outputs import check_new, check_not_an_input, output_lock
from reverie.io.sheet import contact_sheet
from reverie.look import Look, crop_box


def sidecar_path(output: Path) -> Path:
    """The JSON record beside an image: out.png -> out.png.json."""
    return output.with_name(output.name + ".json")


def render_still(
    content: Path | np.ndarray,
    output: Path,
    look: Look,
    painter: Painter,
    *,
    output_size: int | None = None,
    save_look: Path | None = None,
    save_every: int | None = None,
    bit_depth: int | None = None,
    quiet: bool = False,
    force: bool = False,
) -> StylizeResult:
    """Render `content` with `look` to `output` (+ `output`.json, + the look's TOML if asked), holding
    the output's lock throughout. An existing output is replaced only when `force`d; an output that is
    one of the inputs (the plate, a painting, a mask) never."""
    _check_options(output, save_look, save_every, bit_depth, output_size)
    sources = [content] if isinstance(content, Path) else []
    check_not_an_input(
        [output, sidecar_path(output), *([save_look] if save_look else [])], [*sources, *look.files()]
    )
    with output_lock(lock_path(output), str(output)):
        check_new(output, force=force)
        return _render_still(
            content, output, look, painter, output_size, save_look, save_every, bit_depth, quiet
        )


def _render_still(
    content: Path | np.ndarray,
    output: Path,
    look: Look,
    painter: Painter,
    output_size: int | None,
    save_look: Path | None,
    save_every: int | None,
    bit_depth: int | None,
    quiet: bool,
) -> StylizeResult:
    plate = read_image(content) if isinstance(content, Path) else content
    styles = [read_image(p) for p in look.styles]
    console = Console(stderr=True, quiet=quiet)
    snapshot = _snapshot_writer(output, plate, look, bit_depth, save_every)
    total = planned_iterations(look, plate.shape[1], plate.shape[0], output_size, painter.runtime)
    with _progress(console, total, _header(look, plate, output_size)) as report:

        def on_iteration(event: IterationEvent) -> None:
            report(event)
            snapshot(event)

        result = painter.stylize(plate, styles, look, output_size=output_size, callback=on_iteration)
    write_image(output, result.image, bit_depth=bit_depth)
    atomic_write_bytes(sidecar_path(output), json.dumps(result.metadata(), indent=2).encode())
    if save_look is not None:
        atomic_write_bytes(save_look, look.to_toml().encode())
    console.print(_summary(output, result))
    return result


def lock_path(output: Path) -> Path:
    """The lock a render of `output` holds while it runs: out.png -> out.png.lock."""
    return output.with_name(output.name + ".lock")


def _check_options(
    output: Path,
    save_look: Path | None,
    save_every: int | None,
    bit_depth: int | None,
    output_size: int | None,
) -> None:
    """Refuse what would fail at the end before spending minutes on the render."""
    if bit_depth not in (None, 8, 16):
        raise ReverieError(f"--bit-depth {bit_depth} is not supported: use 8 or 16")
    if bit_depth == 16 and output.suffix.lower() in (".jpg", ".jpeg"):
        raise ReverieError(f"{output}: JPEG is 8-bit only; write .png or .tif for 16 bits")
    if save_every is not None and save_every < 1:
        raise ReverieError("--save-every must be a whole number of iterations >= 1")
    if output_size is not None and not 16 <= output_size <= 32768:
        raise ReverieError(f"--output-size {output_size} must be from 16 to 32768 px")
    check_writable(output)
    if save_look is not None:
        if save_look.suffix.lower() != ".toml":
            raise ReverieError(f"--save-look {save_look}: a look file must end in .toml")
        check_writable(save_look.with_suffix(".png"))  # same directory, same permissions


def _header(look: Look, plate: np.ndarray, output_size: int | None) -> str:
    h, w = plate.shape[:2]
    out = f"{output_size} px long side ({look.upscale})" if output_size else f"{w}x{h}"
    return (
        f"{look.describe_u()} · {look.network} · {look.size} px working size · "
        f"{look.optimizer} x {look.iterations} · colour {look.color} · output {out}"
    )


def _summary(output: Path, result: StylizeResult) -> str:
    w, h = result.output_size
    per_it = result.seconds / max(result.iterations, 1)
    return (
        f"wrote {output} ({w}x{h}) in {result.seconds:.1f} s ({per_it:.3f} s/iteration on "
        f"{result.device}, {result.precision}); losses: content {result.losses.content:.4g}, "
        f"style {result.losses.style:.4g}"
    )


def _snapshot_writer(
    output: Path, plate: np.ndarray, look: Look, bit_depth: int | None, every: int | None
) -> Callable[[IterationEvent], None]:
    seen = 0

    def write(event: IterationEvent) -> None:
        # Snapshots of the working-size pass only; refine passes number their iterations afresh.
        nonlocal seen
        seen += 1
        if every and seen % every == 0 and seen < look.iterations:
            path = output.with_name(f"{output.stem}.iter{seen:04d}{output.suffix}")
            write_image(path, finish(event.image, plate, look.color, look.size), bit_depth=bit_depth)

    return write


class _progress:
    """A Rich progress bar, under a heading, fed by iteration events; the context gives the function
    to feed it. Both show from the first iteration on: what the engine refuses before it paints (the
    memory, a mask, an init image) is then the only line printed. An error that ends the bar clears it."""

    def __init__(self, console: Console, total: int, heading: str) -> None:
        self.console, self.heading = console, heading
        self.progress = Progress(
            TextColumn("painting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("painting", total=total, losses="", rate="")
        self.first: float | None = None
        self.done = 0

    def report(self, event: IterationEvent) -> None:
        # Timed from the first iteration on, so loading weights and targets does not skew the rate.
        now = time.perf_counter()
        if self.first is None:
            self.console.print(self.heading)
            self.progress.start()
        self.first = self.first or now
        self.done += 1
        rate = f"{(now - self.first) / (self.done - 1):.2f} s/it" if self.done > 1 else ""
        losses = f"content {event.losses.content:.3g} style {event.losses.style:.3g}"
        self.progress.update(self.task, completed=self.done, losses=losses, rate=rate)

    def __enter__(self) -> Callable[[IterationEvent], None]:
        return self.report

    def __exit__(self, error: type[BaseException] | None, *exc: object) -> None:
        if self.first is None:  # never shown (a stopped Progress still prints a line to a file)
            return
        if error is None:
            self.progress.stop()
        else:  # cleared: the error's line says what happened, a frozen bar would not
            self.progress.live.transient = True
            self.progress.live.stop()  # (Progress.stop would add an empty line on a file)


def render_sweep(
    content: Path, output: Path, plan: Plan, painter: Painter, *, quiet: bool = False, force: bool = False
) -> Path:
    """Render a sweep: OUTPUT (the contact sheet) and, per tile, an image and its look in OUTPUT-tiles/.

    Returns the tiles folder. Any tile can be rendered at full size with `reverie stylize --look`. An
    existing sheet or tiles folder is replaced only when `force`d; the plate and paintings never.
    """
    check_writable(output)
    tiles_dir = output.with_name(f"{output.stem}-tiles")
    painted = [tiles_dir / f"{t.name}.{kind}" for t in plan.tiles for kind in ("png", "toml")]
    check_not_an_input([output, *painted], [content, *(f for t in plan.tiles for f in t.look.files())])
    with output_lock(lock_path(output), str(output)):
        check_new(output, force=force)
        check_new(tiles_dir, force=force)
        return _render_sweep(content, output, tiles_dir, plan, painter, quiet)


def _render_sweep(
    content: Path, output: Path, tiles_dir: Path, plan: Plan, painter: Painter, quiet: bool
) -> Path:
    plate = read_image(content)
    _check_paintings(plan)
    console = Console(stderr=True, quiet=quiet)
    total = total_iterations(plan, painter.runtime.precision)
    heading = f"sweep: {len(plan.tiles)} tiles, {axis_title(plan)}, {total} iterations"
    with _progress(console, total, heading) as report:
        images = render_tiles(plate, plan, painter, on_iteration=report)
    tiles_dir.mkdir(exist_ok=True)
    for tile in plan.tiles:
        write_image(tiles_dir / f"{tile.name}.png", images[tile.name])
        atomic_write_bytes(tiles_dir / f"{tile.name}.toml", tile.look.to_toml().encode())
    grid = [[images[t.name] for t in row] for row in plan.rows()]
    captions = [[t.caption for t in row] for row in plan.rows()]
    title = f"Reverie sweep · {Path(content).name}"
    sheet = contact_sheet(grid, plan.row_labels, plan.col_labels, captions, title, axis_title(plan))
    write_image(output, sheet)
    console.print(f"wrote {output} and {len(plan.tiles)} tiles with their looks in {tiles_dir}/")
    return tiles_dir


def _check_paintings(plan: Plan) -> None:
    """A bad painting or crop fails now, not after an hour of other tiles."""
    sizes = {path: image_size(path) for tile in plan.tiles for path in tile.look.styles}
    for tile in plan.tiles:
        crop = tile.look.style_crop
        if crop is not None:
            for path in tile.look.styles:
                crop_box(crop, *sizes[path])
