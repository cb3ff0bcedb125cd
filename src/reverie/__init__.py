"""Reverie: neural style transfer for film, after the *Come Swim* paper (Joshi, Stewart, Shapiro 2017).

from reverie import Look, Painter
painter = Painter()  # holds the network and the paintings' targets: one per process
result = painter.stylize("plate.png", "painting.jpg", Look(u=4))
result.image  # (H, W, 3) float32 RGB, 0..1

`stylize(...)` does the same with a one-off Painter.
"""

from reverie.engine.painter import Painter
from reverie.engine.still import StylizeResult, stylize
from reverie.errors import ReverieError
from reverie.look import Look
from reverie.runtime import Runtime
from reverie.version import __version__

__all__ = ["Look", "Painter", "ReverieError", "Runtime", "StylizeResult", "__version__", "stylize"]
