"""Stage 1: photo bytes -> BGR pixels, upright, or a clear refusal.

Everything about the file is decided from its container headers *before* any pixel is decoded:
format (JPEG / PNG / WebP only), pixel count (a 50 KB PNG can claim 10000x10000 and would cost
300 MB to decode: a decompression bomb), truncation (a cut-off upload must be refused, not
half-decoded into grey that then yields no codes and a wrong count) and the EXIF orientation.

Orientation is applied here, explicitly, for all three formats. OpenCV 4.11's ``imdecode`` with
``IMREAD_COLOR`` rotates JPEG and PNG by their EXIF tag but silently ignores it for WebP, so we
decode with ``IMREAD_IGNORE_ORIENTATION`` and rotate ourselves: every photo comes out the way a
phone's gallery shows it, whatever its format, and boxes drawn by clients line up.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from gateway.pipeline.types import PipelineError

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 50_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Header walks stop after this many segments / chunks: real files have a few dozen (PNG: one
# IDAT per 8-64 KB), while 25 MB of empty chunks would keep a Python loop busy for seconds.
_MAX_SEGMENTS = 100_000
_EXIF_ORIENTATION = 0x0112
# JPEG start-of-frame markers carry the size: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_REDUCED_COLOR = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_REDUCED_GRAY = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


@dataclass(frozen=True)
class ImageInfo:
    """What the container headers say, read without decoding pixels."""

    format: str  # "jpeg", "png" or "webp"
    width: int  # as stored (before EXIF orientation)
    height: int
    orientation: int  # EXIF orientation 1-8 (1 = upright / no tag)

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) after the EXIF orientation is applied (5-8 swap the axes)."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def _truncated(what: str) -> PipelineError:
    return PipelineError("truncated", f"The {what} file is cut off (incomplete upload?).")


def _corrupt(what: str, detail: str) -> PipelineError:
    return PipelineError("not_an_image", f"The {what} file is damaged: {detail}.")


def _orientation_from_exif(payload: bytes) -> int:
    """EXIF orientation from an APP1 / eXIf / EXIF payload; 1 when absent or unreadable."""
    exif = Image.Exif()
    try:
        exif.load(payload)
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not reject an otherwise good photo
        return 1
    return value if 1 <= value <= 8 else 1


def _probe_jpeg(data: bytes) -> ImageInfo:
    n = len(data)
    i = 2
    size: tuple[int, int] | None = None
    orientation = 1
    for _ in range(_MAX_SEGMENTS):
        if i + 4 > n:
            raise _truncated("JPEG")
        if data[i] != 0xFF:
            raise _corrupt("JPEG", "bad marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # stand-alone markers
            i += 2
            continue
        if marker == 0xD9:
            raise _corrupt("JPEG", "no image data")
        length = struct.unpack_from(">H", data, i + 2)[0]
        end = i + 2 + length
        if length < 2 or end > n:
            raise _truncated("JPEG")
        segment = data[i + 4 : end]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and orientation == 1:
            orientation = _orientation_from_exif(segment)
        elif marker in _SOF_MARKERS and size is None and len(segment) >= 5:
            h, w = struct.unpack_from(">HH", segment, 1)
            size = (w, h)
        elif marker == 0xDA:  # start of scan: the entropy-coded data follows
            if size is None or size[0] == 0 or size[1] == 0:
                raise _corrupt("JPEG", "no frame size")
            # Inside scan data 0xFF is always stuffed (FF00) or a restart marker, so FFD9
            # after the first scan is the end-of-image marker; without it the file was cut.
            if data.rfind(b"\xff\xd9") < end:
                raise _truncated("JPEG")
            return ImageInfo("jpeg", size[0], size[1], orientation)
        i = end
    raise _corrupt("JPEG", "too many header segments")


def _probe_png(data: bytes) -> ImageInfo:
    n = len(data)
    i = len(_PNG_SIGNATURE)
    size: tuple[int, int] | None = None
    orientation = 1
    for _ in range(_MAX_SEGMENTS):
        if i + 8 > n:
            raise _truncated("PNG")
        length, ctype = struct.unpack_from(">I4s", data, i)
        end = i + 12 + length  # length, type, data, CRC
        if end > n:
            raise _truncated("PNG")
        if size is None:
            if ctype != b"IHDR" or length < 8:
                raise _corrupt("PNG", "no IHDR header")
            size = struct.unpack_from(">II", data, i + 8)
            if size[0] == 0 or size[1] == 0:
                raise _corrupt("PNG", "zero size")
        elif ctype == b"eXIf":
            orientation = _orientation_from_exif(b"Exif\x00\x00" + data[i + 8 : i + 8 + length])
        elif ctype == b"IEND":
            return ImageInfo("png", size[0], size[1], orientation)
        i = end
    raise _corrupt("PNG", "too many chunks")


def _probe_webp(data: bytes) -> ImageInfo:
    n = len(data)
    riff_size = struct.unpack_from("<I", data, 4)[0]
    if riff_size + 8 > n:
        raise _truncated("WebP")
    i = 12
    size: tuple[int, int] | None = None
    orientation = 1
    for _ in range(_MAX_SEGMENTS):
        if i + 8 > riff_size + 8:
            break
        ctype, length = struct.unpack_from("<4sI", data, i)
        body = data[i + 8 : i + 8 + length]
        if len(body) < length:
            raise _truncated("WebP")
        if ctype == b"VP8X" and length >= 10:
            w = int.from_bytes(body[4:7], "little") + 1
            h = int.from_bytes(body[7:10], "little") + 1
            size = (w, h)
        elif ctype == b"VP8 " and size is None and length >= 10:
            if body[3:6] != b"\x9d\x01\x2a":
                raise _corrupt("WebP", "bad VP8 frame")
            w, h = struct.unpack_from("<HH", body, 6)
            size = (w & 0x3FFF, h & 0x3FFF)
        elif ctype == b"VP8L" and size is None and length >= 5:
            if body[0] != 0x2F:
                raise _corrupt("WebP", "bad VP8L header")
            bits = int.from_bytes(body[1:5], "little")
            size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif ctype == b"EXIF":
            payload = bytes(body)
            if not payload.startswith(b"Exif\x00\x00"):
                payload = b"Exif\x00\x00" + payload
            orientation = _orientation_from_exif(payload)
        i += 8 + length + (length & 1)
    else:
        raise _corrupt("WebP", "too many chunks")
    if size is None or size[0] == 0 or size[1] == 0:
        raise _corrupt("WebP", "no image size")
    return ImageInfo("webp", size[0], size[1], orientation)


def probe_image(data: bytes) -> ImageInfo:
    """Format, stored size and EXIF orientation from the headers alone (no pixel decoding).

    Raises PipelineError ``empty``, ``not_an_image`` (unknown format or broken header) or
    ``truncated`` (the container ends before its end marker / declared size).
    """
    if not data:
        raise PipelineError("empty", "The upload is empty (0 bytes).")
    if data.startswith(b"\xff\xd8\xff"):
        return _probe_jpeg(data)
    if data.startswith(_PNG_SIGNATURE):
        return _probe_png(data)
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _probe_webp(data)
    if data.startswith(b"\xff\xd8") or _PNG_SIGNATURE.startswith(data[:8]):
        raise _truncated("image")
    raise PipelineError("not_an_image", "Not a JPEG, PNG or WebP image.")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the upright photo (EXIF orientation applied), from headers only."""
    return probe_image(data).upright_size


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate / mirror pixels so that an image with EXIF orientation 1-8 becomes upright."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(image), -1)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


def _decode_with_pillow(data: bytes, info: ImageInfo, *, gray: bool, reduce: int) -> np.ndarray:
    """Fallback for files OpenCV's codecs refuse although the headers are sound (e.g. 1x1
    lossless WebP): Pillow decodes them, or the file really is damaged."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("L" if gray else "RGB")
    except OSError as exc:
        if "truncated" in str(exc):
            raise _truncated(info.format.upper()) from exc
        raise _corrupt(info.format.upper(), "the pixel data cannot be decoded") from exc
    pixels = np.asarray(rgb)
    if not gray:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if reduce > 1:
        w, h = -(-info.width // reduce), -(-info.height // reduce)
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels)


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce: int = 1,
    gray: bool = False,
) -> np.ndarray:
    """Decode JPEG / PNG / WebP bytes into an upright uint8 image (BGR, or 2-D when ``gray``).

    Raises PipelineError: ``empty``, ``too_large`` (more than ``max_bytes``),
    ``too_many_pixels`` (header claims more than ``max_pixels``; checked before decoding),
    ``not_an_image``, ``truncated``.

    ``reduce`` (1, 2, 4 or 8) asks libjpeg to decode at 1/n scale straight from the DCT
    coefficients: a 12 MP JPEG decodes in ~118 ms at full size and several times faster at 1/2
    or 1/4. It is opt-in because barcodes need full resolution (>= 3 px per module); callers
    that only need a preview or detector-sized picture should use it. For PNG / WebP OpenCV
    decodes fully and then downsizes, so there is no speed gain there. The pixel limit applies
    to the stored size, whatever ``reduce`` is, since that is what the decoder touches.
    """
    if reduce not in _REDUCED_COLOR:
        raise ValueError(f"reduce must be 1, 2, 4 or 8, not {reduce}")
    if not data:
        raise PipelineError("empty", "The upload is empty (0 bytes).")
    if len(data) > max_bytes:
        raise PipelineError(
            "too_large",
            f"The upload is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.",
        )
    info = probe_image(data)
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise PipelineError(
            "too_many_pixels",
            f"The image is {info.width}x{info.height} ({pixels / 1e6:.0f} MP); "
            f"the limit is {max_pixels / 1e6:.0f} MP.",
        )
    flags = (_REDUCED_GRAY if gray else _REDUCED_COLOR)[reduce] | cv2.IMREAD_IGNORE_ORIENTATION
    # OpenCV's WebP reader needs >= 32 bytes and logs an error below that (tiny lossless files).
    opencv_ok = not (info.format == "webp" and len(data) < 32)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if opencv_ok else None
    if image is None:
        image = _decode_with_pillow(data, info, gray=gray, reduce=reduce)
    return apply_orientation(image, info.orientation)
