"""Synthetic data for the detector from the scene generator: training views and eval sets.

Seeds are split into disjoint ranges so the held-out test set is never seen in training or
threshold selection: training scenes use seeds from 0, validation from ``VAL_SEED`` and test
from ``TEST_SEED``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gateway.training.data import LabelledImage, random_view
from gateway.training.evaluate import EvalImage
from gateway.training.scenes import Scene, render_scene

VAL_SEED = 1_000_000
TEST_SEED = 2_000_000
# Photo sizes the gateway meets: 1080p landscape and portrait, 4:3 phone photos, and a share
# of 12 MP bay photos (weights per size).
PHOTO_SIZES = ((1920, 1080, 0.35), (1080, 1920, 0.1), (1440, 1080, 0.25), (1280, 960, 0.15),
               (4000, 3000, 0.15))


def labelled(scene: Scene) -> LabelledImage:
    """Every listed item with its visible share; the data module turns that into
    positives (counted) and ignore regions (ambiguous)."""
    boxes = np.asarray([it.box for it in scene.items], np.float32).reshape(-1, 4)
    vis = np.asarray([it.visible_fraction for it in scene.items], np.float32)
    return LabelledImage(scene.image, boxes, vis)


def _photo_size(rng: np.random.Generator, sizes=PHOTO_SIZES) -> tuple[int, int]:
    p = np.array([s[2] for s in sizes])
    w, h, _ = sizes[int(rng.choice(len(sizes), p=p / p.sum()))]
    return w, h


def training_views(seed: int, size: int, views_per_scene: int) -> Iterator[LabelledImage]:
    """Endless stream of training views: scenes at random photo-like sizes and difficulty,
    each cut into several zoom / whole-picture views (see :func:`random_view`)."""
    scene_seed = seed
    # 12 MP renders cost ~2 s each; training views of them are the same as of a smaller
    # render of the same layout, so training renders stop at ~2 MP.
    sizes = ((1920, 1080, 0.35), (1080, 1920, 0.1), (1440, 1080, 0.25), (1280, 960, 0.15),
             (960, 720, 0.15))
    while True:
        rng = np.random.default_rng([scene_seed, 31337])
        w, h = _photo_size(rng, sizes)
        scene = render_scene(scene_seed, width=w, height=h,
                             difficulty=float(rng.uniform(0.1, 1.0)))
        item = labelled(scene)
        for _ in range(views_per_scene):
            yield random_view(item, rng, size)
        scene_seed += 1


def eval_images(first_seed: int, n: int) -> Iterator[EvalImage]:
    """Full-size photos for validation / test, with the scene generator's count rule."""
    for seed in range(first_seed, first_seed + n):
        rng = np.random.default_rng([seed, 4242])
        w, h = _photo_size(rng)
        scene = render_scene(seed, width=w, height=h, difficulty=float(rng.uniform(0.1, 0.9)))
        yield EvalImage(scene.image, scene.boxes(counted=True), scene.boxes(counted=False))
