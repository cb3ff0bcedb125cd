"""Shots: what to read and write, the render key and manifest, optical flow, chunk plans, and the
per-frame steps a farm worker runs."""
