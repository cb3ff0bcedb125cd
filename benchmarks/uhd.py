"""A 3840x2160 frame on this machine within a memory budget: does it finish, how long, how much memory.

    python benchmarks/uhd.py --content tubingen.jpg --style starry_night.jpg --max-memory 16G \
        --json uhd.json --image uhd.png

Runs `reverie stylize` as a child process, exactly as a user would, on a 16:9 centre crop of the content:
the working size, then refine passes at doubling sizes up to 3840 px, in tiles where a pass does not fit
the budget. Prints the wall time, the child's peak resident memory against the budget (from the kernel's
accounting of the child, not an estimate).
Defaults: 512-px working size, 64 iterations, 8 refine iterations per scale, mixed precision.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from performance import centre_crop, default_content, write_png
from reverie.app.cli import parse_bytes
from reverie.app.samples import sample_painting
from reverie.errors import ReverieError
from reverie.io.images import read_image


def command(args: argparse.Namespace, plate: Path, style: Path, output: Path) -> list[str]:
    return [
        *(str(Path(sys.executable).with_name("reverie")), "stylize", str(plate)),
        *("--style", str(style), "-o", str(output)),
        *("--size", str(args.size), "--iterations", str(args.iterations)),
        *("--output-size", str(args.output_size), "--refine-iterations", str(args.refine_iterations)),
        *("--precision", args.precision, "--max-memory", args.max_memory, "--device", "cpu", "--quiet"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", help="plate (default: a sample photo); a 16:9 centre crop is painted")
    parser.add_argument("--style", help="painting (default: the generated sample painting)")
    parser.add_argument("--max-memory", default="16G", help="the render's memory budget (default 16G)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=64)
    parser.add_argument("--refine-iterations", type=int, default=8)
    parser.add_argument("--output-size", type=int, default=3840)
    parser.add_argument("--precision", default="mixed")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--image", help="keep the painted frame here (default: discarded)")
    args = parser.parse_args(argv)
    try:
        budget = parse_bytes(args.max_memory)
        content = read_image(args.content) if args.content else default_content()
    except ReverieError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

    with tempfile.TemporaryDirectory() as tmp:
        plate = Path(write_png(centre_crop(content, 16 / 9), Path(tmp) / "plate.png"))
        style = Path(args.style or write_png(sample_painting(768), Path(tmp) / "style.png"))
        output = Path(args.image) if args.image else Path(tmp) / "uhd.png"
        started = time.perf_counter()
        done = subprocess.run(command(args, plate, style, output), check=False)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
        sidecar = (
            json.loads(output.with_name(output.name + ".json").read_text()) if done.returncode == 0 else {}
        )
    report = {
        "finished": done.returncode == 0,
        "seconds": round(seconds, 1),
        "peak_rss_bytes": peak,
        "budget_bytes": budget,
        "peak_over_budget": round(peak / budget, 3),
        "output_size": sidecar.get("output_size"),
        "iterations": sidecar.get("iterations"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "image")},
    }
    print(
        f"{args.output_size}-px frame: {'finished' if report['finished'] else 'FAILED'} "
        f"in {seconds / 60:.1f} min, "
        f"output {report['output_size']}, peak RSS {peak / 2**30:.1f} GiB of a {budget / 2**30:.1f} GiB "
        f"budget ({report['peak_over_budget']:.0%})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    sys.exit(0 if report["finished"] else 1)


if __name__ == "__main__":
    main()
