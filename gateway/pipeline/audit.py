"""The shelf audit: what is wrong with a bay, from the boxes its count already found.

Runs after fuse on the count's own item boxes (no extra model call), so it costs
milliseconds. The boxes are grouped into shelf rows (a stack's levels touch, shelves are
parted by a beam), each row into columns (one facing: an item or a stack of them). Against
the bay's plan (a planogram, else the catalog's home SKU: one SKU per bin) that gives:

- ``gap``: an empty stretch of a shelf where a facing should stand (a planned slot with no
  column; without a planogram, space between columns at least one facing wide);
- ``misplaced``: an item whose own code or label names another SKU than its slot's (or the
  bin's);
- ``missing``: a planned SKU with no facing;
- ``extra``: an unplanned SKU present (one finding per SKU; its items are ``misplaced`` too).

Only items named by their own code or label count as evidence of a wrong SKU: a SKU guessed
from neighbours or the bin is the plan's own assumption, and flagging it would accuse the
shelf of the pipeline's guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

import numpy as np

from gateway.pipeline.types import Box
from gateway.planogram import BayPlan

# Stack levels touch: boxes whose vertical spans are this close (in item heights) share a row.
ROW_TOLERANCE = 0.05
# A stretch between columns this many facings wide (no planogram) is an empty facing.
MIN_GAP_FACINGS = 0.75
# A column belongs to a planned slot when its centre is this close (in slot widths).
SLOT_MATCH = 0.45
# A shelf's placement is pinned when it fits this much better than any other; a planned slot
# outside the photo costs this much of a match (a weak pull into the frame).
PINNED_MARGIN = 0.3
OUT_OF_FRAME = 0.3
FINDING_TYPES = ("gap", "misplaced", "missing", "extra")


@dataclass(frozen=True)
class Finding:
    """One audit finding, drawn over the photo and carried to the sinks."""

    type: str  # gap / misplaced / missing / extra
    box: Box
    sku: str  # what stands there ("" for a gap or a missing SKU)
    expected_sku: str  # what the plan says ("" where it says nothing)
    confidence: float

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "box": [round(float(v), 1) for v in self.box],
                "sku": self.sku, "expected_sku": self.expected_sku,
                "confidence": round(float(self.confidence), 3)}

    def scaled(self, factor: float) -> Finding:
        return Finding(self.type, (self.box[0] * factor, self.box[1] * factor,
                                   self.box[2] * factor, self.box[3] * factor),
                       self.sku, self.expected_sku, self.confidence)


@dataclass(frozen=True)
class AuditItem:
    """One counted item: its box, its SKU ("" unknown), whether its own code or label named
    it, and how sure the detector was."""

    box: Box
    sku: str
    named: bool
    score: float = 1.0


@dataclass
class _Column:
    items: list[int]
    x0: float
    x1: float

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass
class _Row:
    items: list[int]
    top: float
    bottom: float
    columns: list[_Column] = field(default_factory=list)


@dataclass
class _Slot:
    sku: str
    x0: float
    x1: float
    visible: bool = True  # at least half of it inside the photo: its state can be judged
    columns: list[int] = field(default_factory=list)


def audit_bay(items: Sequence[AuditItem], plan: BayPlan | None, width: int,
              height: int) -> list[Finding]:
    """Every finding for one photo of the bay ``plan`` describes (None: no plan known, so
    nothing to audit against)."""
    if plan is None or not plan.skus:
        return []
    rows = _shelf_rows(items)
    unit = median(b.box[2] - b.box[0] for b in items) if items else 0.0
    findings: list[Finding] = []
    slots: dict[int, list[_Slot]] = {}
    empty: dict[int, Box] = {}
    if plan.planned:
        matched = _match_rows(items, rows, plan.rows)
        slots = _planned_slots(items, rows, plan, matched, unit, width)
        findings += _slot_findings(items, rows, slots)
        empty = _empty_rows(rows, matched, len(plan.rows), width, height)
        findings += [Finding("gap", box, "", _only(plan.rows[p]), 0.8)
                     for p, box in empty.items()]
    else:
        findings += _spacing_gaps(rows, unit, width, plan.skus[0])
        findings += _misplaced(items, range(len(items)), plan.skus[0])
    findings += _extra(items, plan)
    findings += _missing(items, plan, rows, slots, empty, width, height)
    return findings


def _only(skus: Sequence[str]) -> str:
    return skus[0] if skus and len(set(skus)) == 1 else ""


# --------------------------------------------------------------------------------------------
# Geometry: rows and columns


def _shelf_rows(items: Sequence[AuditItem]) -> list[_Row]:
    """Items grouped into shelf rows, top to bottom (vertical spans that touch or overlap)."""
    if not items:
        return []
    tol = ROW_TOLERANCE * median(it.box[3] - it.box[1] for it in items)
    rows: list[_Row] = []
    for i in sorted(range(len(items)), key=lambda k: items[k].box[1]):
        box = items[i].box
        if rows and box[1] <= rows[-1].bottom + tol:
            rows[-1].items.append(i)
            rows[-1].bottom = max(rows[-1].bottom, box[3])
        else:
            rows.append(_Row([i], box[1], box[3]))
    for row in rows:
        row.columns = _columns(items, row.items)
    return rows


def _columns(items: Sequence[AuditItem], members: list[int]) -> list[_Column]:
    """A row's facings left to right: items whose horizontal spans mostly overlap (a stack's
    levels) form one column."""
    cols: list[_Column] = []
    for i in sorted(members, key=lambda k: items[k].box[0] + items[k].box[2]):
        x0, x1 = items[i].box[0], items[i].box[2]
        if cols:
            last = cols[-1]
            overlap = min(last.x1, x1) - max(last.x0, x0)
            if overlap > 0.5 * min(last.x1 - last.x0, x1 - x0):
                last.items.append(i)
                last.x0, last.x1 = min(last.x0, x0), max(last.x1, x1)
                continue
        cols.append(_Column([i], x0, x1))
    return cols


def _spacing(rows: list[_Row], unit: float) -> float:
    """The usual space between neighbouring facings (median of the small ones)."""
    spaces = [b.x0 - a.x1 for r in rows for a, b in zip(r.columns, r.columns[1:], strict=False)
              if -0.2 * unit < b.x0 - a.x1 < 0.5 * unit]
    return max(0.0, median(spaces)) if spaces else 0.05 * unit


# --------------------------------------------------------------------------------------------
# Without a planogram: gaps from the spacing of the facings


def _spacing_gaps(rows: list[_Row], unit: float, width: int, expected: str) -> list[Finding]:
    """Stretches of a shelf at least ``MIN_GAP_FACINGS`` facings wide with nothing on them,
    inside the bay's extent (the widest the rows reach)."""
    if not rows or unit <= 0:
        return []
    left = max(0.0, min(r.columns[0].x0 for r in rows))
    right = min(float(width), max(r.columns[-1].x1 for r in rows))
    space = _spacing(rows, unit)
    out: list[Finding] = []
    for row in rows:
        edges = [(left, left), *((c.x0, c.x1) for c in row.columns), (right, right)]
        for (_, a1), (b0, _) in zip(edges, edges[1:], strict=False):
            empty = b0 - a1 - space
            if empty >= MIN_GAP_FACINGS * unit:
                conf = min(0.95, 0.6 + 0.3 * (empty / unit - MIN_GAP_FACINGS))
                out.append(Finding("gap", (a1, row.top, b0, row.bottom), "", expected, conf))
    return out


def _misplaced(items: Sequence[AuditItem], members: Sequence[int],
               expected: str) -> list[Finding]:
    return [Finding("misplaced", items[i].box, items[i].sku, expected,
                    min(1.0, 0.5 + 0.5 * items[i].score))
            for i in members
            if items[i].named and items[i].sku and items[i].sku.upper() != expected.upper()]


# --------------------------------------------------------------------------------------------
# With a planogram: planned slots laid over each row


def _match_rows(items: Sequence[AuditItem], rows: list[_Row],
                plan_rows: tuple[tuple[str, ...], ...]) -> dict[int, int]:
    """Found row -> planned row, in shelf order, agreeing on the most own-named SKUs (a
    shelf with nothing on it has no found row; a stray box may make a row the plan lacks)."""
    n, m = len(rows), len(plan_rows)
    if n == m:
        return {i: i for i in range(n)}

    def agree(i: int, j: int) -> float:
        planned = {s.upper() for s in plan_rows[j]}
        named = [items[k].sku.upper() for k in rows[i].items if items[k].named]
        return 1.0 + sum(s in planned for s in named) + 0.01 * len(rows[i].items)

    best = np.zeros((n + 1, m + 1))
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best[i, j] = max(best[i - 1, j], best[i, j - 1],
                             best[i - 1, j - 1] + agree(i - 1, j - 1))
    pairs: dict[int, int] = {}
    i, j = n, m
    while i and j:
        if best[i, j] == best[i - 1, j]:
            i -= 1
        elif best[i, j] == best[i, j - 1]:
            j -= 1
        else:
            pairs[i - 1] = j - 1
            i, j = i - 1, j - 1
    return pairs


def _planned_slots(items: Sequence[AuditItem], rows: list[_Row], plan: BayPlan,
                   matched: dict[int, int], unit: float, width: int) -> dict[int, list[_Slot]]:
    """Per found row, the planned facings laid over it where they fit its columns best.

    Two passes: shelves whose columns pin the plan down (one placement fits clearly best)
    give the bay's edges; a shelf of like items with an empty facing at one end fits as well
    shifted by a facing, so it is held to those edges (or, without them, to the photo)."""
    extent = (min(r.columns[0].x0 for r in rows), max(r.columns[-1].x1 for r in rows)) \
        if rows else (0.0, float(width))
    space = _spacing(rows, unit)
    fits: dict[int, _RowFit] = {}
    for r, p in matched.items():
        row = rows[r]
        row_space = _spacing([row], unit) if len(row.columns) > 1 else space
        widths = _slot_widths(items, row, plan.rows[p], _sku_widths(items, row), unit,
                              row_space, extent)
        fits[r] = _RowFit.of(row, plan.rows[p], widths, row_space, width)
    pinned = [f for f in fits.values() if f.margin(unit) >= PINNED_MARGIN]
    edges = (median(f.start for f in pinned), median(f.end for f in pinned)) if pinned else None
    return {r: f.slots(width, edges, unit) for r, f in fits.items()}


@dataclass
class _RowFit:
    """Every placement of a shelf's planned facings tried against its columns: the grid's
    left edge (``offsets``) and how well the columns land in the slots (``score``)."""

    row: _Row
    planned: tuple[str, ...]
    w: np.ndarray
    starts: np.ndarray
    offsets: np.ndarray
    score: np.ndarray

    @classmethod
    def of(cls, row: _Row, planned: tuple[str, ...], w: np.ndarray, space: float,
           width: int) -> _RowFit:
        starts = np.concatenate([[0.0], np.cumsum(w + space)[:-1]])
        centres = starts + w / 2
        cols = np.array([c.centre for c in row.columns], float)
        offsets = np.unique(np.round(cols[:, None] - centres[None, :], 1))
        d = _slot_distance(cols[None, :] - offsets[:, None], centres, w)
        score = np.where(d < SLOT_MATCH, 1.0 - d, -0.5).sum(axis=1)
        # slots hanging out of the photo: a weak penalty, real columns outweigh it
        x0 = offsets[:, None] + starts[None, :]
        out = (np.clip(-x0, 0, w) + np.clip(x0 + w - width, 0, w)) / w
        score = score - OUT_OF_FRAME * out.sum(axis=1)
        return cls(row, planned, w, starts, offsets, score)

    @property
    def best(self) -> float:
        return float(self.offsets[int(np.argmax(self.score))])

    @property
    def start(self) -> float:
        return self.best

    @property
    def end(self) -> float:
        return self.best + float(self.starts[-1] + self.w[-1])

    def margin(self, unit: float) -> float:
        """How much better the best placement fits than any other a third of a facing or
        more away from it."""
        far = np.abs(self.offsets - self.best) > 0.3 * unit
        return float(self.score.max() - self.score[far].max()) if far.any() else 9.0

    def slots(self, width: int, edges: tuple[float, float] | None, unit: float) -> list[_Slot]:
        score = self.score
        if edges is not None:
            span = float(self.starts[-1] + self.w[-1])
            off = np.minimum(np.abs(self.offsets - edges[0]),
                             np.abs(self.offsets + span - edges[1]))
            score = score - 0.5 * off / max(unit, 1.0)
        best = float(self.offsets[int(np.argmax(score))])
        centres = best + self.starts + self.w / 2
        out = []
        for sku, x, wi in zip(self.planned, self.starts, self.w, strict=True):
            x0, x1 = best + x, best + x + wi
            inside = min(x1, float(width)) - max(x0, 0.0)
            out.append(_Slot(sku, x0, x1, visible=inside >= 0.5 * wi))
        for c, col in enumerate(self.row.columns):
            dist = np.abs(col.centre - centres) / self.w
            k = int(np.argmin(dist))
            if dist[k] < SLOT_MATCH + 0.1:
                out[k].columns.append(c)
        return out


def _sku_widths(items: Sequence[AuditItem], row: _Row) -> dict[str, float]:
    """How wide each SKU's facing is on this shelf (its items' median width here)."""
    widths: dict[str, list[float]] = {}
    for i in row.items:
        it = items[i]
        if it.sku:
            widths.setdefault(it.sku.upper(), []).append(it.box[2] - it.box[0])
    return {k: median(v) for k, v in widths.items()}


def _slot_widths(items: Sequence[AuditItem], row: _Row, planned: tuple[str, ...],
                 known: dict[str, float], unit: float, space: float,
                 extent: tuple[float, float]) -> np.ndarray:
    """Each planned facing's width: its SKU's as seen on this shelf; a SKU not seen here
    shares what the shelf's width leaves (a planogram gives a shelf's width to its facings)."""
    row_unit = median(items[i].box[2] - items[i].box[0] for i in row.items)
    w = np.array([known.get(s.upper(), np.nan) for s in planned], float)
    unknown = np.isnan(w)
    if unknown.any():
        free = extent[1] - extent[0] - np.nansum(w) - space * (len(planned) - 1)
        share = free / int(unknown.sum())
        w[unknown] = float(np.clip(share, 0.4 * row_unit, 3.0 * row_unit)) \
            if np.isfinite(share) else row_unit
    return np.maximum(w, 0.05 * max(unit, 1.0))


def _slot_distance(points: np.ndarray, centres: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """For each point, the distance to the nearest slot centre in that slot's widths
    (``centres`` ascending; the nearest is one of the two around the point)."""
    hi = np.clip(np.searchsorted(centres, points), 0, len(centres) - 1)
    lo = np.clip(hi - 1, 0, len(centres) - 1)
    return np.minimum(np.abs(points - centres[lo]) / widths[lo],
                      np.abs(points - centres[hi]) / widths[hi])


def _slot_findings(items: Sequence[AuditItem], rows: list[_Row],
                   slots: dict[int, list[_Slot]]) -> list[Finding]:
    """Gaps (runs of empty planned slots inside the photo) and misplaced items per slot."""
    out: list[Finding] = []
    for r, row_slots in slots.items():
        row = rows[r]
        run: list[_Slot] = []
        for slot in [*row_slots, None]:
            if slot is not None and not slot.columns and slot.visible:
                run.append(slot)
                continue
            if run:
                out.append(_gap(run, row))
                run = []
            if slot is not None:
                members = [i for c in slot.columns for i in row.columns[c].items]
                out += _misplaced(items, members, slot.sku)
    return out


def _gap(run: list[_Slot], row: _Row) -> Finding:
    return Finding("gap", (run[0].x0, row.top, run[-1].x1, row.bottom), "",
                   _only([s.sku for s in run]), 0.9)


def _empty_rows(rows: list[_Row], matched: dict[int, int], n_planned: int, width: int,
                height: int) -> dict[int, Box]:
    """Planned shelves with nothing found on them, each with where its items would stand:
    shelves are evenly spaced, so an empty one's floor is a whole number of shelf pitches
    from a found one's (the pitch from two found shelves, else from the photo left below or
    above the one found); with nothing found at all, the plan's shelves share the photo."""
    by_plan = {p: rows[r] for r, p in matched.items()}
    if not by_plan:
        step = height / max(1, n_planned)
        return {k: (0.0, k * step, float(width), (k + 1) * step) for k in range(n_planned)}
    left = min(r.columns[0].x0 for r in by_plan.values())
    right = max(r.columns[-1].x1 for r in by_plan.values())
    tall = median(r.bottom - r.top for r in by_plan.values())
    floors = sorted((p, r.bottom) for p, r in by_plan.items())
    pitch = _shelf_pitch(floors, n_planned, tall, height)
    out: dict[int, Box] = {}
    for k in range(n_planned):
        if k in by_plan:
            continue
        p, floor = min(floors, key=lambda pf: abs(pf[0] - k))
        y1 = min(float(height), floor + (k - p) * pitch)
        y0 = max(0.0, y1 - tall)
        if y1 - y0 > 0.3 * tall:
            out[k] = (left, y0, right, y1)
    return out


def _shelf_pitch(floors: list[tuple[int, float]], n_planned: int, tall: float,
                 height: int) -> float:
    """Floor-to-floor distance of the bay's shelves (``floors``: plan row, floor y)."""
    if len(floors) >= 2:
        return median((f2 - f1) / (p2 - p1) for (p1, f1), (p2, f2) in zip(floors, floors[1:],
                                                                         strict=False))
    p, floor = floors[0]
    below, above = n_planned - 1 - p, p
    if not below and not above:
        return 1.05 * tall  # one planned shelf, and it was found: nothing is asked
    pitch = (height - floor) / below if below else (floor - tall) / above
    return max(1.05 * tall, pitch)


# --------------------------------------------------------------------------------------------
# SKUs: extra and missing


def _extra(items: Sequence[AuditItem], plan: BayPlan) -> list[Finding]:
    planned = {s.upper() for s in plan.skus}
    seen: dict[str, list[AuditItem]] = {}
    for it in items:
        if it.named and it.sku and it.sku.upper() not in planned:
            seen.setdefault(it.sku, []).append(it)
    return [Finding("extra", _union([it.box for it in group]), sku, "",
                    max(min(1.0, 0.5 + 0.5 * it.score) for it in group))
            for sku, group in seen.items()]


def _missing(items: Sequence[AuditItem], plan: BayPlan, rows: list[_Row],
             slots: dict[int, list[_Slot]], empty: dict[int, Box], width: int,
             height: int) -> list[Finding]:
    """Planned SKUs with no facing. Where the SKU's slots are known, only their own items
    (or a read of the SKU anywhere) show it is there: the bin's SKU, the fallback name of
    every unread item, would otherwise never be missing."""
    whole: Box = (0.0, 0.0, float(width), float(height))
    out: list[Finding] = []
    for sku in plan.skus:
        key = sku.upper()
        if any(it.named and it.sku.upper() == key for it in items):
            continue
        planned = [(r, s) for r, row_slots in slots.items() for s in row_slots
                   if s.sku.upper() == key]
        placed = [(r, s) for r, s in planned if s.visible]
        if planned and not placed:
            continue  # its slots are outside this photo: another photo of the bay tells
        if placed:
            unread = any(not items[i].named for r, s in placed for c in s.columns
                         for i in rows[r].columns[c].items)
            if unread:
                continue  # items stand in its slots, unread: they may well be it
            box = _union([(s.x0, rows[r].top, s.x1, rows[r].bottom) for r, s in placed])
            out.append(Finding("missing", _clip(box, width, height), "", sku, 0.9))
        elif not any(it.sku.upper() == key for it in items):
            shelves = [box for p, box in empty.items() if key in {s.upper() for s in
                                                                  plan.rows[p]}]
            out.append(Finding("missing", _union(shelves) if shelves else whole, "", sku,
                               0.9 if shelves or not items else 0.7))
    return out


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def _clip(box: Box, width: int, height: int) -> Box:
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]),
            min(float(height), box[3]))
