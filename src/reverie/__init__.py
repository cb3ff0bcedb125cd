"""Reverie: neural style transfer for film."""

__version__ = "0.1.0"
