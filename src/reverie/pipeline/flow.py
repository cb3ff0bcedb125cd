"""Optical flow and temporal coherence for shots.

Temporal coherence follows Ruder, Dosovitskiy & Brox (2016), "Artistic style transfer for videos": the
previous stylised frame is warped along the backward flow (frame t -> t-1), and a consistency mask says
where that warp can be trusted (not disoccluded, not on a motion boundary, not outside the frame). Flicker
is measured with the warping error of Lai et al. (2018), "Learning Blind Video Temporal Consistency".
Flow comes from OpenCV's DIS (Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse Search").

Images are numpy (H, W, 3) float32 RGB in 0..1 (grey (H, W) is accepted where it makes sense). Flows are
(H, W, 2) float32 in pixels, (dx, dy): for a flow from `source` to `target`, source(x) ~ target(x + flow(x)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Ruder et al. (2016), section 3.2 and their consistencyChecker: a round trip along the backward flow and
# back along the forward flow must come home within a tolerance that grows with the motion ...
_ROUND_TRIP_RELATIVE, _ROUND_TRIP_ABSOLUTE = 0.01, 0.5
# ... and a flow gradient much larger than the flow itself marks a motion boundary.
_BOUNDARY_RELATIVE, _BOUNDARY_ABSOLUTE = 0.01, 0.002


def optical_flow(source: np.ndarray, target: np.ndarray, *, max_side: int | None = 1024) -> np.ndarray:
    """Dense flow from `source` to `target`, both (H, W, 3) or (H, W) floats in 0..1: (H, W, 2) float32
    such that source(x) ~ target(x + flow(x)).

    If the long side exceeds `max_side`, the flow is computed on a reduced copy and upsampled (vectors
    scaled per axis): DIS's cost grows with the pixel count, and film plates carry little motion detail
    that a 1024-px flow misses. `max_side=None` always works at full size.
    """
    if source.shape != target.shape:
        raise ValueError(f"source and target differ in shape: {source.shape} vs {target.shape}")
    height, width = source.shape[:2]
    small = _reduced_size(width, height, max_side)
    a, b = _grey8(source, small), _grey8(target, small)
    flow = _dis().calc(a, b, None)
    if small == (width, height):
        return flow
    return _resize_flow(flow, width, height)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = image(x + flow(x)), bilinear, border replicated.

    image (H, W, C) or (H, W), float32; flow (H, W, 2). Returns the image's shape and dtype float32.
    """
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and flow {flow.shape[:2]} differ in size")
    map_x, map_y = _sample_points(flow)
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[2] > 4:
        # cv2.remap takes at most 4 channels.
        return np.concatenate([warp(image[..., i : i + 4], flow) for i in range(0, image.shape[2], 4)], -1)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # remap drops a trailing channel axis of size 1.
    return out.reshape(image.shape)


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the backward flow w (frame t -> t-1, (H, W, 2)) is reliable, given the forward flow ŵ
    (t-1 -> t, (H, W, 2)): (H, W) float32, 1 reliable, 0 not (Ruder et al. 2016, eqs. 6-7).

    0 where x + w(x) leaves the frame; where the round trip fails,
    |ŵ(x + w(x)) + w(x)|² > 0.01 (|w(x)|² + |ŵ(x + w(x))|²) + 0.5 (disocclusion); and where
    |∇w|² > 0.01 |w|² + 0.002 (motion boundary).
    """
    if backward.shape != forward.shape or backward.shape[-1:] != (2,):
        raise ValueError(f"expected two (H, W, 2) flows of one size, got {backward.shape}, {forward.shape}")
    back = backward.astype(np.float32)
    returned = warp(forward, back)  # ŵ(x + w(x))
    round_trip = _squared_norm(returned + back)
    tolerance = _ROUND_TRIP_RELATIVE * (_squared_norm(back) + _squared_norm(returned)) + _ROUND_TRIP_ABSOLUTE
    boundary = _gradient_energy(back) > _BOUNDARY_RELATIVE * _squared_norm(back) + _BOUNDARY_ABSOLUTE
    reliable = _inside(back) & (round_trip <= tolerance) & ~boundary
    return reliable.astype(np.float32)


@dataclass(frozen=True)
class Motion:
    """The motion from one frame to the one before it.

    flow: (H, W, 2) float32 backward flow (frame t -> t-1), so warp(frame t-1, flow) ~ frame t.
    mask: (H, W) float32 per-pixel weight in 0..1: 1 where that warp is reliable (consistency_mask).
    """

    flow: np.ndarray
    mask: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.flow.shape[1], self.flow.shape[0]

    def resized(self, width: int, height: int) -> Motion:
        """The same motion at another size: vectors scaled per axis by the size ratio.

        The mask stays soft rather than being re-thresholded: it is a per-pixel loss weight, and a
        shrunk pixel that is 70 % reliable should weigh 0.7, not all or nothing (area averaging when
        shrinking, bilinear when enlarging, so values stay in 0..1). Where the mask was binary, the
        consistency's edges move by at most a pixel either way.
        """
        if (width, height) == self.size:
            return self
        shrinking = width * height < self.flow.shape[0] * self.flow.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        mask = cv2.resize(self.mask, (width, height), interpolation=interpolation)
        return Motion(_resize_flow(self.flow, width, height), mask.clip(0, 1).astype(np.float32))


def motion(previous: np.ndarray, current: np.ndarray, *, max_side: int | None = 1024) -> Motion:
    """Backward flow (current -> previous) and its consistency mask, for two frames (H, W, 3) in 0..1."""
    backward = optical_flow(current, previous, max_side=max_side)
    forward = optical_flow(previous, current, max_side=max_side)
    return Motion(backward, consistency_mask(backward, forward))


def warping_error(previous_out: np.ndarray, current_out: np.ndarray, motion: Motion) -> float:
    """Warping error of Lai et al. (2018) for one pair of output frames (H, W, 3) in 0..1: the squared
    colour difference between the current frame and the previous one warped along the motion, averaged
    over the channels and over the reliable pixels (weighted by the mask, which is binary unless the
    motion was resized).

    The motion is resized to the outputs' size if it differs. Returns nan when no pixel is reliable (a
    cut, or motion too large to trust): there is nothing to measure, and callers skip the pair.
    """
    if previous_out.shape != current_out.shape:
        raise ValueError(f"output frames differ in shape: {previous_out.shape} vs {current_out.shape}")
    height, width = current_out.shape[:2]
    motion = motion.resized(width, height)
    warped = warp(previous_out, motion.flow)
    difference = (current_out.astype(np.float32) - warped) ** 2
    per_pixel = difference.mean(axis=-1) if difference.ndim == 3 else difference
    weight = float(motion.mask.sum(dtype=np.float64))
    if weight == 0.0:
        return math.nan
    return float((motion.mask * per_pixel).sum(dtype=np.float64) / weight)


@dataclass(frozen=True)
class FlickerReport:
    """Warping error of each frame against the one before it (frames 2..n) and their mean.

    A pair with nothing reliable to compare is nan and left out of the mean (nan if all are).
    """

    per_frame: tuple[float, ...]
    mean: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: nan becomes None."""
        return {"per_frame": [_json_float(e) for e in self.per_frame], "mean": _json_float(self.mean)}


def measure_flicker(
    inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], *, max_side: int | None = 1024
) -> FlickerReport:
    """Flicker of a stylised shot: motion from the input frames (pairs t-1, t), warping error on the
    output frames, which may be another size than the inputs. Frames are (H, W, 3) in 0..1.
    """
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} input frames but {len(outputs)} output frames")
    if len(inputs) < 2:
        raise ValueError(f"flicker needs at least 2 frames, got {len(inputs)}")
    errors = []
    for t in range(1, len(inputs)):
        # One pair's flows at a time: a 4K shot's flows are 66 MB a frame.
        pair = motion(inputs[t - 1], inputs[t], max_side=max_side)
        errors.append(warping_error(outputs[t - 1], outputs[t], pair))
    finite = [e for e in errors if not math.isnan(e)]
    return FlickerReport(tuple(errors), float(np.mean(finite)) if finite else math.nan)


def _dis() -> cv2.DISOpticalFlow:
    # A fresh instance per call: cheap, and DIS objects hold state that threads must not share.
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setUseSpatialPropagation(True)
    return dis


def _reduced_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    long_side = max(width, height)
    if max_side is None or long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _grey8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """8-bit luma at `size` (width, height): DIS takes single-channel 8-bit images only."""
    image = np.asarray(image, dtype=np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if size != (grey.shape[1], grey.shape[0]):
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return (grey * 255).round().clip(0, 255).astype(np.uint8)


def _resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = np.array([width / flow.shape[1], height / flow.shape[0]], dtype=np.float32)
    return cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale


def _sample_points(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x + flow(x) as two float32 (H, W) maps, the form cv2.remap wants."""
    height, width = flow.shape[:2]
    xs = np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]
    return xs.astype(np.float32), ys.astype(np.float32)


def _inside(flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    xs, ys = _sample_points(flow)
    return (xs >= 0) & (xs <= width - 1) & (ys >= 0) & (ys <= height - 1)


def _squared_norm(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def _gradient_energy(flow: np.ndarray) -> np.ndarray:
    """|∇u|² + |∇v|² with central differences, as Ruder et al.'s consistency checker computes it."""
    du_dy, du_dx = np.gradient(flow[..., 0])
    dv_dy, dv_dx = np.gradient(flow[..., 1])
    return du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value
