"""`make bench-codes`: the code reader per symbology on photographed symbols (issue 17).

Every symbology a warehouse prints, rendered by zxing-cpp and put through what a phone does to
it: perspective, a curve (a can or a bottle), blur, sensor noise, low contrast, a glare spot
and JPEG, at three module sizes. Reports the share read right per symbology and per kind of
damage, and false reads on the shared false-positive photos (../shared/data/barcode-photos).
Printed and written to artifacts/bench-codes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import zxingcpp

from gateway.config import REPO_ROOT
from gateway.pipeline.codes import read_codes
from gateway.pipeline.decode import decode_image

F = zxingcpp.BarcodeFormat
# (name as the gateway reports it, zxing-cpp format, content to encode, text expected)
SYMBOLS = [
    ("EAN-13", F.EAN13, "4006381333931", "4006381333931"),
    ("UPC-A", F.UPCA, "036000291452", "036000291452"),
    ("UPC-E", F.UPCE, "04252614", "04252614"),
    ("EAN-8", F.EAN8, "96385074", "96385074"),
    ("Code128", F.Code128, "SKU-48213", "SKU-48213"),
    ("Code39", F.Code39, "BIN-A12", "BIN-A12"),
    ("Code39Ext", F.Code39Ext, "Box 12-a/b", "Box 12-a/b"),
    ("Code32", F.Code32, "12345678", "A123456788"),
    ("PZN", F.PZN, "12345678", "-12345678"),
    ("ITF", F.ITF, "15400141288763", "15400141288763"),
    ("QRCode", F.QRCode, "LOC:A-01-2;SKU-10002", "LOC:A-01-2;SKU-10002"),
    ("DataMatrix", F.DataMatrix, "SKU-10002 LOT 4711", "SKU-10002 LOT 4711"),
]
DAMAGES = ("clean", "perspective", "curved", "blur", "noise", "low_contrast", "glare", "jpeg",
           "phone")  # phone: perspective, curve, blur, noise, low contrast, glare and JPEG at once
MODULE_PX = (2, 3, 4)  # pixels per module in the photo


def _symbol(fmt: object, content: str, scale: int) -> np.ndarray:
    img = np.asarray(zxingcpp.create_barcode(content, fmt).to_image(scale=scale))
    if img.shape[0] < img.shape[1] // 4:  # linear codes: bars some height
        img = cv2.resize(img, (img.shape[1], img.shape[1] // 3), interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(img, 10 * scale, 10 * scale, 10 * scale, 10 * scale,
                              cv2.BORDER_CONSTANT, value=255)


def _damaged(sym: np.ndarray, damage: str, rng: np.random.Generator) -> np.ndarray:
    """The symbol on a grey carton, as a phone photographs it with one kind of damage (or,
    for ``phone``, all of them, milder)."""
    h, w = sym.shape
    img = np.full((h + 120, w + 120), 150, np.uint8)
    img[60:60 + h, 60:60 + w] = sym
    if damage == "phone":
        for step in DAMAGES[1:-1]:
            img = _hurt(img, step, rng)
        return img
    return _hurt(img, damage, rng)


def _hurt(img: np.ndarray, damage: str, rng: np.random.Generator) -> np.ndarray:
    H, W = img.shape
    if damage == "perspective":
        d = rng.uniform(0.08, 0.15) * W
        src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
        dst = np.float32([[d, d * 0.3], [W - d * 0.5, 0], [W, H], [0, H - d * 0.3]])
        img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (W, H),
                                  borderValue=150)
    elif damage == "curved":  # wrapped round a can: columns squeezed towards the edges
        x = np.linspace(-1, 1, W)
        map_x = ((np.arcsin(np.clip(x * 0.95, -1, 1)) / np.arcsin(0.95) + 1) / 2 * (W - 1))
        map_x = np.tile(map_x.astype(np.float32), (H, 1))
        map_y = np.tile(np.arange(H, dtype=np.float32)[:, None], (1, W))
        img = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderValue=150)
    elif damage == "blur":
        img = cv2.GaussianBlur(img, (0, 0), 1.2)
    elif damage == "noise":
        img = np.clip(img + rng.normal(0, 18, img.shape), 0, 255).astype(np.uint8)
    elif damage == "low_contrast":
        img = (110 + img.astype(np.float32) * 0.25).astype(np.uint8)
    elif damage == "glare":
        yy, xx = np.mgrid[0:H, 0:W]
        cx, cy = rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H
        spot = 150 * np.exp(-(((xx - cx) / (0.18 * W)) ** 2 + ((yy - cy) / (0.25 * H)) ** 2))
        img = np.clip(img + spot, 0, 255).astype(np.uint8)
    elif damage == "jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 25])
        assert ok
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return img


def run(seeds: int) -> dict:
    results: dict[str, dict[str, list[bool]]] = {name: {d: [] for d in DAMAGES}
                                                  for name, *_ in SYMBOLS}
    for name, fmt, content, text in SYMBOLS:
        for scale in MODULE_PX:
            sym = _symbol(fmt, content, scale)
            for damage in DAMAGES:
                for seed in range(seeds):
                    rng = np.random.default_rng(seed * 101 + scale)
                    reads = read_codes(_damaged(sym, damage, rng))
                    results[name][damage].append(
                        any(c.format == name and c.text == text for c in reads))
    return {name: {d: sum(v) / len(v) for d, v in by.items()} for name, by in results.items()}


def false_reads() -> tuple[int, int] | None:
    folder = REPO_ROOT.parent / "shared" / "data" / "barcode-photos" / "falsepositives-1"
    if not folder.is_dir():
        return None
    photos = sorted(p for p in folder.iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    wrong = sum(len(read_codes(decode_image(p.read_bytes(), gray=True))) for p in photos)
    return len(photos), wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="random draws per damage (3)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench-codes.json")
    args = ap.parse_args(argv)
    table = run(args.seeds)
    print("| symbology | " + " | ".join(DAMAGES) + " | all |")
    print("|---" * (len(DAMAGES) + 2) + "|")
    for name, by in table.items():
        cells = [f"{100 * by[d]:.0f} %" for d in DAMAGES]
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * np.mean(list(by.values())):.0f} % |")
    fp = false_reads()
    if fp is None:
        print("false-positive photos: ../shared/data/barcode-photos absent, skipped",
              file=sys.stderr)
    else:
        print(f"false-positive photos: {fp[0]} photos, {fp[1]} codes read (should be 0)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"read_right": table, "module_px": MODULE_PX,
                                    "seeds": args.seeds, "false_positive_photos": fp},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
