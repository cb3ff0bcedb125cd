"""The `reverie` command: a thin shell over the engine, the pipeline and the farm. Option defaults come
from `Look`."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from reverie.core.distill import MAX_STEPS, TrainConfig
from reverie.engine.painter import Painter
from reverie.engine.sweep import (
    MAX_TILES,
    axes_from_options,
    parse_choice_values,
    parse_int_values,
    parse_u_values,
    plan_sweep,
)
from reverie.errors import ReverieError
from reverie.farm.executors import DEFAULT_RETRIES
from reverie.look import COLOR_MODES, NETWORKS, U_RANGE, U_USEFUL, Look, parse_crop
from reverie.pipeline.plan import DEFAULT_CHUNK, DEFAULT_MAX_KEYFRAMES, DEFAULT_OVERLAP
from reverie.runtime import Runtime

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Reverie: turn live-action frames into paintings with neural style transfer.",
)

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Look)}


def _d(name: str) -> str:
    """The look's default for a flag's help text (one source of truth: the Look dataclass)."""
    value = _DEFAULTS[name]
    return f"[default: {value:g}]" if isinstance(value, float) else f"[default: {value}]"


class _Number(click.ParamType):
    """A float whose parse error says what the option means and its useful range."""

    name = "FLOAT"

    def __init__(self, hint: str) -> None:
        self.hint = hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; {self.hint}", param, ctx)


class _Positive(_Number):
    """A finite float > 0: float() reads "nan", "inf" and "1e400" as numbers, and 0 fps is no rate."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not (math.isfinite(number) and number > 0):
            self.fail(f"{value!r} is not a positive number; {self.hint}", param, ctx)
        return number


_FPS = _Positive("give the sequence's frame rate, e.g. 24 or 23.976")
_U = _Number(f"give u from {U_RANGE[0]:g} to {U_RANGE[1]:g}; the useful range is {U_USEFUL}")

Opt = typer.Option


# The look's flags, shared by `stylize` and `render` (help text and defaults from `Look`).
StyleOpt = Annotated[list[str] | None, Opt("--style", help="The painting (repeat for a blend).")]
UOpt = Annotated[
    float | None, Opt("--u", click_type=_U, help=f"Degree of unrealism; style:content = 10**u. {_d('u')}")
]
IterationsOpt = Annotated[int | None, Opt(help=f"Optimiser iterations. {_d('iterations')}")]
SizeOpt = Annotated[int | None, Opt(help=f"Working long side in px. {_d('size')}")]
UpscaleOpt = Annotated[
    str | None, Opt(help=f"refine or plain: how --output-size is reached. {_d('upscale')}")
]
RefineOpt = Annotated[int | None, Opt(help=f"Iterations per refine scale. {_d('refine_iterations')}")]
NetworkOpt = Annotated[str | None, Opt(help=f"vgg16, vgg19 or googlenet. {_d('network')}")]
InitOpt = Annotated[str | None, Opt(help=f"content, mixed, noise or an image path. {_d('init')}")]
OptimizerOpt = Annotated[str | None, Opt(help=f"lbfgs or adam. {_d('optimizer')}")]
SeedOpt = Annotated[int | None, Opt(help=f"Random seed. {_d('seed')}")]
CropOpt = Annotated[
    str | None, Opt(help="Texture transfer: X,Y,W,H of the style image (px, or 0-1 fractions).")
]
StyleScaleOpt = Annotated[float | None, Opt(help=f"Style long side / working size. {_d('style_scale')}")]
StyleWeightsOpt = Annotated[str | None, Opt(help="Blend weights, one per --style, e.g. 0.7,0.3.")]
MaskOpt = Annotated[
    list[str] | None, Opt("--mask", help="Per --style, where it goes (white); the plate's shape.")
]
UMapOpt = Annotated[str | None, Opt(help="Grey map of local unrealism: white = u, black = the plate.")]
ColorOpt = Annotated[
    str | None, Opt(help=f"style (painting's), content (plate's) or match (recoloured). {_d('color')}")
]
TvOpt = Annotated[float | None, Opt(help=f"Total-variation smoothing. {_d('tv_weight')}")]
PoolingOpt = Annotated[str | None, Opt(help=f"max or avg. {_d('pooling')}")]
LookOpt = Annotated[Path | None, Opt("--look", help="A saved look (TOML); flags override it.")]
SaveLookOpt = Annotated[Path | None, Opt(help="Also write the look used to this TOML file.")]
OutputSizeOpt = Annotated[
    int | None, Opt(help="Long side of the written image. [default: the content's own size]")
]
BitDepthOpt = Annotated[int | None, Opt(help="8 or 16 bits per channel (PNG, TIFF). [default: per format]")]
WeightsOpt = Annotated[
    Path | None, Opt(help="Your own VGG (or GoogLeNet) checkpoint instead of the packaged weights.")
]
DeviceOpt = Annotated[str, Opt(help="auto, cpu or cuda.")]
MaxMemoryOpt = Annotated[str | None, Opt(help="Memory it may use, e.g. 8G. [default: all free]")]
TileOpt = Annotated[int | None, Opt(help="Refine in tiles of at most this many px.")]
PrecisionOpt = Annotated[
    str, Opt(help="fp32; mixed (bf16, then a float32 finish: faster, same quality); bf16 (a draft).")
]
QuietOpt = Annotated[bool, Opt("--quiet", "-q", help="Print nothing but errors.")]
OcioConfigOpt = Annotated[
    str | None,
    Opt(help="The show's OCIO config: a .ocio file or ocio://NAME. [default: $OCIO, else the studio config]"),
]
DisplayOpt = Annotated[
    str | None, Opt(help="The display the network paints through. [default: the config's default display]")
]
ViewOpt = Annotated[str | None, Opt(help="The display's view. [default: the config's default view]")]


ForceOpt = Annotated[bool, Opt("--force", help="Replace an existing OUTPUT (never an input).")]
TemporalOpt = Annotated[
    float | None, Opt(help=f"Temporal coherence; 0 paints frames independently. {_d('temporal_weight')}")
]
FirstIterationsOpt = Annotated[
    int | None, Opt(help="Iterations of the first frame. [default: twice --iterations]")
]

# The look's flags, in the order --help lists them: one set for every command that paints with a look.
LOOK_FLAGS: dict[str, Any] = {
    "style": StyleOpt,
    "u": UOpt,
    "iterations": IterationsOpt,
    "size": SizeOpt,
    "upscale": UpscaleOpt,
    "refine_iterations": RefineOpt,
    "network": NetworkOpt,
    "init": InitOpt,
    "optimizer": OptimizerOpt,
    "seed": SeedOpt,
    "style_crop": CropOpt,
    "style_scale": StyleScaleOpt,
    "style_weights": StyleWeightsOpt,
    "mask": MaskOpt,
    "u_map": UMapOpt,
    "color": ColorOpt,
    "tv_weight": TvOpt,
    "pooling": PoolingOpt,
    "look": LookOpt,
}
SHOT_LOOK_FLAGS: dict[str, Any] = {"temporal_weight": TemporalOpt, "first_iterations": FirstIterationsOpt}


def with_look(flags: dict[str, Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the look's flags: Typer sees them as the command's own options; the command's
    function receives the look they make (the saved --look, or the defaults, with the flags given
    applied) as its `look` argument."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)  # any order of defaults; Typer passes keywords
            for p in inspect.signature(fn, eval_str=True).parameters.values()
            if p.name != "look"
        ]
        keyword = inspect.Parameter.KEYWORD_ONLY
        added = [inspect.Parameter(n, keyword, default=None, annotation=a) for n, a in flags.items()]

        @functools.wraps(fn)
        def command(**options: Any) -> None:
            given = {name: options.pop(name) for name in flags}
            fn(**options, look=_chosen_look(**given))

        del command.__wrapped__  # Typer reads the signature below, not the function's own
        at = next(i for i, p in enumerate(own) if p.name == "output") + 1  # --help: after -o
        command.__signature__ = inspect.Signature([*own[:at], *added, *own[at:]])  # type: ignore[attr-defined]
        return command

    return decorate


def _chosen_look(
    look: Path | None,
    style: list[str] | None,
    mask: list[str] | None,
    style_crop: str | None,
    style_weights: str | None,
    u_map: str | None,
    **flags: Any,
) -> Look:
    """The saved look (or the defaults) with the flags given on the command line applied."""
    parsed = {
        **flags,
        "styles": tuple(str(Path(s)) for s in style) if style else None,
        "style_masks": tuple(str(Path(m)) for m in mask) if mask else None,
        "style_crop": parse_crop(style_crop) if style_crop is not None else None,
        "style_weights": _parse_weights(style_weights) if style_weights is not None else None,
        "u_map": str(Path(u_map)) if u_map else None,
    }
    base = Look.load(look) if look else Look()
    return base.replace(**{k: v for k, v in parsed.items() if v is not None})


def _runtime(
    device: str, precision: str, weights: Path | None, max_memory: str | None, tile_size: int | None
) -> Runtime:
    return Runtime(
        device=device,
        precision=precision,
        weights=str(weights) if weights else None,
        max_memory=parse_bytes(max_memory) if max_memory else None,
        tile_size=tile_size,
    )


@app.command()
@with_look(LOOK_FLAGS)
def stylize(
    content: Annotated[Path, typer.Argument(help="The plate: a frame to paint (JPEG, PNG, TIFF).")],
    output: Annotated[Path, Opt("-o", "--output", help="Image to write: .png, .jpg or .tif.")],
    output_size: OutputSizeOpt = None,
    save_look: SaveLookOpt = None,
    save_every: Annotated[int | None, Opt(help="Write an intermediate image every N iterations.")] = None,
    bit_depth: BitDepthOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    max_memory: MaxMemoryOpt = None,
    tile_size: TileOpt = None,
    precision: PrecisionOpt = "fp32",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    *,
    look: Look,
) -> None:
    """Paint CONTENT in the style of a painting and write OUTPUT (plus OUTPUT.json, its record)."""
    from reverie.app.stills import render_still

    runtime = _runtime(device, precision, weights, max_memory, tile_size)
    render_still(
        content,
        output,
        look,
        Painter(runtime),
        output_size=output_size,
        save_look=save_look,
        save_every=save_every,
        bit_depth=bit_depth,
        quiet=quiet,
        force=force,
    )


def _ocio(config: str | None, display: str | None, view: str | None) -> dict[str, str]:
    """The colour settings given on the command line, for `ShotSpec`: `$OCIO` names the config only
    where a shot names none (see `_environment_ocio`)."""
    given = {"ocio_config": config, "display": display, "view": view}
    return {k: v for k, v in given.items() if v is not None}


def _batch(
    path: Path, look: Look, pattern: str | None, handles: int | None, overrides: dict[str, Any], quiet: bool
) -> list[Any]:
    """The shots of a batch file, or of an edit (.otio: each clip a shot, what is skipped said)."""
    if path.suffix.lower() != ".otio":
        if pattern is not None or handles is not None:
            raise ReverieError("--output-pattern and --handles are for an edit (--batch cut.otio)")
        from reverie.farm.batch import load_batch

        return load_batch(path, look, _environment_ocio(), **overrides)
    if pattern is None:
        raise ReverieError(
            "--batch cut.otio needs --output-pattern, e.g. 'paint/{clip}/{clip}.%04d.exr' ({clip}: its name)"
        )
    from reverie.farm.edit import load_edit

    edit = load_edit(path, pattern, look, handles or 0, _environment_ocio(), **overrides)
    for line in edit.skipped if not quiet else ():
        print(f"skipped: {line}", file=sys.stderr)
    return edit.shots


def _environment_ocio() -> dict[str, Any]:
    """`$OCIO`, as every OCIO application reads it, for a shot that names no config: a `ShotSpec`
    fallback (its path absolute, as a batch's paths are)."""
    from reverie.app.shots import ocio_from_environment

    found = ocio_from_environment()
    if found is None:
        return {}
    return {"ocio_config": found if found.startswith("ocio://") else str(Path(found).absolute())}


@app.command()
@with_look(LOOK_FLAGS | SHOT_LOOK_FLAGS)
def render(
    input: Annotated[
        str | None,
        typer.Argument(help="The shot: a video (.mov, .mp4, .mkv) or frames like plate.%04d.exr."),
    ] = None,
    output: Annotated[
        str | None,
        Opt(
            "-o",
            "--output",
            help="Frames like paint.%04d.exr (the input's numbers), or a video (.mov, .mp4).",
        ),
    ] = None,
    batch: Annotated[
        Path | None,
        Opt(
            help="Shots to render together: a TOML list (inputs, frames, looks, outputs) or an edit (.otio)."
        ),
    ] = None,
    output_pattern: Annotated[
        str | None, Opt(help="--batch cut.otio: where each clip goes, e.g. 'paint/{clip}/{clip}.%04d.exr'.")
    ] = None,
    handles: Annotated[
        int | None,
        Opt(help="--batch cut.otio: frames painted beyond each clip's cut, on each side. [default: 0]"),
    ] = None,
    farm: Annotated[str, Opt(help="local (this machine) or ray (a Ray cluster).")] = "local",
    workers: Annotated[
        int | None, Opt(help="Worker processes (local) or steps at once (ray). [default: 1 local, all ray]")
    ] = None,
    address: Annotated[
        str | None, Opt(help="HOST:PORT of a Ray cluster's head. [default: RAY_ADDRESS, else a private one]")
    ] = None,
    retries: Annotated[int, Opt(help="Tries again of a frame whose worker died.")] = DEFAULT_RETRIES,
    threads: Annotated[
        int | None, Opt(help="CPU threads per worker. [default: its share of the cores]")
    ] = None,
    chunk: Annotated[
        int | None,
        Opt(
            help="Frames per chunk of a steady shot; chunks render in parallel (0: one chain). "
            f"[default: {DEFAULT_CHUNK}]"
        ),
    ] = None,
    chunk_overlap: Annotated[
        int | None, Opt(help=f"Frames cross-faded between chunks. [default: {DEFAULT_OVERLAP}]")
    ] = None,
    report: Annotated[Path | None, Opt(help="Where to write the farm's JSON report.")] = None,
    frames: Annotated[str | None, Opt(help="Frames to render, e.g. 1001-1100. [default: all]")] = None,
    allow_gaps: Annotated[bool, Opt(help="Render the frames that exist when some are missing.")] = False,
    fps: Annotated[
        float | None, Opt(click_type=_FPS, help="Frame rate of an image sequence. [default: 24]")
    ] = None,
    input_colorspace: Annotated[
        str | None,
        Opt(help="e.g. ACEScg, sRGB, ARRI LogC4. [default: ACEScg for EXR, else sRGB; a show's file rules]"),
    ] = None,
    output_colorspace: Annotated[str | None, Opt(help="[default: the input's]")] = None,
    ocio_config: OcioConfigOpt = None,
    display: DisplayOpt = None,
    view: ViewOpt = None,
    layer: Annotated[
        str | None, Opt(help="The EXR layer to paint: a part's name or a channel prefix. [default: RGB]")
    ] = None,
    encode: Annotated[str | None, Opt(help="Also write a video: prores or h264, at the shot's rate.")] = None,
    force: Annotated[
        bool,
        Opt("--force", help="Replace frames or a video in OUTPUT made by another render (never an input)."),
    ] = False,
    output_size: OutputSizeOpt = None,
    save_look: SaveLookOpt = None,
    bit_depth: BitDepthOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    max_memory: MaxMemoryOpt = None,
    tile_size: TileOpt = None,
    precision: PrecisionOpt = "fp32",
    fast: Annotated[
        bool,
        Opt(
            "--fast",
            help="Paint keyframes with the look, train a network on them, paint every frame with it.",
        ),
    ] = False,
    keyframes: Annotated[
        str | None, Opt(help="--fast: the keyframes, e.g. 1001,1040,1096. [default: chosen from the motion]")
    ] = None,
    max_keyframes: Annotated[
        int | None, Opt(help=f"--fast: at most this many keyframes. [default: {DEFAULT_MAX_KEYFRAMES}]")
    ] = None,
    keyframe_images: Annotated[
        str | None, Opt(help="--fast: your own painted keyframes, e.g. painted.%04d.png (over the plates).")
    ] = None,
    retrain: Annotated[
        bool, Opt("--retrain", help="--fast: train the network anew and repaint every frame.")
    ] = False,
    train_steps: Annotated[
        int | None,
        Opt(
            help=f"--fast: training steps; fewer for a rougher preview sooner. [default: {TrainConfig.steps}]"
        ),
    ] = None,
    quiet: QuietOpt = False,
    *,
    look: Look,
) -> None:
    """Paint a shot (or a --batch of shots) frame by frame, steady in time, on this machine or a Ray
    farm; re-running it renders only what is missing. --fast: the look distilled into a network."""
    from reverie.app.shots import FarmOptions, render_cli
    from reverie.farm.executors import check_options
    from reverie.io.extras import require_shots_extra

    check_options(farm, workers, address, threads, retries)
    require_shots_extra()
    from reverie.pipeline.shot import ShotSpec

    given: dict[str, Any] = {"chunk": chunk, "chunk_overlap": chunk_overlap, "force": force or None}
    given["layer"] = layer
    overrides = {k: v for k, v in given.items() if v is not None} | _ocio(ocio_config, display, view)
    if batch is not None:
        if input is not None or output is not None:
            raise ReverieError("give either --batch SHOTS.toml or INPUT -o OUTPUT, not both")
        shots = [(s.spec, s.look) for s in _batch(batch, look, output_pattern, handles, overrides, quiet)]
        report = report or batch.with_suffix(".report.json")
    elif output_pattern is not None or handles is not None:
        raise ReverieError("--output-pattern and --handles belong to --batch cut.otio")
    elif input is None or output is None:
        raise ReverieError("give the shot and where to write it: reverie render INPUT -o OUTPUT (or --batch)")
    else:
        spec = ShotSpec(
            input=input,
            output=output,
            frames=frames,
            allow_gaps=allow_gaps,
            fps=fps,
            input_colorspace=input_colorspace,
            output_colorspace=output_colorspace,
            encode=encode,
            output_size=output_size,
            bit_depth=bit_depth,
            **{**_environment_ocio(), **overrides},  # --ocio-config before $OCIO
        )
        shots = [(spec, look)]
    runtime = replace(_runtime(device, precision, weights, max_memory, tile_size), threads=threads)
    options = FarmOptions(farm, workers, address, retries, threads)
    fast_flags = {
        "--keyframes": keyframes,
        "--max-keyframes": max_keyframes,
        "--keyframe-images": keyframe_images,
        "--train-steps": train_steps,
    }
    fast_flags["--retrain"] = retrain or None
    if not fast:
        given_fast = [name for name, value in fast_flags.items() if value is not None]
        if given_fast:
            raise ReverieError(f"{given_fast[0]} belongs to fast mode: add --fast")
        render_cli(shots, runtime, options, save_look=save_look, report=report, quiet=quiet)
        return
    from reverie.app.shots import render_fast_cli
    from reverie.farm.fast import FastOptions

    if batch is not None or chunk is not None or chunk_overlap is not None:
        raise ReverieError(
            "--fast renders one shot of independent frames: leave out --batch, --chunk and --chunk-overlap"
        )
    if train_steps is not None and not 1 <= train_steps <= MAX_STEPS:
        raise ReverieError(f"--train-steps {train_steps}: give a number of steps from 1 to {MAX_STEPS}")
    chosen = FastOptions(
        keyframes,
        DEFAULT_MAX_KEYFRAMES if max_keyframes is None else max_keyframes,
        keyframe_images,
        retrain,
        train=TrainConfig(steps=train_steps or TrainConfig.steps),
    )
    if keyframes is not None and max_keyframes is not None:
        raise ReverieError("--keyframes chooses the keyframes by hand: leave out --max-keyframes")
    if keyframe_images is not None and max_keyframes is not None:
        raise ReverieError(
            "--keyframe-images trains on every painted frame it finds: leave out --max-keyframes "
            "(or pick some of them with --keyframes)"
        )
    render_fast_cli(shots[0], runtime, options, chosen, save_look=save_look, report=report, quiet=quiet)


@app.command()
def flicker(
    output: Annotated[str, typer.Argument(help="Painted frames (paint.%04d.exr) or a painted video.")],
    input: Annotated[str, Opt("--input", help="The shot they were painted from (frames or video).")],
    frames: Annotated[str | None, Opt(help="Frames to measure, e.g. 1001-1100. [default: all]")] = None,
    json_out: Annotated[Path | None, Opt("--json", help="Also write the figures to this JSON file.")] = None,
    ocio_config: OcioConfigOpt = None,
    display: DisplayOpt = None,
    view: ViewOpt = None,
) -> None:
    """Temporal stability: the mean warping error between consecutive painted frames (flow from INPUT)."""
    from reverie.app.shots import flicker_cli

    flicker_cli(output, input, frames, json_out, _ocio(ocio_config, display, view))


@app.command()
def sweep(
    content: Annotated[Path, typer.Argument(help="The plate to paint.")],
    output: Annotated[Path, Opt("-o", "--output", help="The contact sheet to write (.png, .jpg, .tif).")],
    style: Annotated[
        list[str] | None, Opt("--style", help="The painting; repeat to sweep paintings.")
    ] = None,
    u: Annotated[str | None, Opt("--u", help="u values: 2,3,4 or a range 2:6 (whole steps).")] = None,
    iterations: Annotated[str | None, Opt(help="Iteration counts, e.g. 64,128,256,512.")] = None,
    style_crop: Annotated[list[str] | None, Opt(help="X,Y,W,H; repeat to sweep crops.")] = None,
    color: Annotated[str | None, Opt(help="Colour modes to compare, e.g. style,content,match.")] = None,
    network: Annotated[str | None, Opt(help="Networks to compare: vgg16,vgg19.")] = None,
    size: Annotated[int | None, Opt(help=f"Working long side of every tile. {_d('size')}")] = None,
    seed: Annotated[int | None, Opt(help=f"Random seed. {_d('seed')}")] = None,
    look: Annotated[Path | None, Opt("--look", help="The look the sweep varies (TOML).")] = None,
    yes: Annotated[bool, Opt("--yes", help=f"Allow more than {MAX_TILES} tiles.")] = False,
    device: Annotated[str, Opt(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, Opt("--force", help="Replace an existing sheet and its tiles.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Render a grid of looks over a few axes into a labelled contact sheet, plus each tile and its look."""
    from reverie.app.stills import render_sweep

    base = Look.load(look) if look else Look()
    fixed: dict[str, Any] = {"size": size, "seed": seed}
    styles = [str(Path(s)) for s in style or []]
    crops = [parse_crop(c) for c in style_crop or []]
    if len(styles) == 1:
        fixed["styles"] = tuple(styles)
    if len(crops) == 1:
        fixed["style_crop"] = crops[0]
    base = base.replace(**{k: v for k, v in fixed.items() if v is not None})
    if not base.styles and not styles:
        raise ReverieError("no style image: give one with --style PAINTING (or a look that names one)")
    axes = axes_from_options(
        {
            "styles": [(s,) for s in styles] if len(styles) > 1 else None,
            "style_crop": crops if len(crops) > 1 else None,
            "u": parse_u_values(u) if u is not None else None,
            "iterations": parse_int_values(iterations, "--iterations") if iterations is not None else None,
            "color": parse_choice_values(color, "--color", COLOR_MODES) if color is not None else None,
            "network": parse_choice_values(network, "--network", NETWORKS) if network is not None else None,
        }
    )
    plan = plan_sweep(base, axes, allow_many=yes)
    render_sweep(content, output, plan, Painter(Runtime(device=device)), quiet=quiet, force=force)


@app.command()
def demo(
    output: Annotated[Path, Opt("-o", "--output", help="Image to write.")] = Path("reverie-demo.png"),
    iterations: Annotated[int, Opt(help="Optimiser iterations (the film used 512).")] = 200,
    size: Annotated[int, Opt(help=f"Working long side in px. {_d('size')}")] = _DEFAULTS["size"],
    u: Annotated[float, Opt("--u", click_type=_U, help=f"Degree of unrealism. {_d('u')}")] = _DEFAULTS["u"],
    photo: Annotated[str, Opt(help="Sample photo: chelsea, astronaut, coffee or rocket.")] = "chelsea",
    force: Annotated[bool, Opt("--force", help="Replace an earlier demo's images.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
) -> None:
    """Paint one of scikit-image's sample photos with a generated painting; needs no files of yours."""
    from reverie.app.samples import sample_content, sample_painting
    from reverie.app.stills import render_still
    from reverie.io.images import write_image
    from reverie.io.outputs import check_new

    plate = sample_content(photo)
    painting_path = output.with_name(output.stem + "-painting.png")
    check_new(output, force=force)
    check_new(painting_path, force=force)
    write_image(painting_path, sample_painting(512))
    chosen = Look(u=u, iterations=iterations, size=size, styles=(str(painting_path),))
    render_still(plate, output, chosen, Painter(), quiet=quiet, force=force)


@app.command()
def ui(
    port: Annotated[int, Opt(help="Port to listen on (0: any free port).")] = 7860,
    host: Annotated[str, Opt(help="Address to bind; anything but loopback needs a password or token.")] = (
        "127.0.0.1"
    ),
    root: Annotated[
        list[Path] | None, Opt(help="A folder whose shots and frames the page may read and write (repeat).")
    ] = None,
    password: Annotated[
        str | None, Opt(envvar="REVERIE_UI_PASSWORD", help="Password for --host other than loopback.")
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    weights: WeightsOpt = None,
) -> None:
    """Start the look-development web page (previews, u sweeps, looks, shot renders) and print its address."""
    try:
        from reverie.app.ui.server import serve
    except ImportError as err:
        raise ReverieError(
            f"the web UI needs the ui extra ({err.name} is missing): pip install 'reverie[ui]'"
        ) from None
    if not 0 <= port <= 65535:
        raise ReverieError(f"--port {port} is not a port: use 1-65535, or 0 for any free one")
    runtime = Runtime(device=device, precision=precision, weights=str(weights) if weights else None)
    serve(host, port, root or [], password, runtime)


look_app = typer.Typer(help="Inspect saved looks: show, diff, validate.", no_args_is_help=True)
app.add_typer(look_app, name="look")


@look_app.command("show")
def look_show(
    file: Annotated[
        Path,
        typer.Argument(help="A look (TOML), a fast-mode network (paint.fast.pt) or a painted frame."),
    ],
) -> None:
    """Print a look, its u in the film's terms and its hash; what a fast-mode network was trained on
    (look hash, keyframes, settings, training report); or where a painted frame came from (look hash,
    version, source plate and frame, colourspace)."""
    import json

    if file.suffix.lower() == ".pt":
        from reverie.pipeline.fastmodel import describe

        print(json.dumps(describe(file), indent=1))
        return
    if file.suffix.lower() != ".toml":  # a frame (EXR, DPX, TIFF, PNG, JPEG) or a painted video
        print(json.dumps(_frame_tags(file), indent=1))
        return
    chosen = Look.load(file)
    print(f"# {file}: {chosen.describe_u()}, hash {chosen.hash()}")
    print(chosen.to_toml(), end="")


def _frame_tags(file: Path) -> dict[str, str]:
    from reverie.io.extras import require_shots_extra

    require_shots_extra()
    from reverie.io.sequences import read_tags
    from reverie.io.video import is_video, read_video_tags

    tags = read_video_tags(file) if is_video(str(file)) else read_tags(file)
    if not tags:
        raise ReverieError(f"{file} carries no Reverie tags: it was not painted by this version of Reverie")
    return tags


@look_app.command("diff")
def look_diff(
    a: Annotated[Path, typer.Argument(help="The first look.")],
    b: Annotated[Path, typer.Argument(help="The second look.")],
) -> None:
    """Print the settings in which two looks differ (nothing, and exit 0, when they are the same)."""
    first, second = Look.load(a).to_dict(), Look.load(b).to_dict()
    for key in sorted(set(first) | set(second)):
        if first.get(key) != second.get(key):
            print(f"{key}: {first.get(key, '(unset)')} -> {second.get(key, '(unset)')}")


@look_app.command("validate")
def look_validate(file: Annotated[Path, typer.Argument(help="A look (TOML).")]) -> None:
    """Check a look: its settings, and that its paintings exist and are images. Exit 2 if not."""
    from reverie.io.images import image_size

    chosen = Look.load(file)
    for style_path in chosen.styles:
        image_size(style_path)
    print(f"{file}: valid ({chosen.describe_u()}, hash {chosen.hash()})")


def parse_bytes(text: str) -> int:
    """8G, 8GiB, 512M, 2000000000 -> bytes (powers of 1024 for the suffixes)."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    number = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = number[-1:] if number[-1:] in units else ""
    try:
        value = float(number.removesuffix(suffix)) * units[suffix]
    except ValueError:
        value = -1
    # nan, inf and 1e400 (which float() reads as inf) are no size: int() of them would raise.
    if not math.isfinite(value) or value < 1:
        raise ReverieError(
            f"--max-memory {text!r} must be a finite positive size like 8G, 512M or 2000000000"
        )
    return int(value)


def _parse_weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ReverieError(
            f"--style-weights {text!r} must be numbers separated by commas, e.g. 0.7,0.3"
        ) from None


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="reverie", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as err:
        print(err.ctx.get_help() if err.ctx else "")
        sys.exit(0)
    except click.UsageError as err:
        hint = f" (see: reverie {err.ctx.info_name} --help)" if err.ctx and err.ctx.parent else ""
        _fail(f"{_one_line(err.format_message())}{hint}")
    except ReverieError as err:
        _fail(_one_line(str(err)))
    except click.Abort:
        _fail("aborted", 130)
    except KeyboardInterrupt:
        _fail("interrupted; finished files are intact, nothing half-written", 130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    print(f"reverie: error: {message}", file=sys.stderr)
    sys.exit(code)
