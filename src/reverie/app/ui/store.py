"""The page's images, bounded in bytes: uploads stay encoded on disk and are decoded only while in use.

A 76 KB PNG can claim 64 megapixels (~750 MB as float32), so the server never keeps decoded pixels
between requests: each upload is kept as its original file plus a small PNG thumbnail for the page, in
the server's private folder, and every decode (checking an upload, loading a frame, painting) first
reserves its bytes from one `DecodeBudget`. The folder itself is bounded by a count and a byte total;
a queued job pins the images it names, so evicting them from the page's list cannot break it.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reverie.app.ui import security
from reverie.errors import ReverieError
from reverie.io.images import read_image, resize, write_image
from reverie.textfile import format_size

THUMB_SIDE = 1024  # long side of images sent back to the page
KEPT_IMAGES = 64
KEPT_BYTES = 2 * 2**30
"""Encoded bytes (originals and thumbnails) kept on disk; the oldest images go first."""
BYTES_PER_PIXEL = 3 * 4  # float32 RGB, as `read_image` returns it
DECODE_BUDGET = 3 * security.MAX_UPLOAD_PIXELS * BYTES_PER_PIXEL
"""Decoded bytes alive at once (~2.1 GiB): a running job's plate and painting, and an upload being
checked, all of the largest size allowed."""
DECODE_WAIT_S = 30.0


class Busy(ReverieError):
    """The decode budget stayed full: the server answers 503 and the page can try again."""


def decoded_bytes(width: int, height: int) -> int:
    return width * height * BYTES_PER_PIXEL


class DecodeBudget:
    """Decoded bytes alive at once across every thread: a decode reserves its bytes first, waiting
    (up to `wait_s`) for others to finish rather than holding them all at once."""

    def __init__(self, limit: int = DECODE_BUDGET, wait_s: float = DECODE_WAIT_S) -> None:
        self.limit, self.wait_s = limit, wait_s
        self.in_use = 0
        self.peak = 0
        """The most ever reserved at once (for tests and the curious)."""
        self._free = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int, what: str) -> Iterator[None]:
        """Reserve `nbytes` while the block runs; a single request over the whole budget is refused."""
        if nbytes > self.limit:
            raise ReverieError(
                f"{what} needs {format_size(nbytes)} to decode; the server decodes at most "
                f"{format_size(self.limit)} at once: downscale it first"
            )
        deadline = time.monotonic() + self.wait_s
        with self._free:
            while self.in_use + nbytes > self.limit:
                left = deadline - time.monotonic()
                if left <= 0 or not self._free.wait(left):
                    raise Busy("the server is busy decoding other images: try again in a moment")
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._free:
                self.in_use -= nbytes
                self._free.notify_all()


@dataclass
class Upload:
    id: str
    role: str
    name: str
    path: Path
    """The image file in the server's folder (the original upload, or a PNG of a loaded frame): looks,
    farms and jobs read it by path."""
    thumb: Path
    width: int
    height: int
    pins: int = 0
    """Queued or running jobs that read `path`; an evicted image's files stay until this is 0."""
    evicted: bool = False

    @property
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, self.thumb) if p.exists())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "width": self.width,
            "height": self.height,
        }


class ImageStore:
    """Uploaded and loaded images of one server, kept encoded in `folder` (see the module's note)."""

    def __init__(
        self,
        folder: Path,
        budget: DecodeBudget | None = None,
        *,
        kept: int = KEPT_IMAGES,
        kept_bytes: int = KEPT_BYTES,
    ) -> None:
        self.folder, self.budget = folder, budget or DecodeBudget()
        self.kept, self.kept_bytes = kept, kept_bytes
        self._images: OrderedDict[str, Upload] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add_upload(self, data: bytes, filename: str, role: str) -> Upload:
        """Check an uploaded file (size, content, pixel count, a full decode within the budget) and keep
        it as it came, with a thumbnail."""
        width, height, fmt = security.image_header(data, filename)
        with self.budget.hold(decoded_bytes(width, height), security.shown_name(filename)):
            pixels = security.decode_upload(data, filename)
            image_id = self._new_id()
            path = self.folder / f"{image_id}.{fmt}"
            path.write_bytes(data)
            return self._keep(image_id, role, filename, path, pixels)

    def add_pixels(self, pixels: np.ndarray, name: str, role: str) -> Upload:
        """Keep decoded pixels (a frame loaded from a shot) as a PNG; the caller holds their budget."""
        image_id = self._new_id()
        path = self.folder / f"{image_id}.png"
        write_image(path, pixels)
        return self._keep(image_id, role, name, path, pixels)

    def get(self, image_id: Any, role: str) -> Upload:
        with self._lock:
            upload = self._images.get(str(image_id))
        if upload is None:
            raise ReverieError(f"no {role} image is loaded: upload one first")
        return upload

    def pin(self, *uploads: Upload) -> Callable[[], None]:
        """Keep the uploads' files until the returned release is called (once; later calls do nothing).
        An upload already evicted (by another request since it was looked up) is refused."""
        with self._lock:
            gone = next((u for u in uploads if u.evicted), None)
            if gone is not None:
                raise ReverieError(f"the {gone.role} image {gone.name} is no longer kept: upload it again")
            for upload in uploads:
                upload.pins += 1
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return
            released.set()
            with self._lock:
                for upload in uploads:
                    upload.pins -= 1
                    if upload.evicted and upload.pins == 0:
                        _remove(upload)

        return release

    @contextmanager
    def decoded(self, upload: Upload, *alongside: Upload) -> Iterator[np.ndarray]:
        """The image's pixels, decoded from its file within the budget, for as long as the block runs;
        the bytes of `alongside` (images the block decodes elsewhere, such as the painter's painting)
        are reserved with them, at once."""
        need = sum(decoded_bytes(u.width, u.height) for u in (upload, *alongside))
        with self.budget.hold(need, upload.name):
            yield read_image(upload.path)

    def held_bytes(self) -> int:
        """Decoded bytes alive now (0 between requests: only files are kept)."""
        return self.budget.in_use

    def disk_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    def _new_id(self) -> str:
        with self._lock:
            return f"img-{next(self._ids)}"

    def _keep(self, image_id: str, role: str, name: str, path: Path, pixels: np.ndarray) -> Upload:
        thumb = path.with_name(f"{image_id}.thumb.png")
        thumb.write_bytes(png(pixels))
        h, w = pixels.shape[:2]
        upload = Upload(image_id, role, Path(name).name or role, path, thumb, w, h)
        with self._lock:
            self._images[image_id] = upload
            self._sizes[image_id] = upload.disk_bytes
            self._evict()
        return upload

    def _evict(self) -> None:
        # The newest image stays even when it alone is over the byte total.
        while len(self._images) > 1 and (
            len(self._images) > self.kept or sum(self._sizes.values()) > self.kept_bytes
        ):
            image_id, upload = self._images.popitem(last=False)
            del self._sizes[image_id]
            upload.evicted = True
            if upload.pins == 0:
                _remove(upload)


def _remove(upload: Upload) -> None:
    upload.path.unlink(missing_ok=True)
    upload.thumb.unlink(missing_ok=True)


def png(image: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """A float image as an 8-bit PNG whose long side is at most `side`."""
    h, w = image.shape[:2]
    if max(h, w) > side:
        scale = side / max(h, w)
        image = resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
