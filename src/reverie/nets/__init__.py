"""Feature networks: VGG16 and VGG19 (packaged Oxford weights or a user's file) and GoogLeNet (a user's
torchvision checkpoint). Each takes an RGB 0-255 image and returns post-ReLU activations by layer name."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from reverie.errors import ReverieError


@dataclass(frozen=True)
class Layers:
    content: tuple[str, ...]
    style: tuple[str, ...]
    style_weights: tuple[float, ...]


VGG_LAYERS = Layers(("conv4_2",), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), (0.2,) * 5)


def default_layers(network: str) -> Layers:
    """The film's layers for VGG (Gatys et al.); documented choices for GoogLeNet (see googlenet.py)."""
    if network == "googlenet":
        from reverie.nets import googlenet

        return Layers(
            googlenet.DEFAULT_CONTENT_LAYERS,
            googlenet.DEFAULT_STYLE_LAYERS,
            googlenet.DEFAULT_STYLE_LAYER_WEIGHTS,
        )
    return VGG_LAYERS


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


def check_layers(network: str, names: list[str], layers: Layers) -> None:
    unknown = [n for n in (*layers.content, *layers.style) if n not in names]
    if unknown:
        raise ReverieError(f"{network} has no layer(s) {', '.join(unknown)}; its layers: {', '.join(names)}")


def check_requested(arch: str, names: list[str], layers: set[str] | frozenset[str]) -> None:
    """A forward() asked for layers its network does not have: a bug in the caller, hence ValueError."""
    unknown = set(layers) - set(names)
    if unknown:
        raise ValueError(f"{arch} has no layer(s) {sorted(unknown)}; it has {names}")
