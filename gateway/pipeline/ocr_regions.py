"""Where OCR pays: pick the few image regions worth sending to the OCR model.

Whole-photo OCR of a shelf costs seconds on a CPU (notes/ocr-barcodes.md); almost everything a
count needs from text sits on the labels that carry the codes. So OCR gets, per SKU, at most a
couple of label crops around that SKU's codes (for expiry dates and SKU text), and the whole
photo, downscaled, only when no bin-label code told us the location or no item code was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gateway.pipeline.types import Box

LABELS_PER_SKU = 2
CROP_MAX_SIDE = 640
OVERVIEW_MAX_SIDE = 1280
# A detected item narrower than this (short side, pixels) is enlarged, at most ITEM_MAX_UPSCALE
# times, before OCR: the text detector misses labels with capitals of ~6 px that it finds at
# twice the size (measured on 1080p bays: 0 of 10 such labels read as cut, 10 of 10 at x2).
# The short side, because a bottle's label is as small as the bottle is narrow.
ITEM_READ_SIDE = 200
ITEM_MAX_UPSCALE = 2.0


@dataclass(frozen=True)
class Region:
    """A crop sent to OCR and how to map its text boxes back onto the photo."""

    purpose: str  # "label" (around an item code), "item" (a detected item) or "overview"
    sku: str | None  # SKU of the code the label carries, when known
    box: Box  # the crop in photo pixels
    scale: float  # crop pixels per photo pixel (> 1 for an enlarged small item)
    image: np.ndarray

    def to_photo(self, box: Box) -> Box:
        x0, y0, _, _ = self.box
        s = self.scale
        return (x0 + box[0] / s, y0 + box[1] / s, x0 + box[2] / s, y0 + box[3] / s)


def label_box(code_box: Box, width: int, height: int) -> Box:
    """The label around a barcode: text sits beside, above or below it, so grow the box."""
    x0, y0, x1, y1 = code_box
    w, h = x1 - x0, y1 - y0
    grow_x = 0.35 * w
    grow_y = max(1.2 * h, 0.45 * w)
    return (
        max(0.0, x0 - grow_x),
        max(0.0, y0 - grow_y),
        min(float(width), x1 + grow_x),
        min(float(height), y1 + grow_y),
    )


def crop(
    image: np.ndarray, box: Box, max_side: int, purpose: str, sku: str | None,
    min_side: int = 0, max_upscale: float = 1.0,
) -> Region:
    """The part of ``image`` under ``box``, its long side shrunk to ``max_side`` or, when its
    short side is under ``min_side``, enlarged towards it by at most ``max_upscale``."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    part = image[y0:y1, x0:x1]
    side = max(part.shape[:2]) if part.size else 1
    short = min(part.shape[:2]) if part.size else 1
    scale = min(1.0, max_side / side)
    if short < min_side:
        scale = min(max_upscale, min_side / short, max_side / side)
    if scale < 1.0:
        part = cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    elif scale > 1.0:
        part = cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return Region(purpose, sku, (float(x0), float(y0), float(x1), float(y1)), scale,
                  np.ascontiguousarray(part))


def choose_regions(
    image: np.ndarray,
    item_codes: list[tuple[Box, str | None]],
    need_overview: bool,
    items: list[Box] | None = None,
) -> list[Region]:
    """Label crops (a few per SKU, largest first: they read best), whole detected items whose
    code could not be read, and an optional overview of the whole photo."""
    height, width = image.shape[:2]
    regions: list[Region] = []
    per_sku: dict[str | None, int] = {}
    by_size = sorted(item_codes, key=lambda c: -(c[0][2] - c[0][0]) * (c[0][3] - c[0][1]))
    for box, sku in by_size:
        if per_sku.get(sku, 0) >= LABELS_PER_SKU:
            continue
        per_sku[sku] = per_sku.get(sku, 0) + 1
        regions.append(crop(image, label_box(box, width, height), CROP_MAX_SIDE, "label", sku))
    for box in items or []:
        regions.append(crop(image, box, CROP_MAX_SIDE, "item", None,
                            ITEM_READ_SIDE, ITEM_MAX_UPSCALE))
    if need_overview:
        whole = (0.0, 0.0, float(width), float(height))
        regions.append(crop(image, whole, OVERVIEW_MAX_SIDE, "overview", None))
    return regions
