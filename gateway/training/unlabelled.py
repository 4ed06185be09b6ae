"""Cartons the labeller left out, found by an earlier model and kept out of the loss.

The real photos' labels are not exhaustive (background stacks, top shelves, parts of video
frames): trained as they are, the network is told that real cartons are background and learns
to under-count dense photos. Here a model (the previous stage's) counts every training photo
with the gateway's own detection path; its confident boxes that no label explains become
ignore regions (visibility in the ignore band of ``data``), so they are neither rewarded nor
punished, and the labelled cartons stay the only positives.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gateway.pipeline.detect import detect_candidates
from gateway.training.data import COUNT_VISIBLE, LabelledImage
from gateway.training.evaluate import areas, intersections

PSEUDO_SCORE = 0.5  # a candidate this sure is taken for a carton
EXPLAINED_IOU = 0.3  # a candidate overlapping a label this much is that label's carton
EXPLAINED_INSIDE = 0.5  # ... or lying this much inside one (a label's part)


def unexplained(candidates: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The candidate boxes ``[n, 4]`` that no label box explains."""
    if len(candidates) == 0 or len(labels) == 0:
        return candidates.reshape(-1, 4)
    inter = intersections(candidates, labels)
    area_c = areas(candidates)[:, None]
    iou = inter / np.maximum(area_c + areas(labels)[None, :] - inter, 1e-6)
    inside = inter / np.maximum(area_c, 1e-6)
    keep = (iou.max(1) < EXPLAINED_IOU) & (inside.max(1) < EXPLAINED_INSIDE)
    return candidates[keep]


def mark_unlabelled(photos: Sequence[LabelledImage], onnx: Path, quiet: bool = False,
                    score: float = PSEUDO_SCORE) -> tuple[list[LabelledImage], int]:
    """The photos with ``onnx``'s unexplained confident boxes added as ignore boxes, and how
    many were added."""
    from gateway.training.shipping import LocalDetector

    detector = LocalDetector(onnx)
    out, added = [], 0
    for item in tqdm(photos, file=sys.stderr, desc="unlabelled cartons", disable=quiet):
        dets = detect_candidates(item.image, detector)
        boxes = np.array([d.box for d in dets if d.score >= score], np.float32).reshape(-1, 4)
        extra = unexplained(boxes, item.boxes)
        added += len(extra)
        out.append(LabelledImage(
            item.image, np.concatenate([item.boxes, extra]).astype(np.float32),
            np.concatenate([item.visible,
                            np.full(len(extra), COUNT_VISIBLE, np.float32)]).astype(np.float32)))
    return out, added
