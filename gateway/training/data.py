"""Training data: labelled images, zoom/crop views, the pre-generated cache, YOLO and COCO.

Why a cache: rendering scenes while training halved the training speed in the first CPU
experiment, so views are generated once into a uint8 memmap (``images.u8``) plus one label
array, and training only reads, flips and colour-jitters them.

Visibility rule: an item counts when at least :data:`COUNT_VISIBLE` of it is in the picture
(the scene generator's ground-truth rule for items cut at the photo edge). Items within
:data:`IGNORE_BAND` of that rule are ambiguous and become ignore regions, so the detector learns
a clean transition exactly where the count rule switches, not an arbitrary one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

COUNT_VISIBLE = 0.5
IGNORE_BAND = 0.15
PAD_VALUE = 114
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class DataError(ValueError):
    """A dataset directory that cannot be read (message says which file and why)."""


@dataclass
class LabelledImage:
    """A picture, its item boxes ``[n, 4]`` (x0, y0, x1, y1 pixels), each one's visible share."""

    image: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray

    def counted(self) -> np.ndarray:
        """Boxes of the items the ground truth counts."""
        return self.boxes[self.visible >= COUNT_VISIBLE]

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(positive boxes, ignore boxes) for target building."""
        pos = self.visible >= COUNT_VISIBLE + IGNORE_BAND
        ign = (self.visible >= COUNT_VISIBLE - IGNORE_BAND) & ~pos
        return self.boxes[pos], self.boxes[ign]


def _boxes(rows: list[list[float]] | np.ndarray) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(-1, 4)


def transform(
    item: LabelledImage, scale: float, ox: float, oy: float, size: int, pad: int = PAD_VALUE
) -> LabelledImage:
    """The ``size`` x ``size`` window at (ox, oy) of ``item`` scaled by ``scale``.

    Negative offsets place the picture inside the window (letterbox). Items cut by the window
    keep their clipped box and lose visibility in proportion to the area cut away.
    """
    h, w = item.image.shape[:2]
    ox, oy = float(round(ox)), float(round(oy))
    m = np.array([[scale, 0.0, -ox], [0.0, scale, -oy]], np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if scale < 1:
        # INTER_AREA is only honoured by resize: shrink first, then shift.
        small = cv2.resize(item.image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=interp)
        m = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy]], np.float32)
        out = cv2.warpAffine(small, m, (size, size), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(pad, pad, pad))
    else:
        out = cv2.warpAffine(item.image, m, (size, size), flags=interp,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(pad, pad, pad))
    b = item.boxes * scale - np.array([ox, oy, ox, oy], np.float32)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
    # The picture's own extent inside the window: pad is not picture.
    lim = np.array([max(0.0, -ox), max(0.0, -oy), min(size, w * scale - ox),
                    min(size, h * scale - oy)], np.float32)
    c = np.stack([np.maximum(b[:, 0], lim[0]), np.maximum(b[:, 1], lim[1]),
                  np.minimum(b[:, 2], lim[2]), np.minimum(b[:, 3], lim[3])], axis=1)
    carea = np.clip(c[:, 2] - c[:, 0], 0, None) * np.clip(c[:, 3] - c[:, 1], 0, None)
    vis = item.visible * carea / area
    keep = (carea > 0) & (vis > 0.05)
    return LabelledImage(out, c[keep].astype(np.float32), vis[keep].astype(np.float32))


def random_view(item: LabelledImage, rng: np.random.Generator, size: int) -> LabelledImage:
    """One training view: either the whole picture letterboxed (what the preview tile sees)
    or a zoomed crop whose median item size is log-uniform in 24..200 px (what tiles see)."""
    h, w = item.image.shape[:2]
    counted = item.counted()
    if len(counted) == 0 or rng.random() < 0.3:
        scale = size / max(h, w) * rng.uniform(0.8, 1.0)
        ox = -rng.uniform(0, max(0.0, size - w * scale))
        oy = -rng.uniform(0, max(0.0, size - h * scale))
        return transform(item, scale, ox, oy, size)
    sides = np.sqrt((counted[:, 2] - counted[:, 0]) * (counted[:, 3] - counted[:, 1]))
    target = math.exp(rng.uniform(math.log(24), math.log(200)))
    scale = target / float(np.median(sides))
    scale = min(scale, 4.0)
    sw, sh = w * scale, h * scale
    ox = rng.uniform(min(0.0, sw - size), max(0.0, sw - size))
    oy = rng.uniform(min(0.0, sh - size), max(0.0, sh - size))
    return transform(item, scale, ox, oy, size)


# --- the pre-generated cache -------------------------------------------------------------


def write_cache(
    out_dir: Path,
    views: Iterator[LabelledImage],
    n: int,
    size: int,
    meta: dict[str, object],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write ``n`` views into ``out_dir`` (images.u8 memmap + labels.npz + meta.json).

    Written to a temporary name and renamed at the end, so an interrupted build never leaves
    a cache that looks complete.
    """
    tmp = out_dir.with_name(out_dir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(n, size, size, 3))
    rows: list[np.ndarray] = []
    offsets = [0]
    for i in range(n):
        v = next(views)
        images[i] = v.image
        rows.append(np.concatenate([v.boxes, v.visible[:, None]], axis=1))
        offsets.append(offsets[-1] + len(v.boxes))
        if progress:
            progress(1)
    images.flush()
    del images
    labels = np.concatenate(rows, axis=0) if rows else np.zeros((0, 5), np.float32)
    np.savez(tmp / "labels.npz", labels=labels.astype(np.float32), offsets=np.asarray(offsets))
    (tmp / "meta.json").write_text(json.dumps({**meta, "n": n, "size": size}, indent=1))
    if out_dir.exists():
        for f in out_dir.iterdir():
            f.unlink()
        out_dir.rmdir()
    tmp.rename(out_dir)


class CacheDataset:
    """Read-only view of a cache written by :func:`write_cache`."""

    def __init__(self, path: Path) -> None:
        self.meta = json.loads((path / "meta.json").read_text())
        self.images = np.load(path / "images.npy", mmap_mode="r")
        lab = np.load(path / "labels.npz")
        self.labels = lab["labels"]
        self.offsets = lab["offsets"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> LabelledImage:
        rows = self.labels[self.offsets[i]: self.offsets[i + 1]]
        return LabelledImage(np.array(self.images[i]), rows[:, :4].copy(), rows[:, 4].copy())


def augment(item: LabelledImage, rng: np.random.Generator) -> LabelledImage:
    """Cheap train-time jitter on top of the cached views: flip, brightness/contrast, colour."""
    img = item.image
    boxes = item.boxes.copy()
    w = img.shape[1]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, size=3)
    bias = rng.uniform(-25, 25)
    img = np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None], 3, axis=2)
    return LabelledImage(np.ascontiguousarray(img), boxes, item.visible)


# --- labelled photo folders: YOLO and COCO -------------------------------------------------


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: not a readable image")
    return img


def load_yolo(root: Path) -> list[tuple[Path, np.ndarray]]:
    """YOLO layout: ``images/**.jpg`` with ``labels/**.txt`` rows ``class cx cy w h`` (0..1).

    The detector is class-agnostic, so every class is an item. Returns (image path, boxes in
    pixels); images without a label file count as having no items (hard negatives).
    """
    img_dir, lab_dir = root / "images", root / "labels"
    if not img_dir.is_dir() or not lab_dir.is_dir():
        raise DataError(f"{root}: expected images/ and labels/ folders (YOLO layout)")
    out = []
    for p in sorted(img_dir.rglob("*")):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        lp = lab_dir / p.relative_to(img_dir).with_suffix(".txt")
        h, w = _image_size(p)
        rows: list[list[float]] = []
        if lp.exists():
            for ln, line in enumerate(lp.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 5:
                    raise DataError(f"{lp}:{ln}: expected 'class cx cy w h'")
                try:
                    cx, cy, bw, bh = (float(v) for v in parts[1:5])
                except ValueError as exc:
                    raise DataError(f"{lp}:{ln}: not numbers: {line!r}") from exc
                rows.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w,
                             (cy + bh / 2) * h])
        out.append((p, _boxes(rows)))
    if not out:
        raise DataError(f"{img_dir}: no images")
    return out


def load_coco(json_path: Path, image_root: Path | None = None) -> list[tuple[Path, np.ndarray]]:
    """COCO detection JSON (CVAT / Label Studio export): ``images``, ``annotations`` with
    ``bbox`` = [x, y, w, h] pixels. Image files are looked up by ``file_name`` relative to
    ``image_root`` (default: the JSON's folder, then its ``images/`` subfolder)."""
    try:
        doc = json.loads(json_path.read_text())
        images = doc["images"]
        anns = doc.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{json_path}: not a COCO detection file ({exc})") from exc
    roots = [image_root] if image_root else [json_path.parent, json_path.parent / "images"]
    by_image: dict[object, list[list[float]]] = {im["id"]: [] for im in images}
    for a in anns:
        if a.get("iscrowd"):
            continue
        x, y, bw, bh = (float(v) for v in a["bbox"])
        if a["image_id"] in by_image and bw > 0 and bh > 0:
            by_image[a["image_id"]].append([x, y, x + bw, y + bh])
    out = []
    for im in images:
        name = str(im["file_name"])
        cands = [r / name for r in roots] + [r / Path(name).name for r in roots]
        path = next((c for c in cands if c.exists()), None)
        if path is None:
            raise DataError(f"{json_path}: image {name!r} not found under {roots[0]}")
        out.append((path, _boxes(by_image[im["id"]])))
    return out


def load_labelled_dir(root: Path) -> list[tuple[Path, np.ndarray]]:
    """A YOLO folder or a folder holding one COCO JSON (or the JSON file itself)."""
    if root.is_file() and root.suffix == ".json":
        return load_coco(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return load_yolo(root)
    jsons = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
    if jsons:
        return load_coco(jsons[0], root / "images" if (root / "images").is_dir() else root)
    raise DataError(f"{root}: neither YOLO (images/ + labels/) nor a COCO .json found")


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated 90 degrees, as cv2 reads it
                w, h = h, w
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return h, w



def labelled_from_file(path: Path, boxes: np.ndarray) -> LabelledImage:
    """Load one annotated photo; hand-labelled boxes count as fully visible."""
    img = _read_image(path)
    h, w = img.shape[:2]
    b = boxes.copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    keep = (b[:, 2] - b[:, 0] > 1) & (b[:, 3] - b[:, 1] > 1)
    return LabelledImage(img, b[keep], np.ones(int(keep.sum()), np.float32))


# --- a trivial generator for tests -------------------------------------------------------


def rectangles(seed: int, size: int = 256, n: int = 6) -> LabelledImage:
    """Coloured rectangles on a noisy background: enough signal to prove the loop learns."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 120, size=(size, size, 3), dtype=np.uint8)
    boxes = []
    for _ in range(n):
        w, h = rng.integers(size // 10, size // 4, size=2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        if any(x < b[2] and b[0] < x + w and y < b[3] and b[1] < y + h for b in boxes):
            continue
        color = tuple(int(c) for c in rng.integers(150, 256, size=3))
        cv2.rectangle(img, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), color, -1)
        boxes.append([x, y, x + w, y + h])
    b = _boxes(boxes)
    return LabelledImage(img, b, np.ones(len(b), np.float32))
