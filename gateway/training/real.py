"""Real labelled photos for training: photo families, family folds, and augmented views.

Why families: the real carton set holds runs of neighbouring video frames and capture series
that are near-duplicates. A fold that splits a family lets the model be "validated" on frames
it has practically seen, so every split here is by family (the file-name prefix before the
frame number), never by photo.

Why these augmentations: the set's pictures are 640x640 squares stretched from 4:3, 16:9 and
portrait originals, while phones send unstretched photos; the gateway looks at a photo at
several scales (coarse overview, preview, up-scaled tiles). So a training view draws a scale,
an aspect stretch and a small rotation, and photometric jitter (blur, noise, JPEG, grey) on top.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from gateway.config import REPO_ROOT
from gateway.training.data import PAD_VALUE, LabelledImage, labelled_from_file, load_labelled_dir

REAL_CARTONS = REPO_ROOT.parent / "shared" / "data" / "real-cartons"
# Fold 0 of the training photos (about a fifth, by family) chooses the score threshold and the
# confidence band; it is never trained on. ``val/`` is only for the final report.
FOLDS = 5
TUNE_FOLD = 0
# Scale range of a real view (1 = the photo's own pixels): 0.45 is about what the gateway's
# coarse overview does to a 640 photo, 1.6 what its up-scaled tiles do to dense bays.
SCALE_RANGE = (0.45, 1.6)
STRETCH = 0.35  # log aspect stretch, +-: 4:3 <-> 16:9 <-> square
MAX_ROTATION_DEG = 7.0
# Neighbouring video frames are near-duplicates: a family adds at most this many (evenly spaced)
# photos to the tune set, so one long video does not decide the threshold.
TUNE_PER_FAMILY = 12

_SUFFIX = re.compile(r"(_(jpe?g|png|webp|bmp))?(\.rf\.[0-9a-f]+)?$", re.IGNORECASE)


def family(path: Path | str) -> str:
    """The capture family of a photo file name (all frames of one video or series).

    Video frames: everything up to ``_mp4``; capture series named ``0012_20211113_...``: the
    leading series number; others: the name without its trailing frame number.
    """
    name = _SUFFIX.sub("", Path(path).stem)
    if "_mp4" in name:
        return name.split("_mp4")[0] + "_mp4"
    m = re.match(r"^(\d{3,5})_\d{8}_", name)
    if m:
        return m.group(1)
    return re.sub(r"[-_ ]*\d+[-_ ]*$", "", name) or name


def fold_of(path: Path | str, folds: int = FOLDS) -> int:
    """Deterministic fold of a photo's family (stable across machines and Python runs)."""
    digest = hashlib.sha1(family(path).encode()).digest()
    return int.from_bytes(digest[:4], "big") % folds


def split_by_family(
    pairs: Sequence[tuple[Path, np.ndarray]], tune_fold: int = TUNE_FOLD
) -> tuple[list[tuple[Path, np.ndarray]], list[tuple[Path, np.ndarray]]]:
    """(train, tune) lists; a set too small to hold out a family uses all photos for both."""
    train = [p for p in pairs if fold_of(p[0]) != tune_fold]
    held = [p for p in pairs if fold_of(p[0]) == tune_fold]
    if not train or not held:
        return list(pairs), list(pairs)
    by_family: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for p in held:
        by_family.setdefault(family(p[0]), []).append(p)
    tune = []
    for members in by_family.values():
        idx = np.linspace(0, len(members) - 1, min(len(members), TUNE_PER_FAMILY))
        tune += [members[i] for i in sorted({int(round(v)) for v in idx})]
    return train, tune


def real_dir_or_none(root: Path = REAL_CARTONS) -> Path | None:
    """The real carton training folder when ../shared is present, else None."""
    train = root / "train"
    return train if (train / "images").is_dir() and (train / "labels").is_dir() else None


def load_photos(pairs: Sequence[tuple[Path, np.ndarray]], max_side: int) -> list[LabelledImage]:
    """Decode labelled photos once into memory, shrunk so the long side is at most ``max_side``."""
    out = []
    for path, boxes in pairs:
        item = labelled_from_file(path, boxes)
        h, w = item.image.shape[:2]
        s = max_side / max(h, w)
        if s < 1:
            img = cv2.resize(item.image, (round(w * s), round(h * s)),
                             interpolation=cv2.INTER_AREA)
            item = LabelledImage(img, item.boxes * s, item.visible)
        out.append(item)
    return out


def load_real(root: Path, max_side: int = 1024) -> tuple[list[LabelledImage], list]:
    """Training photos (in memory) and the tune-fold pairs of a labelled folder."""
    train, tune = split_by_family(load_labelled_dir(root))
    return load_photos(train, max_side), tune


def _affine(item: LabelledImage, m: np.ndarray, size: int) -> LabelledImage:
    """Warp picture and boxes by the 2x3 matrix ``m`` into a ``size`` square window.

    A box becomes the axis-aligned extent of its warped corners (a carton face turned by a few
    degrees is labelled that way too); visibility drops with the share cut by the window.
    """
    out = cv2.warpAffine(item.image, m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
    b = item.boxes
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1)
    warped = corners @ m[:, :2].T + m[:, 2]
    full = np.concatenate([warped.min(axis=1), warped.max(axis=1)], axis=1)
    area = np.maximum((full[:, 2] - full[:, 0]) * (full[:, 3] - full[:, 1]), 1e-6)
    # The picture's own extent in the window (the pad is not picture).
    h, w = item.image.shape[:2]
    frame = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32) @ m[:, :2].T + m[:, 2]
    lim = np.array([max(0.0, frame[:, 0].min()), max(0.0, frame[:, 1].min()),
                    min(size, frame[:, 0].max()), min(size, frame[:, 1].max())], np.float32)
    c = np.concatenate([np.maximum(full[:, :2], lim[:2]), np.minimum(full[:, 2:], lim[2:])],
                       axis=1)
    carea = np.clip(c[:, 2] - c[:, 0], 0, None) * np.clip(c[:, 3] - c[:, 1], 0, None)
    vis = item.visible * carea / area
    keep = (carea > 0) & (vis > 0.05)
    return LabelledImage(out, c[keep].astype(np.float32), vis[keep].astype(np.float32))


def real_view(item: LabelledImage, rng: np.random.Generator, size: int,
              stretch: float = STRETCH) -> LabelledImage:
    """A ``size`` square view of a real photo at a random scale, aspect stretch, rotation and
    position (items cut by the window follow the visibility rule of :mod:`data`)."""
    h, w = item.image.shape[:2]
    s = math.exp(rng.uniform(math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])))
    st = math.exp(rng.uniform(-stretch, stretch))
    sx, sy = s * math.sqrt(st), s / math.sqrt(st)
    a = math.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    lin = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.diag([sx, sy])
    # Where the photo's centre lands: anywhere that keeps the window on the picture.
    vw, vh = w * sx, h * sy
    cx = size / 2 + rng.uniform(-1, 1) * max(0.0, (vw - size) / 2) if vw > size else \
        rng.uniform(vw / 2, size - vw / 2)
    cy = size / 2 + rng.uniform(-1, 1) * max(0.0, (vh - size) / 2) if vh > size else \
        rng.uniform(vh / 2, size - vh / 2)
    t = np.array([cx, cy]) - lin @ np.array([w / 2, h / 2])
    m = np.concatenate([lin, t[:, None]], axis=1).astype(np.float32)
    return _affine(item, m, size)


def photometric(item: LabelledImage, rng: np.random.Generator) -> LabelledImage:
    """Camera-like degradations beyond :func:`data.augment`: blur, sensor noise, JPEG, grey."""
    img = item.image
    if rng.random() < 0.25:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < 0.25:
        noise = rng.normal(0, rng.uniform(3, 10), img.shape)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        q = int(rng.integers(30, 90))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if rng.random() < 0.15:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None], 3, axis=2)
    return LabelledImage(np.ascontiguousarray(img), item.boxes, item.visible)


class MixedSource:
    """Training views drawn from real photos (share ``real_share``) and the synthetic cache.

    Index ``i`` fixes both the choice and the view (a pure function of seed and i), so a
    resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, photos: Sequence[LabelledImage], synthetic, real_share: float,
                 seed: int, size: int, stretch: float = STRETCH) -> None:
        self.photos, self.synthetic = photos, synthetic
        self.real_share = real_share if len(synthetic) else 1.0
        self.seed, self.size, self.stretch = seed, size, stretch

    def __len__(self) -> int:
        return 1_000_000_000

    def __call__(self, i: int) -> LabelledImage:
        rng = np.random.default_rng([self.seed, 2026, i])
        if not self.photos or rng.random() >= self.real_share:
            return self.synthetic[int(rng.integers(len(self.synthetic)))]
        return real_view(self.photos[int(rng.integers(len(self.photos)))], rng, self.size,
                         self.stretch)
