"""Fast mode's saved network: one file beside the output (``paint.%04d.exr`` -> ``paint.fast.pt``).

The file holds the network's weights, its architecture and training settings, the size it paints at,
and the key it was trained under: the look's hash, the keyframes (and the artist's keyframe images, by
checksum), the input, the output size and the feature network's weights. A run whose key matches reuses
the file; another key trains anew (and replaces it). The frames' render key names the file's checksum,
so frames painted by one network never mix with another's. Written atomically; read with
``weights_only`` (no pickled code runs), and a damaged file is a one-line error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reverie.core.distill import TrainConfig
from reverie.core.fastnet import FastNet, FastNetConfig
from reverie.errors import ReverieError
from reverie.io.images import atomic_path
from reverie.io.sequences import SequencePattern

FORMAT = 1


@dataclass(frozen=True)
class FastModel:
    """A saved network, as the frames' steps see it: where it is and which it is."""

    path: Path
    digest: str
    """sha256 of the file: what the frames' render key records."""


@dataclass(frozen=True)
class LoadedModel:
    net: FastNet
    size: tuple[int, int]
    """(width, height) the network paints at: the painted keyframes' size."""


def model_path(pattern: SequencePattern, stem: str) -> Path:
    """paint.%04d.exr -> paint.fast.pt beside the frames."""
    return pattern.path(0).with_name(f"{stem}.fast.pt")


def save_model(
    path: Path,
    key: dict[str, Any],
    net: FastNet,
    train_config: TrainConfig,
    size: tuple[int, int],
    report: dict[str, Any],
) -> FastModel:
    record = {
        "format": FORMAT,
        "key": key,
        "net": net.config.to_dict(),
        "train": train_config.to_dict(),
        "size": list(size),
        "report": report,
        "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(record, tmp)
    return FastModel(path, _sha256(path))


def saved_model(path: Path, key: dict[str, Any]) -> FastModel | None:
    """The model at `path` if it was trained under `key`; None if there is none or it was trained under
    another key (the caller trains anew)."""
    if not path.exists():
        return None
    record = _read(path)
    return FastModel(path, _sha256(path)) if record["key"] == key else None


def load_model(model: FastModel, device: torch.device) -> LoadedModel:
    """The network of a saved model, on `device`, ready to paint."""
    if _sha256(model.path) != model.digest:
        raise ReverieError(
            f"{model.path} changed while the shot rendered: run the render again (it resumes), "
            "or pass --retrain"
        )
    record = _read(model.path)
    net = FastNet(FastNetConfig.from_dict(record["net"]))
    try:
        net.load_state_dict(record["state"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise _damaged(model.path, err) from None
    width, height = record["size"]
    return LoadedModel(net.to(device).eval(), (int(width), int(height)))


def describe(path: Path) -> dict[str, Any]:
    """What a saved model is, for a person: its key, architecture, training and report."""
    record = _read(path)
    return {k: record[k] for k in ("key", "net", "train", "size", "report")}


def _read(path: Path) -> dict[str, Any]:
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ReverieError(f"{path} does not exist: run the fast render again to train it") from None
    except Exception as err:  # torch raises many kinds (pickle, zip, EOF) for a damaged file
        raise _damaged(path, err) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not _complete(record):
        raise _damaged(path, ValueError("not a Reverie fast-mode network"))
    return record


def _complete(record: dict[str, Any]) -> bool:
    return all(k in record for k in ("key", "net", "train", "size", "report", "state"))


def _damaged(path: Path, err: BaseException) -> ReverieError:
    reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
    return ReverieError(
        f"the fast-mode network {path} is damaged or not Reverie's ({reason}): pass --retrain"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
