"""Feature networks: VGG16 and VGG19 (packaged Oxford weights or a user's file) and GoogLeNet (a user's
torchvision checkpoint). Each takes an RGB 0-255 image and returns post-ReLU activations by layer name."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from reverie.errors import ReverieError
from reverie.look import Layers


def build_network(network: str, pooling: str, weights_path: str | None) -> tuple[nn.Module, str]:
    """The feature network and a description of its weights' source."""
    if network == "googlenet":
        from reverie.nets.googlenet import GoogLeNetFeatures, find_googlenet_checkpoint, load_googlenet_state

        state = load_googlenet_state(weights_path)
        return GoogLeNetFeatures(state, pooling), str(weights_path or find_googlenet_checkpoint())
    from reverie.nets.vgg import VGGFeatures
    from reverie.nets.weights import load_weights

    weights = load_weights(network, weights_path)
    return VGGFeatures(weights, pooling), weights.source


def weights_digest(network: str, weights_path: str | None) -> str:
    """The sha256 of the weights `build_network` would read: what identifies them, whatever the path.

    Packaged VGG weights give their pinned checksum (each load verifies it); a user's file, or the
    GoogLeNet checkpoint in torch's hub cache, is hashed (about 0.2 s per 100 MB).
    """
    from reverie.nets import weights

    file = weights_file(network, weights_path)
    return weights.packaged_sha256(network) if file is None else weights.sha256(file)


def weights_file(network: str, weights_path: str | None) -> Path | None:
    """The file a user's (or the hub's GoogLeNet) weights are read from; None for packaged VGG weights."""
    if network == "googlenet":
        from reverie.nets.googlenet import checkpoint_file

        return checkpoint_file(weights_path)
    if weights_path is None:
        return None
    from reverie.nets.weights import user_file

    return user_file(weights_path)


def check_layers(network: str, names: list[str], layers: Layers) -> None:
    unknown = [n for n in (*layers.content, *layers.style) if n not in names]
    if unknown:
        raise ReverieError(f"{network} has no layer(s) {', '.join(unknown)}; its layers: {', '.join(names)}")


def check_requested(arch: str, names: list[str], layers: set[str] | frozenset[str]) -> None:
    """A forward() asked for layers its network does not have: a bug in the caller, hence ValueError."""
    unknown = set(layers) - set(names)
    if unknown:
        raise ValueError(f"{arch} has no layer(s) {sorted(unknown)}; it has {names}")
