"""``shelfcount train`` and ``shelfcount eval``: the detector's training and evaluation commands.

``train`` without arguments reproduces the shipped model in two stages: rendered scenes only
(stage 1, the synthetic model), then real labelled photos from ``../shared/data/real-cartons``
mixed with rendered views (stage 2, what ships). ``--data DIR`` (YOLO or COCO export from CVAT /
Label Studio) runs stage 2 on a warehouse's own photos from the shipped weights. Both choose
the count threshold and calibrate Count_Confidence on photos held out by family, evaluate on
held-out sets and write the ONNX model + meta.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from gateway.config import REPO_ROOT
from gateway.pipeline.detect import CONFIDENCE_BAND
from gateway.training import from_store
from gateway.training.data import (
    CacheDataset,
    DataError,
    load_labelled_dir,
    write_cache,
)
from gateway.training.evaluate import (
    ap50,
    calibration,
    calibration_report,
    choose_threshold,
    collect,
    confidences,
    count_metrics,
    counts_at,
    report,
)
from gateway.training.real import REAL_CARTONS, STRETCH
from gateway.training.shipping import (
    SHIPPED_ONNX,
    SHIPPED_WEIGHTS,
    TEST_PHOTOS,
    VAL_PHOTOS,
    LocalDetector,
    eval_from_pairs,
    evaluate_for_shipping,
)

DEFAULT_CACHE = REPO_ROOT / "data" / "training_cache"
DEFAULT_RUNS = REPO_ROOT / "data" / "training_runs"
SYNTHETIC_STEPS = 5000  # stage 1 (rendered scenes only)
DEFAULT_STEPS = 8000  # stage 2 (real + rendered): the shipped model's
MIXED_LR = 1.5e-3
REAL_SHARE = 0.75
# Held-out synthetic photos: the threshold is chosen on VAL, the model card's figures are TEST.


def _train_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="shelfcount train",
        description="Train the item detector (rendered scenes, then real photos from "
                    "../shared/data/real-cartons mixed with rendered views; or fine-tune the "
                    "shipped weights on your labelled photos with --data) and export it to ONNX.")
    ap.add_argument("--data", type=Path, help="labelled photos: YOLO folder (images/ + labels/) "
                    "or COCO JSON (CVAT / Label Studio export); omitted: "
                    "../shared/data/real-cartons/train when present")
    ap.add_argument("--steps", type=int, help=f"optimiser steps of the real + synthetic stage "
                    f"(default {DEFAULT_STEPS})")
    ap.add_argument("--synthetic-steps", type=int, default=SYNTHETIC_STEPS,
                    help=f"steps of the synthetic-only first stage (default {SYNTHETIC_STEPS})")
    ap.add_argument("--real-share", type=float, default=REAL_SHARE,
                    help=f"share of training views cut from real photos ({REAL_SHARE})")
    ap.add_argument("--stretch", type=float, default=STRETCH,
                    help=f"aspect-stretch augmentation of real views, +-log ({STRETCH:g})")
    ap.add_argument("--width", type=float, default=1.0, help="network width multiplier (1.0)")
    ap.add_argument("--out", type=Path, default=SHIPPED_ONNX,
                    help="where the ONNX model goes; meta.json (threshold, metrics) and "
                    "weights.pt are written beside it (default: the shipped model)")
    ap.add_argument("--seed", type=int, default=0, help="seed for data and training (default 0)")
    ap.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    ap.add_argument("--size", type=int, default=320, help="training view size in px (320)")
    ap.add_argument("--crop", type=int, default=256,
                    help="training crop of the synthetic stage, px (default 256)")
    ap.add_argument("--scenes", type=int, default=2000,
                    help="synthetic scenes rendered into the cache (default 2000)")
    ap.add_argument("--views", type=int, default=3, help="training views per scene (3)")
    ap.add_argument("--val", type=int, default=VAL_PHOTOS,
                    help=f"synthetic validation photos ({VAL_PHOTOS})")
    ap.add_argument("--test", type=int, default=TEST_PHOTOS,
                    help=f"synthetic test photos ({TEST_PHOTOS})")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="pre-generated view cache (built once, reused when it matches)")
    ap.add_argument("--runs", type=Path, default=DEFAULT_RUNS,
                    help="folder of the stages' run folders (default data/training_runs)")
    ap.add_argument("--run-dir", type=Path, help="checkpoints of the real + synthetic stage "
                    "(resumes from last.pt); default <runs>/mixed-seed<seed>")
    ap.add_argument("--init", type=Path, help="start from these torch weights (default: the "
                    "synthetic stage's; the shipped weights with --data)")
    ap.add_argument("--lr", type=float, help=f"peak learning rate (default {MIXED_LR})")
    ap.add_argument("--ignore-unlabelled-from", type=Path, metavar="ONNX",
                    help="count the real training photos with this model first; its confident "
                         "boxes that no label explains are left out of the loss "
                         "(gateway.training.unlabelled)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest "
                    "on a shared machine; batches are prepared in a second thread)")
    ap.add_argument("--device", default="cpu", help="torch device for training: cpu (default, "
                    "reproducible bit for bit) or cuda on a GPU machine")
    ap.add_argument("--no-eval", action="store_true", help="skip threshold search and test")
    from_store.add_arguments(ap)
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


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"{text}: each side must be 16..8192 px")
    return w, h


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of ``shelfcount train``; returns the exit status."""
    args = _train_parser().parse_args(argv)
    if args.from_store:
        return from_store.main(args)
    try:
        return _train(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _width_tag(width: float) -> str:
    return "" if width == 1.0 else f"-w{width:g}"


def _synthetic_stage(args: argparse.Namespace, cache: CacheDataset) -> Path:
    """Stage 1: train on rendered scenes only (or reuse a finished run's weights)."""
    import torch

    from gateway.training.train import TrainConfig, train

    run_dir = args.runs / f"synthetic-seed{args.seed}{_width_tag(args.width)}"
    done = run_dir / "weights.pt"
    if done.exists():
        return done
    cfg = TrainConfig(steps=args.synthetic_steps, batch=args.batch, seed=args.seed,
                      threads=args.threads, crop=args.crop, lr=TrainConfig.lr, width=args.width,
                      device=args.device)
    model, _ = train(cache.__getitem__, len(cache), cfg, run_dir, quiet=args.quiet)
    torch.save(model.state_dict(), done)
    return done


def _train(args: argparse.Namespace) -> int:
    import torch

    from gateway.training.export import export_onnx, write_meta
    from gateway.training.real import load_real, real_dir_or_none

    if (args.steps is not None and args.steps <= 0) or args.synthetic_steps <= 0:
        print("error: --steps must be positive", file=sys.stderr)
        return 2
    real_dir = args.data or real_dir_or_none()
    if real_dir is None:
        print(f"note: no real photos at {REAL_CARTONS}/train (and no --data): training on "
              "synthetic scenes only (stage 1)", file=sys.stderr)
    elif not real_dir.exists():
        raise DataError(f"{real_dir}: no such folder")
    photos, tune_pairs = load_real(real_dir) if real_dir else ([], [])
    if photos and args.ignore_unlabelled_from is not None:
        from gateway.training.unlabelled import mark_unlabelled

        photos, added = mark_unlabelled(photos, args.ignore_unlabelled_from, args.quiet)
        print(f"{added} unlabelled cartons in {len(photos)} training photos are left out of "
              "the loss", file=sys.stderr)
    cache = _cache_for(args)
    if args.init is not None:
        init = args.init
    elif args.data is not None:
        init = SHIPPED_WEIGHTS if SHIPPED_WEIGHTS.exists() else None
    else:
        init = _synthetic_stage(args, cache)
    if photos:
        model, facts, run_dir = _mixed_stage(args, photos, cache, init)
    else:
        model, facts, run_dir = _stage_one_model(args, init)
    onnx_tmp = run_dir / "model.onnx"
    export_onnx(model, onnx_tmp)
    torch.save(model.state_dict(), run_dir / "weights.pt")
    meta: dict[str, object] = {"data": _data_description(args, real_dir, photos, tune_pairs),
                               **facts, "threshold": 0.4, "init": str(init) if init else None,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not args.no_eval:
        meta.update(evaluate_for_shipping(onnx_tmp, args.val, args.test, tune_pairs,
                                          _real_val_for(args), args.quiet))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_tmp, args.out)
    shutil.copyfile(run_dir / "weights.pt", args.out.parent.parent / "weights.pt"
                    if args.out == SHIPPED_ONNX else args.out.with_suffix(".pt"))
    write_meta(args.out.parent / "meta.json", meta)
    print(f"wrote {args.out} (threshold {meta['threshold']})", file=sys.stderr)
    return 0


def _mixed_stage(args: argparse.Namespace, photos: list, cache: CacheDataset,
                 init: Path | None) -> tuple:
    """Stage 2: real views (share ``--real-share``) and rendered views, from ``init``."""
    from gateway.training.real import MixedSource
    from gateway.training.train import TrainConfig, train

    steps = args.steps or DEFAULT_STEPS
    run_dir = args.run_dir or args.runs / f"mixed-seed{args.seed}{_width_tag(args.width)}"
    cfg = TrainConfig(steps=steps, batch=args.batch, seed=args.seed, threads=args.threads,
                      crop=args.size, lr=args.lr or MIXED_LR, warmup=min(300, steps // 10),
                      strong_aug=True, width=args.width, device=args.device)
    source = MixedSource(photos, cache, args.real_share, args.seed, args.size, args.stretch)
    model, facts = train(source, len(source), cfg, run_dir, init_weights=init,
                         quiet=args.quiet)
    facts.pop("loss_curve", None)
    return model, facts, run_dir


def _stage_one_model(args: argparse.Namespace, weights: Path | None) -> tuple:
    """Without real photos the synthetic stage's model is the result (as before stage 2)."""
    import torch

    from gateway.training.model import ItemDetector

    model = ItemDetector(args.width)
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    run_dir = weights.parent if weights is not None else args.runs / "synthetic-only"
    return model, {"steps": args.synthetic_steps, "stage": "synthetic only"}, run_dir


def _data_description(args: argparse.Namespace, real_dir: Path | None, photos: list,
                      tune_pairs: list) -> str:
    from gateway.training.synth import TEST_SEED, VAL_SEED

    ignored = (f", unlabelled cartons found by {args.ignore_unlabelled_from} ignored"
               if args.ignore_unlabelled_from else "")
    real = (f"real: {real_dir} ({len(photos)} train photos, {len(tune_pairs)} tune photos "
            f"held out by family, share {args.real_share:g} of views, aspect stretch "
            f"+-{args.stretch:g}{ignored}); ") if photos else ""
    return real + (f"synthetic: {args.scenes} scenes x {args.views} views of {args.size}px "
                   f"(seed {args.seed}); val seeds {VAL_SEED}+{args.val}, "
                   f"test seeds {TEST_SEED}+{args.test}")


def _real_val_for(args: argparse.Namespace) -> Path | None:
    """The real validation folder reported on: only beside the default real data."""
    if args.data is not None:
        return None
    val = REAL_CARTONS / "val"
    return val if (val / "images").is_dir() else None


def _eval_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="shelfcount eval",
        description="Evaluate the item detector: AP@0.5 and count accuracy (counted right = "
                    "within max(1, 10%%), within +-1, exact, MAE, bias) per items-per-photo bin "
                    "(1-15, 16-30, 31-60, 61+), and the Count_Confidence calibration table.")
    ap.add_argument("--data", type=Path, help="labelled photos (YOLO folder or COCO JSON); "
                    "omitted: the held-out synthetic test set")
    ap.add_argument("--model", type=Path, default=SHIPPED_ONNX,
                    help="ONNX model (default: the shipped one)")
    ap.add_argument("--threshold", type=float,
                    help="score threshold (default: the one in meta.json beside the model)")
    ap.add_argument("--n", type=int, default=TEST_PHOTOS,
                    help=f"synthetic test photos (default {TEST_PHOTOS})")
    ap.add_argument("--resize", type=_size, metavar="WxH",
                    help="with --data: resize every photo (and its boxes) to WxH first, e.g. "
                    "4032x3024 to count the photos as 12 MP phone pictures")
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
    from gateway.training.synth import TEST_SEED, eval_images

    meta_path = args.model.parent / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    thr = args.threshold if args.threshold is not None else float(meta.get("threshold", 0.4))
    try:
        if args.data is not None:
            pairs = load_labelled_dir(args.data)
            images, n = eval_from_pairs(pairs, args.resize), len(pairs)
            name = str(args.data) + (f" at {args.resize[0]}x{args.resize[1]}"
                                     if args.resize else "")
        else:
            images, n, name = eval_images(TEST_SEED, args.n), args.n, "synthetic test"
        cands, imgs = collect(images, LocalDetector(args.model, args.threads), n, args.quiet)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    truth = [len(i.boxes) for i in imgs]
    band = float(meta.get("confidence_band", CONFIDENCE_BAND))
    m = count_metrics(cands, truth, thr, imgs)
    ap = ap50(cands, imgs)
    calib = calibration(confidences(cands, thr, band), counts_at(cands, thr), truth)
    if args.json:
        print(json.dumps({"ap50": ap, **m, "calibration": calib, "confidence_band": band,
                          "best_threshold_here": choose_threshold(cands, truth)}))
    else:
        print(report(name, m, ap))
        print(calibration_report(calib))
    return 0
