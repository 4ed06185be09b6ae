"""Stage 1 (decode): every refusal, EXIF orientation on real encoded files, accepted formats."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from gateway.pipeline.decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    decode_image,
    image_size,
    probe_image,
)
from gateway.pipeline.types import PipelineError

LIMITS = {"max_bytes": DEFAULT_MAX_BYTES, "max_pixels": DEFAULT_MAX_PIXELS}


def _pattern(w: int = 120, h: int = 80) -> Image.Image:
    """Asymmetric RGB picture with large flat blocks (survives JPEG), so any wrong rotation or
    mirror shows up as a large pixel difference."""
    a = np.full((h, w, 3), 255, np.uint8)
    a[: h // 4, : w // 3] = (255, 0, 0)  # red: top-left
    a[h // 2 :, w // 2 : w // 2 + w // 6] = (0, 0, 255)  # blue: lower middle
    a[h - h // 8 :, w - w // 6 :] = (0, 160, 0)  # green: bottom-right corner
    return Image.fromarray(a)


def _encode(im: Image.Image, fmt: str, orientation: int | None = None, **kw: object) -> bytes:
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _bgr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"))[:, :, ::-1]


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _reject(data: bytes, code: str, **limits: int) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        decode_image(data, **{**LIMITS, **limits})
    assert info.value.code == code, info.value.message
    assert info.value.message
    return info.value


def test_empty() -> None:
    _reject(b"", "empty")


@pytest.mark.parametrize(
    "data",
    [b"hello world, not a picture", bytes(range(256)) * 40, b"GIF89a" + b"\0" * 100,
     b"BM" + b"\0" * 100, b"RIFF\x10\0\0\0WAVEfmt "],
)  # fmt: skip
def test_not_an_image(data: bytes) -> None:
    _reject(data, "not_an_image")


def test_jpeg_garbage_after_header_is_not_decoded_as_grey() -> None:
    good = _encode(_pattern(), "JPEG")
    # Valid headers, but the entropy-coded data is replaced by junk without an end marker.
    sos = good.index(b"\xff\xda")
    _reject(good[: sos + 20] + b"\x00" * 200, "truncated")


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(cut: float, progressive: bool) -> None:
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    data = _encode(im, "JPEG", quality=90, progressive=progressive)
    _reject(data[: int(len(data) * cut)], "truncated")


def test_jpeg_cut_just_before_end_marker() -> None:
    data = _encode(_pattern(), "JPEG", orientation=6)
    assert data.endswith(b"\xff\xd9")
    _reject(data[:-2], "truncated")
    _reject(data[:3], "truncated")
    _reject(data[:40], "truncated")  # inside the EXIF segment


@pytest.mark.parametrize("cut", [0.2, 0.7, 0.99])
def test_truncated_png(cut: float) -> None:
    rng = np.random.default_rng(2)
    data = _encode(Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)), "PNG")
    _reject(data[: int(len(data) * cut)], "truncated")


def test_png_without_iend_is_truncated() -> None:
    data = _encode(_pattern(), "PNG")
    assert data.endswith(_png_chunk(b"IEND", b""))
    _reject(data[:-12], "truncated")
    _reject(data[:5], "truncated")


def test_truncated_webp() -> None:
    rng = np.random.default_rng(3)
    data = _encode(Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)), "WEBP")
    _reject(data[: len(data) // 2], "truncated")
    _reject(data[:-1], "truncated")


def test_too_large_bytes() -> None:
    data = _encode(_pattern(), "JPEG")
    _reject(data + b"\0" * (DEFAULT_MAX_BYTES + 1 - len(data)), "too_large")
    _reject(data, "too_large", max_bytes=len(data) - 1)
    assert decode_image(data, max_bytes=len(data), max_pixels=DEFAULT_MAX_PIXELS).shape == (
        80,
        120,
        3,
    )


def test_decompression_bomb_png_header_rejected_before_decoding() -> None:
    # A well-formed PNG that claims 10000x10000 (100 MP); the IDAT is tiny, so a decoder that
    # trusted the header would allocate 300 MB before noticing anything.
    ihdr = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 30_001))
        + _png_chunk(b"IEND", b"")
    )
    err = _reject(bomb, "too_many_pixels")
    assert "10000x10000" in err.message
    assert probe_image(bomb).width == 10_000


def test_decompression_bomb_jpeg_header_rejected() -> None:
    data = bytearray(_encode(_pattern(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 9000, 9000)  # height, width in the frame header
    _reject(bytes(data), "too_many_pixels")
    _reject(_encode(_pattern(), "JPEG"), "too_many_pixels", max_pixels=120 * 80 - 1)


def test_webp_header_pixels_checked() -> None:
    data = _encode(_pattern(), "WEBP", lossless=True)
    _reject(data, "too_many_pixels", max_pixels=100)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_applied(fmt: str, orientation: int) -> None:
    kw = {"quality": 95} if fmt != "PNG" else {}
    data = _encode(_pattern(), fmt, orientation=orientation, **kw)
    expected = _bgr(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    got = decode_image(data, **LIMITS)
    assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 4
    assert image_size(data) == (got.shape[1], got.shape[0])


def test_orientation_6_and_8_are_quarter_turns() -> None:
    """Orientation 6: the stored picture must be turned 90 deg clockwise; 8: counter-clockwise.
    The red block stored top-left ends up top-right (6) or bottom-left (8)."""
    for orientation, corner in ((6, (5, -5)), (8, (-5, 5))):
        img = decode_image(_encode(_pattern(), "JPEG", orientation=orientation), **LIMITS)
        assert img.shape[:2] == (120, 80)
        b, g, r = (int(v) for v in img[corner])
        assert r > 200 and g < 60 and b < 60, (orientation, (b, g, r))


def test_reduce_and_gray_keep_orientation() -> None:
    data = _encode(_pattern(240, 160), "JPEG", orientation=6)
    half = decode_image(data, **LIMITS, reduce=2)
    assert half.shape == (120, 80, 3)
    gray = decode_image(data, **LIMITS, gray=True)
    assert gray.shape == (240, 160) and gray.dtype == np.uint8
    with pytest.raises(ValueError):
        decode_image(data, **LIMITS, reduce=3)


@pytest.mark.parametrize(
    ("fmt", "mode", "kw"),
    [("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "L", {}), ("PNG", "I;16", {}),
     ("WEBP", "RGB", {"quality": 90}), ("WEBP", "RGBA", {"lossless": True}),
     ("JPEG", "L", {}), ("JPEG", "CMYK", {})],
)  # fmt: skip
def test_formats_accepted(fmt: str, mode: str, kw: dict[str, object]) -> None:
    im = _pattern().convert(mode) if mode != "I;16" else _pattern().convert("L").convert("I;16")
    img = decode_image(_encode(im, fmt, **kw), **LIMITS)
    assert img.shape == (80, 120, 3) and img.dtype == np.uint8
    assert img[2, 2, 2] > img[2, 2, 0] or mode in ("L", "I;16")  # red top-left stays red


def test_tiny_webp_decodes() -> None:
    """OpenCV refuses a 1x1 lossless WebP; the headers are sound, so Pillow decodes it."""
    data = _encode(Image.new("RGB", (1, 1), (10, 20, 30)), "WEBP", lossless=True)
    img = decode_image(data, **LIMITS)
    assert img.shape == (1, 1, 3)
    assert tuple(int(v) for v in img[0, 0]) == (30, 20, 10)


def test_header_walk_is_bounded() -> None:
    """25 MB of empty ancillary chunks must be refused quickly, not walked for seconds."""
    ihdr = struct.pack(">IIBBBBB", 10, 10, 8, 0, 0, 0, 0)
    junk = _png_chunk(b"tEXt", b"") * 200_000
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + junk + _png_chunk(b"IEND", b"")
    _reject(data, "not_an_image")
