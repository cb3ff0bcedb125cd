"""The engine: a `Painter` owns what a process keeps between frames, so nothing hides in module globals.

It holds the runtime (device, precision, threads, weights), applies its process settings once, and keeps
the feature networks it built (keyed by the weights' content) and the paintings' Gram targets (keyed by
network and painting), so that every frame of a shot, every tile of a sweep and every preview of the web
page reuses them. Stills, sweeps, shot frames, farm workers and the web page each hold one. The core
below it stays pure: tensors in, results out.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from reverie.core.strips import Grams, style_grams
from reverie.engine.process import apply_process_settings
from reverie.look import Look
from reverie.nets import build_network, weights_digest, weights_file
from reverie.runtime import Runtime

if TYPE_CHECKING:
    from reverie.core.transfer import Callback
    from reverie.engine.still import Continuity, ImageInput, StylizeResult

NetworkBuilder = Callable[[str, str, str | None], tuple[nn.Module, str]]
"""(network, pooling, weights path) -> (the feature network, a description of its weights)."""

GRAMS_KEPT = 16
"""Paintings' Gram targets kept: a few looks' paintings at a few sizes; each is under 2 MB."""
NETWORKS_KEPT = 2
"""Feature networks kept (VGG19 is 80 MB of float32 weights): a sweep over networks swaps them."""


class Painter:
    """Paints stills and frames with one runtime, reusing its networks and style targets.

    build_network: how a feature network is made; by default `reverie.nets.build_network` (tests give a
    tiny stand-in with the same interface).
    """

    def __init__(self, runtime: Runtime | None = None, *, build_network: NetworkBuilder | None = None):
        self.runtime = runtime or Runtime()
        self.device = apply_process_settings(self.runtime)
        self._build = build_network or _default_builder()
        self._networks: OrderedDict[tuple[str, str, str], tuple[nn.Module, str]] = OrderedDict()
        self._digests: dict[tuple[str, str, int, int], str] = {}
        self._grams: OrderedDict[tuple, Grams] = OrderedDict()

    def network(self, name: str, pooling: str = "max") -> tuple[nn.Module, str]:
        """The feature network on the device and a description of its weights, built once per content
        of its weights: a checkpoint rewritten on disk is read again, the same bytes are not."""
        return self._network(self._network_key(name, pooling))

    def _network(self, key: tuple[str, str, str]) -> tuple[nn.Module, str]:
        name, pooling, _ = key
        if key not in self._networks:
            net, source = self._build(name, pooling, self.runtime.weights)
            net = net.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self._networks[key] = (net, source)
            trim_oldest(self._networks, NETWORKS_KEPT)
        self._networks.move_to_end(key)
        return self._networks[key]

    def _network_key(self, name: str, pooling: str) -> tuple[str, str, str]:
        """(network, pooling, sha256 of the weights); a file is hashed again only when its size or
        modification time changes."""
        file = weights_file(name, self.runtime.weights)
        if file is None:
            return name, pooling, weights_digest(name, None)
        stat = file.stat()
        seen = (name, str(file), stat.st_size, stat.st_mtime_ns)
        if seen not in self._digests:
            self._digests[seen] = weights_digest(name, self.runtime.weights)
        return name, pooling, self._digests[seen]

    def style_grams(self, look: Look, style: Tensor) -> Grams:
        """A prepared painting's Gram targets (1, 3, H, W) 0-255 on the look's style layers: computed
        once per network, painting and size, shared by the frames, tiles and precision phases after."""
        network_key = self._network_key(look.network, look.pooling)  # stats the weights once per pass
        net, _ = self._network(network_key)
        layers = frozenset(look.layers().style)
        digest = hashlib.blake2b(style.detach().cpu().numpy().tobytes(), digest_size=16).hexdigest()
        key = (network_key, str(style.device), tuple(style.shape), digest, tuple(sorted(layers)))
        if key not in self._grams:
            self._grams[key] = style_grams(net, style, layers)
            trim_oldest(self._grams, GRAMS_KEPT)
        self._grams.move_to_end(key)
        return self._grams[key]

    def stylize(
        self,
        content: ImageInput,
        style: ImageInput | Sequence[ImageInput] | None = None,
        look: Look | None = None,
        *,
        output_size: int | None = None,
        callback: Callback | None = None,
        should_stop: Callable[[], bool] | None = None,
        continuity: Continuity | None = None,
    ) -> StylizeResult:
        """Paint `content` after `style` with `look`: see `reverie.engine.still.paint`."""
        from reverie.engine.still import paint

        return paint(
            self,
            content,
            style,
            look or Look(),
            output_size=output_size,
            callback=callback,
            should_stop=should_stop,
            continuity=continuity,
        )


def _default_builder() -> NetworkBuilder:
    return build_network  # looked up when a Painter is made, so that a test can stand a tiny one in


def to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """(H, W, 3) 0..1 -> (1, 3, H, W) 0-255 on the device, as the core takes images."""
    return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None] * 255.0).to(device)


def trim_oldest(cache: OrderedDict, kept: int) -> None:
    """Drop a cache's least recently used entries down to `kept`."""
    while len(cache) > kept:
        cache.popitem(last=False)
