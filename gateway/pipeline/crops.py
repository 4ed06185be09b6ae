"""Codes read from full-resolution crops sent beside a reduced photo.

On a slow link the phone sends its photo at a reduced size, enough to count, and cuts the
places where it saw codes out of the full photo (issue 12): small codes that the reduced
pixels no longer resolve are read here, from those crops, and join the photo's own reads with
their boxes in the photo's pixels. A crop adds only codes: the count, the boxes and the rows
still come from the photo the walker saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .codes import read_codes
from .types import Box, Code, PipelineError

log = logging.getLogger("shelfcount.pipeline")


@dataclass(frozen=True)
class Crop:
    """A part of the full photo: where it lies there (x1, y1, x2, y2 in full-photo pixels),
    the full photo's (width, height) and the part's JPEG."""

    box: Box
    full: tuple[int, int]
    jpeg: bytes


def codes_from_crops(crops: Sequence[Crop], width: int, height: int,
                     decode_gray: Callable[[bytes], np.ndarray]) -> list[Code]:
    """Every code read in the crops, its box in the pixels of a (``width`` x ``height``)
    version of the photo."""
    out: list[Code] = []
    for crop in crops:
        try:
            gray = decode_gray(crop.jpeg)
        except PipelineError as exc:  # a crop only adds codes: the photo is counted without it
            log.warning("code crop skipped: %s", exc.message)
            continue
        x1, y1, x2, y2 = crop.box
        kx, ky = (x2 - x1) / gray.shape[1], (y2 - y1) / gray.shape[0]
        sx, sy = width / crop.full[0], height / crop.full[1]
        for code in read_codes(gray):
            a, b, c, d = code.box
            out.append(replace(code, box=((x1 + a * kx) * sx, (y1 + b * ky) * sy,
                                          (x1 + c * kx) * sx, (y1 + d * ky) * sy)))
    return out


def _same(a: Code, b: Code) -> bool:
    """One code read twice: the same text where one box holds the other's centre."""
    if a.text != b.text:
        return False
    cx, cy = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
    return a.box[0] <= cx <= a.box[2] and a.box[1] <= cy <= a.box[3]


def merge_codes(own: list[Code], extra: Sequence[Code]) -> list[Code]:
    """The photo's reads plus the crops' reads of codes it did not read (two crops that
    overlap read a code once)."""
    merged = list(own)
    for code in extra:
        if not any(_same(have, code) or _same(code, have) for have in merged):
            merged.append(code)
    return merged
