"""Whether the shots extra is installed, asked without importing it (its packages are heavy)."""

from __future__ import annotations

import importlib.util

from reverie.errors import ReverieError

_EXTRA_MODULES = {"av": "PyAV", "cv2": "OpenCV", "OpenImageIO": "OpenImageIO", "PyOpenColorIO": "OpenColorIO"}


def require_shots_extra() -> None:
    """One line with the install command when a package of the shots extra is missing."""
    missing = [name for module, name in _EXTRA_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ReverieError(
            f"shots need {', '.join(missing)}: install them with pip install 'reverie[shots]' "
            "(or pip install -e '.[shots]' in a checkout)"
        )
