"""``shelfcount train --from-store``: fine-tune the live detector on this warehouse's corrections.

Walkers' box corrections (the complete item boxes of a photo, as a person left them) are the
warehouse's own labels. A fixed slice of them, chosen per photo by a hash of its count id, is
held out and never trained on, so the candidate and the live model are compared on the same
photos and a photo held out once stays held out in every later round. The rest is mixed with
the shipped real photos (when ../shared is present) and rendered views, so the model keeps what
it knew while it learns this warehouse. The candidate becomes the next version folder beside
the live one; it keeps the live model's threshold and confidence band (tens of held-out photos
are too few to choose them again) and is not served until ``shelfcount model promote``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gateway.config import Settings, load_settings
from gateway.inference.versions import DetectorVersions, VersionError, better
from gateway.pipeline.detect import CONFIDENCE_BAND, DEFAULT_THRESHOLD
from gateway.training.data import DataError, LabelledImage
from gateway.training.evaluate import EvalImage, ap50, collect, count_metrics

# ~11 min on a 2-core CPU (0.3 s a step), inside the 15 min a fine-tune may take.
DEFAULT_STEPS = 2000
HELD_OUT_EVERY = 5  # about one corrected photo in five is held out
FINE_TUNE_LR = 1e-3
# Shares of training views: this warehouse's photos, the shipped real photos, rendered views.
WAREHOUSE_SHARE = 0.55
SHIPPED_SHARE = 0.25
SYNTHETIC_VIEWS = 400
# Long side of a corrected photo in memory (100 phone photos at 12 MP would not fit).
MAX_SIDE = 1600


@dataclass
class Corrected:
    """One corrected photo: its count id and the labelled picture."""

    count_id: str
    item: LabelledImage


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The ``--from-store`` options of ``shelfcount train``."""
    ap.add_argument("--from-store", action="store_true",
                    help="fine-tune the live model on the walkers' box corrections in the "
                    "store, compare it with the live model on a held-out slice of them and "
                    "write it as the next version (not live until 'shelfcount model promote')")
    ap.add_argument("--data-dir", type=Path, help="with --from-store: the gateway's data "
                    "folder (default SHELFCOUNT_DATA_DIR)")


def held_out(count_id: str) -> bool:
    """Whether a corrected photo belongs to the held-out slice (stable across rounds)."""
    digest = hashlib.sha1(count_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_EVERY == 0


def split(photos: list[Corrected]) -> tuple[list[Corrected], list[Corrected]]:
    """(train, held-out); both non-empty: with few photos the first by hash is held out."""
    if len(photos) < 2:
        raise DataError(f"{len(photos)} corrected photo(s) in the store: at least 2 are needed "
                        "(one to learn from, one to check the candidate on)")
    held = [p for p in photos if held_out(p.count_id)]
    if not held or len(held) == len(photos):
        held = [min(photos, key=lambda p: hashlib.sha1(p.count_id.encode()).digest())]
    ids = {p.count_id for p in held}
    return [p for p in photos if p.count_id not in ids], held


def corrected_photos(settings: Settings) -> list[Corrected]:
    """Every photo whose boxes a person corrected, decoded, with those boxes."""
    from gateway.store import open_photos, open_store

    store = open_store(settings)
    photos = open_photos(settings)
    out = []
    try:
        for record in store.box_corrected_counts():
            try:
                data = photos.get(record.photo_hash)
            except FileNotFoundError:
                continue  # removed by the retention period
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                continue
            rows = record.box_edit.boxes if record.box_edit else []
            boxes = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
            scale = min(1.0, MAX_SIDE / max(image.shape[:2]))
            if scale < 1:  # a 12 MP photo: kept at the size training views are cut from
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                boxes *= scale
            out.append(Corrected(record.id, LabelledImage(image, boxes,
                                                          np.ones(len(boxes), np.float32))))
    finally:
        store.close()
    return out


class FineTuneSource:
    """Training views: this warehouse's photos, the shipped real photos and rendered views,
    each index a pure function of (seed, i) so that a resumed run sees the same batches."""

    def __init__(self, warehouse: list[LabelledImage], shipped: list[LabelledImage],
                 synthetic: list[LabelledImage], seed: int, size: int) -> None:
        self.pools = [p for p in (warehouse, shipped, synthetic) if p]
        shares = [WAREHOUSE_SHARE, SHIPPED_SHARE, 1 - WAREHOUSE_SHARE - SHIPPED_SHARE]
        weights = np.array([s for s, p in zip(shares, (warehouse, shipped, synthetic),
                                              strict=True) if p])
        self.cum = np.cumsum(weights / weights.sum())
        self.kinds = [k for k, p in zip(("real", "real", "view"),
                                        (warehouse, shipped, synthetic), strict=True) if p]
        self.seed, self.size = seed, size

    def __len__(self) -> int:
        return 1_000_000_000

    def __call__(self, i: int) -> LabelledImage:
        from gateway.training.real import real_view

        rng = np.random.default_rng([self.seed, 4711, i])
        k = min(int(np.searchsorted(self.cum, rng.random(), side="right")), len(self.pools) - 1)
        item = self.pools[k][int(rng.integers(len(self.pools[k])))]
        return real_view(item, rng, self.size) if self.kinds[k] == "real" else item


def _synthetic_views(seed: int, size: int, n: int) -> list[LabelledImage]:
    from gateway.training.synth import training_views

    views = training_views(seed, size, 3)
    return [next(views) for _ in range(n)]


def _shipped_photos(quiet: bool) -> list[LabelledImage]:
    from gateway.training.real import load_real, real_dir_or_none

    root = real_dir_or_none()
    if root is None:
        if not quiet:
            print("note: ../shared/data/real-cartons is absent: fine-tuning on the store's "
                  "photos and rendered views only", file=sys.stderr)
        return []
    return load_real(root)[0]


def _evaluate(onnx: Path, photos: list[Corrected], threshold: float,
              quiet: bool) -> dict[str, Any]:
    from gateway.training.shipping import LocalDetector

    images = [EvalImage(p.item.image, p.item.boxes, np.zeros((0, 4), np.float32))
              for p in photos]
    cands, truth = collect(images, LocalDetector(onnx, 2), len(images), quiet)
    metrics = count_metrics(cands, [len(t.boxes) for t in truth], threshold)
    metrics.pop("bins", None)
    metrics["ap50"] = ap50(cands, truth)
    return metrics


def _run_dir(settings: Settings, live: int, train: list[Corrected], steps: int,
             seed: int) -> Path:
    """Checkpoints of this fine-tune: the same photos, steps and seed resume the same run."""
    key = json.dumps([live, sorted(p.count_id for p in train), steps, seed])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return Path(settings.data_dir) / "training_runs" / f"from-store-v{live}-{digest}"


def _fine_tune(args: argparse.Namespace, init: Path, train: list[Corrected],
               run_dir: Path) -> tuple[Any, dict[str, Any]]:
    from gateway.training.train import TrainConfig
    from gateway.training.train import train as train_model

    steps = args.steps or DEFAULT_STEPS
    source = FineTuneSource([p.item for p in train], _shipped_photos(args.quiet),
                            _synthetic_views(args.seed, args.size, SYNTHETIC_VIEWS),
                            args.seed, args.size)
    cfg = TrainConfig(steps=steps, batch=args.batch, seed=args.seed, threads=args.threads,
                      crop=args.size, lr=args.lr or FINE_TUNE_LR, warmup=min(100, steps // 10),
                      strong_aug=True, width=args.width, device=args.device,
                      checkpoint_every=100)
    model, facts = train_model(source, len(source), cfg, run_dir, init_weights=init,
                               quiet=args.quiet)
    facts.pop("loss_curve", None)
    return model, facts


def _comparison(live: int, cand: dict[str, Any], cur: dict[str, Any]) -> str:
    lines = [f"held-out corrected photos: {cur['n']}",
             f"{'':<22}{'live v' + str(live):>12}{'candidate':>12}"]
    for key, label, pct in (("right", "counted right", True), ("within1", "within +-1", True),
                            ("mae", "MAE (items)", False), ("bias", "bias (items)", False),
                            ("ap50", "AP@0.5", False)):
        fmt = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.3f}")
        lines.append(f"{label:<22}{fmt(cur[key]):>12}{fmt(cand[key]):>12}")
    verdict = "at least as good as" if better(cand, cur) else "worse than"
    lines.append(f"candidate is {verdict} the live model on the held-out slice")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Fine-tune, compare, write the candidate version; the last stdout line is ``version N``."""
    import torch

    from gateway.training.export import export_onnx

    if args.steps is not None and args.steps <= 0:
        raise DataError("--steps must be positive")
    settings = load_settings(data_dir=args.data_dir)
    versions = DetectorVersions(settings.model_repository)
    live = versions.live()
    init = versions.weights(live) if live is not None else None
    if live is None or init is None:
        raise DataError(f"{versions.folder}: no live detector version with torch weights to "
                        "fine-tune from")
    photos = corrected_photos(settings)
    if not photos:
        raise DataError(f"no corrected photos in the store at {settings.data_dir}: walkers fix "
                        "boxes in the PWA (or PUT /api/v1/counts/<count_id>/boxes)")
    train, held = split(photos)
    live_meta = versions.meta(live)
    threshold = float(live_meta.get("threshold", DEFAULT_THRESHOLD))
    run_dir = _run_dir(settings, live, train, args.steps or DEFAULT_STEPS, args.seed)
    model, facts = _fine_tune(args, init, train, run_dir)
    onnx = run_dir / "model.onnx"
    export_onnx(model, onnx)
    torch.save(model.state_dict(), run_dir / "weights.pt")
    t0 = time.monotonic()
    cand = _evaluate(onnx, held, threshold, args.quiet)
    cur = _evaluate(versions.folder / str(live) / "model.onnx", held, threshold, args.quiet)
    meta = {**facts, "threshold": threshold,
            "confidence_band": float(live_meta.get("confidence_band", CONFIDENCE_BAND)),
            "parent": live, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": f"store: {len(train)} corrected photos (+ shipped real photos when "
                    f"present, rendered views); {len(held)} held out",
            "heldout": {"current_version": live, "candidate": cand, "current": cur,
                        "count_ids": sorted(p.count_id for p in held)},
            "eval_wall_s": round(time.monotonic() - t0, 1)}
    number = versions.add(onnx, run_dir / "weights.pt", meta)
    print(_comparison(live, cand, cur))
    print(f"wrote {versions.folder / str(number)} (not live: shelfcount model promote "
          f"{number})", file=sys.stderr)
    print(f"version {number}")
    return 0


def main(args: argparse.Namespace) -> int:
    """``train --from-store`` with its errors as one line on stderr."""
    try:
        return run(args)
    except (DataError, VersionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
