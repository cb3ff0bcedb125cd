"""GoogLeNet (Inception v1, Szegedy et al. 2014) feature extractor for style transfer, without torchvision.

Built from torchvision's pretrained ``googlenet`` state dict (``googlenet-1378be20.pth``, ported from
TensorFlow), which the user supplies: Reverie downloads nothing. The layout follows torchvision's
``GoogLeNet`` exactly, including its known deviation from the paper: each Inception module's "5x5"
branch is a 3x3 convolution (pytorch/vision#906), and the checkpoint's weights are shaped for that.
The auxiliary classifiers and the final fully connected layer are not needed for features and are ignored.

Every convolution is followed by an eval-mode BatchNorm (eps 0.001) and a ReLU; the BatchNorm is folded
into the convolution's weight and bias at construction, so each layer costs one conv.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from reverie.errors import ReverieError
from reverie.look import DEFAULT_LAYERS
from reverie.nets import check_requested
from reverie.nets.weights import read_state_dict, user_file

GOOGLENET_LAYERS: tuple[str, ...] = (
    "conv1",
    "conv2",
    "conv3",
    "inception3a",
    "inception3b",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "inception5a",
    "inception5b",
)

# The default layers (and why those) are a look's defaults: see `reverie.look.DEFAULT_LAYERS`.
DEFAULT_CONTENT_LAYERS = DEFAULT_LAYERS["googlenet"].content
DEFAULT_STYLE_LAYERS = DEFAULT_LAYERS["googlenet"].style
DEFAULT_STYLE_LAYER_WEIGHTS = DEFAULT_LAYERS["googlenet"].style_weights

CHECKPOINT_NAME = "googlenet-1378be20.pth"  # torchvision's file name for the pretrained weights
BN_EPS = 0.001  # torchvision's BasicConv2d; not PyTorch's default 1e-5

# Stem convolutions: name -> (out channels, in channels, kernel, stride).
_STEM = {"conv1": (64, 3, 7, 2), "conv2": (64, 64, 1, 1), "conv3": (192, 64, 3, 1)}
# Inception modules, torchvision's arguments: in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj.
_INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
# The downsampling max-pools (all ceil_mode), keyed by the layer they precede: (kernel, stride).
_POOL_BEFORE = {"conv2": (3, 2), "inception3a": (3, 2), "inception4a": (3, 2), "inception5a": (2, 2)}
_BN_STATS = ("weight", "bias", "running_mean", "running_var")


def conv_shapes() -> dict[str, tuple[int, int, int, int]]:
    """OIHW weight shape of every BasicConv2d the features use, keyed by its torchvision module path
    ("conv1", "inception3a.branch2.1", ...), in network order."""
    shapes = {name: (cout, cin, k, k) for name, (cout, cin, k, _) in _STEM.items()}
    for name, (cin, c1, r3, c3, r5, c5, pool) in _INCEPTIONS.items():
        shapes[f"{name}.branch1"] = (c1, cin, 1, 1)
        shapes[f"{name}.branch2.0"] = (r3, cin, 1, 1)
        shapes[f"{name}.branch2.1"] = (c3, r3, 3, 3)
        shapes[f"{name}.branch3.0"] = (r5, cin, 1, 1)
        shapes[f"{name}.branch3.1"] = (c5, r5, 3, 3)  # 3x3, not the paper's 5x5: the checkpoint's shape
        shapes[f"{name}.branch4.1"] = (pool, cin, 1, 1)  # branch4.0 is the max-pool
    return shapes


def state_shapes() -> dict[str, tuple[int, ...]]:
    """Every state-dict key the features need, with its shape, in torchvision's names and order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, shape in conv_shapes().items():
        shapes[f"{prefix}.conv.weight"] = shape
        shapes.update({f"{prefix}.bn.{stat}": shape[:1] for stat in _BN_STATS})
    return shapes


# ---------------------------------------------------------------------------------------------------
# Finding and loading the checkpoint


def find_googlenet_checkpoint() -> Path | None:
    """torchvision's GoogLeNet checkpoint in torch's hub cache (<hub dir>/checkpoints/googlenet-*.pth),
    the newest if several; None if there is none. Never downloads."""
    # get_dir at call time: it follows TORCH_HOME and torch.hub.set_dir.
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = [p for p in folder.glob("googlenet-*.pth") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def load_googlenet_state(path: str | os.PathLike | None = None) -> dict[str, Tensor]:
    """The feature layers' tensors of a torchvision GoogLeNet state dict, float32, in network order.

    ``path`` None: the checkpoint in torch's hub cache (see find_googlenet_checkpoint). Read on every
    call: the engine keeps the network it built, keyed by the file's content.
    Raises ReverieError with what to do if the file is missing, unreadable or not torchvision's googlenet.
    """
    return _load(checkpoint_file(path))


def checkpoint_file(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint a load reads: the user's file, or the one in torch's hub cache."""
    if path is None:
        file = find_googlenet_checkpoint()
        if file is None:
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise ReverieError(
                f"GoogLeNet weights not found: put torchvision's googlenet checkpoint ({CHECKPOINT_NAME}) "
                f"in {hub}/ or pass --weights FILE; Reverie downloads nothing"
            )
        return file.resolve()
    return user_file(path, "or put the checkpoint in the torch hub cache")


def _load(file: Path) -> dict[str, Tensor]:
    state = read_state_dict(
        file, f"use torchvision's {CHECKPOINT_NAME} or torch.save(model.state_dict(), path)"
    )
    if "conv1.conv.weight" not in state and not any(k.startswith("inception") for k in state):
        keys = ", ".join(repr(k) for k in list(state)[:4]) + (", ..." if len(state) > 4 else "")
        raise ReverieError(
            f"weights file {file.name} does not look like torchvision's googlenet: expected keys like "
            f"'conv1.conv.weight', 'inception3a.branch1.conv.weight', found {keys or 'no keys'}"
        )
    _check_state(state, f"weights file {file.name}")
    # float32 and contiguous whatever was saved; aux classifiers, fc and num_batches_tracked left behind.
    return {key: state[key].detach().to(torch.float32).contiguous() for key in state_shapes()}


def _check_state(state: Mapping[str, object], where: str) -> None:
    """Every key the features need must be a tensor of torchvision's googlenet shape."""
    needed = state_shapes()
    tensors = {k: v for k in needed if isinstance(v := state.get(k), Tensor)}
    missing = [k for k in needed if k not in tensors]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ReverieError(
            f"{where} lacks the tensor {missing[0]!r}{more}; it is incomplete or not torchvision's googlenet"
        )
    for key, shape in needed.items():
        found = tuple(tensors[key].shape)
        if found != shape:
            raise ReverieError(
                f"{where}: {key} has shape {found} but torchvision's googlenet needs {shape}; "
                "the file holds another network"
            )


# ---------------------------------------------------------------------------------------------------
# The network


class _ConvReLU(nn.Conv2d):
    """torchvision's BasicConv2d with its eval-mode BatchNorm folded in: conv (with bias) then ReLU."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self._conv_forward(x, self.weight, self.bias))


def _folded(state: dict[str, Tensor], prefix: str, stride: int = 1) -> _ConvReLU:
    """BatchNorm(conv(x)) = conv(x) * a + (beta - mean * a), with a = gamma / sqrt(var + eps): one conv
    with weight w * a and bias beta - mean * a. Folded in float64 so that it adds no rounding of its own."""
    weight = state[f"{prefix}.conv.weight"].double()
    gamma, beta, mean, var = (state[f"{prefix}.bn.{stat}"].double() for stat in _BN_STATS)
    a = gamma / torch.sqrt(var + BN_EPS)
    out_ch, in_ch, k, _ = weight.shape
    conv = _ConvReLU(in_ch, out_ch, k, stride=stride, padding=k // 2)  # torchvision pads k // 2: 3, 1, 0
    assert conv.bias is not None  # Conv2d has a bias by default
    conv.weight.data.copy_(weight * a.view(-1, 1, 1, 1))
    conv.bias.data.copy_(beta - mean * a)
    return conv


class _Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 (torchvision's "5x5");
    3x3 max-pool (stride 1) -> 1x1."""

    def __init__(self, state: dict[str, Tensor], name: str) -> None:
        super().__init__()
        self.branch1 = _folded(state, f"{name}.branch1")
        self.branch2 = nn.Sequential(_folded(state, f"{name}.branch2.0"), _folded(state, f"{name}.branch2.1"))
        self.branch3 = nn.Sequential(_folded(state, f"{name}.branch3.0"), _folded(state, f"{name}.branch3.1"))
        self.branch4 = _folded(state, f"{name}.branch4.1")

    def forward(self, x: Tensor) -> Tensor:
        # Max even with pooling="avg": this pool is part of the block's learned function, not a downsampling.
        pooled = F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True)
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(pooled)], 1)


class GoogLeNetFeatures(nn.Module):
    """GoogLeNet convolutions; returns the activations of the requested layers.

    Layer names are torchvision's module names (see GOOGLENET_LAYERS): conv1..conv3 are post-ReLU, and an
    inception layer is its concatenated branches, each of which ends in a ReLU. ``pooling="avg"`` replaces
    the four downsampling max-pools with average pools of the same size (Gatys et al. found smoother
    results with average pooling); the stride-1 pool inside each Inception module stays a max-pool.
    """

    arch = "googlenet"

    def __init__(self, state: dict[str, Tensor], pooling: str = "max") -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"unknown pooling {pooling!r}: use 'max' or 'avg'")
        _check_state(state, "GoogLeNet state dict")
        state = {k: state[k].detach().to(torch.float32) for k in state_shapes()}  # fc, aux: ignored
        self.pooling = pooling
        self.names = list(GOOGLENET_LAYERS)
        stages: dict[str, nn.Module] = {n: _folded(state, n, stride) for n, (*_, stride) in _STEM.items()}
        stages.update({name: _Inception(state, name) for name in _INCEPTIONS})
        self.stages = nn.ModuleDict(stages)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor, layers: set[str] | frozenset[str]) -> dict[str, Tensor]:
        """image: (N, 3, H, W) RGB 0-255. Runs only up to the deepest requested layer."""
        check_requested(self.arch, self.names, layers)
        out: dict[str, Tensor] = {}
        if not layers:
            return out
        x = preprocess(image)
        for name in self.names:
            if name in _POOL_BEFORE:
                x = self._pool(x, *_POOL_BEFORE[name])
            x = self.stages[name](x)
            if name in layers:
                out[name] = x
                if len(out) == len(layers):
                    break
        return out

    def _pool(self, x: Tensor, kernel: int, stride: int) -> Tensor:
        if self.pooling == "avg":
            return F.avg_pool2d(x, kernel, stride, ceil_mode=True)
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)


def preprocess(rgb255: Tensor) -> Tensor:
    """RGB 0-255 -> the input the pretrained googlenet's conv1 sees: 2 * x / 255 - 1, in [-1, 1].

    torchvision feeds the checkpoint ImageNet-normalised input, (x/255 - mean) / std, and its googlenet
    (transform_input=True whenever pretrained weights are loaded) maps that back per channel with
    y * std / 0.5 + (mean - 0.5) / 0.5. The two compose to (x/255 - 0.5) / 0.5 for every channel: the
    TensorFlow Inception preprocessing the weights were trained with, and mean and std cancel out.
    """
    return rgb255 / 127.5 - 1.0
