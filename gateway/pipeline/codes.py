"""Stage 2: barcodes and 2D codes from a grayscale photo.

Two engines, because each covers the other's blind spot (measured, see
``shared/notes/ocr-barcodes.md``): zxing-cpp reads every format, is the only one with
DataMatrix/Aztec and reports GS1 properly (symbology ``]C1``/``]d2``, bracketed HRI text);
zbar is the better linear reader in crowded or blurred frames. Both release the GIL, so zbar
runs in a worker thread while zxing runs in the caller's: on two cores the stage costs about
the slower engine, not the sum.

Results are validated before they count (EAN/UPC/ITF-14 check digits, minimum lengths, a
second scan line for zbar-only reads), merged (same content at overlapping places -> one code,
zxing's richer format info kept; same content at distinct places -> distinct codes, because
two cartons of one product are two items) and normalised (GTIN-14, GS1 AIs).

Small images (close-ups, crops) that zxing cannot read get a short ladder of retries
(contrast-limited histogram equalisation, unsharp masking, 2x upscaling) that recovers blurred
and low-contrast photos. Photos from 1080p up get one pass at full resolution (zxing without
the inverted-symbol search and PDF417, zbar on every 2nd scan line): full resolution is where
shelf codes are readable at all (>= 3 px per module), and it is where the time goes (about
330 ms CPU at 12 MP, 80 ms at 1080p, both engines together).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from ctypes import c_void_p, cast, string_at

import cv2
import numpy as np
import zxingcpp
from pyzbar import wrapper as zb
from pyzbar.wrapper import ZBarConfig, ZBarSymbol

from gateway.gtin import expand_upce, gs1_hri, normalize_gtin, parse_gs1
from gateway.pipeline.symbol_finder import symbol_boxes
from gateway.pipeline.types import Box, Code

_F = zxingcpp.BarcodeFormat
# Every format a warehouse label plausibly carries. Codabar, MaxiCode, DX film edge and the
# like are left out: nobody prints them on cartons and they are the usual source of
# false decodes on textured backgrounds.
_ZXING_FORMATS = (
    _F.EAN13, _F.EAN8, _F.UPCA, _F.UPCE, _F.Code128, _F.Code39, _F.Code93, _F.ITF,
    _F.DataBar, _F.DataBarExp, _F.DataBarLtd, _F.PDF417, _F.QRCode, _F.MicroQRCode,
    _F.DataMatrix, _F.Aztec,
)  # fmt: skip
# PDF417 (shipping and ID documents, not product labels) has by far the costliest detector:
# ~150 ms of a ~280 ms zxing pass on a 12 MP shelf photo (the 15 other formats together cost
# ~130 ms). Large photos skip it; close-ups and crops still read it.
_ZXING_FORMATS_LARGE = tuple(f for f in _ZXING_FORMATS if f != _F.PDF417)
# zbar only for the linear codes it reads best. Its DataBar reader trips internal assertions,
# its QR reader is weaker than zxing's, its Code 39 produces short garbage on text, and its
# UPC-E misreads fragments of UPC-A symbols (a valid-looking 8-digit code at quality 7 on the
# real-photo set); zxing reads UPC-E reliably on its own.
_ZBAR_SYMBOLS = (
    ZBarSymbol.EAN13, ZBarSymbol.EAN8, ZBarSymbol.UPCA, ZBarSymbol.CODE128, ZBarSymbol.I25,
)  # fmt: skip
_ZXING_NAMES = {
    "EAN-13": "EAN-13", "EAN-8": "EAN-8", "UPC-A": "UPC-A", "UPC-E": "UPC-E",
    "Code 128": "Code128", "Code 39": "Code39", "Code 39 Standard": "Code39",
    # zxing-cpp 3 names the Code 39 variants it recognises (full ASCII, the Italian and
    # German pharmacy codes, check digits validated); older releases called them all Code 39,
    # and unnamed here they were dropped.
    "Code 39 Extended": "Code39Ext", "Code 32": "Code32", "Pharmazentralnummer": "PZN",
    "Code 93": "Code93", "ITF": "ITF",
    "DataBar": "DataBar", "DataBar Expanded": "DataBarExpanded",
    "DataBar Limited": "DataBarLimited", "PDF417": "PDF417", "QR Code": "QRCode",
    "Micro QR Code": "MicroQRCode", "Data Matrix": "DataMatrix", "Aztec": "Aztec",
}  # fmt: skip
_ZBAR_NAMES = {
    "EAN13": "EAN-13", "EAN8": "EAN-8", "UPCA": "UPC-A", "UPCE": "UPC-E",
    "CODE128": "Code128", "I25": "ITF",
}  # fmt: skip
# Symbologies that one engine may read where the other read the same symbol differently.
_FAMILY = {"UPC-A": "EANUPC", "UPC-E": "EANUPC", "EAN-13": "EANUPC", "EAN-8": "EANUPC",
           "GS1-128": "Code128"}  # fmt: skip
_RETAIL = frozenset({"EAN-13", "EAN-8", "UPC-A", "UPC-E"})
_MIN_LENGTH = {"Code128": 3, "Code39": 3, "Code39Ext": 3, "Code93": 3, "ITF": 6}

# From 1080p up an image is a shelf photo: one fast pass at full resolution (no inverted
# search, no PDF417, zbar on every 2nd scan line). Below (close-ups, crops) the engines
# search exhaustively.
LARGE_PIXELS = 2_000_000
# Images up to this size where nothing decodes get the retry ladder (a few ms each on a
# close-up crop; on a code-less 1080p frame it would cost ~150 ms for nothing).
RETRY_MAX_PIXELS = 1_300_000
_UPSCALE_MAX_PIXELS = 500_000

_zbar_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zbar")


def _box(points: Iterable[tuple[float, float]], scale: float,
         offset: tuple[float, float] = (0.0, 0.0)) -> Box:
    xs, ys = zip(*points, strict=True)
    ox, oy = offset
    return (ox + min(xs) / scale, oy + min(ys) / scale, ox + max(xs) / scale,
            oy + max(ys) / scale)


def _finish(fmt: str, text: str, box: Box, engine: str, gs1: bool) -> Code | None:
    """Validate one raw read and fill GTIN / AIs; None for reads that must not count."""
    if not text:
        return None
    if fmt in _RETAIL:
        if not text.isdigit():
            return None
        if fmt == "UPC-E" and len(text) == 8:
            upca = expand_upce(text)
            return None if upca is None else Code(fmt, text, box, engine, normalize_gtin(upca))
        gtin = normalize_gtin(text)
        if gtin is None:
            return None
        if fmt == "EAN-13" and text.startswith("0"):  # an EAN-13 with a leading 0 IS a UPC-A
            fmt, text = "UPC-A", text[1:]
        elif fmt == "UPC-A":
            text = gtin[2:]
        return Code(fmt, text, box, engine, gtin)
    if len(text) < _MIN_LENGTH.get(fmt, 1):
        return None
    if fmt == "ITF":
        if not text.isdigit() or len(text) % 2:
            return None
        gtin = normalize_gtin(text) if len(text) == 14 else None
        if engine == "zbar" and gtin is None:  # zbar's I25 alone is too trigger-happy
            return None
        return Code(fmt, text, box, engine, gtin)
    ais = parse_gs1(text) if gs1 else {}
    if ais:
        text = gs1_hri(ais)  # the form printed under the symbol: (01)...(17)...
        if fmt == "Code128":
            fmt = "GS1-128"
    gtin = normalize_gtin(ais["01"]) if "01" in ais else None
    return Code(fmt, text, box, engine, gtin, ais)


def _zxing(gray: np.ndarray, scale: float = 1.0, *, formats: tuple | None = None,
           offset: tuple[float, float] = (0.0, 0.0)) -> list[Code]:
    """zxing's reads of ``gray`` (an image ``scale`` times the photo's size, its top-left
    corner at ``offset`` in the photo), boxes in photo pixels."""
    out = []
    # Plain text: raw content with GS/RS separators intact (HRI mode would turn ISO 15434
    # separators into visible symbols); GS1 content is turned into HRI by _finish.
    # Inverted (light-on-dark) symbols are searched only in small images: shelf labels are
    # dark on light and the inverted search costs ~20 % of a 12 MP pass.
    large = gray.size > LARGE_PIXELS
    reads = zxingcpp.read_barcodes(
        gray,
        formats=formats or (_ZXING_FORMATS_LARGE if large else _ZXING_FORMATS),
        text_mode=zxingcpp.TextMode.Plain,
        try_invert=not large,
    )
    for r in reads:
        fmt = _ZXING_NAMES.get(str(r.format))
        if fmt is None or not r.valid:
            continue
        p = r.position
        points = [(q.x, q.y) for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
        gs1 = r.content_type == zxingcpp.ContentType.GS1
        text = r.text
        if fmt == "UPC-E":  # zxing's text is the expanded EAN-13; the printed code is in extra
            text = str((r.extra or {}).get("UPCE", text))
        code = _finish(fmt, text, _box(points, scale, offset), "zxing", gs1)
        if code is not None:
            out.append(code)
    return out


_ZBAR_Y800 = 0x30303859  # fourcc "Y800": 8-bit grayscale
_ZBAR_CFG_X_DENSITY = 0x100  # scan every n-th column / row (zbar.h)
_ZBAR_CFG_Y_DENSITY = 0x101
# Scan-line spacing on large photos. A code needs ~30 px of bar height to be printable at all,
# so every 2nd line still crosses it a dozen times; it halves zbar's time at 12 MP.
ZBAR_DENSITY_LARGE = 2


def _zbar_symbols(gray: np.ndarray, density: int) -> list[tuple[str, bytes, int, list]]:
    """(type name, data, quality, polygon) for every symbol zbar finds.

    Calls libzbar through pyzbar's ctypes bindings rather than ``pyzbar.decode`` because the
    latter cannot set the scan density. ctypes releases the GIL for the scan.
    """
    scanner = zb.zbar_image_scanner_create()
    image = zb.zbar_image_create()
    try:
        zb.zbar_image_scanner_set_config(scanner, 0, ZBarConfig.CFG_ENABLE, 0)
        for sym in _ZBAR_SYMBOLS:
            zb.zbar_image_scanner_set_config(scanner, sym, ZBarConfig.CFG_ENABLE, 1)
        zb.zbar_image_scanner_set_config(scanner, 0, _ZBAR_CFG_X_DENSITY, density)
        zb.zbar_image_scanner_set_config(scanner, 0, _ZBAR_CFG_Y_DENSITY, density)
        pixels = gray.tobytes()
        zb.zbar_image_set_format(image, _ZBAR_Y800)
        zb.zbar_image_set_size(image, gray.shape[1], gray.shape[0])
        zb.zbar_image_set_data(image, cast(pixels, c_void_p), len(pixels), None)
        if zb.zbar_scan_image(scanner, image) < 0:
            return []
        out = []
        symbol = zb.zbar_image_first_symbol(image)
        while symbol:
            length = zb.zbar_symbol_get_data_length(symbol)
            data = string_at(zb.zbar_symbol_get_data(symbol), length)
            n = zb.zbar_symbol_get_loc_size(symbol)
            polygon = [
                (zb.zbar_symbol_get_loc_x(symbol, k), zb.zbar_symbol_get_loc_y(symbol, k))
                for k in range(n)
            ]
            try:
                name = ZBarSymbol(symbol.contents.type).name
            except ValueError:
                name = ""
            out.append((name, data, zb.zbar_symbol_get_quality(symbol), polygon))
            symbol = zb.zbar_symbol_next(symbol)
        return out
    finally:
        zb.zbar_image_destroy(image)
        zb.zbar_image_scanner_destroy(scanner)


def _zbar(gray: np.ndarray, scale: float = 1.0, density: int | None = None) -> list[Code]:
    if density is None:
        density = ZBAR_DENSITY_LARGE if gray.size > LARGE_PIXELS else 1
    out = []
    for name, data, quality, polygon in _zbar_symbols(gray, density):
        fmt = _ZBAR_NAMES.get(name)
        # quality = number of scan lines that agreed; one lonely line is how zbar misreads
        # printed text and textures as short codes.
        if fmt is None or quality < 2 or not polygon:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        code = _finish(fmt, text.replace("\x1d", ""), _box(polygon, scale), "zbar", gs1=False)
        if code is not None:
            out.append(code)
    return out


def _key(code: Code) -> str:
    """What two reads of the same symbol share across engines (zbar has no GS1 HRI)."""
    if code.gtin and code.format in _RETAIL:
        return code.gtin
    if code.ai:
        return "".join(ai + value for ai, value in code.ai.items())
    return code.text


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _same_place(a: Code, b: Code) -> bool:
    """Whether two reads are the same printed symbol.

    Within one engine only a real overlap counts: an engine never reports one symbol twice in
    one pass, and identical codes side by side (two cartons of one product) must stay two.
    Across engines the outlines differ (zbar draws around the scan lines that decoded, zxing
    around the bars), so the centre of either box inside the other, grown by 15 %, counts.
    """
    if a.engine == b.engine:
        return _iou(a.box, b.box) > 0.3

    def inside(p: Box, q: Box) -> bool:
        cx, cy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
        m = 0.15 * max(q[2] - q[0], q[3] - q[1]) + 3
        return q[0] - m <= cx <= q[2] + m and q[1] - m <= cy <= q[3] + m

    return inside(a.box, b.box) or inside(b.box, a.box)


def _merge(codes: Iterable[Code]) -> list[Code]:
    """One code per printed symbol: zxing reads first (richer format info), then zbar reads
    that add a symbol zxing missed. A zbar read at the place of a zxing read of the same
    symbology family but with other content is a misread by one of them; zxing's stricter read
    (quiet-zone and guard checks) wins."""
    ordered = sorted(codes, key=lambda c: c.engine != "zxing")
    kept: list[Code] = []
    for code in ordered:
        family = _FAMILY.get(code.format, code.format)
        if not any(
            _same_place(code, other)
            and (_key(code) == _key(other) or family == _FAMILY.get(other.format, other.format))
            for other in kept
        ):
            kept.append(code)
    return kept


def _sharpen(gray: np.ndarray) -> np.ndarray:
    blur = cv2.GaussianBlur(gray, (0, 0), 2.0)
    return cv2.addWeighted(gray, 1.8, blur, -0.8, 0)


def _upscale(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


def _retry_ladder(gray: np.ndarray) -> list[Code]:
    """Harder attempts, cheapest and most productive first (order measured on the real-photo
    set), stopping at the first that decodes anything."""
    # A CLAHE object keeps scratch buffers between calls: one per call, for thread safety.
    equalised = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    steps: list[Callable[[], list[Code]]] = [
        lambda: _zxing(equalised),
        lambda: _zxing(_sharpen(gray)),
        lambda: _zxing(_sharpen(equalised)),
        lambda: _zbar(equalised),
    ]
    if gray.size <= _UPSCALE_MAX_PIXELS:
        steps += [lambda: _zxing(_upscale(gray), 2.0), lambda: _zbar(_upscale(gray), 2.0)]
    for step in steps:
        found = step()
        if found:
            return found
    return []


# 2D symbols too small for the whole-photo pass: cut out where they may be, enlarged 3x.
_SMALL_FORMATS = (_F.DataMatrix, _F.QRCode, _F.MicroQRCode, _F.Aztec)
SMALL_SYMBOL_ZOOM = 3


def _small_symbols(gray: np.ndarray, known: list[Code]) -> list[Code]:
    """2D codes read from enlarged cut-outs of the places that look like a small symbol
    (gateway.pipeline.symbol_finder), skipping places a code was already read."""
    out: list[Code] = []
    for x0, y0, x1, y1 in symbol_boxes(gray):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if any(c.box[0] <= cx <= c.box[2] and c.box[1] <= cy <= c.box[3]
               for c in (*known, *out)):
            continue
        crop = cv2.resize(gray[y0:y1, x0:x1], None, fx=SMALL_SYMBOL_ZOOM, fy=SMALL_SYMBOL_ZOOM,
                          interpolation=cv2.INTER_CUBIC)
        out += _zxing(crop, SMALL_SYMBOL_ZOOM, formats=_SMALL_FORMATS,
                      offset=(float(x0), float(y0)))
    return out


def read_codes(gray: np.ndarray) -> list[Code]:
    """Every barcode / 2D code in a grayscale (H, W) uint8 image, boxes in its pixels.

    A BGR(A) image is converted first (handed a 3-channel array, zbar would read only its
    first channel, blue in OpenCV's order, where blue-on-white print vanishes), but callers
    that already hold the grayscale should pass it.
    """
    if gray.ndim == 3 and gray.shape[2] in (3, 4):
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY if gray.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"read_codes needs a 2-D uint8 image, got {gray.dtype} {gray.shape}")
    gray = np.ascontiguousarray(gray)
    zbar_job = _zbar_pool.submit(_zbar, gray)
    codes = _zxing(gray) + zbar_job.result()
    # A small image where zxing read nothing is retried, even when zbar read something: a zbar
    # read alone is the least trustworthy (on the real-photo set its one misread sat on a
    # blurred UPC-A that zxing reads after contrast equalisation; the merge then drops it).
    if gray.size <= RETRY_MAX_PIXELS and not any(c.engine == "zxing" for c in codes):
        codes = _retry_ladder(gray) + codes
    if gray.size > LARGE_PIXELS:
        codes = _merge(codes)
        codes += _small_symbols(gray, codes)
    return _merge(codes)


def code_to_json(code: Code) -> dict[str, object]:
    """The client-facing form: ``Format``, ``Text`` (GS1: bracketed HRI) and ``GTIN`` only when
    the code carries one (the exact keys of ``shelfcount codes --format jsonl``)."""
    out: dict[str, object] = {"Format": code.format, "Text": code.text}
    if code.gtin:
        out["GTIN"] = code.gtin
    return out
