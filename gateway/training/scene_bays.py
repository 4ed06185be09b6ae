"""Planned bays: shelf photos laid out from a planogram, with the faults an audit must find.

Why: the shelf audit (gateway.pipeline.audit) is scored on what it finds against what is
really wrong, and only a generated bay knows that exactly. Each bay has 1-4 shelf rows, each a
run of planned slots (SKU x facings); then faults are put in: empty facings (gaps), a facing
of another planned SKU (misplaced), a facing of an unplanned SKU (misplaced and extra), every
facing of one planned SKU left empty (missing, and its facings are gaps). The ground truth
lists every finding with its box in photo pixels.

Drawn with the same stages as gateway.training.scenes (sprites, beams, bin label, light and
camera), so the detector and code readers see the photos they know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gateway.pipeline.types import Box
from gateway.planogram import PlanSlot
from gateway.training import scenes as sc

FAULTS = ("gap", "swap", "foreign", "missing")


@dataclass(frozen=True)
class TruthFinding:
    """What is wrong with the bay, as the audit should report it."""

    type: str  # gap / misplaced / missing / extra
    box: Box | None  # photo pixels; None for SKU-level findings (missing, extra)
    sku: str
    expected_sku: str
    # misplaced: the item's code or SKU text is readable in the photo; extra: one of the
    # SKU's items is; missing: False where the SKU stands only misplaced and unreadable, so
    # reporting it missing or not are both right
    legible: bool = True


@dataclass
class PlannedBay:
    scene: sc.Scene
    plan: list[PlanSlot]
    truth: list[TruthFinding] = field(default_factory=list)

    def planogram_csv(self) -> str:
        lines = ["Location,Shelf_Row,Position,SKU,Facings"]
        lines += [f"{s.location},{s.row},{s.position},{s.sku},{s.facings}" for s in self.plan]
        return "\n".join(lines) + "\n"


@dataclass
class _Facing:
    row: int
    planned: str
    shown: str | None  # None: left empty
    fault: str = ""


def render_planned_bay(seed: int, *, width: int = 2048, height: int = 1536,
                       style: str = "mixed", difficulty: float = 0.25,
                       catalog: list[dict[str, str]] | None = None,
                       faults: bool = True) -> PlannedBay:
    """One bay photo, its planogram and its true findings; the same seed gives the same bay.

    ``faults=False`` renders the bay exactly as planned (nothing to find).
    """
    rows = catalog if catalog is not None else sc.demo_catalog_rows()
    homes = [r for r in rows if r.get("Location")]
    if len(rows) < 3 or not homes:
        raise ValueError("a planned bay needs a catalog of 3 or more SKUs with locations")
    rng = np.random.default_rng([seed, 4241])
    if style == "mixed":
        style = sc.STYLES[int(rng.random() < 0.6)]
    home = homes[int(rng.integers(len(homes)))]
    others = [str(s) for s in rng.permutation([r["SKU"] for r in rows if r is not home])]
    n_planned = int(rng.integers(1, min(4, len(others)) + 1))
    planned = [home["SKU"], *others[:n_planned - 1]]
    foreign = others[n_planned - 1:]
    b = sc._Build(seed, np.random.default_rng(seed), style, difficulty, True, width, height,
                  max(4, round(0.03 * width)), max(4, round(0.03 * height)),
                  {r["SKU"]: r for r in rows}, [*planned, *foreign[:3]], home["Location"], 0)
    sc._label_specs(b)
    sc._background(b)
    b.x_lo, b.x_hi = float(b.mx) + 0.02 * width, float(b.mx + width) - 0.02 * width
    row_skus = _row_skus(rng, planned)
    levels = _shelf_frame(b, len(row_skus))
    layout = [_fill_row(b, r, skus, levels) for r, skus in enumerate(row_skus)]
    facings = [_Facing(r, s, s) for r, row in enumerate(layout) for s, n in row
               for _ in range(n)]
    if faults:
        _put_faults(rng, facings, planned, foreign[:3])
    for r in range(len(layout)):
        _place_row(b, r, [f for f in facings if f.row == r], levels)
    sc._draw_items(b)
    sc._draw_beams_and_labels(b)
    scene = sc._photograph(b)
    plan = [PlanSlot(home["Location"], r + 1, p + 1, s, n)
            for r, row in enumerate(layout) for p, (s, n) in enumerate(row)]
    return PlannedBay(scene, plan, _truth(scene, facings, planned))


def _row_skus(rng: np.random.Generator, planned: list[str]) -> list[list[str]]:
    """Which SKUs each shelf row holds, top to bottom, left to right; every planned SKU gets
    at least one run of facings."""
    n_rows = int(rng.integers(1, 5))
    rows: list[list[str]] = [[] for _ in range(n_rows)]
    for i, sku in enumerate(planned):
        rows[i % n_rows].append(sku)
    for row in rows:
        if not row:
            row.append(planned[int(rng.integers(len(planned)))])
        rng.shuffle(row)
    return rows


def _shelf_frame(b: sc._Build, n_rows: int) -> int:
    """Beams, the bin label and the rows' heights; returns how many levels items stack."""
    rng, H = b.rng, b.H
    b.beam_h = max(round(0.035 * H), 4)
    label_module = max(1, min(4, round(b.unit / 300)))
    b.bin_sprite = sc._bin_label(b.loc, label_module, rng)
    b.beam_h = max(b.beam_h, b.bin_sprite.img.shape[0] + 2 * label_module)
    b.n_rows = n_rows
    b.top = b.my + rng.uniform(0.01, 0.04) * H
    b.row_total = (b.my + H - rng.uniform(0.0, 0.03) * H - b.top) / n_rows
    b.main_row = int(rng.integers(n_rows))
    for r in range(n_rows):
        floor = b.top + (r + 1) * b.row_total - b.beam_h
        b.beams.append((round(floor), round(floor) + b.beam_h))
    return 1 if b.style == "retail" else int(rng.integers(1, 4))


def _levels(b: sc._Build, sku: str, levels: int) -> int:
    return max(1, min(levels, sc.MAX_LEVELS[b.kinds[sku]]))


def _pitch(b: sc._Build, sku: str, levels: int) -> float:
    """A facing's width with its share of space, items as tall as the shelf allows."""
    h = (b.row_total - b.beam_h) * 0.92 / _levels(b, sku, levels)
    return b.aspects[sku] * h * (1.05 if b.style == "warehouse" else 1.1)


def _fill_row(b: sc._Build, r: int, skus: list[str], levels: int) -> list[tuple[str, int]]:
    """Facings per SKU so the shelf is full (a planogram gives a shelf's width to its
    facings), at least one each, at most 14 on a shelf."""
    width = b.x_hi - b.x_lo
    weights = b.rng.uniform(0.5, 1.5, len(skus))
    share = weights / weights.sum() * width
    counts = [max(1, int(round(sh / _pitch(b, s, levels)))) for s, sh in zip(skus, share,
                                                                              strict=True)]
    while sum(counts) > 14 and max(counts) > 1:
        counts[counts.index(max(counts))] -= 1
    return list(zip(skus, counts, strict=True))


def _put_faults(rng: np.random.Generator, facings: list[_Facing], planned: list[str],
                foreign: list[str]) -> None:
    """Empty facings, swapped and foreign products, now and then a whole SKU missing."""
    if len(planned) > 1 and rng.random() < 0.25:
        gone = planned[1 + int(rng.integers(len(planned) - 1))]
        for f in facings:
            if f.planned == gone:
                f.shown, f.fault = None, "missing"
    free = [f for f in facings if not f.fault]
    for fault, share in (("gap", 0.12), ("swap", 0.06), ("foreign", 0.05)):
        for f in free:
            if f.fault or rng.random() >= share:
                continue
            if fault == "gap":
                f.shown = None
            else:
                pool = [s for s in planned if s != f.planned] if fault == "swap" else foreign
                if not pool:
                    continue
                f.shown = pool[int(rng.integers(len(pool)))]
            f.fault = fault
    if all(f.shown is None for f in facings):
        facings[0].shown, facings[0].fault = facings[0].planned, ""


def _place_row(b: sc._Build, r: int, row: list[_Facing], levels: int) -> None:
    """One shelf: the facings side by side across its width, as tall as it allows (smaller
    when too many for the width); an empty facing's slot is kept (as a negative named
    ``gap``, a fault's as ``fault:SKU``) so the camera maps it too."""
    floor = b.beams[r][0]
    lv = _levels(b, row[0].planned, levels)
    gap = 0.05 if b.style == "warehouse" else 0.1
    h = (b.row_total - b.beam_h) * 0.92 / lv
    widths = np.array([b.aspects[f.planned] for f in row]) * h
    target = (b.x_hi - b.x_lo) * b.rng.uniform(0.9, 0.98)
    fill = target / float(np.sum(widths * (1 + gap)))
    if fill < 1:
        h *= fill
        widths *= fill
    else:  # a little wider packs, then a little more room between them
        widths *= min(fill, 1.25)
        gap = max(gap, min(0.3, target / float(np.sum(widths)) - 1))
    total = float(np.sum(widths * (1 + gap)))
    x = b.x_lo + (b.x_hi - b.x_lo - total) * b.rng.uniform(0.3, 0.7)
    ih = max(3, round(h))
    for f, w in zip(row, widths, strict=True):
        cx, iw = round(x + gap * w / 2), max(3, round(w))
        slot = (cx, round(floor - lv * ih), cx + iw, round(floor))
        if f.shown is None:
            b.negatives.append(("gap", slot))
        else:
            # a shown product keeps the planned facing's footprint: a swap fills its slot
            for level in range(lv):
                sc._place_facing(b, f.shown, cx, round(floor - level * ih), iw, ih, level,
                                 float(w), level == lv - 1)
            if f.fault:
                b.negatives.append((f"fault:{f.planned}", slot))
        x += w * (1 + gap)


def _truth(scene: sc.Scene, facings: list[_Facing], planned: list[str]) -> list[TruthFinding]:
    """Findings in photo pixels: gaps (adjacent empty facings of a row joined), misplaced
    items, missing and extra SKUs; the helper negatives are taken out of the scene."""
    truth: list[TruthFinding] = []
    gaps = [box for kind, box in scene.negatives if kind == "gap"]
    faults = [(kind[6:], box) for kind, box in scene.negatives if kind.startswith("fault:")]
    scene.negatives = [(k, bx) for k, bx in scene.negatives
                       if k != "gap" and not k.startswith("fault:")]
    truth += [TruthFinding("gap", box, "", "") for box in _join_gaps(gaps)]
    legible = _legible_items(scene)
    for i, item in enumerate(scene.items):
        for expected, box in faults:
            if _centre_in(item.box, box) and item.sku != expected:
                truth.append(TruthFinding("misplaced", item.box, item.sku, expected,
                                          i in legible))
    shown = {f.shown for f in facings if f.shown}
    # a planned SKU seen only on illegible misplaced items: "missing" is as right as not
    read = {it.sku for i, it in enumerate(scene.items) if i in legible}
    in_place = {f.shown for f in facings if f.shown and f.shown == f.planned}
    truth += [TruthFinding("missing", None, "", s, legible=s not in shown)
              for s in planned if s not in in_place and s not in read]
    truth += [TruthFinding("extra", None, s, "", any(it.sku == s for i, it in
                                                     enumerate(scene.items) if i in legible))
              for s in sorted(shown - set(planned))]
    return truth


def _join_gaps(boxes: list[Box]) -> list[Box]:
    """Empty facings side by side on one shelf are one gap (as a person would mark it)."""
    out: list[Box] = []
    for box in sorted(boxes, key=lambda bx: (round(bx[3] / 8), bx[0])):
        if out:
            last = out[-1]
            same_row = abs(last[3] - box[3]) < 0.2 * (box[3] - box[1])
            if same_row and box[0] - last[2] < 0.5 * (box[2] - box[0]):
                out[-1] = (last[0], min(last[1], box[1]), box[2], max(last[3], box[3]))
                continue
        out.append(box)
    return out


def _legible_items(scene: sc.Scene) -> set[int]:
    """Items whose code (modules of 2 px or more) or SKU text (caps of 16 px or more) is
    wholly in the photo: the ones an audit can be asked to name."""
    out = {c.item for c in scene.codes if c.item is not None and c.module_px >= 2.0}
    out |= {t.item for t in scene.texts
            if t.item is not None and t.role == "sku" and t.cap_px >= 16}
    return {i for i in out if i is not None}


def _centre_in(inner: Box, outer: Box) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]
