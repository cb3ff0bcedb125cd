"""Look development sweeps: the grid, the snapshots, the sheet and the bad inputs."""

import numpy as np
import pytest
from PIL import Image

from conftest import photo
from reverie import Look, Painter, Runtime, stylize
from reverie.app.cli import main
from reverie.app.samples import sample_painting
from reverie.engine.sweep import (
    Axis,
    axes_from_options,
    parse_u_values,
    plan_sweep,
    render_tiles,
    total_iterations,
)
from reverie.errors import ReverieError


def test_plan_puts_iterations_across_and_the_rest_down():
    axes = axes_from_options({"iterations": (4, 8), "u": (2.0, 3.0, 4.0), "color": ("style", "content")})
    plan = plan_sweep(Look(), axes)
    assert [a.name for a in plan.row_axes] == ["color", "u"] and plan.col_axis.name == "iterations"
    assert plan.col_labels == ("4 it", "8 it")
    assert plan.row_labels[0] == "style · u=2 (1e2)" and plan.row_labels[-1] == "content · u=4 (1e4)"
    assert len(plan.rows()) == 6 and all(len(r) == 2 for r in plan.rows())
    tile = plan.rows()[5][1]
    assert tile.caption == "content · u=4 (1e4) · 8 it"
    assert (tile.look.color, tile.look.u, tile.look.iterations) == ("content", 4.0, 8)


def test_u_ranges_are_whole_steps():
    assert parse_u_values("2:6") == (2, 3, 4, 5, 6)
    assert parse_u_values("1.5,3") == (1.5, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: parse_u_values("4"), "two or more values"),
        (lambda: parse_u_values(""), "two or more values"),
        (lambda: parse_u_values("3,3"), "repeats a value"),
        (lambda: axes_from_options({}), "at least one axis"),
        (
            lambda: plan_sweep(Look(), [Axis("u", tuple(range(9))), Axis("iterations", tuple(range(1, 9)))]),
            "--yes",
        ),
    ],
)
def test_bad_sweeps_are_refused(make, message):
    with pytest.raises(ReverieError, match=message):
        make()


def test_iteration_snapshots_equal_separate_runs(tmp_path):
    painting = tmp_path / "painting.png"
    Image.fromarray((sample_painting(64) * 255).astype(np.uint8)).save(painting)
    plate = photo(36, 48)
    base = Look(size=48, styles=(str(painting),))
    plan = plan_sweep(base, [Axis("iterations", (2, 5))])
    tiles = render_tiles(plate, plan, Painter(Runtime()))
    for tile in plan.tiles:
        alone = stylize(plate, None, tile.look, output_size=48).image
        np.testing.assert_array_equal(tiles[tile.name], alone)
    assert not np.array_equal(tiles["r00c00"], tiles["r00c01"])


def test_under_mixed_precision_each_tile_equals_a_separate_run_too(tmp_path):
    """Defect: a snapshot of a long mixed-precision run is all bf16, unlike a run of its own length,
    whose float32 finish starts earlier; such tiles are now runs of their own."""
    painting = tmp_path / "painting.png"
    Image.fromarray((sample_painting(64) * 255).astype(np.uint8)).save(painting)
    plate = photo(36, 48)
    painter = Painter(Runtime(precision="mixed"))
    plan = plan_sweep(Look(size=48, styles=(str(painting),)), [Axis("iterations", (4, 10))])
    tiles = render_tiles(plate, plan, painter)
    for tile in plan.tiles:
        alone = painter.stylize(plate, None, tile.look, output_size=48).image
        np.testing.assert_array_equal(tiles[tile.name], alone)
    assert total_iterations(plan, "mixed") == 14 and total_iterations(plan, "fp32") == 10


def test_cli_sweep_writes_a_sheet_and_renderable_tiles(capsys, images, tmp_path):
    sheet = tmp_path / "sheet.png"
    args = [
        "sweep",
        images["content"],
        "--style",
        images["style"],
        "-o",
        sheet,
        "--u",
        "2,5",
        "--iterations",
        "1,3",
    ]
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in [*args, "--size", "40", "-q"]])
    assert done.value.code == 0, capsys.readouterr().err
    tiles = sorted((tmp_path / "sheet-tiles").glob("*.toml"))
    assert len(tiles) == 4
    assert Look.load(tiles[-1]).u == 5 and Look.load(tiles[-1]).iterations == 3
    grid_height = 2 * 30  # two rows of 40x30 tiles, plus titles, labels and captions
    assert Image.open(sheet).height > grid_height
    with pytest.raises(SystemExit) as again:
        main(
            [
                "stylize",
                str(images["content"]),
                "--look",
                str(tiles[0]),
                "-o",
                str(tmp_path / "tile.png"),
                "-q",
            ]
        )
    assert again.value.code == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--u", "4"], "two or more values"),
        (["--u", "2:6", "--iterations", ",".join(str(i) for i in range(1, 15))], "--yes"),
        (["--color", "style,sepia"], "unknown value"),
        (["--u", "2:3", "--style-crop", "0,0,5000,5000"], "does not fit"),
    ],
)
def test_cli_sweep_bad_input_is_one_line(capsys, images, tmp_path, flags, message):
    args = [
        "sweep",
        images["content"],
        "--style",
        images["style"],
        "-o",
        tmp_path / "s.png",
        "--size",
        "32",
        "-q",
    ]
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in [*args, *flags]])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "s-tiles").exists()
