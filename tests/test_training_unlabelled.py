"""Cartons the labeller left out become ignore regions: a rendered bay with half of its labels
removed, counted by the shipped detector, gets the removed cartons back as ignore boxes (not
as positives), and nothing a label already explains is added."""

from __future__ import annotations

import numpy as np

from gateway.training.data import LabelledImage
from gateway.training.scenes import render_scene
from gateway.training.shipping import SHIPPED_ONNX
from gateway.training.synth import labelled
from gateway.training.unlabelled import mark_unlabelled, unexplained


def test_only_boxes_no_label_explains_are_unexplained() -> None:
    labels = np.array([[0, 0, 100, 100], [200, 0, 300, 100]], np.float32)
    candidates = np.array([[5, 5, 105, 105],      # the first label's carton
                           [220, 20, 260, 60],    # a part inside the second
                           [400, 0, 500, 100]],   # nobody's: a carton the labeller missed
                          np.float32)
    assert unexplained(candidates, labels).tolist() == [[400, 0, 500, 100]]
    assert unexplained(candidates, np.zeros((0, 4), np.float32)).shape == (3, 4)
    assert unexplained(np.zeros((0, 4), np.float32), labels).shape == (0, 4)


def test_removed_labels_come_back_as_ignore_regions() -> None:
    full = labelled(render_scene(5, width=1280, height=960, style="warehouse", difficulty=0.2))
    counted = full.visible >= 0.9
    assert counted.sum() >= 8
    keep = np.ones(len(full.boxes), bool)
    removed = np.flatnonzero(counted)[::2]
    keep[removed] = False
    partial = LabelledImage(full.image, full.boxes[keep], full.visible[keep])
    (marked,), added = mark_unlabelled([partial], SHIPPED_ONNX, quiet=True)
    assert added == len(marked.boxes) - len(partial.boxes) >= 0.7 * len(removed)
    new = marked.boxes[len(partial.boxes):]
    assert np.all(marked.visible[len(partial.boxes):] == 0.5)
    positives, ignore = marked.split()
    assert len(positives) == len(partial.split()[0])  # no new positive
    assert len(ignore) == len(partial.split()[1]) + added
    # each added box is one of the removed cartons
    for box in new:
        ious = [_iou(box, full.boxes[i]) for i in removed]
        assert max(ious) >= 0.5, box


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union
