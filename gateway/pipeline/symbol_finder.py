"""Where small 2D symbols (DataMatrix, QR) may sit in a large photo, found by their look.

Why: on a shelf photo a carton label's DataMatrix often has modules of about 2 px, below what
zxing-cpp's detector finds in a whole photo (it reads ~3 px and up), yet the same symbol cut
out and enlarged 3x decodes (41 of 42 on a generated bay, against 2 of 42 in place). Enlarging
the whole photo would cost ~1 s; enlarging only the few places that look like a symbol costs
tens of ms. A 2D symbol is a solid square of dense black/white edges: in the half-size
morphological gradient it is a filled blob, where text is strokes and cartons are sparse.
Two shapes are taken: blobs that are solid squares on their own, and the solid cores
(distance transform) of blobs that touch a text line printed close above or below.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

EDGE = 50  # gradient (grey levels) that counts as an edge
CORE = 4  # half-size px from the nearest non-edge: inside a symbol, not on a stroke
MAX_CANDIDATES = 64
MIN_STD = 45.0  # grey-level spread inside a symbol (its modules are black and white)


def _solid(bw: np.ndarray) -> Iterator[tuple[int, int, int, int]]:
    n, _, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    for x, y, w, h, area in stats[1:n]:
        if 8 <= w <= 60 and 8 <= h <= 60 and 0.75 <= w / h <= 1.33 and area >= 0.6 * w * h:
            yield int(x), int(y), int(w), int(h)


def _cores(bw: np.ndarray) -> Iterator[tuple[int, int, int, int]]:
    core = (cv2.distanceTransform(bw, cv2.DIST_L2, 3) >= CORE).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    for x, y, w, h, _area in stats[1:n]:
        if 3 <= w <= 50 and 3 <= h <= 50 and 0.6 <= w / h <= 1.6:
            yield int(x) - CORE - 1, int(y) - CORE - 1, int(w) + 2 * CORE + 2, \
                int(h) + 2 * CORE + 2


def _spread(small: np.ndarray, x: int, y: int, w: int, h: int) -> float | None:
    """The grey-level spread inside a candidate, None when it does not look like modules:
    too flat, nearly all dark or all light, or edges mostly one way (a linear barcode's bars,
    which the whole-photo pass reads)."""
    inner = small[y + h // 5:y + h - h // 5, x + w // 5:x + w - w // 5]
    if inner.size == 0 or inner.std() < MIN_STD:
        return None
    dark = float((inner < (int(inner.max()) + int(inner.min())) / 2).mean())
    if not 0.25 <= dark <= 0.75:
        return None
    f = inner.astype(np.float32)
    across = float(np.abs(np.diff(f, axis=1)).mean())
    down = float(np.abs(np.diff(f, axis=0)).mean())
    if min(across, down) < 0.5 * max(across, down):
        return None
    return float(inner.std())


def symbol_boxes(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1, full-size pixels, with a quiet-zone margin) that may hold a
    small 2D symbol; the most contrasted first, at most MAX_CANDIDATES."""
    small = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    grad = cv2.morphologyEx(small, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    _, bw = cv2.threshold(grad, EDGE, 255, cv2.THRESH_BINARY)
    found: list[tuple[float, tuple[int, int, int, int]]] = []
    for x, y, w, h in [*_solid(bw), *_cores(bw)]:
        x, y = max(0, x), max(0, y)
        if _spread(small, x, y, w, h) is None or any(
                abs(x - b[0]) < w // 2 and abs(y - b[1]) < h // 2 for _, b in found):
            continue
        # a symbol is edges through and through: the densest candidates first
        inner = bw[y + h // 5:y + h - h // 5, x + w // 5:x + w - w // 5]
        found.append((float(inner.mean()) / 255, (x, y, w, h)))
    found.sort(key=lambda sb: -sb[0])
    height, width = gray.shape[:2]
    out = []
    for _, (x, y, w, h) in found[:MAX_CANDIDATES]:
        m = max(3, int(0.3 * max(w, h)))
        out.append((max(0, 2 * (x - m)), max(0, 2 * (y - m)), min(width, 2 * (x + w + m)),
                    min(height, 2 * (y + h + m))))
    return out
