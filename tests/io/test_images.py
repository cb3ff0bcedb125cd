"""Tests for reverie.io.images: tiny images made in tmp_path, no fixtures on disk."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from reverie.errors import ReverieError
from reverie.io import images
from reverie.io.images import (
    atomic_path,
    atomic_write_bytes,
    check_writable,
    fit_long_side,
    image_size,
    read_alpha,
    read_image,
    resize,
    write_image,
)


def _random(h=13, w=17, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def _smooth(h=24, w=32):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 0.25 + 0.5 * (x + y) / (w + h)], axis=2)


def _codes(image, bits):
    return np.rint(image * (2**bits - 1)).astype(np.int64)


def _permissions_enforced(directory):
    """False for root (or CAP_DAC_OVERRIDE), where chmod does not stop reading or writing."""
    probe = directory / "probe"
    probe.write_bytes(b"")
    probe.chmod(0)
    try:
        probe.open("rb").close()
    except PermissionError:
        return True
    finally:
        probe.unlink()
    return False


def _no_temp_files(directory):
    return not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ---- an independent 16-bit PNG encoder/decoder (pure Python, byte by byte; fine for tiny images) -----


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _predict(ftype, line, prev, i, bpp):
    a = line[i - bpp] if i >= bpp else 0
    c = prev[i - bpp] if i >= bpp else 0
    return [0, a, prev[i], (a + prev[i]) // 2, _paeth(a, prev[i], c)][ftype]


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _png16_filtered(values, filters):
    """Rows of uint16 (H, W, C) values, row y filtered with filters[y % len(filters)]."""
    h, w, c = values.shape
    prev, body = bytes(w * 2 * c), b""
    for y in range(h):
        line, ftype = values[y].astype(">u2").tobytes(), filters[y % len(filters)]
        body += bytes(
            [ftype, *((line[i] - _predict(ftype, line, prev, i, 2 * c)) & 255 for i in range(len(line)))]
        )
        prev = line
    return body


def _png16_reference_encode(values, filters=(0, 1, 2, 3, 4), interlace=False):
    """values: uint16 (H, W, 2, 3 or 4); interlaced: Adam7, each pass a small image of its own."""
    h, w, c = values.shape
    passes = [values[y::dy, x::dx] for x, y, dx, dy in ADAM7] if interlace else [values]
    body = b"".join(_png16_filtered(p, filters) for p in passes if p.size)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, int(interlace))
    idat = _chunk(b"IDAT", zlib.compress(body))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")


def _png16_reference_decode(data):
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, ctype, interlace) == (16, 2, 0)
        idat += body if kind == b"IDAT" else b""
        pos += 12 + n
    raw, stride, prev, rows = zlib.decompress(idat), w * 6, bytearray(w * 6), []
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            line[i] = (line[i] + _predict(ftype, line, prev, i, 6)) & 255
        rows.append(bytes(line))
        prev = line
    return np.frombuffer(b"".join(rows), ">u2").reshape(h, w, 3)


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(("suffix", "bits"), [(".png", 8), (".png", 16), (".tif", 8), (".tiff", 16)])
def test_lossless_round_trip_is_exact_to_one_code(tmp_path, suffix, bits):
    image = _random()
    path = tmp_path / f"out{suffix}"
    write_image(path, image, bit_depth=bits)
    back = read_image(path)
    assert back.shape == image.shape and back.dtype == np.float32
    np.testing.assert_array_equal(_codes(back, bits), _codes(image, bits))


def test_default_png_is_8_bit(tmp_path):
    write_image(tmp_path / "a.png", _random())
    assert Image.open(tmp_path / "a.png").mode == "RGB"


def test_jpeg_round_trip_is_close(tmp_path):
    image = _smooth()
    write_image(tmp_path / "a.jpeg", image, quality=95)
    assert np.abs(read_image(tmp_path / "a.jpeg") - image).max() < 6 / 255


def test_quantisation_rounds_and_clips(tmp_path):
    values = np.array([[[10.4 / 255, 10.6 / 255, -0.5], [1.5, np.nan, 0.5]]], dtype=np.float32)
    write_image(tmp_path / "q.png", values)
    codes = np.asarray(Image.open(tmp_path / "q.png"))
    np.testing.assert_array_equal(codes, [[[10, 11, 0], [255, 0, 128]]])


def test_png16_is_valid_for_pillow_and_an_independent_decoder(tmp_path):
    image = _random(9, 11, seed=1)
    write_image(tmp_path / "a.png", image, bit_depth=16)
    expected = _codes(image, 16)
    data = (tmp_path / "a.png").read_bytes()
    np.testing.assert_array_equal(_png16_reference_decode(data), expected)
    # Pillow 13 reads 48-bit PNG as 8-bit RGB, keeping the high byte.
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), expected >> 8)


def test_tiff16_is_valid_for_pillow_and_its_raw_strips(tmp_path):
    image = _random(40, 700, seed=2)  # several strips
    write_image(tmp_path / "a.tif", image, bit_depth=16)
    expected = _codes(image, 16)
    with Image.open(tmp_path / "a.tif") as im:
        assert im.tag_v2[258] == (16, 16, 16) and len(im.tag_v2[273]) > 1
        np.testing.assert_array_equal(np.asarray(im), expected >> 8)
        data = (tmp_path / "a.tif").read_bytes()
        strips = b"".join(data[o : o + n] for o, n in zip(im.tag_v2[273], im.tag_v2[279], strict=True))
    np.testing.assert_array_equal(np.frombuffer(strips, "<u2").reshape(expected.shape), expected)
    np.testing.assert_array_equal(_codes(read_image(tmp_path / "a.tif"), 16), expected)


def test_compressed_tiff16_reads_exactly(tmp_path):
    codes = np.random.default_rng(3).integers(0, 65536, (6, 9, 3)).astype(np.uint16)
    (tmp_path / "z.tif").write_bytes(images._encode_tiff16(codes, deflate=True))  # libtiff read path
    np.testing.assert_array_equal(_codes(read_image(tmp_path / "z.tif"), 16), codes)


@pytest.mark.parametrize(("channels", "interlace"), [(3, False), (4, False), (3, True), (4, True)])
def test_png16_with_every_filter_type_reads_exactly(tmp_path, channels, interlace):
    codes = np.random.default_rng(4).integers(0, 65536, (10, 7, channels)).astype(np.uint16)
    codes[:5] = codes[0]  # some smooth rows as well
    (tmp_path / "f.png").write_bytes(_png16_reference_encode(codes, interlace=interlace))
    np.testing.assert_array_equal(_codes(read_image(tmp_path / "f.png"), 16), codes[:, :, :3])
    alpha = read_alpha(tmp_path / "f.png")
    if channels == 4:
        np.testing.assert_array_equal(_codes(alpha, 16), codes[:, :, 3])
    else:
        assert alpha is None


def test_png16_grey_alpha_falls_back_to_8_bit_precision(tmp_path):
    # Pillow has no 16-bit LA unpacker with swappable byte order: documented 8-bit fallback.
    codes = np.random.default_rng(6).integers(0, 65536, (4, 5, 2)).astype(np.uint16)
    (tmp_path / "la16.png").write_bytes(_png16_reference_encode(codes))
    back = read_image(tmp_path / "la16.png")
    np.testing.assert_allclose(back, np.repeat(codes[:, :, :1], 3, 2) / 65535, atol=1 / 255)
    np.testing.assert_allclose(read_alpha(tmp_path / "la16.png"), codes[:, :, 1] / 65535, atol=1 / 255)


def test_our_png16_encoder_matches_the_reference_for_all_filters():
    # On noise the adaptive choice uses all five filter types; the independent decoder must agree.
    codes = np.random.default_rng(7).integers(0, 65536, (40, 30, 3)).astype(np.uint16)
    data = images._encode_png16(codes)
    filtered = np.frombuffer(zlib.decompress(data[data.index(b"IDAT") + 4 :]), np.uint8)
    assert set(filtered[:: 1 + 30 * 6]) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(_png16_reference_decode(data), codes)


# ------------------------------------------------------------------------------------------- input modes


def test_greyscale_8_and_16_bit(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_allclose(read_image(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, 2) / 255)
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000 + 7).astype(np.uint16)
    for name in ("g16.png", "g16.tif"):
        Image.fromarray(grey16).save(tmp_path / name)
        back = read_image(tmp_path / name)
        assert back.shape == (3, 4, 3)
        np.testing.assert_array_equal(_codes(back, 16), np.repeat(grey16[:, :, None], 3, 2))


def test_palette_becomes_its_colours(tmp_path):
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2, 2, 1, 0])
    im.save(tmp_path / "p.png")
    back = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(back[0], np.eye(3, dtype=np.float32))
    assert read_alpha(tmp_path / "p.png") is None


def test_alpha_is_dropped_not_composited(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = [200, 100, 50]
    rgba[..., 3] = [[0, 64], [128, 255]]
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), np.full((2, 2, 3), [200, 100, 50]) / 255)
    np.testing.assert_allclose(read_alpha(tmp_path / "a.png"), rgba[..., 3] / 255)
    la = Image.fromarray(rgba[..., [0, 3]], mode="LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_allclose(read_image(tmp_path / "la.png"), np.full((2, 2, 3), 200 / 255))
    np.testing.assert_allclose(read_alpha(tmp_path / "la.png"), rgba[..., 3] / 255)
    write_image(tmp_path / "rgb.png", _random())
    assert read_alpha(tmp_path / "rgb.png") is None


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    back = read_image(tmp_path / "c.jpg")
    assert back.shape == (8, 8, 3)
    np.testing.assert_allclose(back.mean(axis=(0, 1)), [1, 0, 0], atol=0.03)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    codes = np.random.default_rng(5).integers(0, 256, (3, 5, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[274] = orientation
    Image.fromarray(codes).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(_codes(read_image(tmp_path / "o.png"), 8), expected)
    assert image_size(tmp_path / "o.png") == (expected.shape[1], expected.shape[0])


def test_exif_orientation_6_rotates_clockwise_in_a_jpeg(tmp_path):
    image = np.zeros((16, 32, 3), np.uint8)
    image[:8, :8] = 255  # white block top-left as stored
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(image).save(tmp_path / "r.jpg", exif=exif, quality=95)
    back = read_image(tmp_path / "r.jpg")
    assert back.shape == (32, 16, 3) and image_size(tmp_path / "r.jpg") == (16, 32)
    assert back[:8, 8:].mean() > 0.9 and back[:8, :8].mean() < 0.1  # now top-right


# ------------------------------------------------------------------------------------------ read errors


def _raises(path, fn=read_image, **kwargs):
    with pytest.raises(ReverieError) as info:
        fn(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_directory_empty_and_text_files(tmp_path):
    assert "does not exist" in _raises(tmp_path / "missing.png")
    assert "is a directory" in _raises(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in _raises(tmp_path / "empty.png")
    (tmp_path / "x.png").write_text("this is a text file\n")
    assert "looks like text" in _raises(tmp_path / "x.png")
    assert "looks like text" in _raises(tmp_path / "x.png", fn=image_size)
    (tmp_path / "plate.exr").write_bytes(b"v/1\x01" + bytes(100))
    assert "OpenEXR" in _raises(tmp_path / "plate.exr")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    assert "damaged" in _raises(tmp_path / "bad.png")


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_truncated_file_is_an_error_not_grey(tmp_path, suffix, monkeypatch):
    write_image(tmp_path / f"whole{suffix}", _random(64, 64))
    data = (tmp_path / f"whole{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    # Even if other code switched Pillow to fill truncated images with grey, we still refuse them.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert "truncated" in _raises(tmp_path / f"cut{suffix}")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_unreadable_file(tmp_path, monkeypatch):
    write_image(tmp_path / "secret.png", _random())
    if not _permissions_enforced(tmp_path):  # root reads anything: simulate the OS refusing

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Image, "open", refuse)
    else:
        (tmp_path / "secret.png").chmod(0)
    assert "permission denied" in _raises(tmp_path / "secret.png")


def test_too_large_for_memory(tmp_path):
    write_image(tmp_path / "a.png", _random(100, 100))
    message = _raises(tmp_path / "a.png", max_bytes=1000)
    assert "100x100 px" in message and "downscale" in message
    assert read_image(tmp_path / "a.png", max_bytes=100 * 100 * 36).shape == (100, 100, 3)


def test_huge_header_gets_our_message_not_a_decompression_bomb(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 60000, 40000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 10))
    (tmp_path / "huge.png").write_bytes(data + _chunk(b"IEND", b""))
    limit = Image.MAX_IMAGE_PIXELS
    message = _raises(tmp_path / "huge.png", max_bytes=20 * 2**30)
    assert "60000x40000 px" in message and "80 GiB" in message and "20 GiB available" in message
    assert "8192 px on the long side" in message
    assert image_size(tmp_path / "huge.png") == (60000, 40000)
    assert Image.MAX_IMAGE_PIXELS == limit  # restored


# ----------------------------------------------------------------------------------------- write errors


def test_write_argument_errors(tmp_path):
    assert ".png, .jpg" in _raises(tmp_path / "a.exr", fn=lambda p: write_image(p, _random()))
    message = _raises(tmp_path / "a.jpg", fn=lambda p: write_image(p, _random(), bit_depth=16))
    assert ".png or .tif" in message
    assert "not supported" in _raises(tmp_path / "a.bmp", fn=check_writable)


def test_missing_or_bad_output_directory(tmp_path):
    target = tmp_path / "out" / "x.png"
    assert "does not exist" in _raises(target, fn=lambda p: write_image(p, _random()))
    assert "does not exist" in _raises(target, fn=check_writable)
    (tmp_path / "file").write_text("")
    assert "not a directory" in _raises(tmp_path / "file" / "x.png", fn=check_writable)
    (tmp_path / "dir.png").mkdir()
    assert "is a directory" in _raises(tmp_path / "dir.png", fn=check_writable)
    assert "is a directory" in _raises(tmp_path / "dir.png", fn=lambda p: write_image(p, _random()))


def test_unwritable_directory(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not _permissions_enforced(tmp_path):  # root: a regular file as parent fails for everyone
            (tmp_path / "plain").write_text("")
            assert "not a directory" in _raises(tmp_path / "plain" / "x.png", fn=check_writable)

            def refuse(target):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(images, "_new_temp", refuse)
        for fn in (check_writable, lambda p: write_image(p, _random())):
            message = _raises(locked / "x.png", fn=fn)
            assert "permission denied" in message and "another -o path" in message
    finally:
        locked.chmod(0o700)


def test_check_writable_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / "new.tiff")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch, error):
    target = tmp_path / "shot.png"
    target.write_bytes(b"old contents")

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as fh:
            fh.write(b"half a png")
        raise error("encoder died")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(error):
        write_image(target, _random())
    assert target.read_bytes() == b"old contents"
    assert _no_temp_files(tmp_path)


def test_atomic_path_uses_hidden_temp_next_to_target(tmp_path):
    target = tmp_path / "look.toml"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        assert not target.exists()
        tmp.write_text("a = 1\n")
    assert target.read_text() == "a = 1\n" and _no_temp_files(tmp_path)
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise ValueError
    assert target.read_text() == "a = 1\n" and _no_temp_files(tmp_path)


def test_atomic_write_bytes_replaces(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_bytes(target, b"{}")
    atomic_write_bytes(target, b'{"a": 1}')
    assert target.read_bytes() == b'{"a": 1}' and _no_temp_files(tmp_path)
    assert "does not exist" in _raises(tmp_path / "no" / "x.json", fn=lambda p: atomic_write_bytes(p, b""))


# ---------------------------------------------------------------------------------------------- resizing


@pytest.mark.parametrize("size", [(64, 48), (16, 12), (45, 20)])
def test_resize_size_and_mean_colour(size):
    image = _smooth()
    out = resize(image, size)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=0.01)


def test_resize_clips_lanczos_overshoot():
    step = np.zeros((8, 8, 3), np.float32)
    step[:, 4:] = 1
    out = resize(step, (32, 32))
    assert out.min() == 0 and out.max() == 1


def test_fit_long_side():
    assert fit_long_side(1920, 1080, 1024) == (1024, 576)
    assert fit_long_side(1080, 1920, 1024) == (576, 1024)
    assert fit_long_side(8, 3, 4) == (4, 2)  # 1.5 rounds up
    assert fit_long_side(4000, 1, 100) == (100, 1)
    assert fit_long_side(100, 50, 400) == (400, 200)
