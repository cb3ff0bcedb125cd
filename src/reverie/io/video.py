"""Video files in and out for shots: frames as float32 display RGB (H, W, 3), 0..1, through PyAV (FFmpeg).

Reading: `open_video` counts the frames up front without decoding (the sample table of a .mov/.mp4, else
by demuxing packets, which reads but does not decode), so a `--frames` range is checked before a long
render starts, and a damaged or truncated file fails at open where that can be known. `VideoClip.read`
decodes forward through one open decoder, so reading frames in increasing order costs one decode each.

Encoding: `encode_video` writes ProRes 422 HQ (.mov, 10-bit, for grading and editing) or H.264 (.mp4,
.m4v, .mov or .mkv, 8-bit 4:2:0, for review), tagged BT.709, atomically (see `atomic_path`).

Colour: video is display-referred Rec.709 (OCIO name in `VIDEO_COLORSPACE`). We do the RGB <-> YUV
conversion ourselves with an explicit matrix (the stream's, BT.709 for what we write), because FFmpeg's
default conversion uses BT.601, which would shift colours on every round trip.

Every problem a user can cause (missing, empty, garbage, truncated files, frames beyond the end, codecs a
container cannot hold) becomes a one-line `ReverieError` that names the file and says what to do.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from reverie.errors import ReverieError
from reverie.io.colorspace import STUDIO
from reverie.io.images import TAGS_MARK, atomic_path, check_input_file, parse_tags_record, tags_record

if TYPE_CHECKING:
    import av
    import av.container
    import av.video.frame
    import av.video.stream

__all__ = [
    "CODECS",
    "VIDEO_COLORSPACE",
    "VIDEO_SUFFIXES",
    "VideoClip",
    "VideoCodec",
    "check_codec",
    "default_video_codec",
    "encode_video",
    "is_video",
    "open_video",
]

VIDEO_SUFFIXES = (".mov", ".mp4", ".mkv", ".avi", ".m4v", ".mxf")
# Decoded video is display-referred Rec.709 as the viewer sees it (OCIO built-in config name).
VIDEO_COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"


@dataclass(frozen=True)
class VideoCodec:
    """How one `--codec` choice is encoded: FFmpeg encoder, pixel format, options, containers."""

    label: str
    encoder: str
    pix_fmt: str
    options: dict[str, str]
    suffixes: tuple[str, ...]


CODECS: dict[str, VideoCodec] = {
    # 422 HQ: the usual hand-off format for grading and editing; 10 bits keep gradients band-free.
    "prores": VideoCodec("ProRes 422 HQ", "prores_ks", "yuv422p10le", {"profile": "3"}, (".mov",)),
    # crf 16: visually transparent for review copies; 4:2:0 8-bit plays everywhere.
    "h264": VideoCodec(
        "H.264",
        "libx264",
        "yuv420p",
        {"crf": "16", "preset": "medium"},
        (".mp4", ".m4v", ".mov", ".mkv"),
    ),
}
_MUXERS = {".mov": "mov", ".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska"}
_DEFAULT_CODEC = {".mov": "prores", ".mp4": "h264", ".m4v": "h264", ".mkv": "h264"}
# AVCOL_PRI_BT709, AVCOL_TRC_BT709, AVCOL_SPC_BT709 and AVCOL_RANGE_MPEG (limited range) are all 1.
_BT709 = 1
_LIMITED_RANGE = 1
# Editing applications write 23.976 for 24000/1001 and so on; a float fps near one of these means it.
_NTSC_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120))


def _fail(message: str) -> ReverieError:
    # The CLI prints the message on one line; a path with a newline in it must not break that.
    return ReverieError(" ".join(message.split()))


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _av() -> ModuleType:
    """PyAV, imported on first use: it is an optional dependency (the `shots` extra)."""
    try:
        import av
    except ImportError:
        raise _fail(
            "video needs PyAV: install reverie with the shots extra: pip install 'reverie[shots]'"
        ) from None
    return av


def is_video(path: str | os.PathLike) -> bool:
    """True if the suffix is a video container we read (by name only; the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def default_video_codec(path: str | os.PathLike) -> str:
    """The codec for an output path when none is given: .mov -> prores, .mp4/.m4v/.mkv -> h264."""
    return _DEFAULT_CODEC.get(Path(path).suffix.lower(), "h264")


def check_codec(codec: str, path: str | os.PathLike) -> None:
    """Fail now, not after a long render, if `codec` is unknown or the suffix of `path` cannot hold it."""
    name = os.fsdecode(path)
    if codec not in CODECS:
        raise _fail(f"unknown video codec '{codec}': use one of {', '.join(CODECS)}")
    suffix = Path(path).suffix.lower()
    if suffix not in _MUXERS:
        shown = f"'{suffix}'" if suffix else "a name without a suffix"
        raise _fail(f"cannot write video {name}: {shown} is not supported; use {', '.join(_MUXERS)}")
    spec = CODECS[codec]
    if suffix not in spec.suffixes:
        raise _fail(
            f"cannot write {name}: {spec.label} cannot go in a {suffix} file; "
            f"use a {' or '.join(spec.suffixes)} output or --codec h264"
        )


# ----------------------------------------------------------------------------------------------- reading


def _readable_video(name: str, path: Path) -> int:
    """The file's size, after checking it is a non-empty regular file we may read."""
    size = check_input_file(name, path, kind="video")
    if not os.access(path, os.R_OK):
        raise _fail(f"cannot read {name}: permission denied; check the file's permissions")
    return size


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


_QUICKTIME_ATOMS = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _container_kind(head: bytes) -> str | None:
    """The container a file's first bytes announce, if any (to tell 'damaged' from 'not a video')."""
    if head[4:8] in _QUICKTIME_ATOMS:
        return "QuickTime/MP4"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "Matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"\x06\x0e\x2b\x34"):
        return "MXF"
    return None


def _looks_like_text(head: bytes) -> bool:
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a character cut at the end is fine
    return all(ch.isprintable() or ch in "\t\n\r\f" for ch in text)


def _damaged(name: str, detail: str = "") -> ReverieError:
    extra = f" ({detail})" if detail else ""
    return _fail(f"{name} is damaged or truncated{extra}: re-export it or copy it again")


def _unreadable(name: str, path: Path) -> ReverieError:
    head = _head(path, 512)
    kind = _container_kind(head)
    if kind:  # the right start but FFmpeg cannot parse it: cut off or corrupted in transit
        return _damaged(name, f"a {kind} file FFmpeg cannot open")
    if head.startswith(b"version https://git-lfs"):
        return _fail(f"{name} is a Git LFS pointer, not the video: run `git lfs pull` to fetch it")
    if head and _looks_like_text(head):
        return _fail(f"{name} is not a video FFmpeg can read (it looks like text): check the path")
    return _fail(f"{name} is not a video FFmpeg can read (unknown format): use .mov, .mp4 or .mkv")


def _ebml_vint(data: bytes, at: int) -> tuple[int, int, bool]:
    """(value, next offset, unknown size) of the EBML variable-length integer at `at`."""
    first = data[at]
    length = 9 - first.bit_length()  # number of leading zero bits + 1
    if not 1 <= length <= 8 or at + length > len(data):
        raise ValueError("bad EBML integer")
    value = first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return value, at + length, value == (1 << (7 * length)) - 1


def _matroska_cut_short(head: bytes, file_size: int) -> bool:
    """True if the file ends before the end of the Matroska segment its header declares.

    The header (EBML element, then the Segment's ID and size) is in the first few dozen bytes; a file
    written to a pipe or still being recorded declares an unknown size, which tells us nothing.
    """
    try:
        size, at, _ = _ebml_vint(head, 4)
        at += size
        if head[at : at + 4] != b"\x18\x53\x80\x67":  # Segment
            return False
        size, at, unknown = _ebml_vint(head, at + 4)
    except (ValueError, IndexError):
        return False
    return not unknown and file_size < at + size


def _open_container(name: str, path: Path) -> av.container.InputContainer:
    av = _av()
    try:
        return av.open(os.fspath(path), "r")
    except PermissionError:
        raise _fail(f"cannot read {name}: permission denied; check the file's permissions") from None
    except (av.error.FFmpegError, OSError, ValueError, EOFError):
        raise _unreadable(name, path) from None


def _video_stream(
    name: str, path: Path, container: av.container.InputContainer
) -> av.video.stream.VideoStream:
    streams = container.streams
    if streams.video:
        stream = streams.video[0]
        if stream.codec_context.width > 0 and stream.codec_context.height > 0:
            return stream
        raise _damaged(name, "its video stream has no picture size")
    kinds = sorted({s.type for s in streams})
    if not {"audio", "subtitle"} & set(kinds) and _container_kind(_head(path, 512)):
        # A .mov/.mp4 whose index (moov) was at the end and got cut off opens with no streams at all, or
        # with only a stub "data" stream.
        raise _damaged(name, "no video stream found")
    raise _fail(f"{name} has no video stream (it holds {' and '.join(kinds)}): give a video file")


def _indexed_count(stream: av.video.stream.VideoStream, file_size: int) -> int | None:
    """Frames listed in a .mov/.mp4 sample table (free: no media data read), or None to demux instead.

    Used only when the table agrees with the stream's frame count; a sample that lies past the end of the
    file means the file was cut short (an index at the front survives truncation).
    """
    entries = stream.index_entries
    if stream.frames <= 0 or len(entries) != stream.frames:
        return None
    if any(e.pos + e.size > file_size for e in entries):
        return -1
    return sum(1 for e in entries if not e.is_discard)


def _demuxed_count(
    name: str, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> int:
    av = _av()
    try:
        # Empty packets are flush markers or "repeat frame" placeholders; discarded ones are decoded but
        # dropped (edit lists), so neither becomes a frame.
        return sum(1 for p in container.demux(stream) if p.size and not p.is_discard)
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as err:
        raise _damaged(name, _reason(err)) from None


def _count_frames(name: str, path: Path, file_size: int) -> int:
    container = _open_container(name, path)
    with container:
        stream = _video_stream(name, path, container)
        count = None
        if "mov" in container.format.name.split(","):
            count = _indexed_count(stream, file_size)
        elif container.format.name.startswith("matroska") and _matroska_cut_short(_head(path), file_size):
            count = -1
        if count is None:
            count = _demuxed_count(name, container, stream)
    if count < 0:
        raise _damaged(name, "it ends before the last frame")
    if count == 0:
        raise _damaged(name, "no video frames found")
    return count


def _runs(chosen: Iterable[int]) -> str:
    """1,2,3,5,7,8 -> '1-3,5,7-8': the frame list as the user would have typed it."""
    runs: list[list[int]] = []
    for n in chosen:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return text if len(text) <= 60 else text[:57] + "..."


def _select(name: str, frames: list[int] | None, count: int) -> tuple[int, ...]:
    if frames is None:
        return tuple(range(1, count + 1))
    if isinstance(frames, str):
        raise TypeError("frames must be a list of frame numbers; parse a range with parse_frame_range")
    chosen = tuple(int(n) for n in frames)
    if not chosen:
        raise _fail("--frames selects no frames: give a range such as 1-24")
    if not all(1 <= n <= count for n in chosen):
        raise _fail(f"--frames {_runs(chosen)} but {name} has {count} frames (1-{count})")
    return chosen


def _sws_colorspace(frame: av.video.frame.VideoFrame) -> int:
    """The swscale matrix (SWS_CS_*) for a decoded YUV frame: as tagged, else the usual guess by size."""
    from av.video.reformatter import Colorspace

    by_tag = {
        1: Colorspace.ITU709,
        4: Colorspace.FCC,
        5: Colorspace.ITU601,
        6: Colorspace.ITU601,
        7: Colorspace.SMPTE240M,
        9: Colorspace.BT2020,
        10: Colorspace.BT2020,
    }
    if frame.colorspace in by_tag:
        return by_tag[frame.colorspace]
    # Untagged: HD and larger is BT.709, SD is BT.601 (what players such as mpv assume).
    return Colorspace.ITU709 if frame.width >= 1280 or frame.height > 576 else Colorspace.ITU601


def _scaler_flags() -> int:
    """swscale flags for our YUV <-> RGB conversions.

    Without ACCURATE_RND, 8-bit 4:2:0 to RGB comes out 1.5 to 3 codes dark (measured); bilinear is the
    usual chroma upsampling. (FULL_CHR_H_INT is avoided: it garbles 4:2:0 to 48-bit RGB in this FFmpeg.)
    """
    from av.video.reformatter import Interpolation

    return Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def _to_rgb(frame: av.video.frame.VideoFrame) -> np.ndarray:
    """Float32 RGB 0..1 from a decoded frame, through 16-bit RGB whatever the source depth: 10-bit
    sources keep their precision, and 8-bit ones are not rounded a second time."""
    kwargs: dict[str, Any] = {"format": "rgb48le", "interpolation": _scaler_flags()}
    if not frame.format.is_rgb:
        kwargs["src_colorspace"] = _sws_colorspace(frame)
    out = frame.to_ndarray(**kwargs).astype(np.float32)
    out *= np.float32(1 / 65535)
    return out


class VideoClip:
    """An open video file, read frame by frame (1-based numbers) as float32 RGB (H, W, 3), 0..1.

    Attributes: `path`, `frames` (the selected frame numbers), `frame_count` (all frames in the file),
    `fps` (float) and `rate` (the exact `Fraction`, for encoding), `size` (width, height) as coded
    (rotation and pixel-aspect metadata are not applied), `colorspace` (display Rec.709) and `color`, the
    OCIO config it is named in.

    Reading forward keeps one decoder running; reading an earlier frame reopens the file and decodes from
    the start (shots are short, and this is exact for any codec, B-frames and edit lists included).
    Use as a context manager, or call `close()`.
    """

    def __init__(self, path: Path, frame_count: int, frames: tuple[int, ...]) -> None:
        self.path = path
        self.frame_count = frame_count
        self.frames = frames
        self.colorspace = VIDEO_COLORSPACE
        self.color = STUDIO  # the OCIO config `colorspace` is named in (`open_clip` sets the shot's)
        self._name = os.fsdecode(path)
        self._container: av.container.InputContainer | None = None
        self._decoded: Iterator[av.video.frame.VideoFrame] | None = None
        self._position = 0  # number of the last frame decoded by self._decoded
        self._last: tuple[int, np.ndarray] | None = None
        self._start()
        stream = self._stream
        self.rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
        if self.rate <= 0:
            self.close()
            raise _damaged(self._name, "no frame rate")
        self.fps = float(self.rate)
        self.size = (stream.codec_context.width, stream.codec_context.height)

    def _start(self) -> None:
        """(Re)open the file and start decoding from its first frame."""
        self.close()
        self._container = _open_container(self._name, self.path)
        self._stream = _video_stream(self._name, self.path, self._container)
        # Frame and slice threads: several times faster for long-GOP codecs at film sizes.
        self._stream.codec_context.thread_type = "AUTO"
        self._decoded = self._container.decode(self._stream)
        self._position = 0

    def source(self, number: int) -> str:
        """Where frame `number` is read from: the video file, absolute (its frames have no files)."""
        return str(Path(self._name).absolute())

    def read(self, number: int) -> np.ndarray:
        """Frame `number` (1-based) as float32 RGB (H, W, 3), 0..1."""
        if not 1 <= number <= self.frame_count:
            count = self.frame_count
            raise _fail(f"frame {number} was asked for but {self._name} has {count} frames (1-{count})")
        if self._last is not None and self._last[0] == number:
            return self._last[1].copy()
        if self._decoded is None or number <= self._position:
            self._start()
        frame = self._decode_until(number)
        rgb = _to_rgb(frame)
        self._last = (number, rgb)
        return rgb.copy()

    def _decode_until(self, number: int) -> av.video.frame.VideoFrame:
        av = _av()
        assert self._decoded is not None
        try:
            while self._position < number:
                frame = next(self._decoded)
                self._position += 1
        except StopIteration:
            self._decoded = None
            raise _fail(
                f"{self._name} ends after frame {self._position}, before frame {number} "
                f"(it should have {self.frame_count}): it is damaged or truncated; re-export it"
            ) from None
        except (av.error.FFmpegError, OSError, ValueError, EOFError) as err:
            self._decoded = None
            raise _fail(
                f"{self._name} is damaged or truncated at frame {self._position + 1}: "
                f"re-export it ({_reason(err)})"
            ) from None
        if frame.is_corrupt:
            raise _fail(f"{self._name} is damaged at frame {number} (it decodes with errors): re-export it")
        return frame

    def close(self) -> None:
        """Release the file and the decoder (reading again reopens them)."""
        self._decoded = None
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None

    def __enter__(self) -> VideoClip:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.size
        return f"VideoClip({self._name!r}, {self.frame_count} frames, {w}x{h}, {self.rate} fps)"


def open_video(path: str | os.PathLike, frames: list[int] | None = None) -> VideoClip:
    """Open a video for reading: count its frames, check `frames` (1-based numbers; None for all).

    Fails with a one-line `ReverieError` for a missing, empty or non-video file, a file without a video
    stream, a file found damaged or truncated, or frame numbers beyond the end of the clip.
    """
    name, p = os.fsdecode(path), Path(path)
    file_size = _readable_video(name, p)
    count = _count_frames(name, p, file_size)
    return VideoClip(p, count, _select(name, frames, count))


# ---------------------------------------------------------------------------------------------- encoding


def read_video_tags(path: str | os.PathLike) -> dict[str, str]:
    """The tags `encode_video` put in a video's metadata ({} when there are none)."""
    name, p = os.fsdecode(path), Path(path)
    _readable_video(name, p)
    with _open_container(name, p) as container:
        comment = str(container.metadata.get("comment", ""))
    return parse_tags_record(comment[len(TAGS_MARK) :]) if comment.startswith(TAGS_MARK) else {}


def _exact_rate(fps: float | Fraction) -> Fraction:
    """fps as an exact fraction: 23.976 and 23.976023976... both mean 24000/1001."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise _fail(f"the frame rate must be a positive number, not {fps!r}")
    if isinstance(fps, numbers.Rational):
        return Fraction(fps.numerator, fps.denominator)
    rate = Fraction(fps).limit_denominator(1001)
    near = [r for r in _NTSC_RATES if abs(float(r) - fps) < 0.0005]
    return near[0] if near else rate


def _even_pad(image: np.ndarray, pix_fmt: str) -> np.ndarray:
    """Pad by repeating the last column/row along axes the chroma is subsampled on (they need even sizes)."""
    fmt = _av().VideoFormat(pix_fmt)
    h, w = image.shape[:2]
    pad_w = w % 2 if fmt.chroma_width(2) == 1 else 0
    pad_h = h % 2 if fmt.chroma_height(2) == 1 else 0
    if not (pad_w or pad_h):
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _check_frame(image: np.ndarray, index: int, shape: tuple[int, ...] | None) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"frame {index}: expected a float array (H, W, 3), got {getattr(image, 'shape', image)}"
        )
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"frame {index}: expected float values 0..1, got dtype {image.dtype}")
    if shape is not None and image.shape != shape:
        raise ValueError(f"frame {index} is {image.shape[:2]} (H, W) but the first frame was {shape[:2]}")


def _video_frame(image: np.ndarray, spec: VideoCodec) -> av.video.frame.VideoFrame:
    """A frame in the encoder's pixel format, converted with the BT.709 matrix, limited range."""
    av = _av()
    from av.video.reformatter import ColorRange, Colorspace

    clean = np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    if spec.pix_fmt.endswith("10le"):
        rgb = av.VideoFrame.from_ndarray(np.rint(clean * 65535).astype(np.uint16), format="rgb48le")
    else:
        rgb = av.VideoFrame.from_ndarray(np.rint(clean * 255).astype(np.uint8), format="rgb24")
    return rgb.reformat(
        format=spec.pix_fmt,
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        interpolation=_scaler_flags(),
    )


def _add_stream(
    out: av.container.OutputContainer, spec: VideoCodec, rate: Fraction, width: int, height: int
) -> av.video.stream.VideoStream:
    added = out.add_stream(spec.encoder, rate=rate, options=dict(spec.options))
    # Every CODECS encoder is a video encoder; PyAV's stub narrows only literal codec names.
    stream = cast("av.video.stream.VideoStream", added)
    stream.width, stream.height, stream.pix_fmt = width, height, spec.pix_fmt
    # One tick per frame: the container's frame rate is then exactly `rate` (24000/1001 stays exact).
    stream.time_base = 1 / rate
    cc = stream.codec_context
    cc.time_base = 1 / rate
    cc.color_primaries = cc.color_trc = cc.colorspace = _BT709
    cc.color_range = _LIMITED_RANGE
    return stream


def _encode_all(
    out: av.container.OutputContainer, frames: Iterable[np.ndarray], spec: VideoCodec, rate: Fraction
) -> int:
    stream = None
    shape = None
    count = 0
    for count, image in enumerate(frames, start=1):
        _check_frame(image, count, shape)
        shape = image.shape
        padded = _even_pad(image, spec.pix_fmt)
        if stream is None:
            stream = _add_stream(out, spec, rate, padded.shape[1], padded.shape[0])
        frame = _video_frame(padded, spec)
        frame.pts = count - 1
        out.mux(stream.encode(frame))
    if stream is None:
        raise ValueError("no frames to encode")
    out.mux(stream.encode(None))  # flush the encoder's delayed frames
    return count


def encode_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float | Fraction,
    codec: str,
    tags: Mapping[str, str] | None = None,
) -> int:
    """Encode float RGB frames (H, W, 3), 0..1 (clipped; NaN -> 0) to a video; returns frames written.

    `codec` is a key of `CODECS`: "prores" (ProRes 422 HQ, 10-bit 4:2:2, .mov) or "h264" (crf 16, 8-bit
    4:2:0; .mp4, .m4v, .mov or .mkv). Frames are converted to YUV with the BT.709 matrix and the stream is
    tagged BT.709 (primaries, transfer, matrix), limited range. All frames must have the size of the first.
    Sizes the chroma subsampling cannot hold are padded by repeating the last column (4:2:2 and 4:2:0:
    odd widths) and the last row (4:2:0: odd heights), so a 33x25 frame is stored as 34x26 in H.264 and as
    34x25 in ProRes. The frame rate is stored exactly (a float such as 23.976 means 24000/1001).
    Written atomically: a failure, or an exception from `frames`, leaves nothing at `path`. `tags`:
    where the video came from, as JSON in the container's comment, which QuickTime and MP4 both keep
    (`read_video_tags` reads them back).
    """
    check_codec(codec, path)
    av = _av()
    spec = CODECS[codec]
    rate = _exact_rate(fps)
    muxer = _MUXERS[Path(path).suffix.lower()]
    with atomic_path(path) as tmp:
        # The temp name ends in .tmp, so the container format is named rather than guessed.
        out = av.open(os.fspath(tmp), "w", format=muxer)
        if tags:
            out.metadata["comment"] = TAGS_MARK + tags_record(tags)
        try:
            count = _encode_all(out, frames, spec, rate)
        except BaseException:
            with contextlib.suppress(Exception):
                out.close()
            raise
        out.close()
    return count
