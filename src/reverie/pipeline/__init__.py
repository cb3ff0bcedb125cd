"""Shots: frames, optical flow, temporal coherence, resumable output."""
