"""`make bench`: per-stage latency of the pipeline on 1080p and 12 MP shelf photos.

Runs against the real embedded Triton (start-up excluded), on synthetic bays with ground truth
so accuracy is reported next to speed, and, in the same run, a naive baseline: pyzbar on the
whole grayscale photo plus whole-photo rapidocr in this process. Also times the item detector
alone per 640-pixel tile. Figures are printed and written to artifacts/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from gateway.catalog import Catalog
from gateway.config import REPO_ROOT, load_settings
from gateway.inference.client import InferenceClient
from gateway.inference.embedded import start_triton
from gateway.pipeline.run import Pipeline
from gateway.training.scenes import encode_jpeg, render_scene

SIZES = {"1080p": (1920, 1080), "12MP": (4032, 3024)}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def make_photos(n_per_size: int, seed: int) -> list[tuple[str, bytes, object]]:
    photos = []
    for i, (name, (w, h)) in enumerate(SIZES.items()):
        for k in range(n_per_size):
            scene = render_scene(seed + 1000 * i + k, width=w, height=h)
            photos.append((name, encode_jpeg(scene, quality=90), scene))
    return photos


def naive_baseline(photos: list[tuple[str, bytes, object]], limit: int) -> dict[str, float]:
    """What one would write first: pyzbar + rapidocr over the whole photo, in process."""
    from pyzbar import pyzbar
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    times: dict[str, list[float]] = {}
    by_size: dict[str, int] = {}
    for name, data, _ in photos:
        if by_size.get(name, 0) >= limit:
            continue
        by_size[name] = by_size.get(name, 0) + 1
        t = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        pyzbar.decode(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        engine(image)
        times.setdefault(name, []).append(time.perf_counter() - t)
    return {name: statistics.mean(v) for name, v in times.items()}


def detector_tile_latency(client: InferenceClient, n: int) -> float | None:
    if not client.model_ready("item_detector"):
        return None
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (1, 640, 640, 3), dtype=np.uint8)
    client.detect(tile)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        client.detect(tile)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


# What a person could read off the photo: a code with modules of >= 2 px (the engines' floor,
# notes/ocr-barcodes.md) or SKU text >= 8 px tall (the OCR model reads most such labels).
LEGIBLE_MODULE_PX = 2.0
LEGIBLE_CAP_PX = 8.0


def legible(scene) -> bool:
    """Whether every product in the bay shows its identity legibly on at least one item."""
    for sku, n in scene.counts.items():
        if not n:
            continue
        codes = any(c.item is not None and scene.items[c.item].sku == sku
                    and c.module_px >= LEGIBLE_MODULE_PX for c in scene.codes)
        texts = any(t.role == "sku" and sku in t.text and t.cap_px >= LEGIBLE_CAP_PX
                    for t in scene.texts)
        if not (codes or texts):
            return False
    return True


def accuracy(result, scene) -> dict[str, bool]:
    rows = result.rows
    found = {r["SKU"]: r["Quantity_Counted"] for r in rows if r["Quantity_Counted"]}
    truth = {k: v for k, v in scene.counts.items() if v}
    location_ok = bool(rows) and rows[0]["Location"] == (scene.location or "")
    skus_ok = set(truth) <= set(found)
    within1 = all(abs(found.get(k, 0) - v) <= 1 for k, v in truth.items())
    out = {"location": location_ok, "sku": skus_ok, "within1": within1}
    if legible(scene):
        out["sku (legible bays)"] = skus_ok
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=25, help="photos per size (default 25)")
    p.add_argument("--baseline", type=int, default=3, help="baseline photos per size (default 3)")
    p.add_argument("--seed", type=int, default=777, help="scene seed (default 777)")
    p.add_argument("--keep-photos", action="store_true",
                   help="count as the gateway does, finding the people to blur "
                        "(SHELFCOUNT_BLUR_PEOPLE); stage 'people' is the wait it added")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench.json")
    args = p.parse_args(argv)

    settings = load_settings()
    catalog = Catalog.from_csv(REPO_ROOT / "gateway" / "demo" / "catalog.csv")
    print(f"rendering {args.photos} photos per size ...", file=sys.stderr)
    photos = make_photos(args.photos, args.seed)
    url, server = start_triton(settings)
    client = InferenceClient(url)
    pipeline = Pipeline(settings, client, catalog, keeps_photos=args.keep_photos)
    try:
        for _, data, _ in photos[:1] + photos[-1:]:
            pipeline.count(data)  # warm-up: first requests load sessions and caches
        stages: dict[str, dict[str, list[float]]] = {}
        totals: dict[str, list[float]] = {}
        acc: dict[str, list[bool]] = {}
        for name, data, scene in photos:
            t = time.perf_counter()
            result = pipeline.count(data)
            totals.setdefault(name, []).append(time.perf_counter() - t)
            for stage, ms in result.timings_ms.items():
                stages.setdefault(name, {}).setdefault(stage, []).append(ms)
            for key, ok in accuracy(result, scene).items():
                acc.setdefault(key, []).append(ok)
        tile_ms = detector_tile_latency(client, 30)
    finally:
        pipeline.close()
        if server is not None:
            server.stop()
    print("running the naive baseline ...", file=sys.stderr)
    base = naive_baseline(photos, args.baseline)

    stage_report: dict[str, dict[str, float]] = {}
    report: dict[str, object] = {"machine": f"{os.cpu_count()} CPU cores",
                                 "stages_ms": stage_report}
    print(f"\nmachine: {os.cpu_count()} CPU cores; photos per size: {args.photos}")
    print(f"{'size':6} {'stage':8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, per_stage in stages.items():
        for stage, values in per_stage.items():
            print(f"{name:6} {stage:8} {pct(values, 50):8.1f} {pct(values, 95):8.1f}")
            stage_report[f"{name}/{stage}"] = {"p50": pct(values, 50), "p95": pct(values, 95)}
    mean_all = statistics.mean([v for vs in totals.values() for v in vs])
    base_all = statistics.mean(base.values())
    print(f"\nmean per photo (1080p + 12MP mix): {mean_all * 1000:.0f} ms")
    for name in totals:
        print(f"  {name}: pipeline {statistics.mean(totals[name]) * 1000:.0f} ms, "
              f"naive baseline {base.get(name, float('nan')) * 1000:.0f} ms")
    print(f"naive baseline mean: {base_all * 1000:.0f} ms -> speed-up {base_all / mean_all:.1f}x")
    if tile_ms is not None:
        print(f"item_detector in Triton: {tile_ms:.1f} ms per 640-pixel tile (p50, batch 1)")
    for key, oks in acc.items():
        print(f"{key} right: {100 * sum(oks) / len(oks):.0f}% of {len(oks)} photos")
    report.update({
        "mean_ms": mean_all * 1000,
        "baseline_mean_ms": base_all * 1000,
        "speedup": base_all / mean_all,
        "detector_tile_p50_ms": tile_ms,
        "accuracy": {k: sum(v) / len(v) for k, v in acc.items()},
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
