"""Evaluation: AP@0.5 and the count metrics that matter, plus the count-aware threshold.

The photos go through the same :func:`gateway.pipeline.detect.detect_candidates` the gateway
uses (preview, scale choice, tiling, merge), so the numbers describe the shipped pipeline and
not the bare network on training-sized crops.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from gateway.pipeline.detect import TileDetector, confidence_from_scores, detect_candidates

# Items-per-photo bins of the report; None = no upper bound.
BINS: tuple[tuple[int, int | None], ...] = ((1, 15), (16, 30), (31, 60), (61, None))
CONFIDENCE_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)


@dataclass
class EvalImage:
    """A photo with its counted item boxes and the ambiguous (ignored) ones."""

    image: np.ndarray
    boxes: np.ndarray
    ignore: np.ndarray


def collect(
    images: Iterable[EvalImage], detector: TileDetector, total: int | None = None,
    quiet: bool = False,
) -> tuple[list[np.ndarray], list[EvalImage]]:
    """All merged candidates per photo as ``[n, 5]`` rows (score floor only, no threshold),
    and the ground truth with the pixels dropped (a 12 MP test set does not fit in memory)."""
    cands, truth = [], []
    for ev in tqdm(images, total=total, file=sys.stderr, desc="eval", disable=quiet):
        dets = detect_candidates(ev.image, detector)
        cands.append(np.array([[*d.box, d.score] for d in dets], np.float32).reshape(-1, 5))
        truth.append(EvalImage(np.zeros((0, 0, 3), np.uint8), ev.boxes, ev.ignore))
    return cands, truth


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area of every box of ``a`` [N, 4] with every box of ``b`` [M, 4]."""
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(ix, 0, None) * np.clip(iy, 0, None)


def areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = intersections(a, b)
    return inter / np.maximum(areas(a)[:, None] + areas(b)[None, :] - inter, 1e-6)


def ap50(cands: Sequence[np.ndarray], gts: Sequence[EvalImage]) -> float:
    """Class-agnostic AP at IoU 0.5 (all-point interpolation). Detections on ignored
    (ambiguously visible) items are neither right nor wrong."""
    scores, hits = [], []
    n_gt = 0
    for rows, ev in zip(cands, gts, strict=True):
        n_gt += len(ev.boxes)
        if len(rows) == 0:
            continue
        rows = rows[np.argsort(-rows[:, 4])]
        taken = np.zeros(len(ev.boxes), bool)
        iou = _iou(rows[:, :4], ev.boxes) if len(ev.boxes) else np.zeros((len(rows), 0))
        iou_ign = _iou(rows[:, :4], ev.ignore) if len(ev.ignore) else np.zeros((len(rows), 0))
        for i, r in enumerate(rows):
            cand = np.where(~taken, iou[i], 0.0) if iou.shape[1] else iou[i]
            j = int(np.argmax(cand)) if cand.size else -1
            if j >= 0 and cand[j] >= 0.5:
                taken[j] = True
                scores.append(r[4])
                hits.append(1)
            elif iou_ign.shape[1] and iou_ign[i].max() >= 0.5:
                continue
            else:
                scores.append(r[4])
                hits.append(0)
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")  # ties: photo order
    tp = np.cumsum(np.asarray(hits)[order])
    fp = np.cumsum(1 - np.asarray(hits)[order])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    return float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:]))


def counted_right(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The product's notion of a right count: off by at most max(1, 10 % of the truth)."""
    return np.abs(pred - true) <= np.maximum(1.0, 0.1 * true)


def counts_at(cands: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """Items counted per photo at ``threshold``."""
    return np.array([int((r[:, 4] >= threshold).sum()) for r in cands])


def _bin_masks(true: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for lo, hi in BINS:
        name = f"{lo}-{hi}" if hi is not None else f"{lo}+"
        out[name] = (true >= lo) & (true <= (hi if hi is not None else np.inf))
    return out


def count_metrics(
    cands: Sequence[np.ndarray], truth: Sequence[int], threshold: float,
    gts: Sequence[EvalImage] | None = None,
) -> dict[str, object]:
    """Counted right, within +/-1, exact, MAE and bias (mean signed error: negative means
    under-counting) over all photos and per items-per-photo bin; AP@0.5 too when the ground
    truth boxes ``gts`` are given."""
    pred = counts_at(cands, threshold)
    true = np.asarray(truth)
    err = pred - true

    def block(sel: np.ndarray) -> dict[str, float]:
        if not sel.any():
            return {"n": 0}
        out = {"n": int(sel.sum()), "right": float(counted_right(pred[sel], true[sel]).mean()),
               "within1": float((np.abs(err[sel]) <= 1).mean()),
               "exact": float((err[sel] == 0).mean()), "mae": float(np.abs(err[sel]).mean()),
               "bias": float(err[sel].mean())}
        if gts is not None:
            idx = np.flatnonzero(sel)
            out["ap50"] = ap50([cands[i] for i in idx], [gts[i] for i in idx])
        return out

    out: dict[str, object] = {"threshold": threshold, **block(np.ones(len(true), bool))}
    out["bins"] = {k: block(m) for k, m in _bin_masks(true).items()}
    return out


def calibration(
    confidences: Sequence[float], pred: Sequence[int], truth: Sequence[int],
    edges: Sequence[float] = CONFIDENCE_EDGES,
) -> list[dict[str, float | None]]:
    """Share of photos counted right per Count_Confidence bin ``[lo, hi)`` (the last bin
    includes 1.0), plus the row the product promises: confidence >= 0.8."""
    conf = np.asarray(confidences, float)
    ok = counted_right(np.asarray(pred), np.asarray(truth))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf >= lo) & ((conf < hi) | (hi >= 1.0))
        rows.append({"lo": lo, "hi": hi, "n": int(sel.sum()),
                     "right": float(ok[sel].mean()) if sel.any() else None})
    sel = conf >= 0.8
    rows.append({"lo": 0.8, "hi": 1.0, "n": int(sel.sum()),
                 "right": float(ok[sel].mean()) if sel.any() else None, "promise": 1})
    return rows


def confidences(cands: Sequence[np.ndarray], threshold: float, band: float) -> list[float]:
    """The detector's Count_Confidence of each photo."""
    return [confidence_from_scores(r[:, 4], threshold, band) for r in cands]


def choose_band(
    cands: Sequence[np.ndarray], truth: Sequence[int], threshold: float, want: float = 0.97
) -> float:
    """The narrowest confidence band for which photos at confidence >= 0.8 are counted right
    at least ``want`` of the time on these (tuning) photos; the widest band tried otherwise.

    ``want`` sits above the 95 % promise so the promise holds on photos not tuned on.
    """
    pred = counts_at(cands, threshold)
    ok = counted_right(pred, np.asarray(truth))
    grid = np.round(np.arange(0.05, 0.501, 0.01), 2)
    for band in grid:
        conf = np.asarray(confidences(cands, threshold, float(band)))
        sel = conf >= 0.8
        if not sel.any() or ok[sel].mean() >= want:
            return float(band)
    return float(grid[-1])


def choose_threshold(
    cands: Sequence[np.ndarray], truth: Sequence[int],
    groups: Sequence[tuple[Sequence[np.ndarray], Sequence[int]]] = (),
) -> float:
    """The score threshold maximising count accuracy (counted right, then within +/-1, then
    exact, then -MAE), averaged over the photo sets ``(cands, truth)`` + ``groups`` so that
    each set (say, real and rendered photos) weighs the same whatever its size.

    Among equally good thresholds the middle of the best plateau is taken: it is the one
    least likely to move when the photos change.
    """
    sets = [(cands, truth), *groups]
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    keys = []
    for t in grid:
        ms = [count_metrics(c, tr, float(t)) for c, tr in sets if len(tr)]
        keys.append(tuple(round(float(np.mean([m[k] for m in ms])) * sign, 6)
                          for k, sign in (("right", 1), ("within1", 1), ("exact", 1),
                                          ("mae", -1))))
    best = max(keys)
    ties = [float(t) for t, k in zip(grid, keys, strict=True) if k == best]
    return ties[len(ties) // 2]


def report(name: str, metrics: dict[str, object], ap: float) -> str:
    """Human-readable block for the CLI and MODEL.md."""
    def line(key: str, b: dict) -> str:
        ap_txt = f" AP@0.5={b['ap50']:.3f}" if "ap50" in b else ""
        return (f"  {key:<8} n={b['n']:<5} right={b['right']:.1%} within+-1={b['within1']:.1%} "
                f"exact={b['exact']:.1%} MAE={b['mae']:.2f} bias={b['bias']:+.2f}{ap_txt}")

    lines = [f"{name}: photos={metrics['n']} threshold={metrics['threshold']:.2f} "
             f"AP@0.5={ap:.3f}", line("all", metrics)]
    for key, b in metrics["bins"].items():  # type: ignore[union-attr]
        if b["n"]:
            lines.append(line(key, b))
    return "\n".join(lines)


def calibration_report(rows: Sequence[dict[str, float]]) -> str:
    """The calibration table as text: Count_Confidence bin -> photos, share counted right."""
    out = ["  Count_Confidence  photos  counted right"]
    for r in rows:
        label = ">= 0.80 (promise)" if r.get("promise") else f"{r['lo']:.1f}-{r['hi']:.1f}"
        right = "-" if r["n"] == 0 else f"{r['right']:.1%}"
        out.append(f"  {label:<17} {r['n']:>6}  {right}")
    return "\n".join(out)
