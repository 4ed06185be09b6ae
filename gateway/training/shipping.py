"""Measuring a detector before it ships: the exported model run in-process, the threshold and
confidence band chosen on the tuning sets, and the figures on the test sets.

Both ``shelfcount train`` (training/cli.py) and the re-export of a checkpoint
(training/export.py) use this module; neither imports the other for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gateway.config import REPO_ROOT
from gateway.pipeline.detect import CONFIDENCE_BAND
from gateway.pipeline.types import Detection
from gateway.training.data import labelled_from_file, load_labelled_dir
from gateway.training.evaluate import (
    EvalImage,
    ap50,
    calibration,
    calibration_report,
    choose_band,
    choose_threshold,
    collect,
    confidences,
    count_metrics,
    counts_at,
    report,
)

MODEL_DIR = REPO_ROOT / "triton_models" / "item_detector"
SHIPPED_ONNX = MODEL_DIR / "1" / "model.onnx"
SHIPPED_WEIGHTS = MODEL_DIR / "weights.pt"
VAL_PHOTOS = 600
TEST_PHOTOS = 1000
# Candidates below this never leave the model runner: they cannot matter for any threshold
# the validation search picks, and they would only cost NMS time.
FLOOR_SCORE = 0.05


class LocalDetector:
    """The exported model run in-process with onnxruntime, with InferenceClient.detect's shape.

    Used by training-time evaluation and threshold search (thousands of tiles, where a server
    round trip adds nothing); the gateway always goes through Triton.
    """

    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning worker threads starve everyone else on a shared 2-core machine.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), opts,
                                            providers=["CPUExecutionProvider"])

    def detect(self, tiles: np.ndarray) -> list[list[Detection]]:
        out = self.session.run(None, {"images": np.ascontiguousarray(tiles, np.uint8)})[0]
        return [
            [Detection(box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                       score=float(r[4])) for r in rows if r[4] >= FLOOR_SCORE]
            for rows in out
        ]


def eval_from_pairs(pairs: list[tuple[Path, np.ndarray]],
                    size: tuple[int, int] | None = None) -> Iterable[EvalImage]:
    """Labelled photos as eval images; ``size`` (w, h) resizes each photo and its boxes, to
    see the gateway's tiling on phone-sized photos (a 640 square to 4032x3024, say)."""
    import cv2

    for path, boxes in pairs:
        item = labelled_from_file(path, boxes)
        img, b = item.image, item.boxes
        if size is not None:
            h, w = img.shape[:2]
            img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
            b = b * np.array([size[0] / w, size[1] / h] * 2, np.float32)
        yield EvalImage(img, b, np.zeros((0, 4), np.float32))


def evaluate_model(onnx: Path, tune: list[tuple[Iterable[EvalImage], int]],
                   tests: dict[str, tuple[Iterable[EvalImage], int]], quiet: bool,
                   calibrate_on: int | None = None) -> dict[str, object]:
    """Choose the threshold on the union of the ``tune`` sets, calibrate the confidence band
    on tune set number ``calibrate_on`` (the real photos), then measure every test set."""
    det = LocalDetector(onnx)
    parts = [collect(images, det, n, quiet) for images, n in tune]
    sets = [(c, [len(g.boxes) for g in gt]) for c, gt in parts]
    thr = choose_threshold(*sets[0], groups=sets[1:])
    band = CONFIDENCE_BAND
    if calibrate_on is not None:
        c_cands, c_gt = parts[calibrate_on]
        band = choose_band(c_cands, [len(g.boxes) for g in c_gt], thr)
    out: dict[str, object] = {"threshold": thr, "confidence_band": band,
                              "tune": [count_metrics(c, t, thr) for c, t in sets]}
    for name, (images, n) in tests.items():
        t_cands, t_gt = collect(images, det, n, quiet)
        t_truth = [len(g.boxes) for g in t_gt]
        m = count_metrics(t_cands, t_truth, thr, t_gt)
        m["ap50"] = ap50(t_cands, t_gt)
        m["calibration"] = calibration(confidences(t_cands, thr, band),
                                       counts_at(t_cands, thr), t_truth)
        out[name] = m
    return out


def evaluate_for_shipping(onnx: Path, n_val: int, n_test: int, tune_pairs: list,
                          real_val: Path | None, quiet: bool) -> dict[str, object]:
    """Threshold on synthetic val + the real tune fold, confidence band on the tune fold,
    figures on the synthetic test set and (when given) the real val folder; prints them."""
    from gateway.training.synth import TEST_SEED, VAL_SEED, eval_images

    t0 = time.monotonic()
    tune = [(eval_images(VAL_SEED, n_val), n_val)]
    if tune_pairs:
        tune.append((eval_from_pairs(tune_pairs), len(tune_pairs)))
    tests = {"test": (eval_images(TEST_SEED, n_test), n_test)}
    if real_val is not None:
        pairs = load_labelled_dir(real_val)
        tests["real_val"] = (eval_from_pairs(pairs), len(pairs))
    ev = evaluate_model(onnx, tune, tests, quiet, calibrate_on=1 if tune_pairs else None)
    for name in tests:
        print(report(name, ev[name], ev[name]["ap50"]))  # type: ignore[index]
        print(calibration_report(ev[name]["calibration"]))  # type: ignore[index]
    ev["eval_wall_s"] = round(time.monotonic() - t0, 1)
    return ev
