"""The record of a shot's output, which makes renders resumable and refuses to mix looks.

One JSON file beside the frames (``paint.%04d.exr`` -> ``paint.manifest.json``), rewritten atomically
after every finished frame: a frame is finished when its image is on disk *and* listed here, so a kill
between the two only costs that frame again. The manifest names the render's key (the look's hash and
the settings that change pixels); a different key refuses to write into the same output unless forced.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reverie.errors import ReverieError
from reverie.io.images import atomic_write_bytes
from reverie.textfile import MB, load_json

MANIFEST_VERSION = 1


@dataclass
class Manifest:
    """What is finished in one output: per frame number, the frame's record (file, seconds, losses...)."""

    path: Path
    key: dict[str, Any]
    """The look's hash and every other setting that changes the pixels (output size, colourspace...)."""
    frames: dict[int, dict[str, Any]] = field(default_factory=dict)

    def finished(self, pattern_path: Any) -> set[int]:
        """Frames listed here whose file is still on disk (a deleted file is rendered again)."""
        return {n for n in self.frames if Path(pattern_path(n)).is_file()}

    def record(self, number: int, entry: dict[str, Any]) -> None:
        """Add a finished frame and write the manifest atomically."""
        self.frames[number] = entry
        self.save()

    def save(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "key": self.key,
            "frames": {str(n): self.frames[n] for n in sorted(self.frames)},
        }
        atomic_write_bytes(self.path, json.dumps(data, indent=1).encode())


def load_manifest(path: Path) -> Manifest | None:
    """The manifest at `path`, or None when there is none. A damaged one is a one-line error."""
    fix = "move it away, or pass --force to render the shot anew"
    if not os.path.lexists(path):
        return None
    # The bounded reader: any size, nesting or number in the file ends in one line. NaN may be there:
    # the losses of a frame that diverged are recorded as they were.
    data = load_json(path, "the render manifest", fix, limit=256 * MB, finite=False)
    try:
        frames = {int(n): dict(entry) for n, entry in data["frames"].items()}
        return Manifest(path, dict(data["key"]), frames)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ReverieError(f"the render manifest {path} is damaged or not Reverie's: {fix}") from None


def open_manifest(path: Path, key: dict[str, Any], existing: list[Path], *, force: bool) -> Manifest:
    """The manifest to render into: the matching one on disk, or a new one.

    existing: frame files of this shot already on disk. They are only replaced with --force when no
    manifest vouches for them, or when the manifest on disk belongs to another look or settings.
    """
    found = load_manifest(path) if not force else None
    if found is not None and found.key != key:
        raise ReverieError(
            f"{path.parent}{os.sep} holds frames of another render ({key_difference(found.key, key)}): "
            "choose another output, or pass --force to replace them"
        )
    if found is None and existing and not force:
        raise ReverieError(
            f"{len(existing)} frame(s) such as {existing[0]} are already there and no Reverie manifest "
            f"({path.name}) says how they were made: choose another output, or pass --force to replace them"
        )
    return found or Manifest(path, key)


def key_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two render keys, in words: "look abc there, def now"."""
    names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)} there, {new.get(k)} now" for k in names)
