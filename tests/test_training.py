"""Detector training: the loop learns, the schedule is step-based, the cache round-trips, and
YOLO / COCO exports load."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from gateway.training.data import (
    CacheDataset,
    DataError,
    LabelledImage,
    load_labelled_dir,
    rectangles,
    transform,
    write_cache,
)
from gateway.training.train import TrainConfig, lr_at, train


def test_few_steps_lower_the_loss(tmp_path) -> None:
    cfg = TrainConfig(steps=40, batch=4, lr=3e-3, warmup=5, checkpoint_every=20, seed=1)
    images = [rectangles(i, size=128, n=5) for i in range(16)]
    model, facts = train(images.__getitem__, len(images), cfg, tmp_path, quiet=True)
    assert (tmp_path / "last.pt").exists()
    first = facts["loss_curve"][:5]
    last = facts["loss_curve"][-5:]
    assert np.mean(last) < 0.8 * np.mean(first)


def test_training_command_defaults_are_the_shipped_models() -> None:
    from gateway.training.cli import (
        DEFAULT_STEPS,
        MIXED_LR,
        REAL_SHARE,
        SYNTHETIC_STEPS,
        TEST_PHOTOS,
        VAL_PHOTOS,
    )
    from gateway.training.shipping import MODEL_DIR

    meta = json.loads((MODEL_DIR / "1" / "meta.json").read_text())
    assert DEFAULT_STEPS == meta["steps"] == meta["config"]["steps"]
    assert meta["config"]["lr"] == MIXED_LR and meta["config"]["width"] == 1.0
    assert meta["config"]["strong_aug"] is True
    assert f"share {REAL_SHARE:g} of views" in meta["data"]
    assert f"val seeds 1000000+{VAL_PHOTOS}, test seeds 2000000+{TEST_PHOTOS}" in meta["data"]
    # The synthetic stage's defaults are the former shipped model's (TrainConfig's defaults).
    assert SYNTHETIC_STEPS == TrainConfig().steps and TrainConfig().lr == 3e-3


def test_schedule_depends_on_steps_only() -> None:
    cfg = TrainConfig(steps=1000, lr=1e-3, warmup=100)
    assert lr_at(0, cfg) == pytest.approx(1e-5)
    assert lr_at(99, cfg) == pytest.approx(1e-3)
    assert lr_at(550, cfg) < lr_at(200, cfg)
    assert lr_at(999, cfg) == pytest.approx(2e-5, rel=0.05)


def test_crop_cuts_visibility_and_cache_round_trips(tmp_path) -> None:
    item = LabelledImage(np.zeros((200, 200, 3), np.uint8),
                         np.array([[0, 0, 100, 100], [150, 150, 190, 190]], np.float32),
                         np.array([1.0, 0.6], np.float32))
    view = transform(item, 1.0, 50, 0, 128)
    # The first item keeps its right half (x 50..100 -> 0..50 in the view): visible 0.5.
    np.testing.assert_allclose(view.boxes[0], [0, 0, 50, 100])
    assert view.visible[0] == pytest.approx(0.5)
    # Upscaled letterbox: pad is not picture.
    view = transform(item, 0.5, -10, -10, 128)
    assert view.image[0, 0, 0] == 114 and view.boxes[0, 0] == pytest.approx(10)
    views = iter([rectangles(i, size=64) for i in range(3)])
    write_cache(tmp_path / "c", views, 3, 64, {"source": "test"})
    ds = CacheDataset(tmp_path / "c")
    assert len(ds) == 3 and ds.meta["source"] == "test"
    np.testing.assert_array_equal(ds[2].image, rectangles(2, size=64).image)
    np.testing.assert_allclose(ds[2].boxes, rectangles(2, size=64).boxes)


def _write_images(folder, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"p{i}.jpg"), np.full((100, 200, 3), 128, np.uint8))


def test_yolo_loader(tmp_path) -> None:
    _write_images(tmp_path / "images", 2)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "p0.txt").write_text("0 0.5 0.5 0.2 0.4\n3 0.1 0.1 0.1 0.2\n")
    pairs = load_labelled_dir(tmp_path)
    assert [p.name for p, _ in pairs] == ["p0.jpg", "p1.jpg"]
    np.testing.assert_allclose(pairs[0][1][0], [80, 30, 120, 70])
    assert len(pairs[1][1]) == 0  # no label file: a photo with no items
    (tmp_path / "labels" / "p1.txt").write_text("0 0.5 oops 0.2 0.4\n")
    with pytest.raises(DataError, match="p1.txt:1"):
        load_labelled_dir(tmp_path)


def test_coco_loader(tmp_path) -> None:
    _write_images(tmp_path / "images", 2)
    doc = {
        "images": [{"id": 1, "file_name": "p0.jpg", "width": 200, "height": 100},
                   {"id": 2, "file_name": "images/p1.jpg", "width": 200, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]},
                        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5]}],
        "categories": [{"id": 1, "name": "carton"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    pairs = load_labelled_dir(tmp_path)
    assert len(pairs) == 2
    np.testing.assert_allclose(pairs[0][1][0], [10, 20, 40, 60])
    (tmp_path / "instances.json").write_text("{not json")
    with pytest.raises(DataError, match="instances.json"):
        load_labelled_dir(tmp_path)
    with pytest.raises(DataError, match="neither YOLO"):
        load_labelled_dir(tmp_path / "images")


def test_cli_rejects_bad_input(tmp_path, capsys) -> None:
    from gateway.training.cli import eval_main, train_main

    assert eval_main(["--model", str(tmp_path / "missing.onnx")]) == 2
    assert "no such model" in capsys.readouterr().err
    assert train_main(["--data", str(tmp_path / "nowhere"), "--steps", "1"]) == 2
    assert "no such folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_main(["--help"])
    assert exc.value.code == 0
    assert "--steps" in capsys.readouterr().out


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch) -> None:
    import torch

    from gateway.training import train as train_module

    images = [rectangles(i, size=96, n=4) for i in range(8)]
    cfg = TrainConfig(steps=12, batch=2, crop=96, warmup=2, checkpoint_every=6, seed=5)
    straight, _ = train(images.__getitem__, len(images), cfg, tmp_path / "a", quiet=True)

    class SessionEnded(Exception):
        pass

    real_save = train_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise SessionEnded

    # The same run stopped right after its first checkpoint, then started again.
    monkeypatch.setattr(train_module, "save_checkpoint", save_then_stop)
    with pytest.raises(SessionEnded):
        train(images.__getitem__, len(images), cfg, tmp_path / "b", quiet=True)
    assert torch.load(tmp_path / "b" / "last.pt")["step"] == 6
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed, facts = train(images.__getitem__, len(images), cfg, tmp_path / "b", quiet=True)
    assert len(facts["loss_curve"]) == 6  # only the remaining steps ran
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
