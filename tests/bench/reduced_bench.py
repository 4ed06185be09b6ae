"""`make bench-reduced`: what sending a 12 MP photo at reduced size on a slow link costs.

The PWA sends a big photo at reduced size when the link would take over 3 s for the whole one:
at 1280 px on its long side with full-resolution crops of the codes the phone found (its
zxing-wasm reader; here zxing-cpp and zbar on the full photo, as the gateway reads), or at
2048 px where the phone cannot read codes (JPEG q85, as pwa/js/link.js). This counts the same
rendered 12 MP bays (ground truth known) each way through the real embedded Triton and reports
location / SKU / count within +-1 and codes read, with the bytes each way. Printed and written
to artifacts/bench-reduced.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from gateway.catalog import Catalog
from gateway.config import REPO_ROOT, load_settings
from gateway.inference.client import InferenceClient
from gateway.inference.embedded import start_triton
from gateway.pipeline.codes import read_codes
from gateway.pipeline.crops import Crop
from gateway.pipeline.run import Pipeline
from gateway.training.scenes import encode_jpeg, render_scene
from tests.bench.pipeline_bench import accuracy

REDUCED_SIDE = 2048  # pwa/js/link.js, without crops
CROPPED_SIDE = 1280  # pwa/js/link.js, with crops of the codes
REDUCED_QUALITY = 85


def reduced(data: bytes, side: int = REDUCED_SIDE) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    scale = side / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, REDUCED_QUALITY])
    assert ok
    return buf.tobytes()


CROP_SIDE = 320  # js/link.js: a crop is sent at most this long (an EAN-13 keeps ~3 px/module)


def code_crops(data: bytes) -> list[Crop]:
    """Grey crops around every code read in the full photo, an eighth of the code's size
    (at least 16 px) around it, at full resolution or CROP_SIDE px long, as js/link.js cuts
    them."""
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    h, w = gray.shape
    crops = []
    for code in read_codes(gray):
        x1, y1, x2, y2 = code.box
        m = max(16.0, 0.125 * max(x2 - x1, y2 - y1))
        box = (int(max(0, x1 - m)), int(max(0, y1 - m)), int(min(w, x2 + m)),
               int(min(h, y2 + m)))
        part = gray[box[1]:box[3], box[0]:box[2]]
        f = min(1.0, CROP_SIDE / max(part.shape))
        if f < 1:
            part = cv2.resize(part, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, REDUCED_QUALITY])
        assert ok
        crops.append(Crop(box, (w, h), buf.tobytes()))
    return crops


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=25, help="12 MP bays (default 25)")
    p.add_argument("--seed", type=int, default=1777, help="scene seed (default 1777)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench-reduced.json")
    args = p.parse_args(argv)
    settings = load_settings()
    catalog = Catalog.from_csv(REPO_ROOT / "gateway" / "demo" / "catalog.csv")
    url, server = start_triton(settings)
    pipeline = Pipeline(settings, InferenceClient(url), catalog)
    ways = ("full", "reduced", "small", "small+crops")
    acc: dict[str, dict[str, list[bool]]] = {w: {} for w in ways}
    sizes: dict[str, list[int]] = {w: [] for w in ways}
    codes: dict[str, list[int]] = {w: [] for w in ways}
    try:
        for k in range(args.photos):
            print(f"bay {k + 1}/{args.photos}", file=sys.stderr)
            scene = render_scene(args.seed + k, width=4032, height=3024)
            full = encode_jpeg(scene, quality=90)
            small, crops = reduced(full, CROPPED_SIDE), code_crops(full)
            for name, data, parts in (("full", full, []), ("reduced", reduced(full), []),
                                      ("small", small, []), ("small+crops", small, crops)):
                result = pipeline.count(data, crops=parts)
                sizes[name].append(len(data) + sum(len(c.jpeg) for c in parts))
                codes[name].append(len(result.codes))
                for key, ok in accuracy(result, scene).items():
                    acc[name].setdefault(key, []).append(ok)
    finally:
        pipeline.close()
        if server is not None:
            server.stop()
    report: dict[str, object] = {"machine": f"{os.cpu_count()} CPU cores",
                                 "bays": args.photos, "side_px": REDUCED_SIDE,
                                 "small_side_px": CROPPED_SIDE}
    print(f"\n{args.photos} rendered 12 MP bays; reduced = {REDUCED_SIDE} px long side, small ="
          f" {CROPPED_SIDE} px, crops = the codes' full-resolution grey crops, q{REDUCED_QUALITY}")
    print(f"{'':12} {'KB/photo':>9} {'codes':>6} " + " ".join(f"{k:>18}" for k in acc["full"]))
    for name in ways:
        shares = {k: 100 * sum(v) / len(v) for k, v in acc[name].items()}
        kb = sum(sizes[name]) / len(sizes[name]) / 1024
        print(f"{name:12} {kb:9.0f} {sum(codes[name]) / len(codes[name]):6.1f} "
              + " ".join(f"{shares[k]:17.0f}%" for k in acc["full"]))
        report[name] = {"kb_per_photo": round(kb), "codes_per_photo":
                        round(sum(codes[name]) / len(codes[name]), 2),
                        "right_pct": {k: round(v, 1) for k, v in shares.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
