"""Training on real photos: family folds, real views, a few steps on real cartons served by the
real Triton, and the eval command's metrics on a tiny labelled folder with known answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gateway.training.data import LabelledImage, load_labelled_dir
from gateway.training.evaluate import calibration, count_metrics, counted_right
from gateway.training.real import (
    REAL_CARTONS,
    MixedSource,
    family,
    load_photos,
    real_view,
    split_by_family,
)

REAL_TRAIN = REAL_CARTONS / "train"
needs_real = pytest.mark.skipif(
    not (REAL_TRAIN / "images").is_dir(),
    reason=f"real carton photos not found at {REAL_TRAIN} (shared data absent)")


def test_families_group_video_frames_and_capture_series() -> None:
    assert family("IMG_0263_mp4-120_jpg.rf.0a1b2c.jpg") == "IMG_0263_mp4"
    assert family("IMG_0263_mp4-7_jpg.rf.99.jpg") == "IMG_0263_mp4"
    assert family("0012_20211113_124454_0222_0193_jpg.rf.ab.jpg") == "0012"
    assert family("original-72-_jpg.rf.1.jpg") == family("original-8-_jpg.rf.2.jpg")
    assert family("im0-98-_jpg.rf.3.jpg") == "im0"


def test_split_keeps_each_family_on_one_side() -> None:
    pairs = [(Path(f"IMG_{v:04d}_mp4-{f}_jpg.rf.x.jpg"), np.zeros((0, 4), np.float32))
             for v in range(20) for f in range(30)]
    train, tune = split_by_family(pairs)
    assert train and tune
    train_f = {family(p) for p, _ in train}
    tune_f = {family(p) for p, _ in tune}
    assert not train_f & tune_f
    # A long video adds at most a dozen evenly spaced frames to the tune set.
    assert max(sum(family(p) == f for p, _ in tune) for f in tune_f) <= 12


def test_mixed_source_is_a_function_of_the_index() -> None:
    img = np.full((300, 300, 3), 50, np.uint8)
    photo = LabelledImage(img, np.array([[10, 10, 100, 100]], np.float32), np.ones(1, np.float32))
    synthetic = [LabelledImage(np.full((64, 64, 3), 7, np.uint8), np.zeros((0, 4), np.float32),
                               np.zeros(0, np.float32))]
    src = MixedSource([photo], synthetic, 0.5, seed=1, size=64)
    picks = [src(i) for i in range(200)]
    real = sum(int(v.image[0, 0, 0] != 7) for v in picks)
    assert 70 < real < 130  # about half real, half rendered
    np.testing.assert_array_equal(src(17).image, src(17).image)
    assert MixedSource([], synthetic, 0.5, 1, 64)(3).image[0, 0, 0] == 7


def test_real_view_moves_boxes_with_the_pixels() -> None:
    img = np.full((400, 600, 3), 40, np.uint8)
    img[100:200, 150:350] = 255
    item = LabelledImage(img, np.array([[150, 100, 350, 200]], np.float32),
                         np.ones(1, np.float32))
    for seed in range(20):
        v = real_view(item, np.random.default_rng(seed), 320)
        assert v.image.shape == (320, 320, 3)
        mask = v.image[:, :, 0] > 128
        if len(v.boxes) == 0 or v.visible[0] < 0.99:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = v.boxes[0]
        # The bright block lies inside its box and fills its extent (to interpolation).
        assert xs.min() >= x0 - 2 and xs.max() <= x1 + 2
        assert ys.min() >= y0 - 2 and ys.max() <= y1 + 2
        assert xs.min() <= x0 + 3 and ys.max() >= y1 - 3


def test_metrics_count_right_bias_and_calibration() -> None:
    assert counted_right(np.array([9, 18, 22, 60]), np.array([10, 20, 20, 70])).tolist() == \
        [True, True, True, False]
    cands = [np.array([[0, 0, 1, 1, 0.9]] * k, np.float32).reshape(-1, 5) for k in (3, 14, 70)]
    m = count_metrics(cands, [4, 20, 66], 0.5)
    assert m["bins"]["1-15"]["bias"] == -1 and m["bins"]["16-30"]["right"] == 0.0
    assert m["bins"]["61+"]["n"] == 1 and m["bins"]["61+"]["right"] == 1.0
    assert m["bias"] == pytest.approx((-1 - 6 + 4) / 3)
    rows = calibration([0.95, 0.85, 0.3], [3, 14, 70], [4, 20, 66])
    promise = rows[-1]
    assert promise["n"] == 2 and promise["right"] == 0.5


def _constant_detector(path: Path, rows: np.ndarray) -> None:
    """An ONNX model that answers every tile with the same detections (known answers)."""
    k = len(rows)
    const = helper.make_tensor("dets", TensorProto.FLOAT, [1, k, 5], rows.flatten().tolist())
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["batch", "tail"], ["target"], axis=0),
        helper.make_node("Constant", [], ["d"], value=const),
        helper.make_node("Expand", ["d", "target"], ["detections"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
             helper.make_tensor("one", TensorProto.INT64, [1], [1]),
             helper.make_tensor("tail", TensorProto.INT64, [2], [k, 5])]
    graph = helper.make_graph(
        nodes, "constant", [helper.make_tensor_value_info("images", TensorProto.UINT8,
                                                          ["batch", 640, 640, 3])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["batch", k, 5])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_eval_command_on_a_tiny_labelled_folder(tmp_path, capsys) -> None:
    from gateway.training.cli import eval_main

    # Two 640x640 photos with 4 and 2 cartons of 46 px (a preview-sized item, so the
    # pipeline counts on the preview tile at scale 1 and boxes stay in photo pixels).
    gt = [[(40, 40), (140, 40), (240, 40), (340, 40)], [(40, 300), (140, 300)]]
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "labels").mkdir()
    for i, boxes in enumerate(gt):
        cv2.imwrite(str(tmp_path / "data" / "images" / f"p{i}.png"),
                    np.full((640, 640, 3), 90, np.uint8))
        lines = [f"0 {(x + 23) / 640} {(y + 23) / 640} {46 / 640} {46 / 640}" for x, y in boxes]
        (tmp_path / "data" / "labels" / f"p{i}.txt").write_text("\n".join(lines) + "\n")
    # The "model" finds the first photo's four cartons plus one false box at 0.6 and a weak
    # one at 0.3; on the second photo the two real ones are among them too.
    rows = [[x, y, x + 46, y + 46, s] for (x, y), s in zip(gt[0], (0.9, 0.9, 0.8, 0.7),
                                                           strict=True)]
    rows += [[40, 300, 86, 346, 0.95], [140, 300, 186, 346, 0.65], [500, 500, 546, 546, 0.6],
             [500, 100, 546, 146, 0.3]]
    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    _constant_detector(model, np.array(rows, np.float32))
    (model.parent / "meta.json").write_text(json.dumps({"threshold": 0.5,
                                                        "confidence_band": 0.15}))
    assert eval_main(["--data", str(tmp_path / "data"), "--model", str(model), "--json",
                      "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    # 7 boxes >= 0.5 on each photo: counts 7 vs 4 and 7 vs 2.
    assert out["n"] == 2 and out["exact"] == 0.0 and out["right"] == 0.0
    assert out["mae"] == pytest.approx(4.0) and out["bias"] == pytest.approx(4.0)
    assert out["bins"]["1-15"]["n"] == 2 and out["bins"]["16-30"]["n"] == 0
    # AP over 6 cartons, ties ranked in photo order: precision 1/2 at recall 1/6, 3/4 at 3/6,
    # 4/7 at 4/6, 5/9 at 5/6, 6/12 at 1; interpolated: (3 * 3/4 + 4/7 + 5/9 + 1/2) / 6.
    assert out["ap50"] == pytest.approx((3 * 0.75 + 4 / 7 + 5 / 9 + 0.5) / 6)
    # Only the 0.6 box is within the 0.15 band of 0.5 (ambiguity 1/3): confidence 0.83 on
    # both photos, both wrong, and the table's promise row shows it.
    assert out["calibration"][-1] == {"lo": 0.8, "hi": 1.0, "n": 2, "right": 0.0, "promise": 1}
    assert eval_main(["--data", str(tmp_path / "data"), "--model", str(model), "--json",
                      "--quiet", "--threshold", "0.75"]) == 0
    out = json.loads(capsys.readouterr().out)
    # At 0.75 both photos count 4: exact on the first, 2 too many on the second.
    assert out["right"] == 0.5 and out["exact"] == 0.5 and out["bias"] == pytest.approx(1.0)


@needs_real
@pytest.mark.triton
def test_few_steps_on_real_photos_lower_the_loss_and_triton_serves_the_export(tmp_path) -> None:
    from gateway.inference.client import InferenceClient
    from gateway.inference.embedded import EmbeddedTriton
    from gateway.training.export import export_onnx
    from gateway.training.shipping import MODEL_DIR, LocalDetector
    from gateway.training.train import TrainConfig, train

    pairs = load_labelled_dir(REAL_TRAIN)[:6]
    photos = load_photos(pairs, 640)
    # Eight fixed real views (a random view per step is too noisy to see a fall in 40 steps),
    # fine-tuned from the shipped weights as `shelfcount train --data` does.
    views = [real_view(photos[i % 6], np.random.default_rng(i), 192) for i in range(8)]
    cfg = TrainConfig(steps=40, batch=4, crop=192, lr=2e-3, warmup=5, checkpoint_every=20,
                      seed=3)
    model, facts = train(views.__getitem__, len(views), cfg, tmp_path / "run",
                         init_weights=MODEL_DIR / "weights.pt", quiet=True)
    curve = facts["loss_curve"]
    assert np.mean(curve[-8:]) < 0.6 * np.mean(curve[:8])
    repo = tmp_path / "models"
    shutil.copytree(MODEL_DIR, repo / "item_detector",
                    ignore=shutil.ignore_patterns("*.pt", "*.md", "model.onnx", "meta.json"))
    export_onnx(model, repo / "item_detector" / "1" / "model.onnx")
    tile = np.zeros((1, 640, 640, 3), np.uint8)
    tile[0] = cv2.resize(photos[0].image, (640, 640))
    local = LocalDetector(repo / "item_detector" / "1" / "model.onnx").detect(tile)[0]
    with EmbeddedTriton(repo, required_models=["item_detector"], start_timeout_s=90) as server:
        client = InferenceClient(server.url, retry_wait_s=1)
        try:
            served = client.detect(tile)[0]
        finally:
            client.close()
    assert len(served) == len(local)
    for a, b in zip(served, local, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        np.testing.assert_allclose(a.box, b.box, atol=0.05)


def test_train_without_real_photos_ships_the_synthetic_stage(tmp_path, monkeypatch,
                                                             capsys) -> None:
    from gateway.training import real
    from gateway.training.cli import train_main

    monkeypatch.setattr(real, "real_dir_or_none", lambda *a: None)
    out = tmp_path / "model" / "1" / "model.onnx"
    argv = ["--no-eval", "--quiet", "--synthetic-steps", "3", "--scenes", "2", "--views", "1",
            "--size", "64", "--crop", "64", "--batch", "2", "--cache", str(tmp_path / "cache"),
            "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert train_main(argv) == 0
    assert "no real photos" in capsys.readouterr().err
    meta = json.loads((out.parent / "meta.json").read_text())
    assert meta["stage"] == "synthetic only" and meta["steps"] == 3
    assert meta["data"].startswith("synthetic:")
    assert (tmp_path / "runs" / "synthetic-seed0" / "weights.pt").exists() and out.exists()


def test_train_on_own_labelled_photos_fine_tunes_the_shipped_weights(tmp_path, capsys) -> None:
    from gateway.training.cli import train_main
    from gateway.training.data import rectangles

    data = tmp_path / "mine"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for i in range(4):
        item = rectangles(i, size=128, n=4)
        cv2.imwrite(str(data / "images" / f"bay{i}.png"), item.image)
        rows = [f"0 {(b[0] + b[2]) / 256} {(b[1] + b[3]) / 256} {(b[2] - b[0]) / 128} "
                f"{(b[3] - b[1]) / 128}" for b in item.boxes]
        (data / "labels" / f"bay{i}.txt").write_text("\n".join(rows) + "\n")
    out = tmp_path / "model" / "1" / "model.onnx"
    argv = ["--data", str(data), "--steps", "2", "--no-eval", "--quiet", "--scenes", "2",
            "--views", "1", "--size", "64", "--batch", "2", "--cache", str(tmp_path / "cache"),
            "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert train_main(argv) == 0
    meta = json.loads((out.parent / "meta.json").read_text())
    assert meta["init"].endswith("weights.pt") and meta["steps"] == 2
    assert f"real: {data} (4 train photos" in meta["data"]
    assert out.with_suffix(".pt").exists() and (tmp_path / "runs" / "mixed-seed0").is_dir()
