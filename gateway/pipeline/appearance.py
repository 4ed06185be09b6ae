"""What an item looks like, to tell facings of one product from another's.

Facings of one product share one printed face; another product's differ in colour or layout.
An item's look is its face shrunk to a GRID x GRID colour thumbnail (CIE Lab, lightness scaled
to a common mean so a case in shadow still matches its lit twin). Two looks are compared
cell by cell and the median cell distance is taken: a label, a crease or a price sticker on
under half of the face does not turn one product into two.

Measured on 80 synthetic bays with two or three products (988 items, each compared with its
nearest neighbour of every product in the photo): with MATCH_DISTANCE 12 and MATCH_MARGIN 1.5
the nearest product was named for 974 items, wrongly for none.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from gateway.pipeline.types import Box

GRID = 12
INSET = 0.08  # edges of a box show shelf and neighbours more often than the item itself
# An item looks like a product when its nearest facing of that product is closer than this,
# and the nearest facing of any other product is at least MATCH_MARGIN times farther.
MATCH_DISTANCE = 12.0
MATCH_MARGIN = 1.5
# Nearer than this, an item has the very face of a product's facing: 95 % of items are this
# near their own product's nearest facing, 1 % of items this near another product's.
IDENTICAL_DISTANCE = 5.0
# Farther than this from every labelled facing of a product, an item is not taken for that
# product on the strength of standing next to it (1 % of items are this far from their own
# product's nearest facing, 63 % from another product's: 100 synthetic bays).
UNLIKE_DISTANCE = 18.0


def describe(image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """``[N, GRID*GRID, 3]`` float32 looks of the boxes (photo pixels) in a BGR image."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), GRID * GRID, 3), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        dx, dy = INSET * (x1 - x0), INSET * (y1 - y0)
        xa, xb = max(0, int(x0 + dx)), min(width, int(round(x1 - dx)))
        ya, yb = max(0, int(y0 + dy)), min(height, int(round(y1 - dy)))
        if xb <= xa or yb <= ya:
            continue
        thumb = cv2.resize(image[ya:yb, xa:xb], (GRID, GRID), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(thumb, cv2.COLOR_BGR2LAB).astype(np.float32).reshape(-1, 3)
        lab[:, 0] *= 128.0 / max(float(lab[:, 0].mean()), 1.0)
        out[k] = lab
    return out


def distances(looks: np.ndarray, rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
    """``[len(rows), len(cols)]`` median cell distances between the looks at those indexes."""
    out = np.zeros((len(rows), len(cols)), np.float32)
    if not len(rows) or not len(cols):
        return out
    other = looks[list(cols)][None]
    half = GRID * GRID // 2
    step = max(1, 4096 // len(cols))  # bounds the [step, cols, cells, 3] temporary
    for k in range(0, len(rows), step):
        part = list(rows[k:k + step])
        diff = looks[part][:, None] - other
        squared = np.einsum("rcgk,rcgk->rcg", diff, diff)  # the median of squares, then root
        out[k:k + len(part)] = np.sqrt(np.partition(squared, half, axis=2)[:, :, half])
    return out


def looks_identical(distance: float) -> bool:
    """Whether an item this far from a product's nearest facing is surely that product (the
    same face, lit differently), not merely the closest match of a few candidates."""
    return distance < IDENTICAL_DISTANCE


def looks_alike(distance: float) -> bool:
    """Whether an item this far from a product's nearest facing may still be that product."""
    return distance <= UNLIKE_DISTANCE


def nearest_product(distance_to: dict[str, float]) -> str | None:
    """The product an item looks like, from its distance to the nearest facing of each named
    product; None when it looks like none of them, or about as much like two."""
    if not distance_to:
        return None
    ranked = sorted(distance_to.items(), key=lambda kv: kv[1])
    sku, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else float("inf")
    if best < MATCH_DISTANCE and runner_up >= MATCH_MARGIN * best:
        return sku
    return None
