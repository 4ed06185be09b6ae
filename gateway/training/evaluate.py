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

from gateway.pipeline.detect import TileDetector, detect_candidates

BINS = ((1, 15), (16, 30), (31, 60))


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


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-6)


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
    order = np.argsort(-np.asarray(scores))
    tp = np.cumsum(np.asarray(hits)[order])
    fp = np.cumsum(1 - np.asarray(hits)[order])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    return float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:]))


def count_metrics(
    cands: Sequence[np.ndarray], truth: Sequence[int], threshold: float
) -> dict[str, object]:
    """Within +/-1, exact and MAE over all photos and per items-per-photo bin."""
    pred = np.array([int((r[:, 4] >= threshold).sum()) for r in cands])
    true = np.asarray(truth)
    err = np.abs(pred - true)

    def block(sel: np.ndarray) -> dict[str, float]:
        if not sel.any():
            return {"n": 0}
        return {"n": int(sel.sum()), "within1": float((err[sel] <= 1).mean()),
                "exact": float((err[sel] == 0).mean()), "mae": float(err[sel].mean())}

    out: dict[str, object] = {"threshold": threshold, **block(np.ones(len(true), bool))}
    out["bins"] = {f"{lo}-{hi}": block((true >= lo) & (true <= hi)) for lo, hi in BINS}
    return out


def choose_threshold(cands: Sequence[np.ndarray], truth: Sequence[int]) -> float:
    """The score threshold maximising count accuracy (within +/-1, then exact, then -MAE).

    Among equally good thresholds the middle of the best plateau is taken: it is the one
    least likely to move when the photos change.
    """
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    keys = []
    for t in grid:
        m = count_metrics(cands, truth, float(t))
        keys.append((round(m["within1"], 6), round(m["exact"], 6), -round(m["mae"], 6)))
    best = max(keys)
    ties = [float(t) for t, k in zip(grid, keys, strict=True) if k == best]
    return ties[len(ties) // 2]


def report(name: str, metrics: dict[str, object], ap: float) -> str:
    """Human-readable block for the CLI and MODEL.md."""
    lines = [f"{name}: photos={metrics['n']} threshold={metrics['threshold']:.2f} "
             f"AP@0.5={ap:.3f}",
             f"  all      within+-1={metrics['within1']:.1%} exact={metrics['exact']:.1%} "
             f"MAE={metrics['mae']:.2f}"]
    for key, b in metrics["bins"].items():  # type: ignore[union-attr]
        if b["n"]:
            lines.append(f"  {key:<8} within+-1={b['within1']:.1%} exact={b['exact']:.1%} "
                         f"MAE={b['mae']:.2f} (n={b['n']})")
    return "\n".join(lines)
