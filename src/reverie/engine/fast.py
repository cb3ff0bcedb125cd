"""Fast mode's engine: a small network trained on a shot's painted keyframes, then frames painted by it.

Texler et al. (2020), "Interactive Video Stylization Using Few-Shot Patch-Based Training": an image-to-
image network trained from scratch on random patches of a few (plate, painted plate) pairs of the shot
itself reproduces the painting on every other frame of that shot, feed-forward. The perceptual term of
the training runs on the look's own feature network (the Painter's), at the look's layers, so the
network is taught the brushwork the look measures. Images in and out are numpy (H, W, 3) display RGB
0..1, as everywhere in the engine; the network and the training are `reverie.core`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from reverie.core.distill import TrainConfig, TrainingData, TrainReport, train
from reverie.core.fastnet import FastNet, FastNetConfig, paint, tile_for_memory
from reverie.engine.painter import Painter
from reverie.engine.process import available_memory
from reverie.look import Look
from reverie.runtime import autocast_dtype


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class Pair:
    """Two consecutive plates, the backward flow between them (current(x) ~ previous(x + flow(x))) and
    where it is trusted: what the temporal term of the training holds the network to."""

    previous: np.ndarray
    current: np.ndarray
    flow: np.ndarray
    """(H, W, 2) float32, pixels (dx, dy)."""
    mask: np.ndarray
    """(H, W) float32, 1 trusted."""


def train_network(
    painter: Painter,
    look: Look,
    plates: Sequence[np.ndarray],
    painted: Sequence[np.ndarray],
    pairs: Sequence[Pair],
    net_config: FastNetConfig,
    train_config: TrainConfig,
    *,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[FastNet, TrainReport]:
    """A network trained to paint `plates` as `painted` (keyframes, display RGB of one size each), steady
    along `pairs`, with the look's network as its perceptual measure."""
    device = painter.device
    torch.manual_seed(train_config.seed)
    net = FastNet(net_config).to(device)
    data = TrainingData(
        inputs=_batch(plates, device),
        targets=_batch(painted, device),
        previous=_batch([p.previous for p in pairs], device) if pairs else None,
        current=_batch([p.current for p in pairs], device) if pairs else None,
        flows=_stack([p.flow.transpose(2, 0, 1) for p in pairs], device) if pairs else None,
        masks=_stack([p.mask[None] for p in pairs], device) if pairs else None,
    )
    features = _features(painter, look)
    report = train(
        net,
        data,
        train_config,
        features=features,
        on_step=on_step,
        autocast_dtype=autocast_dtype(painter.runtime),
    )
    return net.eval(), report


def paint_frame(net: FastNet, plate: np.ndarray, painter: Painter) -> np.ndarray:
    """One frame (display RGB) painted by the network, in tiles when the whole frame would not fit in the
    memory the painter's runtime allows (tiles overlap and are feathered: no seams)."""
    device = painter.device
    height, width = plate.shape[:2]
    budget = painter.runtime.max_memory or available_memory(device)
    tile = tile_for_memory(net.config, height, width, budget)
    image = _batch([plate], device)
    out = paint(net, image, tile=tile, autocast_dtype=autocast_dtype(painter.runtime))
    return out[0].permute(1, 2, 0).float().cpu().numpy()


def _features(painter: Painter, look: Look) -> Callable[[Tensor], list[Tensor]]:
    """The look's layers of the look's network, on 0..1 RGB: the perceptual term's measure."""
    network, _ = painter.network(look.network, look.pooling)
    layers = look.layers()
    wanted = frozenset((*layers.style, *layers.content))

    def features(image: Tensor) -> list[Tensor]:
        found = network(image * 255.0, wanted)
        return [found[name] for name in sorted(found)]

    return features


def _batch(images: Sequence[np.ndarray], device: torch.device) -> Tensor:
    return _stack([np.ascontiguousarray(i, dtype=np.float32).transpose(2, 0, 1) for i in images], device)


def _stack(arrays: Sequence[np.ndarray], device: torch.device) -> Tensor:
    return torch.from_numpy(np.stack([np.ascontiguousarray(a, dtype=np.float32) for a in arrays])).to(device)
