"""Per-SKU counts: give each detected item the SKU it most likely is.

Rules, in order (as a person counting a shelf would):
1. the item's own code or label: a labelled box (barcode / SKU text already resolved to a SKU)
   whose centre lies inside the item's box;
2. otherwise its neighbours on the same shelf row: shelves hold runs of the same product, so
   the nearest item in the row (left or right) that carries its own label decides;
3. otherwise the bin's SKU (``default_sku``: the SKU of the bin label's location).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gateway.pipeline.types import Box, Detection

# Two items share a shelf row when their vertical extents overlap by this share of the
# shorter one: items on one shelf stand on the same beam, items on the next do not overlap.
ROW_OVERLAP = 0.5


def _centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _inside(point: tuple[float, float], b: Box) -> bool:
    return b[0] <= point[0] <= b[2] and b[1] <= point[1] <= b[3]


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _own_skus(
    detections: Sequence[Detection], labelled: Sequence[tuple[Box, str]]
) -> list[str | None]:
    """Rule 1. A label inside several (overlapping) boxes belongs to the smallest of them."""
    found: list[list[tuple[float, str]]] = [[] for _ in detections]
    for box, sku in labelled:
        c = _centre(box)
        holders = [i for i, d in enumerate(detections) if _inside(c, d.box)]
        if not holders:
            continue
        i = min(holders, key=lambda k: _area(detections[k].box))
        dc = _centre(detections[i].box)
        found[i].append(((c[0] - dc[0]) ** 2 + (c[1] - dc[1]) ** 2, sku))
    out: list[str | None] = []
    for labels in found:
        if not labels:
            out.append(None)
            continue
        votes = Counter(sku for _, sku in labels).most_common()
        top = [sku for sku, n in votes if n == votes[0][1]]
        # Tie between different labels: the one nearest the item's centre.
        out.append(min((d, s) for d, s in labels if s in top)[1])
    return out


def _same_row(a: Box, b: Box) -> bool:
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap >= ROW_OVERLAP * min(a[3] - a[1], b[3] - b[1])


def assign_items(
    detections: Sequence[Detection],
    labelled: Sequence[tuple[Box, str]],
    default_sku: str | None,
) -> list[str | None]:
    """SKU per detection (same order); ``None`` only when no rule applies and there is no
    bin SKU."""
    own = _own_skus(detections, labelled)
    out = list(own)
    for i, d in enumerate(detections):
        if own[i] is not None:
            continue
        cx = _centre(d.box)[0]
        neighbours = [
            (abs(_centre(o.box)[0] - cx), own[j])
            for j, o in enumerate(detections)
            if own[j] is not None and j != i and _same_row(d.box, o.box)
        ]
        out[i] = min(neighbours)[1] if neighbours else default_sku
    return out
