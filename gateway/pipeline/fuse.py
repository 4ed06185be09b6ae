"""Fuse codes, text and detections into rows of the count CSV schema.

Every figure says where it came from: the location from a bin-label code beats OCR of the label,
which beats what the walker's session says; a SKU from a code beats SKU text, which beats the
catalog's home SKU for the bin. Count_Confidence multiplies how sure each of those sources is,
so a count that leans on a guess never looks as sure as one read off codes and the detector.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from gateway.catalog import Catalog
from gateway.gtin import gs1_date
from gateway.pipeline.ocr_regions import Region
from gateway.pipeline.text import find_expiry, find_location, find_sku
from gateway.pipeline.types import Box, Code, Detection, TextLine

# How sure a source is, before model scores: a decoded code is verified by its check digit; the
# walker's chosen location is usually right; a bin's home SKU is a guess about what is there.
LOCATION_CONF = {"code": 1.0, "session": 0.85, "none": 0.3}
SKU_CONF = {"own": 1.0, "neighbour": 0.85, "home": 0.7, "unknown": 0.3}
CODES_ONLY_COUNT_CONF = 0.6  # without the detector, hidden items (no visible code) are missed
UNIDENTIFIED = "Unidentified items"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ItemCode:
    """A code that names a product, with what else it told us."""

    box: Box
    sku: str
    expiry: date | None


@dataclass
class Evidence:
    """What the photo says about its items, gathered by the earlier stages."""

    item_codes: list[ItemCode]
    detections: list[Detection] | None = None  # None: no item detector deployed
    item_skus: list[str | None] | None = None  # per detection, from assign.name_items
    item_sources: list[str] | None = None  # per detection: own / neighbour / home / unknown
    count_confidence: dict[str, float] | None = None  # per SKU, from the detector's scores


@dataclass(frozen=True)
class Facts:
    """What codes and text say about the bay, worked out once per photo."""

    location: str
    location_conf: float
    text_skus: list[tuple[Box, str]]  # SKU text seen on labels, photo boxes
    expiry: dict[str, date]  # earliest expiry per SKU, from codes and label text
    home: str | None  # the catalog's SKU for the location
    location_source: str = "none"  # code / ocr / session / none (pick_location)


def classify_codes(
    codes: list[Code], catalog: Catalog, location_pattern: str, sku_pattern: str
) -> tuple[list[ItemCode], list[tuple[Box, str]]]:
    """Split codes into product codes (with SKU) and bin-label location codes."""
    items: list[ItemCode] = []
    locations: list[tuple[Box, str]] = []
    for code in codes:
        entry = catalog.by_gtin(code.gtin) or catalog.by_code_text(code.text)
        sku = entry.sku if entry else None
        if sku is None and not code.gtin:
            loc = find_location(code.text, location_pattern)
            if loc and len(loc) >= len(code.text.strip()) - 1:
                locations.append((code.box, loc))
                continue
            sku = find_sku(code.text, sku_pattern)
        if sku is None and code.gtin:
            if code.easily_misread and len(catalog):
                continue  # a fragile read of a GTIN the catalog does not know: a misread
            sku = code.gtin  # a product we do not know yet: keep its GTIN visible, not drop it
        if sku is None:
            continue
        expiry = gs1_date(code.ai["17"]) if "17" in code.ai else None
        items.append(ItemCode(code.box, sku, expiry))
    return items, locations


def pick_location(
    location_codes: list[tuple[Box, str]],
    ocr: list[tuple[Region, list[TextLine]]],
    session_location: str | None,
    pattern: str,
) -> tuple[str, float, str]:
    """(location, confidence, source) in the order bin code > OCR > session."""
    if location_codes:
        votes = Counter(loc for _, loc in location_codes)
        return votes.most_common(1)[0][0], LOCATION_CONF["code"], "code"
    best: tuple[float, str] | None = None
    for _, lines in ocr:
        for line in lines:
            loc = find_location(line.text, pattern)
            if loc and (best is None or line.score > best[0]):
                best = (line.score, loc)
    if best is not None:
        return best[1], round(0.95 * best[0], 3), "ocr"
    if session_location:
        return session_location, LOCATION_CONF["session"], "session"
    return "", LOCATION_CONF["none"], "none"


def text_evidence(
    ocr: list[tuple[Region, list[TextLine]]], sku_pattern: str, catalog: Catalog
) -> tuple[list[tuple[Box, str]], dict[str, date]]:
    """SKU text seen on labels (with photo boxes) and the expiry printed next to each SKU.

    With a catalog loaded, SKU text must name a catalog product: a misread line ("SKU-100"
    for "SKU-10002") would otherwise become a phantom product with a count of its own.
    """
    labelled: list[tuple[Box, str]] = []
    expiry: dict[str, date] = {}
    for region, lines in ocr:
        skus = [(region.to_photo(ln.box), s) for ln in lines
                if (s := find_sku(ln.text, sku_pattern)) and _known(catalog, s)]
        dates = [(region.to_photo(ln.box), d) for ln in lines if (d := find_expiry(ln.text))]
        if region.purpose != "label":  # a label crop's SKU is already known from its code
            labelled.extend(skus)
        for dbox, day in dates:
            sku = region.sku or (skus[0][1] if len(skus) == 1 else _nearest(dbox, skus))
            if sku and (sku not in expiry or day < expiry[sku]):
                expiry[sku] = day
    return labelled, expiry


def _known(catalog: Catalog, sku: str) -> bool:
    return not len(catalog) or catalog.by_sku(sku) is not None


def _nearest(box: Box, candidates: list[tuple[Box, str]]) -> str | None:
    if not candidates:
        return None
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    height = max(1.0, box[3] - box[1])

    def dist(c: tuple[Box, str]) -> float:
        b = c[0]
        return abs((b[0] + b[2]) / 2 - cx) + abs((b[1] + b[3]) / 2 - cy)

    best = min(candidates, key=dist)
    return best[1] if dist(best) < 8 * height else None


def _contains(outer: Box, inner: Box) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def gather_facts(
    item_codes: list[ItemCode],
    location_codes: list[tuple[Box, str]],
    ocr: list[tuple[Region, list[TextLine]]],
    catalog: Catalog,
    *,
    session_location: str | None,
    location_pattern: str,
    sku_pattern: str,
) -> Facts:
    """Location, SKU text and expiry dates from the codes and the OCR'd text."""
    location, conf, source = pick_location(location_codes, ocr, session_location,
                                           location_pattern)
    text_skus, expiry = text_evidence(ocr, sku_pattern, catalog)
    for ic in item_codes:
        if ic.expiry and (ic.sku not in expiry or ic.expiry < expiry[ic.sku]):
            expiry[ic.sku] = ic.expiry
    return Facts(location, conf, text_skus, expiry, catalog.home_sku(location), source)


def box_sources(evidence: Evidence, n_boxes: int) -> list[str]:
    """What named each box's SKU, in ``build_rows``' box order: ``own`` (its code or label),
    ``neighbour`` / ``home`` (guessed from the shelf run or the bin), ``unknown``. A live
    preview labels only ``own`` boxes with a SKU: the others are "item" until counted."""
    if evidence.detections and evidence.item_skus is not None:
        named = list(evidence.item_sources or ["own"] * len(evidence.detections))
        return named + ["own"] * (n_boxes - len(named))
    return ["own"] * n_boxes


@dataclass
class _Tally:
    """Items per SKU and how sure each figure is, before they become rows."""

    counts: Counter[str]
    detected: Counter[str]  # per SKU, what the detector alone found
    sku_conf: dict[str, float]
    count_conf: dict[str, float]
    boxes: list[list[object]]


def _tally_detections(evidence: Evidence, code_counts: Counter[str]) -> _Tally:
    """Count the detector's items by the SKU each was given; every decoded product code is
    an item facing too, so one the detector missed is counted and drawn (the disagreement
    lowers the confidence)."""
    assert evidence.detections is not None and evidence.item_skus is not None
    counts: Counter[str] = Counter()
    boxes: list[list[object]] = []
    sources = evidence.item_sources or ["own"] * len(evidence.detections)
    per_sku_sources: dict[str, list[float]] = defaultdict(list)
    for det, sku, src in zip(evidence.detections, evidence.item_skus, sources, strict=True):
        key = sku or ""
        counts[key] += 1
        per_sku_sources[key].append(SKU_CONF.get(src, SKU_CONF["unknown"]))
        boxes.append([*(round(v, 1) for v in det.box), round(det.score, 3), key])
    sku_conf = {k: sum(v) / len(v) for k, v in per_sku_sources.items()}
    detected = Counter(counts)
    for ic in evidence.item_codes:
        if not any(_contains(det.box, ic.box) for det in evidence.detections):
            boxes.append([*(round(v, 1) for v in ic.box), 1.0, ic.sku])
            counts[ic.sku] += 1
            sku_conf.setdefault(ic.sku, SKU_CONF["own"])
    for sku, n in code_counts.items():
        counts[sku] = max(counts[sku], n)
    return _Tally(counts, detected, sku_conf, dict(evidence.count_confidence or {}), boxes)


def _tally_codes(evidence: Evidence, facts: Facts, code_counts: Counter[str]) -> _Tally:
    """No detector: count the distinct items identified by a code, else by SKU text."""
    boxes: list[list[object]] = [[*(round(v, 1) for v in ic.box), 1.0, ic.sku]
                                 for ic in evidence.item_codes]
    counts = Counter(code_counts)
    for box, sku in facts.text_skus:
        if sku not in code_counts:
            counts[sku] += 1
            boxes.append([*(round(v, 1) for v in box), 1.0, sku])
    return _Tally(counts, Counter(), {k: SKU_CONF["own"] for k in counts},
                  {k: CODES_ONLY_COUNT_CONF for k in counts}, boxes)


def _condition(qty: int, expiry: date | None, now: datetime) -> str:
    if qty == 0:
        return "Out of Stock"
    if expiry is not None and expiry < now.date():
        return "Expired"
    return "Good"


def _confidence(sku: str, tally: _Tally, evidence: Evidence, code_counts: Counter[str],
                location_conf: float) -> float:
    agreement = 1.0
    detected = tally.detected.get(sku, 0)
    if evidence.detections is not None and code_counts.get(sku, 0) > detected:
        # More codes than detected items: the detector missed some, so others may hide too.
        agreement = max(detected, 1) / code_counts[sku]
    conf = location_conf * tally.sku_conf.get(sku, SKU_CONF["unknown"])
    conf *= tally.count_conf.get(sku, CODES_ONLY_COUNT_CONF) * agreement
    if not sku:
        conf *= SKU_CONF["unknown"]
    return round(max(0.0, min(1.0, conf)), 3)


def build_rows(
    evidence: Evidence, facts: Facts, catalog: Catalog, *, now: datetime
) -> tuple[list[dict[str, object]], list[list[object]]]:
    """Rows (one per location and SKU) and the boxes a client draws."""
    code_counts = Counter(ic.sku for ic in evidence.item_codes)
    # A detector that found nothing is no proof of an empty bin when codes or label text name
    # a product: then count what they name, as without a detector.
    if evidence.detections and evidence.item_skus is not None:
        tally = _tally_detections(evidence, code_counts)
    else:
        tally = _tally_codes(evidence, facts, code_counts)
    counts, home = tally.counts, facts.home
    if home and counts.get(home, 0) == 0:
        counts[home] = 0
        tally.sku_conf.setdefault(home, SKU_CONF["home"])
    if not counts:
        counts[""] = 0

    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows: list[dict[str, object]] = []
    for sku in sorted(counts, key=lambda s: (s == "", s)):
        qty = counts[sku]
        entry = catalog.by_sku(sku) if sku else None
        price = entry.unit_price if entry else Decimal("0")
        exp = facts.expiry.get(sku)
        description = entry.description if entry else (UNIDENTIFIED if not sku else "")
        rows.append({
            "Location": facts.location,
            "SKU": sku,
            "Product_Description": description,
            "Quantity_Counted": qty,
            "Unit_Price": money(price),
            "Total_Value": money(price * qty),
            "Condition": _condition(qty, exp, now),
            "Expiration_Date": exp.isoformat() if exp else "",
            "Last_Updated": stamp,
            "Count_Confidence": _confidence(sku, tally, evidence, code_counts,
                                            facts.location_conf),
        })
    return rows, tally.boxes
