"""Synthetic shelf photos with full ground truth.

Why: no labelled shelf photos can be downloaded, yet the item detector must be trained, the
pipeline's counts checked and the benchmark fed. Each scene is a warehouse bay (racking,
orange beams, brown cartons) or a retail shelf (bottles, cans, boxes, bags, price tags) with
real, decodable barcodes (EAN-13 / UPC-A from the catalog, GS1-128 or GS1 DataMatrix with
(01) GTIN (17) expiry (10) batch), printed SKU and expiry lines, a bin label (Code 128 of the
location plus the location in big letters) and hard negatives (price tags, posters, signs).
Photographic defects (perspective, lighting, blur, noise, JPEG) grow with ``difficulty``.

Counting rule for items cut by the photo edge: an item is *counted* when at least
``COUNT_MIN_VISIBLE`` (50 %) of its face is inside the frame; a less visible item is still
listed (``counted=False``) so training can treat it as an "ignore" region instead of teaching
the detector that it is background. Two overlapping photos of a bay therefore count a split
item once. Items are never hidden behind other items, so "visible" only means "in frame".

Everything is deterministic for a seed; no torch here (the gateway imports this for tests).
"""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from gateway.pipeline.types import Box
from gateway.training.scene_draw import draw_text, fit_cap, paste, render_code, solid, text_mask
from gateway.training.scene_items import (
    ASPECTS,
    DRAWERS,
    LabelSpec,
    Sprite,
    label_width_for,
    load_sign,
    poster,
    price_tag,
    render_label,
    rotated,
)

COUNT_MIN_VISIBLE = 0.5
# Items less visible than this (slivers at the frame edge) are dropped from the ground truth.
MIN_LISTED_VISIBLE = 0.04
STYLES = ("warehouse", "retail")
# How high each kind is stacked: bottles stand in one layer, cases go up to the next beam.
MAX_LEVELS = {"carton": 12, "box": 6, "bag": 3, "can": 3, "bottle": 1}
DEMO_CATALOG = Path(__file__).resolve().parent.parent / "demo" / "catalog.csv"


class RenderedCode(NamedTuple):
    """A code drawn completely inside the photo."""

    format: str  # zxing-cpp's name: "EAN-13", "UPC-A", "Code 128", "DataMatrix"
    text: str  # what a reader returns: digits, location, or bracketed GS1 "(01)...(17)..."
    box: Box
    module_px: float  # narrowest bar / cell in photo pixels: >= 3 decodes reliably
    gs1: bool
    item: int | None  # index into Scene.items, None for the bin label


class RenderedText(NamedTuple):
    """A printed text line drawn completely inside the photo (ink box)."""

    text: str
    box: Box
    cap_px: float  # capital height in photo pixels: OCR needs about 20
    # "sku", "expiry" (the line with the date), "expiry_word" (BEST BEFORE above the date when
    # split over two lines), "location", "price", "poster", "sign"
    role: str
    item: int | None


@dataclass(frozen=True)
class Item:
    """One facing (carton, box, bottle, can, bag) in the photo."""

    box: Box  # the part inside the frame, photo pixels
    sku: str
    kind: str
    cut: bool  # partly outside the frame
    visible_fraction: float
    counted: bool  # visible_fraction >= COUNT_MIN_VISIBLE
    full_box: Box  # whole item, may extend past the frame
    damaged: bool = False
    labelled: bool = False  # carries its SKU label / code on this face


@dataclass
class Scene:
    """A rendered photo and everything a perfect counter would report about it."""

    image: np.ndarray  # BGR uint8
    items: list[Item]
    location: str | None
    bin_label_box: Box | None
    codes: list[RenderedCode]
    texts: list[RenderedText]
    expiry: dict[str, date]
    counts: dict[str, int]  # per SKU, counted items only; the bin's SKU always present
    damaged: set[int] = field(default_factory=set)
    negatives: list[tuple[str, Box]] = field(default_factory=list)  # price tags, posters
    seed: int = 0
    style: str = "warehouse"
    difficulty: float = 0.5
    main_sku: str | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def total(self) -> int:
        """Number of counted items (all SKUs)."""
        return sum(1 for it in self.items if it.counted)

    def boxes(self, counted: bool = True) -> np.ndarray:
        """[N, 4] float32 boxes of counted items (``counted=False``: the ignore regions)."""
        rows = [it.box for it in self.items if it.counted == counted]
        return np.asarray(rows, np.float32).reshape(-1, 4)

    def resized(self, scale: float) -> Scene:
        """The same scene with the image and every box scaled (INTER_AREA when shrinking)."""
        w = max(1, round(self.width * scale))
        h = max(1, round(self.height * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        sx, sy = w / self.width, h / self.height

        def sb(b: Box) -> Box:
            return (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)

        return Scene(
            image=cv2.resize(self.image, (w, h), interpolation=interp),
            items=[Item(sb(it.box), it.sku, it.kind, it.cut, it.visible_fraction, it.counted,
                        sb(it.full_box), it.damaged, it.labelled) for it in self.items],
            location=self.location,
            bin_label_box=sb(self.bin_label_box) if self.bin_label_box else None,
            codes=[c._replace(box=sb(c.box), module_px=c.module_px * sx) for c in self.codes],
            texts=[t._replace(box=sb(t.box), cap_px=t.cap_px * sy) for t in self.texts],
            expiry=dict(self.expiry), counts=dict(self.counts), damaged=set(self.damaged),
            negatives=[(k, sb(b)) for k, b in self.negatives], seed=self.seed,
            style=self.style, difficulty=self.difficulty, main_sku=self.main_sku,
        )

    def to_json(self) -> dict[str, object]:
        """Ground truth as plain JSON (boxes rounded to 0.1 px)."""

        def rb(b: Box | None) -> list[float] | None:
            return None if b is None else [round(float(v), 1) for v in b]

        return {
            "seed": self.seed, "style": self.style, "difficulty": self.difficulty,
            "width": self.width, "height": self.height,
            "location": self.location, "bin_label_box": rb(self.bin_label_box),
            "main_sku": self.main_sku,
            "counts": self.counts,
            "expiry": {k: v.isoformat() for k, v in self.expiry.items()},
            "items": [{"box": rb(it.box), "sku": it.sku, "kind": it.kind, "cut": it.cut,
                       "visible_fraction": round(it.visible_fraction, 3),
                       "counted": it.counted, "damaged": it.damaged,
                       "labelled": it.labelled} for it in self.items],
            "codes": [{"format": c.format, "text": c.text, "box": rb(c.box),
                       "module_px": round(c.module_px, 2), "gs1": c.gs1, "item": c.item}
                      for c in self.codes],
            "texts": [{"text": t.text, "box": rb(t.box), "cap_px": round(t.cap_px, 1),
                       "role": t.role, "item": t.item} for t in self.texts],
            "negatives": [{"kind": k, "box": rb(b)} for k, b in self.negatives],
        }


@lru_cache(maxsize=4)
def _read_catalog(path: str) -> tuple[dict[str, str], ...]:
    with open(path, newline="", encoding="utf-8") as fh:
        return tuple(dict(row) for row in csv.DictReader(fh))


def demo_catalog_rows() -> list[dict[str, str]]:
    """Rows of gateway/demo/catalog.csv (SKU, Barcode, Product_Description, Unit_Price, ...)."""
    return [dict(r) for r in _read_catalog(str(DEMO_CATALOG))]


def encode_jpeg(scene: Scene, quality: int = 90) -> bytes:
    """The scene's photo as JPEG bytes, as a phone would upload it."""
    ok, buf = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


# --------------------------------------------------------------------------------------------
# Content choices


def _kind_for(row: dict[str, str], style: str, rng: np.random.Generator) -> str:
    """Warehouses store case packs (cartons); shops show the product itself."""
    desc = row.get("Product_Description", "").lower()
    if style == "warehouse":
        if "coffee" in desc or "bag" in desc:
            return "bag" if rng.random() < 0.5 else "carton"
        return "carton" if rng.random() < 0.85 else "box"
    for pattern, kind in ((r"water|oil|soap|detergent|\d\s*(ml|l)\b", "bottle"),
                          (r"canned|tomato|\d\s*g\b", "can"), (r"coffee|beans|\bbag", "bag")):
        if re.search(pattern, desc):
            return kind
    return "box" if rng.random() < 0.8 else "bag"


def _expiry(rng: np.random.Generator) -> tuple[date, str]:
    """An expiry date and how it is printed (formats seen on real cases)."""
    year = int(rng.integers(2025, 2030))  # about a third already expired in late 2026
    month = int(rng.integers(1, 13))
    last = calendar.monthrange(year, month)[1]
    day = int(rng.integers(1, last + 1))
    style = int(rng.integers(0, 8))
    if style >= 6:  # month-only formats mean the last day of that month
        d = date(year, month, last)
        text = f"EXP {year}-{month:02d}" if style == 6 else f"BEST BEFORE {month:02d}/{year}"
        return d, text
    d = date(year, month, day)
    texts = (f"EXP {d.isoformat()}", f"EXP{d.isoformat()}", f"{day:02d}/{month:02d}/{year}",
             f"BEST BEFORE {day:02d}.{month:02d}.{year}", f"USE BY {day:02d}.{month:02d}.{year}",
             f"EXP {day:02d}/{month:02d}/{year}")
    return d, texts[style]


def _price_text(price: str, rng: np.random.Generator) -> str:
    p = f"{float(price or 0):.2f}"
    forms = (f"${p}", f"{p.replace('.', ',')} €", f"EUR {p}", p)
    return forms[int(rng.integers(len(forms)))]


def _random_location(rng: np.random.Generator) -> str:
    return f"{chr(65 + int(rng.integers(0, 6)))}-{int(rng.integers(1, 40)):02d}-" \
           f"{int(rng.integers(1, 6))}"


def _pick_n_items(rng: np.random.Generator) -> int:
    """Spread over the ranges the count metrics are broken down by (1-15, 16-30, 31-60)."""
    band = rng.choice(3, p=[0.45, 0.3, 0.25])
    lo, hi = ((1, 15), (16, 30), (31, 60))[band]
    return int(rng.integers(lo, hi + 1))


# --------------------------------------------------------------------------------------------
# Bin label


def _bin_label(location: str, module: int, rng: np.random.Generator) -> Sprite:
    """White or yellow bin label: location in big letters above a Code 128 of it."""
    code = render_code("Code 128", location, module, max(6, 14 * module))
    cw = code.shape[1]
    pad = max(2, 2 * module)
    cap = fit_cap(location, cw, 9 * module)
    tm = text_mask(location, cap)
    w = max(cw, tm.shape[1]) + 2 * pad
    h = pad + tm.shape[0] + pad + code.shape[0] + pad
    img = solid(h, w, (250, 250, 250) if rng.random() < 0.6 else (40, 215, 250))
    sprite = Sprite(img)
    box = draw_text(img, location, cap, (15, 15, 15), (w - tm.shape[1]) // 2, pad)
    if box:
        sprite.texts.append((location, box, cap, "location"))
    y = 2 * pad + tm.shape[0]
    x = (w - cw) // 2
    # the quiet zone must stay light on a yellow label: paint the code on white
    img[y:y + code.shape[0], x:x + cw] = code[..., None]
    sprite.codes.append(("Code 128", location, (x, y, x + cw, y + code.shape[0]), float(module),
                         False))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (90, 90, 90), 1)
    return sprite


# --------------------------------------------------------------------------------------------
# Layout


@dataclass
class _Placed:
    box: tuple[int, int, int, int]  # world pixels
    sku: str
    kind: str
    sprite: Sprite
    labelled: bool
    damaged: bool = False


def _row_layout(n: int, x_lo: float, x_hi: float, space_h: float, aspect: float,
                gap: float, fill: float, max_levels: int = 12) -> tuple[float, float, int, int]:
    """Item size and grid (w, h, cols, levels) that holds at least ``n`` items in a row."""
    width = x_hi - x_lo
    best = (0.0, 1)
    for levels in range(1, max_levels + 1):
        cols = -(-n // levels)
        h = min(space_h * 0.97 / levels, width / (cols * (1 + gap) * aspect))
        if h > best[0]:
            best = (h, levels)
    h = best[0] * fill
    w = h * aspect
    cols = max(1, int(width // (w * (1 + gap))))
    levels = min(max_levels, max(1, int(space_h * 0.97 // h)))
    while cols * levels < n:  # rounding: shrink until it fits
        h *= 0.97
        w = h * aspect
        cols = max(1, int(width // (w * (1 + gap))))
        levels = min(max_levels, max(1, int(space_h * 0.97 // h)))
    return w, h, cols, levels


def _remove_slots(grid: list[list[bool]], surplus: int, rng: np.random.Generator,
                  levels: int) -> set[int]:
    """Empty ``surplus`` slots: whole columns (gaps) first, then tops of stacks.

    Returns the indices of columns that became fully empty (room for a poster).
    """
    cols = len(grid)
    empty_cols: set[int] = set()
    order = list(rng.permutation(cols))
    while surplus >= levels and order and rng.random() < 0.8:
        c = int(order.pop())
        n_here = sum(grid[c])
        if n_here > surplus:
            continue
        grid[c] = [False] * levels
        surplus -= n_here
        empty_cols.add(c)
    guard = 0
    while surplus > 0 and guard < 10000:
        guard += 1
        c = int(rng.integers(cols))
        stack = grid[c]
        top = max((i for i, v in enumerate(stack) if v), default=-1)
        if top < 0:
            continue
        stack[top] = False
        surplus -= 1
        if top == 0:
            empty_cols.add(c)
    return empty_cols


@dataclass
class _Build:
    """One scene while it is rendered: the arguments, the random stream and what each stage
    leaves for the next (stages run in a fixed order: that order of random draws is the
    dataset, so a scene renders the same for the same arguments)."""

    seed: int
    rng: np.random.Generator
    style: str
    difficulty: float
    with_codes: bool
    W: int
    H: int
    mx: int
    my: int
    by_sku: dict[str, dict[str, str]]
    chosen: list[str]
    loc: str
    n: int
    world: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8))
    expiry: dict[str, date] = field(default_factory=dict)
    specs: dict[str, LabelSpec] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    aspects: dict[str, float] = field(default_factory=dict)
    left_up: bool = False
    right_up: bool = False
    x_lo: float = 0.0
    x_hi: float = 0.0
    bin_sprite: Sprite | None = None
    beam_h: int = 0
    n_rows: int = 1
    top: float = 0.0
    row_total: float = 0.0
    main_row: int = 0
    row_skus: list[str] = field(default_factory=list)
    split_sku: str | None = None
    per_row: list[int] = field(default_factory=list)
    placed: list[_Placed] = field(default_factory=list)
    negatives: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    beams: list[tuple[int, int]] = field(default_factory=list)
    poster_slots: list[tuple[int, int, int, int]] = field(default_factory=list)
    damaged_idx: set[int] = field(default_factory=set)
    bin_box_world: tuple[int, int, int, int] | None = None
    label_sprite_at: tuple[Sprite, int, int] | None = None
    extras: list[tuple[Sprite, int, int]] = field(default_factory=list)  # tags, then posters
    sprites: dict[tuple[str, int, int, bool], Sprite] = field(default_factory=dict)

    @property
    def Ww(self) -> int:  # the world canvas: the frame plus margins for the camera's warp
        return self.W + 2 * self.mx

    @property
    def Hw(self) -> int:
        return self.H + 2 * self.my

    @property
    def unit(self) -> int:
        return min(self.W, self.H)


def render_scene(seed: int, *, width: int = 1920, height: int = 1080, style: str = "mixed",
                 n_items: int | None = None, catalog: list[dict[str, str]] | None = None,
                 with_codes: bool = True, with_bin_label: bool = True,
                 location: str | None = None, difficulty: float = 0.5,
                 skus: list[str] | None = None, n_skus: int | None = None) -> Scene:
    """Render one shelf photo and its ground truth; the same arguments give the same scene.

    ``n_items`` is the number of facings placed on the shelves (random 1-60 when None); a few
    may be cut by the frame edge, so ``scene.total`` (counted items) can be slightly lower.
    ``skus`` forces the SKUs shown (first = the bin's SKU); otherwise 1-3 are drawn from the
    catalog and the bin label shows the home location of the first one. ``difficulty`` 0 is a
    straight, evenly lit, clean shot with (almost) nothing cut by the frame; towards 1 come
    perspective, uneven light, blur, noise, JPEG artefacts, cut and askew and damaged cases.
    """
    if style not in (*STYLES, "mixed"):
        raise ValueError(f"style must be one of warehouse, retail, mixed, not {style!r}")
    if width < 64 or height < 64:
        raise ValueError("scenes must be at least 64x64 pixels")
    rng = np.random.default_rng(seed)
    difficulty = float(np.clip(difficulty, 0.0, 1.0))
    rows = catalog if catalog is not None else demo_catalog_rows()
    if not rows:
        raise ValueError("catalog is empty")
    by_sku = {r["SKU"]: r for r in rows}
    if style == "mixed":
        style = STYLES[int(rng.random() < 0.4)]
    n = _pick_n_items(rng) if n_items is None else max(0, int(n_items))
    chosen = _choose_skus(rng, rows, by_sku, skus, location, n, n_skus)
    loc = location or by_sku[chosen[0]].get("Location") or _random_location(rng)
    W, H = int(width), int(height)
    b = _Build(seed, rng, style, difficulty, with_codes, W, H, max(4, round(0.05 * W)),
               max(4, round(0.05 * H)), by_sku, chosen, loc, n)
    _label_specs(b)
    _background(b)
    _racking(b)
    _shelves(b, with_bin_label)
    for r in range(b.n_rows):
        _place_row(b, r)
    _draw_items(b)
    _draw_beams_and_labels(b)
    _draw_tags_and_posters(b)
    return _photograph(b)


def _choose_skus(rng: np.random.Generator, rows: list[dict[str, str]],
                 by_sku: dict[str, dict[str, str]], skus: list[str] | None,
                 location: str | None, n: int, n_skus: int | None) -> list[str]:
    """Which SKUs the bay shows, the bin's own first."""
    if skus:
        missing = [s for s in skus if s not in by_sku]
        if missing:
            raise ValueError(f"SKUs not in catalog: {missing}")
        return list(dict.fromkeys(skus))
    home = [r for r in rows if location and r.get("Location") == location]
    main = home[0] if home else rows[int(rng.integers(len(rows)))]
    k = n_skus or int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
    if n_skus is None:  # a handful of items rarely belongs to several products
        k = min(k, max(1, n // 4))
    others = [r["SKU"] for r in rows if r["SKU"] != main["SKU"]]
    extra = list(rng.permutation(others))[:max(0, min(k, len(rows)) - 1)] if others else []
    return [main["SKU"], *[str(s) for s in extra]]


def _label_specs(b: _Build) -> None:
    """Each SKU's label (barcode, expiry, code kind), packaging kind and aspect ratio."""
    rng = b.rng
    for s in b.chosen:
        d, text = _expiry(rng)
        b.expiry[s] = d
        barcode = "".join(ch for ch in b.by_sku[s].get("Barcode", "") if ch.isdigit())
        if len(barcode) not in (12, 13):
            barcode = "4" + f"{int(rng.integers(10**10, 10**11)):011d}"
            barcode += _ean_check(barcode)
        gtin14 = barcode.zfill(14)
        batch = f"L{int(rng.integers(1000, 99999))}"
        gs1 = f"(01){gtin14}(17){d:%y%m%d}(10){batch}"
        kind_code = str(rng.choice(["ean", "datamatrix", "gs1-128"], p=[0.65, 0.2, 0.15]))
        b.specs[s] = LabelSpec(s, barcode, text, kind_code, gs1)
        b.kinds[s] = _kind_for(b.by_sku[s], b.style, rng)
        lo, hi = ASPECTS[b.kinds[s]]
        b.aspects[s] = float(rng.uniform(lo, hi))


def _background(b: _Build) -> None:
    rng, Hw, Ww = b.rng, b.Hw, b.Ww
    if b.style == "warehouse":
        b.world = solid(Hw, Ww, rng.integers(35, 80, 3))
        return
    # light, nearly neutral shop fittings
    b.world = solid(Hw, Ww, int(rng.integers(165, 235)) + rng.integers(-12, 13, 3))
    step = max(6, b.unit // 40)
    dot = tuple(int(v) for v in (b.world[0, 0].astype(int) - 40).clip(0, 255))
    for yy in range(step // 2, Hw, step):
        b.world[yy:yy + max(1, step // 8), ::step] = dot


def _racking(b: _Build) -> None:
    """Uprights of the racking frame (warehouse): where facings may stand."""
    rng, W, mx = b.rng, b.W, b.mx
    up_w = max(4, round(0.035 * W))
    b.left_up = b.style == "warehouse" and rng.random() < 0.55
    b.right_up = b.style == "warehouse" and rng.random() < 0.55
    b.x_lo, b.x_hi = float(mx), float(mx + W)
    if b.left_up:
        x_up = round(mx + rng.uniform(-0.3, 0.5) * up_w)
        b.x_lo = x_up + up_w + rng.uniform(0.005, 0.03) * W
        _upright(b.world, x_up, up_w, rng)
    if b.right_up:
        x_up = round(mx + W - up_w - rng.uniform(-0.3, 0.5) * up_w)
        b.x_hi = x_up - rng.uniform(0.005, 0.03) * W
        _upright(b.world, x_up, up_w, rng)


def _shelves(b: _Build, with_bin_label: bool) -> None:
    """The bin label, the shelf rows, which SKU stands in which row, items per row."""
    rng, H, my, n = b.rng, b.H, b.my, b.n
    # 4 px modules at 1080p: bin labels are read from across the aisle, they must decode
    label_module = max(1, round(b.unit / 360), min(4, round(b.unit / 270)))
    b.bin_sprite = _bin_label(b.loc, label_module, rng) if with_bin_label else None
    if b.bin_sprite is not None and b.bin_sprite.img.shape[0] > 0.2 * H:
        b.bin_sprite = None  # a thumbnail-sized photo has no room for a bin label
    b.beam_h = max(round(0.035 * H), 4)
    if b.bin_sprite is not None:
        b.beam_h = max(b.beam_h, b.bin_sprite.img.shape[0] + 2 * max(1, label_module))
    main_sku = b.chosen[0]
    n_rows = 1 if n <= 3 else int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    if n > 16 and MAX_LEVELS[b.kinds[main_sku]] <= 3:  # one-layer goods need more shelves
        n_rows = 3
    b.top = my + rng.uniform(-0.08 * b.difficulty, 0.06) * H  # < my: top stacks cut by frame
    bottom = my + H - rng.uniform(0.0, 0.04) * H  # the lowest beam (and its label) in frame
    row_total = (bottom - b.top) / n_rows
    if row_total - b.beam_h < 0.25 * row_total:
        n_rows = 1
        row_total = bottom - b.top
    b.n_rows, b.row_total = n_rows, row_total
    b.main_row = int(rng.integers(n_rows))
    b.row_skus = [main_sku] * n_rows
    other_rows = [r for r in range(n_rows) if r != b.main_row]
    for i, r in enumerate(other_rows):
        if len(b.chosen) > 1:
            b.row_skus[r] = b.chosen[1 + i % (len(b.chosen) - 1)]
    unplaced = [s for s in b.chosen if s not in b.row_skus]
    if unplaced:  # SKUs that found no row share the main row
        b.split_sku = unplaced[0]
        b.chosen = [s for s in b.chosen if s in b.row_skus or s == b.split_sku]
    weights = rng.uniform(0.6, 1.4, n_rows)
    b.per_row = _split(n, weights, rng)


def _place_row(b: _Build, r: int) -> None:
    """Lay out shelf row ``r``: its beam, its grid of facings (gaps and stacks), each facing's
    sprite (askew on top of a stack now and then)."""
    rng = b.rng
    row_top = b.top + r * b.row_total
    row_floor = row_top + b.row_total - b.beam_h
    b.beams.append((round(row_floor), round(row_floor) + b.beam_h))
    sku = b.row_skus[r]
    if b.per_row[r] == 0 or row_floor - row_top < 4:
        return
    kind = b.kinds[sku]
    gap = float(rng.uniform(0.01, 0.06) if kind in ("carton", "box") else
                rng.uniform(0.04, 0.15))
    fill = float(rng.uniform(0.7, 1.0))
    overhang_l = 0.0 if b.left_up or rng.random() > 0.1 + 0.6 * b.difficulty else \
        rng.uniform(0.05, 0.65)
    overhang_r = 0.0 if b.right_up or rng.random() > 0.1 + 0.6 * b.difficulty else \
        rng.uniform(0.05, 0.65)
    w, h, cols, levels = _row_layout(b.per_row[r], b.x_lo, b.x_hi, row_floor - row_top,
                                     b.aspects[sku], gap, fill, MAX_LEVELS[kind])
    start = b.x_lo - overhang_l * w
    end = b.x_hi + overhang_r * w
    cols = max(cols, int((end - start) // (w * (1 + gap))))
    iw, ih = max(3, round(w)), max(3, round(h))
    grid = [[True] * levels for _ in range(cols)]
    empty = _remove_slots(grid, cols * levels - b.per_row[r], rng, levels)
    pitch = w * (1 + gap)
    x0 = start + (end - start - cols * pitch) * rng.uniform(0, 1) + gap * w / 2
    split_at = -1  # the bin's own SKU keeps at least half of its row
    if b.split_sku and r == b.main_row and cols > 1:
        split_at = int(rng.integers((cols + 1) // 2, cols))
    for c in range(cols):
        cx = round(x0 + c * pitch)
        if c in empty:
            b.poster_slots.append((cx, round(row_top), cx + iw, round(row_floor)))
        s = (b.split_sku or sku) if 0 <= split_at <= c else sku
        for lv in range(levels):
            if grid[c][lv]:
                on_top = lv == levels - 1 or not grid[c][lv + 1]
                _place_facing(b, s, cx, round(row_floor - lv * ih), iw, ih, lv, w, on_top)


def _place_facing(b: _Build, s: str, cx: int, y1: int, iw: int, ih: int, lv: int,
                  w: float, on_top: bool) -> None:
    rng = b.rng
    jx = round(rng.uniform(-0.02, 0.02) * w) if lv else 0
    labelled = b.with_codes and rng.random() < (0.9 if b.kinds[s] == "carton" else 0.8)
    sprite = _facing_sprite(b, s, iw, ih, labelled)
    if on_top and rng.random() < 0.4 * b.difficulty:  # nothing on top: may stand askew
        angle = float(np.clip(rng.normal(0, 1.5), -3, 3))
        sprite = rotated(sprite, angle)
    rw, rh = sprite.img.shape[1], sprite.img.shape[0]
    x_left = cx + jx + (iw - rw) // 2
    b.placed.append(_Placed((x_left, y1 - rh, x_left + rw, y1), s, b.kinds[s], sprite,
                            labelled))


def _facing_sprite(b: _Build, s: str, iw: int, ih: int, labelled: bool) -> Sprite:
    """One product, one look (with or without label, in any row) within a scene."""
    cache = b.sprites
    key = (s, iw, ih, labelled)
    if key not in cache:
        sprite_seed = [b.seed % 2**32, b.chosen.index(s)]
        cache[key] = _item_sprite(b.specs[s], b.kinds[s], iw, ih, labelled, sprite_seed)
    return cache[key]


def _draw_items(b: _Build) -> None:
    """Shelf backs, shadows, the facings, uneven light on cases, damage."""
    rng, world, Ww, Hw = b.rng, b.world, b.Ww, b.Hw
    shade = 0.55 if b.style == "warehouse" else 0.8
    for r in range(b.n_rows):  # back of the shelf is darker than the aisle wall
        y0 = round(b.top + r * b.row_total)
        y1 = b.beams[r][0]
        ys, ye = max(0, y0), max(0, min(Hw, y1))
        if ye > ys:
            world[ys:ye] = cv2.convertScaleAbs(world[ys:ye], alpha=shade)
    for p in b.placed:  # cast shadows first so neighbours do not darken each other's faces
        x0, y0, x1, y1 = p.box
        dx, dy = max(1, round((x1 - x0) * 0.04)), max(1, round((y1 - y0) * 0.03))
        xs, xe = max(0, x0 + dx), min(Ww, x1 + dx)
        ys, ye = max(0, y0 + dy), min(Hw, y1)
        if xe > xs and ye > ys:
            world[ys:ye, xs:xe] = cv2.convertScaleAbs(world[ys:ye, xs:xe], alpha=0.55)
    for p in b.placed:
        _paste_sprite(world, p.sprite, p.box[0], p.box[1])
        if p.sprite.alpha is None and rng.random() < 0.5:  # no two cases lit the same
            x0, y0, x1, y1 = (max(0, p.box[0]), max(0, p.box[1]), min(Ww, p.box[2]),
                              min(Hw, p.box[3]))
            if x1 > x0 and y1 > y0:
                world[y0:y1, x0:x1] = cv2.convertScaleAbs(world[y0:y1, x0:x1],
                                                          alpha=rng.uniform(0.85, 1.1))
    p_damage = 0.02 + 0.08 * b.difficulty
    for i, p in enumerate(b.placed):
        if p.kind in ("carton", "box", "bag") and rng.random() < p_damage:
            _damage(world, p.box, rng)
            p.damaged = True
            b.damaged_idx.add(i)


def _draw_beams_and_labels(b: _Build) -> None:
    rng, world, W = b.rng, b.world, b.W
    beam_col = (0, int(rng.integers(90, 130)), int(rng.integers(210, 250))) \
        if b.style == "warehouse" else tuple(int(v) for v in rng.integers(200, 245, 3))
    for b0, b1 in b.beams:
        bx0 = 0 if not b.left_up else round(b.x_lo - 0.03 * W)
        bx1 = b.Ww if not b.right_up else round(b.x_hi + 0.03 * W)
        cv2.rectangle(world, (bx0, b0), (bx1, b1), beam_col, -1)
        cv2.line(world, (bx0, b0), (bx1, b0), tuple(int(c * 0.7) for c in beam_col),
                 max(1, b.beam_h // 12))
    if b.bin_sprite is not None:
        b0, b1 = b.beams[b.main_row]
        lw, lh = b.bin_sprite.img.shape[1], b.bin_sprite.img.shape[0]
        lo_x, hi_x = b.mx + 0.08 * W, b.mx + W * 0.92 - lw
        bx = round(rng.uniform(lo_x, hi_x)) if hi_x > lo_x else b.mx + (W - lw) // 2
        by = b0 + (b1 - b0 - lh) // 2
        _paste_sprite(world, b.bin_sprite, bx, by)
        b.bin_box_world = (bx, by, bx + lw, by + lh)
        b.label_sprite_at = (b.bin_sprite, bx, by)


def _draw_tags_and_posters(b: _Build) -> None:
    """Clutter that is not an item: signs on warehouse beams, price tags on retail shelves, a
    poster in an empty slot (all kept as negatives)."""
    if b.style == "warehouse":
        _signs(b)
    if b.style == "retail":
        _price_tags(b)
    rng = b.rng
    if b.poster_slots and rng.random() < 0.35 + 0.4 * b.difficulty:
        x0, y0, x1, y1 = b.poster_slots[int(rng.integers(len(b.poster_slots)))]
        pw, ph = round((x1 - x0) * rng.uniform(0.5, 0.8)), round((y1 - y0) * rng.uniform(0.3, 0.6))
        if pw > 8 and ph > 8:
            ps = poster(pw, ph, rng)
            px, py = x0 + (x1 - x0 - pw) // 2, y0 + round((y1 - y0 - ph) * rng.uniform(0.2, 0.8))
            _paste_sprite(b.world, ps, px, py)
            b.extras.append((ps, px, py))
            b.negatives.append(("poster", (px, py, px + pw, py + ph)))


def _signs(b: _Build) -> None:
    rng, mx, W = b.rng, b.mx, b.W
    for b0, b1 in b.beams:
        if rng.random() > 0.35:
            continue
        sh = max(6, round((b1 - b0) * 0.7))
        sw = round(sh * 2.2)
        sx = round(rng.uniform(mx, mx + W - sw))
        sb = (sx, b0 + (b1 - b0 - sh) // 2, sx + sw, b0 + (b1 - b0 - sh) // 2 + sh)
        if b.bin_box_world and _overlap(sb, b.bin_box_world):
            continue
        sign = load_sign(sw, sh, rng)
        _paste_sprite(b.world, sign, sb[0], sb[1])
        b.extras.append((sign, sb[0], sb[1]))
        b.negatives.append(("sign", sb))


def _price_tags(b: _Build) -> None:
    rng, mx, W = b.rng, b.mx, b.W
    for b0, b1 in b.beams:
        tw = max(8, round(0.09 * W))
        th = max(6, min(b1 - b0 - 2, round(tw * 0.55)))
        for tx in range(round(mx + rng.uniform(0.02, 0.2) * W), mx + W, max(tw * 2, 1)):
            if rng.random() < 0.4:
                continue
            tb = (tx, b0 + 1, tx + tw, b0 + 1 + th)
            if b.bin_box_world and _overlap(tb, b.bin_box_world):
                continue
            row = b.by_sku[b.chosen[int(rng.integers(len(b.chosen)))]]
            tag = price_tag(_price_text(row.get("Unit_Price", "0"), rng),
                            row.get("Product_Description", "")[:18], tw, th, rng)
            _paste_sprite(b.world, tag, tx, b0 + 1)
            b.extras.append((tag, tx, b0 + 1))
            b.negatives.append(("price_tag", tb))


def _photograph(b: _Build) -> Scene:
    """The camera (perspective, then photometric defects) and the ground truth in photo
    pixels."""
    rng, W, H, mx, my = b.rng, b.W, b.H, b.mx, b.my
    quad = np.float32([[mx, my], [mx + W, my], [mx + W, my + H], [mx, my + H]])
    target = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    if rng.random() < 0.15 + 0.6 * b.difficulty:  # warping costs; straight shots are common
        jitter = b.difficulty * rng.uniform(0.2, 1.0) * 0.9
        quad += rng.uniform(-1, 1, (4, 2)).astype(np.float32) * np.float32([mx, my]) * jitter
        hom = cv2.getPerspectiveTransform(quad, target)
        image = cv2.warpPerspective(b.world, hom, (W, H), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
    else:
        hom = cv2.getPerspectiveTransform(quad, target)
        image = b.world[my:my + H, mx:mx + W].copy()
    image = _photometric(image, rng, b.difficulty)
    scale = float(W / np.linalg.norm(quad[1] - quad[0]))
    return _truth(b, image, hom, scale)


def _truth(b: _Build, image: np.ndarray, hom: np.ndarray, scale: float) -> Scene:
    W, H = b.W, b.H

    def tb(box: tuple[float, float, float, float]) -> Box:
        pts = np.float32([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]],
                          [box[0], box[3]]]).reshape(-1, 1, 2)
        out = cv2.perspectiveTransform(pts, hom).reshape(-1, 2)
        return (float(out[:, 0].min()), float(out[:, 1].min()), float(out[:, 0].max()),
                float(out[:, 1].max()))

    def inside(bx: Box) -> bool:
        return bx[0] >= 0 and bx[1] >= 0 and bx[2] <= W and bx[3] <= H

    items: list[Item] = []
    codes: list[RenderedCode] = []
    texts: list[RenderedText] = []
    damaged: set[int] = set()
    for i, p in enumerate(b.placed):
        full = tb(p.box)
        clip = (max(0.0, full[0]), max(0.0, full[1]), min(float(W), full[2]),
                min(float(H), full[3]))
        area = (full[2] - full[0]) * (full[3] - full[1])
        cw, ch = clip[2] - clip[0], clip[3] - clip[1]
        vis = max(0.0, cw) * max(0.0, ch) / area if area > 0 else 0.0
        if vis < MIN_LISTED_VISIBLE or cw < 2 or ch < 2:
            continue
        idx = len(items)
        items.append(Item(clip, p.sku, p.kind, vis < 0.999, min(1.0, vis),
                          vis >= COUNT_MIN_VISIBLE, full, p.damaged, p.labelled))
        if i in b.damaged_idx:
            damaged.add(idx)
        _collect(p.sprite, p.box[0], p.box[1], tb, inside, scale, idx, codes, texts)
    if b.label_sprite_at is not None:
        sprite, x, y = b.label_sprite_at
        _collect(sprite, x, y, tb, inside, scale, None, codes, texts)
    for sp, x, y in b.extras:
        _collect(sp, x, y, tb, inside, scale, None, codes, texts)
    bin_box = tb(b.bin_box_world) if b.bin_box_world else None
    main_sku = b.chosen[0]
    counts: dict[str, int] = {main_sku: 0}
    for it in items:
        if it.counted:
            counts[it.sku] = counts.get(it.sku, 0) + 1
    shown = set(counts) | {it.sku for it in items}
    return Scene(
        image=image, items=items, location=b.loc if b.bin_sprite is not None else None,
        bin_label_box=bin_box if bin_box and inside(bin_box) else bin_box,
        codes=codes, texts=texts,
        expiry={s: d for s, d in b.expiry.items() if s in shown},
        counts=counts, damaged=damaged,
        negatives=[(k, tb(bx)) for k, bx in b.negatives], seed=b.seed, style=b.style,
        difficulty=b.difficulty, main_sku=main_sku,
    )


def render_training_sample(seed: int, size: int = 384, *, difficulty: float | None = None,
                           style: str = "mixed") -> Scene:
    """A square training image: a scene rendered up to 2x larger then shrunk to ``size``.

    Shrinking varies the apparent item size (zoom) and anti-aliases like a real camera; the
    difficulty is drawn at random when not given so the detector sees easy and hard photos.
    """
    rng = np.random.default_rng([seed, 7919])
    zoom = float(rng.uniform(1.0, 2.0))
    diff = float(rng.uniform(0.2, 1.0)) if difficulty is None else difficulty
    side = round(size * zoom)
    scene = render_scene(seed, width=side, height=side, style=style, difficulty=diff)
    return scene.resized(size / side) if side != size else scene


# --------------------------------------------------------------------------------------------
# helpers


def _ean_check(digits12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits12))
    return str((10 - total % 10) % 10)


def _split(n: int, weights: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Split ``n`` items across rows proportionally to ``weights`` (sums exactly to n)."""
    raw = weights / weights.sum() * n
    out = [int(v) for v in np.floor(raw)]
    for i in rng.permutation(len(out))[:n - sum(out)]:
        out[int(i)] += 1
    return out


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _upright(world: np.ndarray, x: int, w: int, rng: np.random.Generator) -> None:
    """Blue racking upright with its row of slots."""
    col = (int(rng.integers(120, 170)), int(rng.integers(60, 90)), int(rng.integers(10, 40)))
    cv2.rectangle(world, (x, 0), (x + w, world.shape[0]), col, -1)
    hole = max(2, w // 5)
    for y in range(hole, world.shape[0], hole * 3):
        cv2.rectangle(world, (x + w // 2 - hole // 2, y), (x + w // 2 + hole // 2, y + hole),
                      (25, 25, 25), -1)


def _item_sprite(spec: LabelSpec, kind: str, w: int, h: int, labelled: bool,
                 sprite_seed: list[int]) -> Sprite:
    """One facing; the body's look depends only on ``sprite_seed``, labelled or not."""
    rng = np.random.default_rng([*sprite_seed, 1])
    label = None
    if labelled:
        frac = {"carton": (0.45, 0.75), "box": (0.5, 0.8), "bottle": (0.8, 0.95),
                "can": (0.7, 0.9), "bag": (0.5, 0.75)}[kind]
        max_w = w * (0.92 if kind in ("carton", "box") else frac[1])
        lw = label_width_for(spec, max_w, w * rng.uniform(*frac))
        max_h = h * (0.75 if kind in ("carton", "box", "bag") else 0.4)
        for _ in range(4):  # narrower labels are also shorter
            if lw < 16:
                break
            label = render_label(spec, lw, max_h=max_h)
            if label.img.shape[0] <= max_h:
                break
            label, lw = None, int(lw * max_h / label.img.shape[0])
    return DRAWERS[kind](w, h, np.random.default_rng([*sprite_seed, 0]), label)


def _paste_sprite(world: np.ndarray, sprite: Sprite, x: int, y: int) -> None:
    paste(world, sprite.img, x, y, sprite.alpha)


def _damage(world: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Crushed corner and a crease: what "Damaged" looks like on a case."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    s = max(3, round(min(w, h) * rng.uniform(0.2, 0.4)))
    right = rng.random() < 0.5
    cx = x1 if right else x0
    pts = np.array([[cx, y0], [cx + (-s if right else s), y0], [cx, y0 + s]], np.int32)
    cv2.fillPoly(world, [pts], (30, 35, 40))
    cv2.line(world, (cx + (-s if right else s), y0), (cx, y0 + s), (20, 25, 30), max(1, s // 10))
    cv2.line(world, (x0 + round(w * rng.uniform(0.2, 0.8)), y0),
             (x0 + round(w * rng.uniform(0.2, 0.8)), y1), (40, 60, 80), max(1, s // 12))


def _photometric(img: np.ndarray, rng: np.random.Generator, difficulty: float) -> np.ndarray:
    """Lighting gradient and colour cast, blur, sensor noise, JPEG artefacts."""
    h, w = img.shape[:2]
    strength = difficulty * rng.uniform(0.3, 1.0)
    if strength > 0.05:
        gx, gy = np.meshgrid(np.linspace(-1, 1, 16, dtype=np.float32),
                             np.linspace(-1, 1, 12, dtype=np.float32))
        a, b, c = rng.uniform(-1, 1, 3)
        gain = 1 + strength * (0.35 * (a * gx + b * gy) - 0.3 * c * (gx**2 + gy**2))
        gain = np.clip(gain * rng.uniform(0.85, 1.1), 0.25, 1.8)
        cast = 1 + rng.uniform(-0.08, 0.08, 3) * strength
        small = np.clip(gain[..., None] * cast * 128, 0, 255).astype(np.uint8)
        g8 = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        img = cv2.multiply(img, g8, scale=1 / 128)
    if rng.random() < 0.25 + 0.5 * difficulty:
        # phone optics keep a few pixels sharp at any resolution: blur grows slowly with size
        sigma = rng.uniform(0.3, 0.5 + 1.2 * difficulty) * max(1.0, min(w, h) / 1080) ** 0.3
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.3 + 0.6 * difficulty:
        level = rng.uniform(2, 4 + 10 * difficulty)
        # one band of noise tiled down the picture: full-size normals are slow
        block = rng.normal(0, level, (127, 131, 3))
        band = np.tile(block, (1, w // 131 + 1, 1))[:, :w]
        pos = np.ascontiguousarray(np.clip(band, 0, 255).astype(np.uint8))
        neg = np.ascontiguousarray(np.clip(-band, 0, 255).astype(np.uint8))
        for y in range(0, h, 127):
            rows = img[y:y + 127]
            n = rows.shape[0]
            cv2.add(rows, pos[:n], dst=rows)
            cv2.subtract(rows, neg[:n], dst=rows)
    if rng.random() < 0.2 + 0.5 * difficulty:
        q = int(rng.uniform(45, 90))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def _collect(sprite: Sprite, x: int, y: int, tb, inside, scale: float, item: int | None,
             codes: list[RenderedCode], texts: list[RenderedText]) -> None:
    """Move a pasted sprite's codes and text lines into photo pixels (only if fully shown)."""
    for fmt, text, (a, b, c, d), module, gs1 in sprite.codes:
        box = tb((a + x, b + y, c + x, d + y))
        if inside(box):
            codes.append(RenderedCode(fmt, text, box, module * scale, gs1, item))
    for text, (a, b, c, d), cap, role in sprite.texts:
        box = tb((a + x, b + y, c + x, d + y))
        if inside(box):
            texts.append(RenderedText(text, box, cap * scale, role, item))


def main(argv: list[str] | None = None) -> int:
    """CLI: write N scenes as JPEG + JSON ground truth (benchmarks, debugging)."""
    ap = argparse.ArgumentParser(prog="python -m gateway.training.scenes",
                                 description="Render synthetic shelf photos with ground truth.")
    ap.add_argument("--out", required=True, type=Path, help="output folder (created)")
    ap.add_argument("--n", type=int, default=10, help="number of scenes")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--style", default="mixed", choices=["warehouse", "retail", "mixed"])
    ap.add_argument("--difficulty", type=float, default=0.5, help="0 (clean) .. 1 (hard)")
    ap.add_argument("--items", type=int, default=None, help="items per scene (default random)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = ap.parse_args(argv)
    if args.n < 0 or args.width < 64 or args.height < 64:
        print("error: --n must be >= 0 and sizes >= 64", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        seed = args.seed + i
        scene = render_scene(seed, width=args.width, height=args.height, style=args.style,
                             difficulty=args.difficulty, n_items=args.items)
        stem = args.out / f"scene_{seed:06d}"
        stem.with_suffix(".jpg").write_bytes(encode_jpeg(scene, args.quality))
        stem.with_suffix(".json").write_text(json.dumps(scene.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
