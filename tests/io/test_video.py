"""Tests for reverie.io.video: tiny clips (32x24 px, a few frames) encoded in tmp_path; no files on disk."""

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from reverie.errors import ReverieError  # noqa: E402
from reverie.io.video import (  # noqa: E402
    CODECS,
    VIDEO_COLORSPACE,
    check_codec,
    default_video_codec,
    encode_video,
    is_video,
    open_video,
)

NTSC = Fraction(24000, 1001)


def _clip(n=8, h=24, w=32):
    """Smooth gradients whose blue channel (and a red offset) rise with the frame index: every frame
    differs, and the order can be read back from the mean blue."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        red = 0.1 + 0.6 * x / (w - 1) + 0.2 * t
        frames.append(np.stack([red, 0.1 + 0.8 * y / (h - 1), np.full_like(x, 0.1 + 0.8 * t)], 2))
    return frames


def _encoded(tmp_path, name, codec, fps=25, n=8, h=24, w=32):
    path = tmp_path / name
    assert encode_video(_clip(n, h, w), path, fps=fps, codec=codec) == n
    return path


def _one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("name", "codec", "fps", "tolerance"),
    [
        ("clip.mp4", "h264", NTSC, 0.03),
        ("clip.mov", "prores", NTSC, 0.01),
        ("clip.mov", "prores", 25, 0.01),
        ("clip.mkv", "h264", 25, 0.03),
    ],
)
def test_round_trip(tmp_path, name, codec, fps, tolerance):
    source = _clip()
    path = _encoded(tmp_path, name, codec, fps)
    with open_video(path) as clip:
        assert clip.frames == tuple(range(1, 9)) and clip.frame_count == 8
        assert clip.rate == Fraction(fps) and clip.fps == pytest.approx(float(fps))
        assert clip.size == (32, 24)
        assert clip.colorspace == VIDEO_COLORSPACE
        decoded = [clip.read(n) for n in clip.frames]
    for got, want in zip(decoded, source, strict=True):
        assert got.dtype == np.float32 and got.shape == (24, 32, 3)
        assert np.abs(got - want).mean() < tolerance
    blues = [frame[..., 2].mean() for frame in decoded]
    assert blues == sorted(blues) and blues[-1] - blues[0] > 0.7  # in order, and all different


def test_float_ntsc_rate_is_stored_exactly(tmp_path):
    path = _encoded(tmp_path, "clip.mp4", "h264", fps=23.976, n=3)
    with open_video(path) as clip:
        assert clip.rate == NTSC


def test_bt709_is_tagged(tmp_path):
    path = _encoded(tmp_path, "clip.mov", "prores", n=2)
    with av.open(str(path)) as container:
        cc = container.streams.video[0].codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1)
        assert cc.name == "prores" and cc.pix_fmt == "yuv422p10le"


def test_prores_keeps_ten_bits(tmp_path):
    # Steps of 1/1023 survive ProRes; through 8 bits they would collapse into steps of 1/255.
    ramp = np.linspace(0.4, 0.5, 32, dtype=np.float32)
    frame = np.repeat(np.broadcast_to(ramp[None, :, None], (24, 32, 1)), 3, axis=2)
    encode_video([frame], tmp_path / "ramp.mov", fps=24, codec="prores")
    with open_video(tmp_path / "ramp.mov") as clip:
        got = clip.read(1)
    assert np.abs(got - frame).max() < 1 / 700
    assert len(np.unique(np.round(got[12, :, 1] * 65535))) > 20


def test_odd_size_is_padded_for_h264(tmp_path):
    # yuv420p needs even sizes: 33x25 is stored as 34x26 with the last column and row repeated.
    frames = _clip(n=3, h=25, w=33)
    encode_video(frames, tmp_path / "odd.mp4", fps=25, codec="h264")
    with open_video(tmp_path / "odd.mp4") as clip:
        assert clip.size == (34, 26)
        got = clip.read(2)
    assert np.abs(got[:25, :33] - frames[1]).mean() < 0.03
    assert np.abs(got[25, :33] - frames[1][24]).mean() < 0.03
    assert np.abs(got[:25, 33] - frames[1][:, 32]).mean() < 0.03


def test_odd_width_is_padded_for_prores(tmp_path):
    # 4:2:2 halves only the width: 33x25 is stored as 34x25.
    encode_video(_clip(n=2, h=25, w=33), tmp_path / "odd.mov", fps=25, codec="prores")
    with open_video(tmp_path / "odd.mov") as clip:
        assert clip.size == (34, 25)


# --------------------------------------------------------------------------------------------- reading


def test_random_access(tmp_path):
    source = _clip(n=8)
    path = _encoded(tmp_path, "clip.mp4", "h264")
    with open_video(path) as clip:
        for n in (5, 2, 6, 6, 1, 8):
            got = clip.read(n)
            errors = [np.abs(got - frame).mean() for frame in source]
            assert int(np.argmin(errors)) == n - 1


def test_read_returns_independent_arrays(tmp_path):
    with open_video(_encoded(tmp_path, "clip.mp4", "h264", n=2)) as clip:
        first = clip.read(1)
        first[:] = 0
        assert clip.read(1).mean() > 0.2


def test_frame_selection(tmp_path):
    path = _encoded(tmp_path, "clip.mov", "prores", n=6)
    with open_video(path, frames=[2, 3, 4]) as clip:
        assert clip.frames == (2, 3, 4) and clip.frame_count == 6


def test_frames_beyond_the_end(tmp_path):
    path = _encoded(tmp_path, "clip.mov", "prores", n=6)
    with pytest.raises(ReverieError) as excinfo:
        open_video(path, frames=list(range(1, 201)))
    assert _one_line_error(excinfo) == f"--frames 1-200 but {path} has 6 frames (1-6)"
    with pytest.raises(ReverieError) as excinfo:
        open_video(path, frames=[0, 1])
    assert "has 6 frames (1-6)" in _one_line_error(excinfo)
    with open_video(path) as clip, pytest.raises(ReverieError) as excinfo:
        clip.read(7)
    assert "has 6 frames (1-6)" in _one_line_error(excinfo)


def test_is_video():
    assert is_video("a/shot.MOV") and is_video("x.mxf") and is_video("x.m4v")
    assert not is_video("frame.0001.png") and not is_video("mov")


# ------------------------------------------------------------------------------------------ bad inputs


def test_missing_directory_and_empty(tmp_path):
    (tmp_path / "dir.mov").mkdir()
    (tmp_path / "empty.mp4").write_bytes(b"")
    expected = {"missing.mov": "does not exist", "dir.mov": "is a directory", "empty.mp4": "is empty"}
    for name, words in expected.items():
        with pytest.raises(ReverieError) as excinfo:
            open_video(tmp_path / name)
        assert words in _one_line_error(excinfo) and name in str(excinfo.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"hello, this is not a video\n" * 20, "looks like text"), (bytes(range(256)) * 8, "not a video")],
)
def test_garbage_named_mp4(tmp_path, content, words):
    (tmp_path / "garbage.mp4").write_bytes(content)
    with pytest.raises(ReverieError) as excinfo:
        open_video(tmp_path / "garbage.mp4")
    assert words in _one_line_error(excinfo)


def test_no_video_stream(tmp_path):
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ReverieError) as excinfo:
        open_video(path)
    assert "has no video stream (it holds audio)" in _one_line_error(excinfo)


def _cut(path, fraction):
    data = path.read_bytes()
    cut = path.with_name("cut" + path.suffix)
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.mark.parametrize("name", ["clip.mov", "clip.mp4"])
def test_truncated_mov_with_index_at_the_end(tmp_path, name):
    full = _encoded(tmp_path, name, "prores" if name.endswith("mov") else "h264", n=10)
    for fraction in (0.3, 0.6, 0.9):
        cut = _cut(full, fraction)
        with pytest.raises(ReverieError) as excinfo:
            open_video(cut)
        message = _one_line_error(excinfo)
        assert "damaged or truncated" in message and str(cut) in message and "re-export" in message


def test_truncated_mp4_with_index_at_the_front(tmp_path):
    # faststart moves the index before the media, so a cut file still opens: the index shows the cut.
    path = tmp_path / "front.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for frame in _clip(n=10):
            rgb = av.VideoFrame.from_ndarray(np.rint(frame * 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(rgb))
        container.mux(stream.encode(None))
    assert open_video(path).frame_count == 10
    with pytest.raises(ReverieError) as excinfo:
        open_video(_cut(path, 0.6))
    assert "damaged or truncated" in _one_line_error(excinfo)


def test_truncated_mkv(tmp_path):
    # The Matroska header opens, but the segment size it declares shows the file is cut short.
    full = _encoded(tmp_path, "clip.mkv", "h264", n=10)
    for fraction in (0.3, 0.6, 0.9, 0.99):
        cut = _cut(full, fraction)
        with pytest.raises(ReverieError) as excinfo:
            open_video(cut).read(10)
        message = _one_line_error(excinfo)
        assert "damaged or truncated" in message and str(cut) in message and "re-export" in message


def test_file_cut_while_open_fails_on_read(tmp_path):
    # Counted at open, then cut (a copy being overwritten): decoding ends early, and the error names the
    # frame. close() drops the demuxer's read-ahead buffer, which holds this whole tiny file.
    path = _encoded(tmp_path, "clip.mkv", "h264", n=10)
    clip = open_video(path)
    clip.read(1)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    clip.close()
    with pytest.raises(ReverieError) as excinfo:
        clip.read(10)
    message = _one_line_error(excinfo)
    assert "before frame 10" in message and "truncated" in message
    clip.close()


# --------------------------------------------------------------------------------------------- codecs


def test_check_codec():
    check_codec("prores", "out.mov")
    for suffix in (".mp4", ".m4v", ".mov", ".mkv"):
        check_codec("h264", "out" + suffix)
    with pytest.raises(ReverieError) as excinfo:
        check_codec("vp9", "out.mp4")
    assert "prores, h264" in _one_line_error(excinfo)
    with pytest.raises(ReverieError) as excinfo:
        check_codec("prores", "out.mp4")
    assert "use a .mov" in _one_line_error(excinfo)
    with pytest.raises(ReverieError) as excinfo:
        check_codec("h264", "out.avi")
    assert ".avi" in _one_line_error(excinfo)
    assert set(CODECS) == {"prores", "h264"}


def test_encode_checks_codec_first(tmp_path):
    with pytest.raises(ReverieError):
        encode_video(_clip(n=1), tmp_path / "out.mp4", fps=25, codec="prores")
    assert list(tmp_path.iterdir()) == []


def test_default_video_codec():
    assert default_video_codec("a.MOV") == "prores"
    assert [default_video_codec(f"a.{s}") for s in ("mp4", "m4v", "mkv")] == ["h264"] * 3


@pytest.mark.parametrize("fps", [0, -24, float("nan"), float("inf")])
def test_bad_frame_rate(tmp_path, fps):
    with pytest.raises(ReverieError) as excinfo:
        encode_video(_clip(n=1), tmp_path / "out.mp4", fps=fps, codec="h264")
    _one_line_error(excinfo)


def test_frames_of_different_sizes(tmp_path):
    frames = [_clip(n=1)[0], _clip(n=1, h=26)[0]]
    with pytest.raises(ValueError, match="first frame"):
        encode_video(frames, tmp_path / "out.mp4", fps=25, codec="h264")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "codec"), [("out.mov", "prores"), ("out.mp4", "h264")])
def test_failed_encode_leaves_nothing(tmp_path, name, codec):
    def frames():
        yield from _clip(n=4)
        raise RuntimeError("render failed")

    (tmp_path / "other.txt").write_text("untouched")
    with pytest.raises(RuntimeError, match="render failed"):
        encode_video(frames(), tmp_path / name, fps=25, codec=codec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt"]


def test_encode_replaces_an_existing_file(tmp_path):
    path = _encoded(tmp_path, "clip.mp4", "h264", n=3)
    _encoded(tmp_path, "clip.mp4", "h264", n=5)
    with open_video(path) as clip:
        assert clip.frame_count == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
