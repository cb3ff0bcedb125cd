"""Reverie: neural style transfer for film, after the *Come Swim* paper (Joshi, Stewart, Shapiro 2017).

from reverie import Look, stylize
result = stylize("plate.png", "painting.jpg", Look(u=4))
result.image  # (H, W, 3) float32 RGB, 0..1
"""

__version__ = "0.1.0"

from reverie.api import StylizeResult, stylize
from reverie.errors import ReverieError
from reverie.look import Look
from reverie.runtime import Runtime

__all__ = ["Look", "ReverieError", "Runtime", "StylizeResult", "__version__", "stylize"]
