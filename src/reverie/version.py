"""Reverie's version, in the lowest layer so that every module (and each sidecar) can name it."""

__version__ = "0.1.0"
