"""Per-SKU counts: give each detected item the SKU it most likely is.

Rules, in order (as a person counting a shelf would):
1. the item's own code or label: a labelled box (barcode / SKU text already resolved to a SKU)
   whose centre lies inside the item's box;
2. otherwise its stack: cases piled on top of each other are one product, so the labelled
   cases of the same pile decide (the majority, ties to the nearest);
3. otherwise (a) its look, when it clearly looks like the labelled facings of one product
   (``appearance``), else (b) its neighbours on the same shelf row: shelves hold runs of the
   same product, so the nearest item in the row (left or right) named so far decides, unless
   the item looks nothing like that product's labelled facings (where two products meet) and
   no less like the bin's product (a face without its label looks like nothing labelled, but
   still nearer its own product than another one);
4. otherwise the bin's SKU (``default_sku``: the SKU of the bin label's location).

Rule 4 and rule 3b are guesses, so before settling for them the pipeline reads the labels of a
few items they would name (``orphan_reads``): a shelf of another product whose barcodes are too
small to decode usually still shows its SKU in print.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.pipeline.appearance import (
    distances,
    looks_alike,
    looks_identical,
    nearest_product,
)
from gateway.pipeline.types import Box, Detection

# Two items share a shelf row when their vertical extents overlap by this share of the
# shorter one: items on one shelf stand on the same beam, items on the next do not overlap.
ROW_OVERLAP = 0.5
# One item sits on another (same stack) when their horizontal extents overlap by this share
# of the narrower one and the vertical gap between them is under STACK_GAP of the lower one's
# height: a pile of cases, not the next shelf up (a beam and the space above goods are taller).
STACK_OVERLAP = 0.6
STACK_GAP = 0.25


def _centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _inside(point: tuple[float, float], b: Box) -> bool:
    return b[0] <= point[0] <= b[2] and b[1] <= point[1] <= b[3]


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5


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


def stacks(detections: Sequence[Detection]) -> list[int]:
    """Stack id per detection: connected components of "sits directly on" (the horizontal
    extents overlap by STACK_OVERLAP of the narrower box, and the vertical gap between them is
    under STACK_GAP of the lower one's height)."""
    n = len(detections)
    parent = list(range(n))
    if n < 2:
        return parent
    b = np.asarray([d.box for d in detections], np.float64)
    x0, y0, x1, y1 = b[:, 0:1], b[:, 1:2], b[:, 2:3], b[:, 3:4]
    x_overlap = np.minimum(x1, x1.T) - np.maximum(x0, x0.T)
    narrower = np.minimum(x1 - x0, (x1 - x0).T)
    above = y0 < y0.T  # [i, j]: item i is the upper one
    gap = np.where(above, y0.T - y1, y0 - y1.T)  # the lower one's top minus the upper's bottom
    lower_h = np.where(above, (y1 - y0).T, y1 - y0)
    on = ((x_overlap >= STACK_OVERLAP * narrower) & (gap > -0.5 * lower_h)
          & (gap < STACK_GAP * lower_h))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(on, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    return [root(i) for i in range(n)]


@dataclass(frozen=True)
class Naming:
    """What rules 1-3 made of one photo's items, computed once and read by both the count
    (``skus``) and the choice of labels worth reading (``orphan_reads``)."""

    named: list[str | None]  # rules 1-3, None where none applies
    sure: list[bool]  # named off its own label or pile, or a product it looks just like
    stack_of: list[int]  # stack id per item (``stacks``)
    default_sku: str | None  # rule 4: the bin's SKU

    @property
    def skus(self) -> list[str | None]:
        """SKU per item; ``None`` only when no rule applies and there is no bin SKU."""
        return [sku if sku is not None else self.default_sku for sku in self.named]


def name_items(
    detections: Sequence[Detection],
    labelled: Sequence[tuple[Box, str]],
    looks: np.ndarray | None = None,
    default_sku: str | None = None,
) -> Naming:
    """Rules 1-4: the SKU each item is named by its label, its stack, its look or its row
    (else the bin's), and whether that name is sure: read off its own label or pile, or taken
    from a product it looks just like, rather than from standing next to it or a loose likeness.
    ``looks``: the items' looks (``appearance.describe``), same order as ``detections``.

    Rules 2 and 3 repeat until nothing changes: a pile whose bottom case was named by its row
    names the cases on top of it, and those name their own row. The look rule compares only
    with items named by a label or their pile, so a look never vouches for another look.
    """
    named = _own_skus(detections, labelled)
    read = [sku is not None for sku in named]  # named by a label or a labelled pile
    sure = list(read)
    stack_of = stacks(detections)
    while True:
        before = list(named)
        for i, d in enumerate(before):  # rule 2
            if d is not None:
                continue
            pile = [(j, s) for j, s in enumerate(before)
                    if s is not None and stack_of[j] == stack_of[i]]
            if pile:
                named[i] = _vote(detections[i].box, [(detections[j].box, s) for j, s in pile])
                read[i] = all(read[j] for j, _ in pile)
                sure[i] = all(sure[j] for j, _ in pile)
        nearest: dict[int, dict[str, float]] = {}  # item -> product -> nearest facing
        if looks is not None:  # rule 3a: looks like the facings of one named product
            anchors = [j for j, s in enumerate(named) if s is not None and read[j]]
            unnamed = [i for i, s in enumerate(named) if s is None]
            table = distances(looks, unnamed, anchors)
            for row, i in zip(table, unnamed, strict=True):
                near = nearest.setdefault(i, {})
                for j, dist in zip(anchors, row, strict=True):
                    sku = str(named[j])
                    near[sku] = min(near.get(sku, float("inf")), float(dist))
                named[i] = nearest_product(near)
                sure[i] = named[i] is not None and looks_identical(near[named[i]])
        stacked = list(named)
        for i, d in enumerate(detections):  # rule 3b
            if stacked[i] is not None:
                continue
            cx = _centre(d.box)[0]
            near = nearest.get(i, {})
            # Unseen bin product: it may be this one, so an unlike neighbour must not spread.
            fallback = near.get(default_sku, float("-inf")) if default_sku else float("-inf")
            unlike = {sku for sku, dist in near.items()
                      if not looks_alike(dist) and dist >= fallback}
            neighbours = [
                (abs(_centre(o.box)[0] - cx), stacked[j])
                for j, o in enumerate(detections)
                if stacked[j] is not None and j != i and _same_row(d.box, o.box)
                and stacked[j] not in unlike
            ]
            if neighbours:
                named[i] = min(neighbours)[1]
        if named == before:
            return Naming(named, sure, stack_of, default_sku)


def _vote(box: Box, named: Sequence[tuple[Box, str]]) -> str:
    """The majority SKU of ``named``; a tie goes to the one nearest ``box``."""
    votes = Counter(sku for _, sku in named).most_common()
    top = {sku for sku, n in votes if n == votes[0][1]}
    return min((_distance(box, b), s) for b, s in named if s in top)[1]


def orphan_reads(
    detections: Sequence[Detection], naming: Naming, max_reads: int, min_side: float
) -> list[int]:
    """Items worth OCR-ing for their label: those rules 1-3 leave unnamed or name without
    being sure (``naming.sure``), a product's whose codes were too small to decode, say.

    The largest readable one first (it reads best), then each time the one farthest from all
    picked so far, one per stack (a read names the whole pile): spread-out reads tell a shelf
    of one product from one where two products meet, and the rules name the rest from them.
    Items with a side under ``min_side`` pixels carry print too small to read.
    """
    stack_of = naming.stack_of
    readable = [
        i for i, ok in enumerate(naming.sure)
        if not ok and min(detections[i].box[2] - detections[i].box[0],
                          detections[i].box[3] - detections[i].box[1]) >= min_side
    ]
    if not readable or max_reads < 1:
        return []
    picks = [max(readable, key=lambda k: _area(detections[k].box))]
    while len(picks) < max_reads:
        used = {stack_of[p] for p in picks}
        left = [i for i in readable if stack_of[i] not in used]
        if not left:
            break
        picks.append(max(left, key=lambda i: min(
            _distance(detections[i].box, detections[p].box) for p in picks)))
    return picks
