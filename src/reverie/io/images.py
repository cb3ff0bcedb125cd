"""Image files in and out: float32 RGB arrays (H, W, 3), values 0..1, display-referred as stored.

Every problem a user can cause (missing, empty, damaged, huge or unwritable files) becomes a one-line
`ReverieError` that names the path and says what to do. Nothing is colour managed: ICC profiles and PNG
gamma/sRGB chunks are ignored, pixel values are taken as stored.

What Pillow 13 does with 16-bit RGB (checked, and pinned by the tests):
- reading: 48/64-bit RGB(A) PNG and TIFF open as 8-bit "RGB"/"RGBA" (it keeps only the high byte of each
  sample). We keep 16 bits by decoding twice with Pillow's own C decoders, once as stored (high bytes) and
  once with the byte order of the raw mode swapped (low bytes), and joining the two. This covers every
  filter and interlace mode of PNG and every compression libtiff reads. 16-bit greyscale ("I;16") is read
  exactly by Pillow; 16-bit grey+alpha PNG falls back to Pillow's 8-bit reading. (Tested: PNG with all
  five filters, Adam7, RGB and RGBA; TIFF uncompressed and Deflate.)
- writing: Pillow has no 16-bit RGB mode, so 16-bit RGB PNG and TIFF are written by the small encoders
  below (PNG: zlib + adaptive row filters; TIFF: uncompressed baseline, little-endian).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import re
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from reverie.errors import ReverieError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "atomic_path",
    "atomic_write_bytes",
    "check_input_file",
    "check_location",
    "check_writable",
    "fit_long_side",
    "image_size",
    "read_alpha",
    "read_image",
    "resize",
    "write_image",
]

# Output formats by suffix, with the bit depths each can store.
SUPPORTED_SUFFIXES: dict[str, tuple[str, tuple[int, ...]]] = {
    ".png": ("PNG", (8, 16)),
    ".jpg": ("JPEG", (8,)),
    ".jpeg": ("JPEG", (8,)),
    ".tif": ("TIFF", (8, 16)),
    ".tiff": ("TIFF", (8, 16)),
}
# Reading needs the float result plus ~2 working copies of it downstream (brief: 3 x H*W*3*float32).
_WORKING_COPIES = 3
_SUGGESTED_LONG_SIDE = 8192
# Exceptions Pillow raises for damaged or truncated data while decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def _fail(message: str) -> ReverieError:
    # The CLI prints the message on one line; a path with a newline in it must not break that.
    return ReverieError(" ".join(message.split()))


def _name(path: str | os.PathLike) -> str:
    return os.fsdecode(path)


# ----------------------------------------------------------------------------------------------- reading


class _StrictPillow:
    """Pillow settings for our reads, set while at least one read runs (they are process-wide globals).

    LOAD_TRUNCATED_IMAGES is forced False so a cut-off file raises instead of coming back grey-filled, even
    if other code switched it on; MAX_IMAGE_PIXELS is lifted because our own size check, with a message
    that says what to do, runs first. A counter instead of a held lock keeps parallel reads parallel.
    """

    _lock = threading.Lock()
    _active = 0
    _saved: tuple[bool, int | None] = (False, None)

    def __enter__(self) -> None:
        with self._lock:
            if _StrictPillow._active == 0:
                _StrictPillow._saved = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
                ImageFile.LOAD_TRUNCATED_IMAGES = False
                Image.MAX_IMAGE_PIXELS = None
            _StrictPillow._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            _StrictPillow._active -= 1
            if _StrictPillow._active == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = _StrictPillow._saved


def check_input_file(name: str, path: Path, kind: str = "image") -> int:
    """The file's size, after checking it is a non-empty regular file (of an image, or a video...)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _fail(f"{name} does not exist: check the path and the spelling") from None
    except PermissionError:
        raise _fail(f"cannot read {name}: permission denied; check the file's permissions") from None
    a = "an" if kind[0] in "aeiou" else "a"
    if stat.S_ISDIR(st.st_mode):
        raise _fail(f"{name} is a directory, not {a} {kind} file: give the path of {a} {kind} file")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(f"{name} is not a regular file (a pipe or device?): give the path of {a} {kind} file")
    if st.st_size == 0:
        raise _fail(f"{name} is empty (0 bytes): the export or copy failed; export or copy it again")
    return st.st_size


_MAGIC = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"II+\x00": "TIFF",
    b"MM\x00+": "TIFF",
    b"v/1\x01": "OpenEXR",
    b"SDPX": "DPX",
    b"XPDS": "DPX",
}


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not just a multi-byte character cut at the end of our sample
            return False
        text = head[: err.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\n\r\f" for ch in text)


def _unreadable_message(name: str, path: Path) -> str:
    """Why Pillow could not identify the file, guessed from its first bytes, and what to do."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        head = b""
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
    if kind in ("OpenEXR", "DPX"):
        return f"{name} is {kind}, which reverie cannot read: export it as a 16-bit TIFF or PNG first"
    if kind:
        return f"{name} looks like a {kind} but its header is damaged or an unsupported variant: re-export it"
    if head[4:8] == b"ftyp":
        return f"{name} is a video or HEIF container, not a still image: export frames as PNG, TIFF or JPEG"
    if head.startswith(b"version https://git-lfs"):
        return f"{name} is a Git LFS pointer, not the image: run `git lfs pull` to fetch it"
    if head and _looks_like_text(head):
        return f"{name} is not an image Pillow can read (it looks like text): check the path"
    return f"{name} is not an image Pillow can read (unknown format): use PNG, TIFF or JPEG"


def _open(name: str, path: Path) -> ImageFile.ImageFile:
    """Open lazily (header only); the caller must be inside `_StrictPillow`."""
    try:
        return Image.open(path)
    except PermissionError:
        raise _fail(f"cannot read {name}: permission denied; check the file's permissions") from None
    except UnidentifiedImageError:
        raise _fail(_unreadable_message(name, path)) from None
    except _DECODE_ERRORS as err:
        raise _fail(f"{name} is damaged: re-export or copy it again ({_reason(err)})") from None


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


@contextlib.contextmanager
def _opened(path: str | os.PathLike) -> Iterator[tuple[str, Path, Image.Image]]:
    name, p = _name(path), Path(path)
    check_input_file(name, p)
    with _StrictPillow(), _open(name, p) as im:
        yield name, p, im


def _load(name: str, im: Image.Image) -> Image.Image:
    try:
        im.load()
    except MemoryError:
        raise _fail(f"ran out of memory reading {name}: downscale it or free memory") from None
    except _DECODE_ERRORS as err:
        raise _fail(f"{name} is truncated or corrupt: re-export or copy it again ({_reason(err)})") from None
    return im


def _available_memory() -> int | None:
    """Bytes we may use: MemAvailable, capped by a cgroup v2 limit (containers, render farms)."""
    avail = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    if avail is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):
        cg = Path("/sys/fs/cgroup")
        limit = (cg / "memory.max").read_text().strip()
        if limit != "max":
            free = int(limit) - int((cg / "memory.current").read_text())
            avail = free if avail is None else min(avail, free)
    return avail


def _gib(n: float) -> str:
    g = n / 2**30
    return f"{g:.0f} GiB" if g >= 10 else f"{g:.1f} GiB"


def _check_memory(name: str, width: int, height: int, max_bytes: int | None) -> None:
    limit = _available_memory() if max_bytes is None else max_bytes
    need = width * height * 3 * 4 * _WORKING_COPIES
    if limit is None or need <= limit:
        return
    fits = int(max(width, height) * (max(limit, 0) / need) ** 0.5)
    suggest = max(1, min(_SUGGESTED_LONG_SIDE, fits))
    raise _fail(
        f"{name} is {width}x{height} px (needs ~ {_gib(need)} to read, {_gib(max(limit, 0))} available): "
        f"downscale it first, e.g. to {suggest} px on the long side"
    )


# Pillow's raw modes for 16-bit colour whose low bytes we can recover by swapping the byte order.
_SPLITTABLE_RAWMODE = re.compile(r"^(RGB|RGBA|RGBX);16[BLN]$")
_SWAPPED_ORDER = {"B": "L", "L": "B", "N": "B" if sys.byteorder == "little" else "L"}


@functools.cache
def _rawmode_supported(mode: str, rawmode: str) -> bool:
    try:
        Image.new(mode, (1, 1)).frombytes(bytes(8), "raw", rawmode)
    except ValueError:
        return False
    return True


def _low_byte_tiles(im: Image.Image) -> list[ImageFile._Tile] | None:
    """im's tiles with the sample byte order swapped, or None when im is not splittable 16-bit colour."""
    out = []
    for tile in getattr(im, "tile", None) or []:
        args = tile.args
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
        if tile.codec_name not in ("raw", "zip", "libtiff") or not isinstance(raw, str):
            return None
        if not _SPLITTABLE_RAWMODE.match(raw):
            return None
        swapped = raw[:-1] + _SWAPPED_ORDER[raw[-1]]
        if not _rawmode_supported(im.mode, swapped):
            return None
        out.append(tile._replace(args=swapped if isinstance(args, str) else (swapped, *args[1:])))
    return out or None


def _decode(name: str, path: Path, im: Image.Image) -> np.ndarray:
    """Pixels as uint8/uint16 (H, W) or (H, W, C), or float32 for Pillow's "I"/"F" modes."""
    splittable = _low_byte_tiles(im) is not None
    high = np.asarray(_load(name, im))
    if not splittable:
        return high
    with _open(name, path) as again:  # same file, low bytes this time
        again.tile = _low_byte_tiles(again) or []
        low = np.asarray(_load(name, again))
    return (high.astype(np.uint16) << 8) | low


def _as_float(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        scale = 1 / 255
    elif pixels.dtype.kind == "u" and pixels.dtype.itemsize == 2:
        scale = 1 / 65535
    elif pixels.dtype.kind in "iu":  # Pillow "I": 32-bit ints, in practice 16-bit data
        return np.clip(pixels.astype(np.float32) / 65535, 0, 1)
    else:  # Pillow "F": float TIFF, taken as display-referred
        return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0, 1)
    out = pixels.astype(np.float32)
    out *= np.float32(scale)
    return out


_MODES_BY_PIXELS = {"RGB", "RGBA", "RGBX", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def _colour(name: str, path: Path, im: Image.Image) -> np.ndarray:
    if im.mode not in _MODES_BY_PIXELS:  # P, PA, CMYK, YCbCr, LAB, 1, premultiplied...: let Pillow map it
        im = _load(name, im).convert("RGB")
    pixels = _as_float(_decode(name, path, im))
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 2:  # LA: the grey channel
        return np.repeat(pixels[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def _alpha(name: str, path: Path, im: Image.Image) -> np.ndarray | None:
    if im.mode in ("RGBA", "LA"):
        return np.ascontiguousarray(_as_float(_decode(name, path, im))[:, :, -1])
    if "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info:
        return _as_float(np.asarray(_load(name, im).convert("RGBA"))[:, :, 3])
    return None


_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _orientation(im: Image.Image, *, decoded: bool) -> int:
    # A PNG may keep its eXIf chunk after the pixels, and Pillow's getexif() would then decode the whole
    # image: before decoding we only use what the header already gave.
    if im.format == "PNG" and not decoded and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a damaged EXIF block must not stop us reading good pixels
        return 1
    return value if value in _ORIENT else 1


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    w, h = im.size
    return (h, w) if _orientation(im, decoded=False) >= 5 else (w, h)


def read_image(path: str | os.PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read an image as float32 RGB (H, W, 3), 0..1, as stored, with its EXIF orientation applied.

    Reads JPEG (also CMYK), PNG and TIFF at 8 and 16 bits (16-bit colour keeps all 16 bits), greyscale,
    palette and the rest of what Pillow opens. Alpha is dropped, not composited: stylisation works on the
    colour, and pixels under alpha 0 keep their stored colour; use `read_alpha` to get the alpha.
    Before decoding, the header size is checked against `max_bytes` (default: the memory available now)
    for the float image and its working copies. Every failure is a one-line `ReverieError`.
    """
    with _opened(path) as (name, p, im):
        _check_memory(name, *_oriented_size(im), max_bytes)
        rgb = _colour(name, p, im)
        return np.ascontiguousarray(_ORIENT[_orientation(im, decoded=True)](rgb))


def read_alpha(path: str | os.PathLike) -> np.ndarray | None:
    """The alpha channel as float32 (H, W), 0..1, oriented like `read_image`; None if there is none."""
    with _opened(path) as (name, p, im):
        _check_memory(name, *_oriented_size(im), None)
        alpha = _alpha(name, p, im)
        if alpha is None:
            return None
        return np.ascontiguousarray(_ORIENT[_orientation(im, decoded=True)](alpha))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as `read_image` will return it (EXIF orientation applied), from the header only.

    Same validation errors as `read_image`, except that damage in the pixel data is only found on reading.
    """
    with _opened(path) as (_, _, im):
        return _oriented_size(im)


# ----------------------------------------------------------------------------------------------- writing


def _parent_label(target: Path) -> str:
    parent = os.fspath(target.parent)
    return parent if parent.endswith(os.sep) else parent + os.sep


def _check_target(name: str, target: Path) -> None:
    try:
        parent_is_dir = stat.S_ISDIR(target.parent.stat().st_mode)
        target_is_dir = target.is_dir()
    except OSError as err:
        raise _write_error(name, target, err) from None
    if not parent_is_dir:
        raise _write_error(name, target, NotADirectoryError())
    if target_is_dir:
        raise _write_error(name, target, IsADirectoryError())


_temp_counter = itertools.count()


def _new_temp(target: Path) -> Path:
    """Create an empty, uniquely named hidden temp file next to target (same filesystem: atomic rename)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{next(_temp_counter)}.tmp")
    # os.open with 0o666 lets the umask decide permissions, as for any new file (mkstemp would force 0600).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def _write_error(name: str, target: Path, err: OSError) -> ReverieError:
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = _parent_label(target)
        return _fail(f"cannot write {name}: permission denied in {where}; choose another -o path")
    if isinstance(err, NotADirectoryError):
        return _fail(
            f"cannot write {name}: {os.fspath(target.parent)} is not a directory; choose another path"
        )
    if isinstance(err, FileNotFoundError):
        return _fail(
            f"cannot write {name}: directory {_parent_label(target)} does not exist; "
            "create it or choose another -o path"
        )
    if isinstance(err, IsADirectoryError):
        return _fail(f"cannot write {name}: it is a directory; give a file name inside it")
    return _fail(f"cannot write {name}: {err.strerror or err}; free space or choose another -o path")


def _is_file_system_error(err: OSError, tmp: Path) -> bool:
    """An OSError about our temp file (or about no file: a failed write such as a full disk); an error
    about some other file that the caller touched inside the block stays as it is."""
    if err.errno is None:
        return False
    return err.filename is None or os.fspath(err.filename) == os.fspath(tmp)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TAGS_MARK = "reverie "
"""A text field (an image's description, a video's comment) that starts so holds tags as JSON."""


def tags_record(tags: Mapping[str, object]) -> str:
    """Where a file came from (`reverie.io.sequences.write_frame`'s tags), as one JSON record."""
    return json.dumps({str(k): str(v) for k, v in tags.items()}, sort_keys=True)


def parse_tags_record(text: str) -> dict[str, str]:
    """The tags of a `tags_record`; {} for text that is not one."""
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success fsync it and rename it onto `path`, else delete it.

    A crash or kill therefore leaves either the old file or the complete new one, never a partial file
    (at worst a hidden ``.<name>.<pid>.<n>.tmp`` stays behind). File-system errors (missing directory,
    permission, disk full) become a one-line `ReverieError`; other exceptions propagate unchanged.
    """
    name, target = _name(path), Path(path)
    _check_target(name, target)
    try:
        tmp = _new_temp(target)
    except OSError as err:
        raise _write_error(name, target, err) from None
    try:
        yield tmp
        _sync(tmp)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(err, OSError) and _is_file_system_error(err, tmp):
            raise _write_error(name, target, err) from None
        raise
    # Make the rename itself durable; not possible everywhere (e.g. Windows), and not worth failing for.
    with contextlib.suppress(OSError):
        _sync(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _output_format(name: str, path: str | os.PathLike) -> tuple[str, tuple[int, ...]]:
    suffix = Path(path).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "a name without a suffix"
        raise _fail(f"cannot write {name}: {shown} is not supported; use {', '.join(SUPPORTED_SUFFIXES)}")
    return SUPPORTED_SUFFIXES[suffix]


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, not after a long render, if `write_image(path, ...)` cannot succeed.

    Checks the suffix, that the directory exists (it is not created), and that a file can be created and
    removed there; an existing target must not be a directory.
    """
    _output_format(_name(path), path)
    check_location(path)


def make_folder(path: str | os.PathLike) -> None:
    """Create the folder (and its parents) that a file at `path` goes in; one that cannot be made (a file
    in the way, no permission) is a one-line error."""
    name, target = _name(path), Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise _write_error(name, target, NotADirectoryError()) from None
    except OSError as err:
        raise _write_error(name, target, err) from None


def check_location(path: str | os.PathLike) -> None:
    """Fail now if no file can be written at `path` (whatever its format): the directory must exist and
    take a new file, and the target must not be a directory."""
    name, target = _name(path), Path(path)
    _check_target(name, target)
    try:
        _new_temp(target).unlink()
    except OSError as err:
        raise _write_error(name, target, err) from None


def _quantise(image: np.ndarray, bit_depth: int) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a float array (H, W, 3), got {getattr(image, 'shape', type(image))}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected float values 0..1, got dtype {image.dtype}")
    top = 255 if bit_depth == 8 else 65535
    # NaN (a failed render) becomes black rather than undefined integers; round, do not truncate.
    clean = np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    return np.rint(clean * top).astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_image(
    path: str | os.PathLike, image: np.ndarray, *, bit_depth: int | None = None, quality: int = 95
) -> None:
    """Write float RGB (H, W, 3), 0..1 (clipped; NaN -> 0) atomically; format from the suffix.

    .png: 8 (default) or 16 bits; .jpg/.jpeg: 8 bits, `quality` 1..100, no chroma subsampling; .tif/.tiff:
    8 or 16 bits, uncompressed. Values are rounded to the nearest code. No colour profile is written.
    """
    name = _name(path)
    fmt, depths = _output_format(name, path)
    depth = 8 if bit_depth is None else bit_depth
    if depth not in (8, 16):
        raise _fail(f"cannot write {name}: bit depth must be 8 or 16, not {depth}")
    if depth not in depths:
        raise _fail(f"cannot write {name} at {depth} bits: {fmt} is 8-bit only; use a .png or .tif output")
    if fmt == "JPEG" and not 1 <= quality <= 100:
        raise _fail(f"cannot write {name}: JPEG quality must be 1..100, not {quality}")
    pixels = _quantise(image, depth)
    if fmt == "TIFF" and pixels.nbytes > 2**32 - 2**20:  # classic TIFF offsets are 32-bit
        raise _fail(f"cannot write {name}: too large for a TIFF (over 4 GiB of pixels); use a .png output")
    with atomic_path(path) as tmp:
        if depth == 16:
            tmp.write_bytes(_encode_png16(pixels) if fmt == "PNG" else _encode_tiff16(pixels))
        else:
            # 4:4:4 JPEG: chroma subsampling visibly softens painted colour edges.
            options = {"quality": quality, "subsampling": 0} if fmt == "JPEG" else {}
            Image.fromarray(pixels).save(tmp, format=fmt, **options)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# |byte as a signed int8|, for the filter-choice cost (a table lookup is cheaper than converting to int).
_ABS_SIGNED = np.abs(np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int16)).astype(np.uint8)


def _png_filter(rows: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter rows (n, stride) uint8 given the row above them; per row, the PNG filter with the smallest
    sum of |signed bytes| (libpng's heuristic). Returns (n, 1 + stride) with the filter-type bytes."""
    up = np.vstack([prev[None], rows[:-1]])
    left = np.zeros_like(rows)
    left[:, bpp:] = rows[:, :-bpp]
    upleft = np.zeros_like(rows)
    upleft[:, bpp:] = up[:, :-bpp]
    a, b, c = (x.astype(np.int16) for x in (left, up, upleft))
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)  # |p-a|, |p-b|, |p-c|, p = a+b-c
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    average = ((a + b) >> 1).astype(np.uint8)
    candidates = np.stack([rows, rows - left, rows - up, rows - average, rows - paeth])
    choice = _ABS_SIGNED[candidates].sum(axis=2, dtype=np.int64).argmin(axis=0)
    chosen = candidates[choice, np.arange(len(rows))]
    return np.hstack([choice.astype(np.uint8)[:, None], chosen])


def _encode_png16(rgb16: np.ndarray) -> bytes:
    """A non-interlaced 48-bit RGB PNG (big-endian samples, as PNG requires)."""
    h, w, _ = rgb16.shape
    raw = rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6)
    zip_ = zlib.compressobj(6)
    body, prev = [], np.zeros(w * 6, np.uint8)
    step = max(1, (4 << 20) // (w * 6))  # filter ~4 MiB at a time: bounded memory on film frames
    for y in range(0, h, step):
        body.append(zip_.compress(_png_filter(raw[y : y + step], prev, 6).tobytes()))
        prev = raw[min(y + step, h) - 1]
    data = b"".join(body) + zip_.flush()
    idat = b"".join(_png_chunk(b"IDAT", data[i : i + (1 << 20)]) for i in range(0, len(data), 1 << 20))
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + (idat or _png_chunk(b"IDAT", b"")) + _png_chunk(b"IEND", b"")


_TIFF_TYPES = {3: "H", 4: "I", 5: "I"}  # SHORT, LONG, RATIONAL (stored as two LONGs)


def _tiff_ifd(tags: list[tuple[int, int, list[int]]], at: int) -> bytes:
    """An IFD written at offset `at`, then the values that do not fit in their 4-byte entries."""
    entries, extra = bytearray(struct.pack("<H", len(tags))), bytearray()
    extra_at = at + 2 + 12 * len(tags) + 4
    for tag, kind, values in tags:
        packed = struct.pack(f"<{len(values)}{_TIFF_TYPES[kind]}", *values)
        count = len(values) // 2 if kind == 5 else len(values)
        if len(packed) <= 4:
            entries += struct.pack("<HHI", tag, kind, count) + packed.ljust(4, b"\0")
        else:  # every packed value here has an even length, so offsets stay word-aligned
            entries += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += packed
    return bytes(entries + bytes(4) + extra)  # bytes(4): no next IFD


def _encode_tiff16(rgb16: np.ndarray, *, deflate: bool = False) -> bytes:
    """A little-endian baseline TIFF, RGB 16,16,16, chunky, in strips of ~64 KiB; uncompressed unless
    `deflate` (Adobe Deflate, used by the tests to exercise Pillow's libtiff read path)."""
    h, w, _ = rgb16.shape
    rows_per_strip = max(1, (64 << 10) // (w * 6))
    raw = rgb16.astype("<u2")
    strips = [raw[y : y + rows_per_strip].tobytes() for y in range(0, h, rows_per_strip)]
    if deflate:
        strips = [zlib.compress(strip) for strip in strips]
    sizes = [len(strip) for strip in strips]
    tags = [  # (tag, type, values), sorted by tag as TIFF requires
        (256, 4, [w]),  # ImageWidth
        (257, 4, [h]),  # ImageLength
        (258, 3, [16, 16, 16]),  # BitsPerSample
        (259, 3, [8 if deflate else 1]),  # Compression
        (262, 3, [2]),  # PhotometricInterpretation: RGB
        (273, 4, [0] * len(strips)),  # StripOffsets, known once the IFD size is known
        (277, 3, [3]),  # SamplesPerPixel
        (278, 4, [rows_per_strip]),  # RowsPerStrip
        (279, 4, sizes),  # StripByteCounts
        (282, 5, [72, 1]),  # XResolution
        (283, 5, [72, 1]),  # YResolution
        (284, 3, [1]),  # PlanarConfiguration: chunky
        (296, 3, [2]),  # ResolutionUnit: inch
    ]
    data_at = 8 + len(_tiff_ifd(tags, 8))
    tags[5] = (273, 4, list(itertools.accumulate(sizes[:-1], initial=data_at)))
    return b"II*\0" + struct.pack("<I", 8) + _tiff_ifd(tags, 8) + b"".join(strips)


# ---------------------------------------------------------------------------------------------- resizing


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos-resample float (H, W, C) to size = (width, height), per channel in float (Pillow mode "F",
    no 8-bit step); float32, clipped to 0..1 afterwards because Lanczos overshoots at edges."""
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"resize target must be at least 1x1, got {width}x{height}")
    if image.ndim != 3:
        raise ValueError(f"expected an array (H, W, C), got shape {image.shape}")
    planes = []
    for ch in range(image.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(image[:, :, ch], dtype=np.float32))
        planes.append(np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS)))
    return np.clip(np.stack(planes, axis=2), 0, 1).astype(np.float32, copy=False)


def output_dimensions(width: int, height: int, output_size: int | None) -> tuple[int, int]:
    """A painted frame's (width, height): the plate's, or its long side at --output-size."""
    return fit_long_side(width, height, output_size) if output_size else (width, height)


def fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled, aspect kept, so that the long side is `long_side` (up or down); the short
    side is rounded half up, and at least 1."""
    if min(width, height, long_side) < 1:
        raise ValueError(f"sizes must be positive, got {width}x{height} -> {long_side}")
    if width >= height:
        return long_side, max(1, (2 * height * long_side + width) // (2 * width))
    return max(1, (2 * width * long_side + height) // (2 * height)), long_side
