"""``shelfcount train`` and ``shelfcount eval``: the detector's training and evaluation commands.

``train`` without ``--data`` reproduces the shipped model from synthetic scenes (default seed
and steps); with ``--data DIR`` (YOLO or COCO export from CVAT / Label Studio) it fine-tunes
the shipped weights on a warehouse's own photos. Both end by choosing the count threshold on a
validation split, evaluating on a held-out split and writing the ONNX model + meta.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gateway.config import REPO_ROOT
from gateway.training.data import (
    CacheDataset,
    DataError,
    LabelledImage,
    labelled_from_file,
    load_labelled_dir,
    random_view,
    write_cache,
)
from gateway.training.evaluate import (
    EvalImage,
    ap50,
    choose_threshold,
    collect,
    count_metrics,
    report,
)

MODEL_DIR = REPO_ROOT / "triton_models" / "item_detector"
SHIPPED_ONNX = MODEL_DIR / "1" / "model.onnx"
SHIPPED_WEIGHTS = MODEL_DIR / "weights.pt"
DEFAULT_CACHE = REPO_ROOT / "data" / "training_cache"
DEFAULT_RUNS = REPO_ROOT / "data" / "training_runs"
DEFAULT_STEPS = 5000  # = TrainConfig.steps (train.py imports torch: not loaded for --help)
FINETUNE_STEPS = 1500
# Held-out synthetic photos: the threshold is chosen on VAL, the model card's figures are TEST.
VAL_PHOTOS = 600
TEST_PHOTOS = 1000
MAX_SIDE = 2048  # labelled photos are shrunk to this on load: views never need more


def _train_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="shelfcount train",
        description="Train the item detector (synthetic scenes by default, or fine-tune the "
                    "shipped weights on labelled photos with --data) and export it to ONNX.")
    ap.add_argument("--data", type=Path, help="labelled photos: YOLO folder (images/ + labels/) "
                    "or COCO JSON (CVAT / Label Studio export); omitted: synthetic scenes")
    ap.add_argument("--steps", type=int, help=f"optimiser steps (default {DEFAULT_STEPS} "
                    f"synthetic, {FINETUNE_STEPS} fine-tuning)")
    ap.add_argument("--out", type=Path, default=SHIPPED_ONNX,
                    help="where the ONNX model goes; meta.json (threshold, metrics) and "
                    "weights.pt are written beside it (default: the shipped model)")
    ap.add_argument("--seed", type=int, default=0, help="seed for data and training (default 0)")
    ap.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    ap.add_argument("--size", type=int, default=320, help="training view size in px (320)")
    ap.add_argument("--crop", type=int, default=256,
                    help="training crop cut from each view, px (default 256)")
    ap.add_argument("--scenes", type=int, default=2000,
                    help="synthetic scenes rendered into the cache (default 2000)")
    ap.add_argument("--views", type=int, default=3, help="training views per scene (3)")
    ap.add_argument("--val", type=int, default=VAL_PHOTOS,
                    help=f"synthetic validation photos ({VAL_PHOTOS})")
    ap.add_argument("--test", type=int, default=TEST_PHOTOS,
                    help=f"synthetic test photos ({TEST_PHOTOS})")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="pre-generated view cache (built once, reused when it matches)")
    ap.add_argument("--run-dir", type=Path, help="checkpoints (resumes from last.pt); default "
                    "data/training_runs/<synthetic|finetune>-seed<seed>")
    ap.add_argument("--init", type=Path, help="start from these torch weights (default: the "
                    "shipped weights when fine-tuning, random when synthetic)")
    ap.add_argument("--lr", type=float, help="peak learning rate (default 3e-3 synthetic, "
                    "1e-3 fine-tuning)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest "
                    "on a shared machine; batches are prepared in a second thread)")
    ap.add_argument("--no-eval", action="store_true", help="skip threshold search and test")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def _cache_for(args: argparse.Namespace) -> CacheDataset:
    from tqdm import tqdm

    from gateway.training.synth import training_views

    want = {"source": "synthetic", "seed": args.seed, "scenes": args.scenes,
            "views": args.views, "size": args.size, "version": 1}
    meta = args.cache / "meta.json"
    if meta.exists():
        have = json.loads(meta.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            return CacheDataset(args.cache)
    n = args.scenes * args.views
    with tqdm(total=n, file=sys.stderr, desc="cache", disable=args.quiet) as bar:
        write_cache(args.cache, training_views(args.seed, args.size, args.views), n, args.size,
                    want, progress=bar.update)
    return CacheDataset(args.cache)


def _split_labelled(
    pairs: list[tuple[Path, np.ndarray]], seed: int
) -> tuple[list, list, list]:
    """Deterministic 80/10/10 split; tiny sets use every photo for validation and test too."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    items = [pairs[i] for i in order]
    if len(items) < 10:
        return items, items, items
    n_val = n_test = max(1, len(items) // 10)
    return items[n_val + n_test:], items[:n_val], items[n_val:n_val + n_test]


def _load_shrunk(path: Path, boxes: np.ndarray) -> LabelledImage:
    import cv2

    item = labelled_from_file(path, boxes)
    h, w = item.image.shape[:2]
    s = MAX_SIDE / max(h, w)
    if s < 1:
        item = LabelledImage(cv2.resize(item.image, (round(w * s), round(h * s)),
                                        interpolation=cv2.INTER_AREA),
                             item.boxes * s, item.visible)
    return item


def _eval_from_pairs(pairs: list[tuple[Path, np.ndarray]]):
    for path, boxes in pairs:
        item = labelled_from_file(path, boxes)
        yield EvalImage(item.image, item.boxes, np.zeros((0, 4), np.float32))


def _evaluate(onnx: Path, val, n_val: int, test, n_test: int, quiet: bool) -> dict[str, object]:
    from gateway.training.export import LocalDetector

    det = LocalDetector(onnx)
    val_c, val_gt = collect(val, det, n_val, quiet)
    val_truth = [len(v.boxes) for v in val_gt]
    thr = choose_threshold(val_c, val_truth)
    test_c, test_gt = collect(test, det, n_test, quiet)
    m = count_metrics(test_c, [len(t.boxes) for t in test_gt], thr)
    ap = ap50(test_c, test_gt)
    val_m = count_metrics(val_c, val_truth, thr)
    return {"threshold": thr, "test": m, "test_ap50": ap, "val": val_m}


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of ``shelfcount train``; returns the exit status."""
    args = _train_parser().parse_args(argv)
    try:
        return _train(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    import torch

    from gateway.training.export import export_onnx, write_meta
    from gateway.training.synth import TEST_SEED, VAL_SEED, eval_images
    from gateway.training.train import TrainConfig, train

    finetune = args.data is not None
    steps = args.steps or (FINETUNE_STEPS if finetune else DEFAULT_STEPS)
    if steps <= 0:
        print("error: --steps must be positive", file=sys.stderr)
        return 2
    kind = "finetune" if finetune else "synthetic"
    run_dir = args.run_dir or DEFAULT_RUNS / f"{kind}-seed{args.seed}"
    init = args.init
    if finetune:
        pairs = load_labelled_dir(args.data)
        tr, va, te = _split_labelled(pairs, args.seed)
        photos = [_load_shrunk(p, b) for p, b in tr]

        def source(i: int) -> LabelledImage:
            rng = np.random.default_rng([args.seed, 99, i])
            return random_view(photos[i % len(photos)], rng, args.size)

        n_source = len(photos) * 1000
        init = init or (SHIPPED_WEIGHTS if SHIPPED_WEIGHTS.exists() else None)
        cfg = TrainConfig(steps=steps, batch=args.batch, seed=args.seed, threads=args.threads,
                          lr=args.lr or 1e-3, warmup=min(100, steps // 10), crop=args.crop)
        val, n_val = _eval_from_pairs(va), len(va)
        test, n_test = _eval_from_pairs(te), len(te)
        data_desc = f"{args.data} ({len(tr)} train / {len(va)} val / {len(te)} test photos)"
    else:
        cache = _cache_for(args)
        source: Callable[[int], LabelledImage] = cache.__getitem__  # type: ignore[no-redef]
        n_source = len(cache)
        cfg = TrainConfig(steps=steps, batch=args.batch, seed=args.seed, threads=args.threads,
                          crop=args.crop, lr=args.lr or TrainConfig.lr)
        val, n_val = eval_images(VAL_SEED, args.val), args.val
        test, n_test = eval_images(TEST_SEED, args.test), args.test
        data_desc = (f"synthetic: {args.scenes} scenes x {args.views} views of {args.size}px "
                     f"(seed {args.seed}); val seeds {VAL_SEED}+{args.val}, "
                     f"test seeds {TEST_SEED}+{args.test}")
    model, facts = train(source, n_source, cfg, run_dir, init_weights=init, quiet=args.quiet)
    facts.pop("loss_curve", None)
    onnx_tmp = run_dir / "model.onnx"
    export_onnx(model, onnx_tmp)
    torch.save(model.state_dict(), run_dir / "weights.pt")
    meta: dict[str, object] = {"data": data_desc, **facts, "threshold": 0.4,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not args.no_eval:
        t0 = time.monotonic()
        ev = _evaluate(onnx_tmp, val, n_val, test, n_test, args.quiet)
        meta.update(ev, eval_wall_s=round(time.monotonic() - t0, 1))
        print(report("test", ev["test"], ev["test_ap50"]))  # type: ignore[arg-type]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_tmp, args.out)
    shutil.copyfile(run_dir / "weights.pt", args.out.parent.parent / "weights.pt"
                    if args.out == SHIPPED_ONNX else args.out.with_suffix(".pt"))
    write_meta(args.out.parent / "meta.json", meta)
    print(f"wrote {args.out} (threshold {meta['threshold']})", file=sys.stderr)
    return 0


def _eval_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="shelfcount eval",
        description="Evaluate the item detector: AP@0.5 and count accuracy (within +-1, exact, "
                    "MAE) per items-per-photo bin (1-15, 16-30, 31-60).")
    ap.add_argument("--data", type=Path, help="labelled photos (YOLO folder or COCO JSON); "
                    "omitted: the held-out synthetic test set")
    ap.add_argument("--model", type=Path, default=SHIPPED_ONNX,
                    help="ONNX model (default: the shipped one)")
    ap.add_argument("--threshold", type=float,
                    help="score threshold (default: the one in meta.json beside the model)")
    ap.add_argument("--n", type=int, default=TEST_PHOTOS,
                    help=f"synthetic test photos (default {TEST_PHOTOS})")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of ``shelfcount eval``; returns the exit status."""
    args = _eval_parser().parse_args(argv)
    if not args.model.exists():
        print(f"error: {args.model}: no such model (train one with `shelfcount train`)",
              file=sys.stderr)
        return 2
    from gateway.training.export import LocalDetector
    from gateway.training.synth import TEST_SEED, eval_images

    meta_path = args.model.parent / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    thr = args.threshold if args.threshold is not None else float(meta.get("threshold", 0.4))
    try:
        if args.data is not None:
            pairs = load_labelled_dir(args.data)
            images, n, name = _eval_from_pairs(pairs), len(pairs), str(args.data)
        else:
            images, n, name = eval_images(TEST_SEED, args.n), args.n, "synthetic test"
        cands, imgs = collect(images, LocalDetector(args.model, args.threads), n, args.quiet)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    truth = [len(i.boxes) for i in imgs]
    m = count_metrics(cands, truth, thr)
    ap = ap50(cands, imgs)
    if args.json:
        print(json.dumps({"ap50": ap, **m, "best_threshold_here": choose_threshold(cands, truth)}))
    else:
        print(report(name, m, ap))
    return 0
