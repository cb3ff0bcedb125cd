"""A show's own OCIO config: $OCIO and --ocio-config, its names, display and view, and what is refused,
with the small config the tests write (`conftest.SHOW_CONFIG`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import SHOW_CONFIG, write_show_config
from reverie.errors import ReverieError
from reverie.io.colorspace import (
    BUILTIN_CONFIG,
    DISPLAY,
    NETWORK_COLORSPACE,
    STUDIO,
    VIEW,
    check_invertible,
    default_colorspace,
    from_display,
    is_display_referred,
    network_colorspace,
    open_color_config,
    resolve_colorspace,
    to_display,
)


@pytest.fixture
def show_file(tmp_path):
    return write_show_config(tmp_path)


@pytest.fixture
def show(show_file):
    return open_color_config(show_file)


def grey(*values: float) -> np.ndarray:
    return np.repeat(np.asarray(values, np.float32)[None, :, None], 3, axis=2)


def test_without_a_config_or_ocio_the_studio_config_and_its_defaults():
    assert open_color_config() == STUDIO
    assert open_color_config(environ={"OCIO": " "}) == STUDIO
    assert (STUDIO.source, STUDIO.display, STUDIO.view) == (BUILTIN_CONFIG, DISPLAY, VIEW)
    assert STUDIO.key() is None  # renders made before configs could be chosen keep resuming


def test_ocio_environment_variable_is_respected_and_an_explicit_config_wins(show_file):
    from_env = open_color_config(environ={"OCIO": str(show_file)})
    assert from_env.source == str(show_file.resolve())
    assert (from_env.display, from_env.view) == ("Monitor", "Standard")  # the config's defaults
    assert open_color_config(BUILTIN_CONFIG, environ={"OCIO": str(show_file)}) == STUDIO


def test_builtin_configs_by_name():
    cg = open_color_config("ocio://cg-config-latest")
    assert cg.source == "ocio://cg-config-latest" and cg.key() is not None
    assert resolve_colorspace("acescg", cg) == "ACEScg"


def test_names_aliases_and_roles_come_from_the_show_config(show):
    assert resolve_colorspace("show_lin", show) == "show_lin"
    assert resolve_colorspace("LIN_SHOW", show) == "show_lin"
    assert resolve_colorspace("scene_linear", show) == "show_lin"
    with pytest.raises(ReverieError, match="show_lin") as err:
        resolve_colorspace("LogC4", show)  # a short name of the studio config: not in this one
    assert "\n" not in str(err.value) and str(show.source) in str(err.value)


def test_file_rules_choose_a_plates_colourspace(show):
    assert default_colorspace("plate.0001.png", show) == "show_srgb"
    assert default_colorspace("plate.0001.exr", show) == "show_lin"


def test_the_network_paints_through_the_chosen_display_and_view(show):
    assert network_colorspace(show) == "show_srgb"
    assert not is_display_referred("show_lin", show) and is_display_referred("show_srgb", show)
    linear = grey(0.0, 0.18, 1.0)
    shown = to_display(linear, "show_lin", show)
    srgb_mid_grey = 1.055 * 0.18 ** (1 / 2.4) - 0.055
    np.testing.assert_allclose(shown[0, :, 0], [0.0, srgb_mid_grey, 1.0], atol=1e-4)
    np.testing.assert_allclose(from_display(shown, "show_lin", ceiling=1.0, config=show), linear, atol=1e-4)
    np.testing.assert_array_equal(to_display(grey(0.3), "show_srgb", show), grey(0.3))  # its own space


def test_display_and_view_of_the_studio_config_are_choosable():
    p3 = open_color_config(display="Display P3 - Display")
    assert p3.view == "ACES 2.0 - SDR 100 nits (P3 D65)"  # the config's default view for that display
    assert network_colorspace(p3) == "Display P3 - Display"
    red = np.array([[[0.8, 0.1, 0.1]]], np.float32)
    assert not np.allclose(to_display(red, "sRGB", p3), red, atol=1e-3)  # sRGB shown on a P3 display
    assert network_colorspace(STUDIO) == NETWORK_COLORSPACE
    raw = open_color_config(view="Raw")
    np.testing.assert_array_equal(to_display(grey(0.02, 4.0), "ACEScg", raw), grey(0.02, 1.0))


def test_a_view_that_cannot_be_inverted_is_refused_naming_one_that_can(show):
    luma = open_color_config(show.source, view="Luma")
    with pytest.raises(ReverieError, match=r"'Luma'.*cannot be inverted.*--view 'Standard'") as err:
        check_invertible("show_lin", luma)
    assert "\n" not in str(err.value)
    check_invertible("show_luma", luma)  # the view's own colourspace: nothing to invert
    with pytest.raises(ReverieError, match="cannot go back to show_srgb"):
        check_invertible("show_srgb", luma)  # display-referred, but only reached through the luma
    check_invertible("show_lin", show)
    with pytest.raises(ReverieError, match="cannot be inverted"):
        from_display(grey(0.5), "show_lin", config=luma)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"source": "/no/such/show.ocio"}, "does not exist"),
        ({"source": "ocio://no-such-config"}, "cannot be used: .*no-such-config"),
        ({"display": "Monitr"}, "no display 'Monitr': did you mean 'Monitor'"),
        ({"view": "Standrd"}, "no view 'Standrd': did you mean 'Standard'"),
    ],
)
def test_bad_configs_displays_and_views_are_one_line(show_file, arguments, message):
    arguments = {"source": show_file, **arguments}
    with pytest.raises(ReverieError, match=message) as err:
        open_color_config(**arguments)
    assert "\n" not in str(err.value)


def test_an_invalid_config_says_ocios_reason(tmp_path):
    broken = tmp_path / "broken.ocio"
    broken.write_text(SHOW_CONFIG.replace("default: show_lin", "default: nowhere"))
    with pytest.raises(ReverieError, match=r"cannot be used: .*nowhere") as err:
        open_color_config(broken)
    assert "\n" not in str(err.value)
    unparsable = tmp_path / "unparsable.ocio"
    unparsable.write_text("ocio_profile_version: 2\ncolorspaces: [")
    with pytest.raises(ReverieError, match="cannot be used"):
        open_color_config(unparsable)


def test_an_edited_config_is_another_key_and_a_stale_one_stops(show_file, show):
    show_file.write_text(SHOW_CONFIG.replace("gamma: 2.4", "gamma: 2.2"))
    edited = open_color_config(show_file)
    assert edited.key() != show.key() and edited.digest != show.digest
    stale = dataclasses.replace(show, digest="0" * 64)
    with pytest.raises(ReverieError, match="changed while the render ran"):
        to_display(grey(0.5), "show_lin", stale)
