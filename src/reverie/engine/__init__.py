"""The engine: a `Painter` owns the feature networks, the paintings' Gram targets and the process
settings, and paints stills (`still`), sweeps (`sweep`) and the frames the pipeline hands it."""

from reverie.engine.painter import Painter

__all__ = ["Painter"]
