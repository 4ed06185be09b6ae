"""Item detection on whole photos: overview tiles, scale choice, tiling, cross-tile merge.

The detector sees 640x640 tiles. A phone photo of a bay can hold a few large cartons or sixty
small ones, so one fixed resize cannot suit both:

1. Overview, two tiles in one batch: the whole photo letterboxed into the tile (preview) and
   into half of it (coarse). The detector is most reliable for items of ~30-150 px, so close-ups
   of a few big cartons are taken from the coarse view (median item >= ``COARSE_MIN_ITEM_PX``
   there) and ordinary shelf photos from the preview (median >= ``MIN_PREVIEW_ITEM_PX``).
2. Otherwise the photo is resized so the median item becomes ~``TARGET_ITEM_PX`` pixels (the
   size the detector was trained to be best at) and cut into tiles overlapping by
   ``OVERLAP_PX``, so every item up to that size is whole in at least one tile.
3. Merge in photo coordinates: a detection touching a tile border that lies inside the photo
   is a cut item; it is dropped when another tile sees that item whole, cut pieces of an item
   larger than the overlap are fused, and greedy NMS removes items seen whole twice.

Items cut at the *photo* edge are left to the detector, which was trained with the scene
generator's rule (counted when at least half visible, ambiguous band ignored), so tiles and
previews treat them alike.

The score threshold comes from the answering version's ``item_detector/<N>/meta.json``, written
by the training command after choosing it on a validation set to maximise count accuracy.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from gateway.pipeline.types import Detection

TILE = 640
OVERLAP_PX = 192
PAD_VALUE = 114
MIN_PREVIEW_ITEM_PX = 44.0
COARSE = TILE // 2
COARSE_MIN_ITEM_PX = 48.0
TARGET_ITEM_PX = 80.0
# Scores above this in the preview are trusted enough to estimate the item size.
SIZE_SCORE = 0.3
# Tiling needs at least this many small items in the preview (see working_scale).
MIN_TILED_ITEMS = 6
MAX_TILES = 16
MAX_BATCH = 8
NMS_IOU = 0.5
EDGE_PX = 3.0
DEFAULT_THRESHOLD = 0.4
# Candidates below the threshold but within this band still lower Count_Confidence.
CONFIDENCE_BAND = 0.15
META_PATH = (
    Path(__file__).resolve().parents[2] / "triton_models" / "item_detector" / "1" / "meta.json"
)


class TileDetector(Protocol):
    """Anything with the InferenceClient.detect signature (Triton client, local ORT runner)."""

    def detect(self, tiles: np.ndarray) -> list[list[Detection]]: ...


class VersionRecorder:
    """A TileDetector that notes which detector version answered (one per count: it is not
    shared between threads)."""

    def __init__(self, client: TileDetector) -> None:
        self.client = client
        self.version: str | None = None

    def detect(self, tiles: np.ndarray) -> list[list[Detection]]:
        versioned = getattr(self.client, "detect_versioned", None)
        if versioned is None:  # a local runner: no versions
            return self.client.detect(tiles)
        found, version = versioned(tiles)
        self.version = version or self.version
        return found


@functools.cache
def model_meta(path: Path = META_PATH) -> dict[str, object]:
    """The detector's metadata (threshold, training facts); empty when not present."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def calibration_for(repository: Path, version: str | None) -> tuple[float, float]:
    """(threshold, confidence band) of the detector version Triton answered with: each
    version folder carries its own meta.json; the shipped model's when it has none."""
    meta = model_meta(repository / "item_detector" / version / "meta.json") if (
        version and version.isdigit()) else {}
    if "threshold" not in meta:
        return default_threshold(), default_band()
    band = meta.get("confidence_band", CONFIDENCE_BAND)
    return float(meta["threshold"]), float(band)  # type: ignore[arg-type]


def default_threshold() -> float:
    """The validation-chosen score threshold shipped with the model."""
    return float(model_meta().get("threshold", DEFAULT_THRESHOLD))  # type: ignore[arg-type]


def default_band() -> float:
    """The confidence band calibrated with the model (see :func:`count_confidence`)."""
    return float(model_meta().get("confidence_band", CONFIDENCE_BAND))  # type: ignore[arg-type]


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _canvas(part: np.ndarray) -> np.ndarray:
    tile = np.full((TILE, TILE, 3), PAD_VALUE, np.uint8)
    tile[: part.shape[0], : part.shape[1]] = part
    return tile


def _run(client: TileDetector, tiles: list[np.ndarray]) -> list[list[Detection]]:
    out: list[list[Detection]] = []
    for i in range(0, len(tiles), MAX_BATCH):
        out += client.detect(np.stack(tiles[i : i + MAX_BATCH]))
    return out


def _starts(length: int) -> list[int]:
    """Tile origins along one axis: tiles overlap by at least OVERLAP_PX and end at the edge."""
    if length <= TILE:
        return [0]
    n = math.ceil((length - OVERLAP_PX) / (TILE - OVERLAP_PX))
    return [round(i * (length - TILE) / (n - 1)) for i in range(n)]


def _as_array(dets: Sequence[Detection]) -> np.ndarray:
    if not dets:
        return np.zeros((0, 5), np.float32)
    return np.array([[*d.box, d.score] for d in dets], np.float32)


def nms(rows: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Greedy NMS on ``[n, 5]`` rows (x0, y0, x1, y1, score); returns kept rows by score."""
    if len(rows) == 0:
        return rows
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    area = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    keep = []
    alive = np.ones(len(rows), bool)
    for i in range(len(rows)):
        if not alive[i]:
            continue
        keep.append(i)
        ix = np.minimum(rows[i, 2], rows[:, 2]) - np.maximum(rows[i, 0], rows[:, 0])
        iy = np.minimum(rows[i, 3], rows[:, 3]) - np.maximum(rows[i, 1], rows[:, 1])
        inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
        ov = inter / np.maximum(area[i] + area - inter, 1e-6)
        alive &= ov <= iou
        alive[i] = False
    return rows[keep]


def _coverage(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each box in ``a`` covered by each box in ``b``: ``[len(a), len(b)]``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-6)
    return inter / area[:, None]


def merge_tiles(
    per_tile: Sequence[Sequence[Detection]],
    origins: Sequence[tuple[int, int]],
    width: int,
    height: int,
) -> np.ndarray:
    """Merge tile detections into ``[n, 5]`` rows in the coordinates of the tiled picture.

    ``origins`` are tile (x, y) offsets; ``width``/``height`` the tiled picture's size, which
    decides which tile borders are inside the picture (cuts) and which are the photo's edge.
    """
    whole, cut = [], []
    for dets, (ox, oy) in zip(per_tile, origins, strict=True):
        rows = _as_array(dets)
        if len(rows) == 0:
            continue
        inner_l, inner_t = ox > 0, oy > 0
        inner_r, inner_b = ox + TILE < width, oy + TILE < height
        touches = (
            (inner_l & (rows[:, 0] <= EDGE_PX))
            | (inner_t & (rows[:, 1] <= EDGE_PX))
            | (inner_r & (rows[:, 2] >= TILE - EDGE_PX))
            | (inner_b & (rows[:, 3] >= TILE - EDGE_PX))
        )
        rows = rows + np.array([ox, oy, ox, oy, 0], np.float32)
        whole.append(rows[~touches])
        cut.append(rows[touches])
    kept = nms(np.concatenate(whole)) if whole else np.zeros((0, 5), np.float32)
    pieces = np.concatenate(cut) if cut else np.zeros((0, 5), np.float32)
    if len(pieces):
        # A piece mostly inside an item seen whole is that item: drop it.
        pieces = pieces[_coverage(pieces, kept).max(axis=1, initial=0.0) < 0.5]
        pieces = _fuse_pieces(pieces)
    return np.concatenate([kept, pieces]) if len(pieces) else kept


def _fuse_pieces(pieces: np.ndarray) -> np.ndarray:
    """Cut pieces of one item from neighbouring tiles overlap in the shared band: union them."""
    pieces = pieces[np.argsort(-pieces[:, 4], kind="stable")]
    out: list[np.ndarray] = []
    for p in pieces:
        for i, q in enumerate(out):
            cov = _coverage(p[None], q[None])[0, 0]
            cov_q = _coverage(q[None], p[None])[0, 0]
            if max(cov, cov_q) >= 0.3:
                out[i] = np.array([min(p[0], q[0]), min(p[1], q[1]), max(p[2], q[2]),
                                   max(p[3], q[3]), max(p[4], q[4])], np.float32)
                break
        else:
            out.append(p.copy())
    return np.array(out, np.float32).reshape(-1, 5)


def _overview(image: np.ndarray, client: TileDetector) -> list[tuple[np.ndarray, float]]:
    """[(rows, scale)] for the coarse and the preview view, run as one batch."""
    h, w = image.shape[:2]
    out = []
    tiles = []
    for side in (COARSE, TILE):
        scale = min(1.0, side / max(h, w))
        tiles.append(_canvas(_resize(image, scale) if scale < 1 else image))
        out.append(scale)
    results = _run(client, tiles)
    return [(nms(_as_array(r)), s) for r, s in zip(results, out, strict=True)]


def _median_side(rows: np.ndarray) -> float | None:
    sure = rows[rows[:, 4] >= SIZE_SCORE] if len(rows) else rows
    if len(sure) == 0:
        return None
    return float(np.median(np.sqrt((sure[:, 2] - sure[:, 0]) * (sure[:, 3] - sure[:, 1]))))


def working_scale(preview_rows: np.ndarray, preview_scale: float, height: int, width: int) -> float:
    """Scale of the photo for tiling, or ``preview_scale`` when the preview is good enough."""
    side = _median_side(preview_rows)
    if side is None or side >= MIN_PREVIEW_ITEM_PX:
        return preview_scale
    if int((preview_rows[:, 4] >= SIZE_SCORE).sum()) < MIN_TILED_ITEMS:
        # A few small "items" in a cluttered room are windows and signs far more often than a
        # bay of small cartons: up-scaling for them only multiplies false detections.
        return preview_scale
    scale = preview_scale * TARGET_ITEM_PX / max(side, 1.0)
    scale = min(scale, 1.5)
    # Bound the work: shrink until the tiles fit MAX_TILES.
    while scale > preview_scale:
        nx = len(_starts(round(width * scale)))
        ny = len(_starts(round(height * scale)))
        if nx * ny <= MAX_TILES:
            break
        scale *= 0.9
    return max(scale, preview_scale)


def detect_candidates(
    image_bgr: np.ndarray, client: TileDetector, *, preview: bool = False
) -> list[Detection]:
    """Every merged candidate above the model's floor score, in photo pixels (no threshold).

    ``preview=True`` stops after the overview batch (two tiles) whatever the item size.
    """
    h, w = image_bgr.shape[:2]
    (coarse_rows, cscale), (rows, scale) = _overview(image_bgr, client)
    coarse_side = _median_side(coarse_rows)
    if coarse_side is not None and coarse_side >= COARSE_MIN_ITEM_PX:
        rows, scale = coarse_rows, cscale
    elif not preview:
        pscale = scale
        scale = working_scale(rows, pscale, h, w)
        if scale > pscale:
            big = _resize(image_bgr, scale)
            bh, bw = big.shape[:2]
            origins = [(x, y) for y in _starts(bh) for x in _starts(bw)]
            tiles = [_canvas(big[y : y + TILE, x : x + TILE]) for x, y in origins]
            rows = merge_tiles(_run(client, tiles), origins, bw, bh)
    rows = rows.copy()
    rows[:, :4] /= scale
    rows[:, [0, 2]] = rows[:, [0, 2]].clip(0, w)
    rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, h)
    return [Detection(box=tuple(float(v) for v in r[:4]), score=float(r[4])) for r in rows]


def detect_items(
    image_bgr: np.ndarray,
    client: TileDetector,
    *,
    preview: bool = False,
    threshold: float | None = None,
) -> list[Detection]:
    """Items in a photo: candidates at or above the validation-chosen threshold.

    ``preview=True`` runs the two overview tiles only (fast, for live camera previews). For
    Count_Confidence call :func:`detect_candidates` and :func:`count_confidence` with the
    same threshold: candidates just under the threshold are what make a count uncertain.
    """
    thr = default_threshold() if threshold is None else threshold
    return [d for d in detect_candidates(image_bgr, client, preview=preview) if d.score >= thr]


def count_confidence(
    detections: Sequence[Detection], threshold: float | None = None, band: float | None = None
) -> float:
    """How sure the count is, 0..1: 1 when every candidate is far from the threshold.

    Each candidate within ``band`` of the threshold is a near coin-flip for the
    count (ambiguity 1 at the threshold, 0 at the band's edge); the result is the probability
    that none of them flipped, ``prod(1 - ambiguity / 2)``. Pass all candidates
    (:func:`detect_candidates`) so near-misses below the threshold count too. The band is
    calibrated by the training command on held-out real photos (``confidence_band`` in
    meta.json) so that counts reported at >= 0.8 are right at least 95 % of the time.
    """
    thr = default_threshold() if threshold is None else threshold
    band = default_band() if band is None else band
    return confidence_from_scores(np.array([d.score for d in detections], float), thr, band)


def confidence_from_scores(scores: np.ndarray, threshold: float, band: float) -> float:
    """:func:`count_confidence` on a bare array of candidate scores."""
    a = np.clip(1.0 - np.abs(scores - threshold) / band, 0.0, None)
    return float(np.prod(1.0 - a / 2))
