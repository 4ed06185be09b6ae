"""Item detector: network shapes, decoding, ONNX parity, tiling/merge, thresholds, SKU assignment,
and detection through the real embedded Triton."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gateway.pipeline.assign import name_items
from gateway.pipeline.detect import (
    TILE,
    count_confidence,
    detect_items,
    merge_tiles,
    nms,
)
from gateway.pipeline.types import Detection
from gateway.training.evaluate import EvalImage, ap50, choose_threshold, count_metrics
from gateway.training.loss import build_targets, focal_loss, giou_loss
from gateway.training.model import STRIDE, ExportWrapper, ItemDetector, decode


def test_forward_shapes() -> None:
    model = ItemDetector().eval()
    with torch.no_grad():
        heat, sides = model(torch.randn(2, 3, 128, 160))
    assert heat.shape == (2, 1, 32, 40)
    assert sides.shape == (2, 4, 32, 40)
    assert bool((sides > 0).all())


def test_decode_puts_box_at_peak() -> None:
    heat = torch.full((1, 1, 20, 20), -9.0)
    heat[0, 0, 5, 7] = 3.0
    sides = torch.full((1, 4, 20, 20), 10.0)
    out = decode(heat, sides, k=5)
    assert out.shape == (1, 5, 5)
    cx, cy = (7 + 0.5) * STRIDE, (5 + 0.5) * STRIDE
    np.testing.assert_allclose(out[0, 0, :4].numpy(), [cx - 10, cy - 10, cx + 10, cy + 10])
    assert float(out[0, 0, 4]) == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    assert float(out[0, 1, 4]) < 1e-3


def test_targets_and_losses_reward_the_right_answer() -> None:
    boxes = np.array([[20, 20, 60, 52], [70, 10, 110, 90]], np.float32)
    ignore = np.array([[0, 100, 30, 128]], np.float32)
    t = build_targets(boxes, ignore, 128, 128)
    assert t["heat"].shape == (32, 32)
    assert (t["heat"] == 1.0).sum() == 2
    assert t["mask"][27, 2] == 0.0  # inside the ignore box
    assert t["weight"].sum() > 0
    target = {k: torch.from_numpy(v)[None] for k, v in t.items()}
    good_logits = torch.where(target["heat"] >= 1, 6.0, -6.0)
    bad_logits = torch.zeros(1, 32, 32)
    assert focal_loss(good_logits, target["heat"], target["mask"]) < focal_loss(
        bad_logits, target["heat"], target["mask"])
    # Sides that reproduce the target boxes exactly give a GIoU loss of ~0.
    ys = (torch.arange(32) + 0.5) * STRIDE
    xs = (torch.arange(32) + 0.5) * STRIDE
    bt = target["box"][0]
    exact = torch.stack([xs[None, :] - bt[0], ys[:, None] - bt[1], bt[2] - xs[None, :],
                         bt[3] - ys[:, None]])[None].clamp(min=0.1)
    assert giou_loss(exact, target["box"], target["weight"]) < 1e-3
    assert giou_loss(torch.full_like(exact, 3.0), target["box"], target["weight"]) > 0.3


def test_onnx_export_matches_torch(tmp_path) -> None:
    import onnxruntime as ort

    from gateway.training.export import export_onnx

    torch.manual_seed(0)
    model = ItemDetector().eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    img = np.random.default_rng(0).integers(0, 255, (1, TILE, TILE, 3), dtype=np.uint8)
    ours = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": img})[0]
    with torch.no_grad():
        ref = ExportWrapper(model)(torch.from_numpy(img)).numpy()
    assert ours.shape == (1, 200, 5)
    np.testing.assert_allclose(ours[0, :, 4], ref[0, :, 4], rtol=1e-3, atol=1e-5)
    # Near-equal scores of an untrained net may swap places: match rows as sets.
    dist = np.abs(ours[0, :20, None, :] - ref[0, None, :40, :]).max(axis=2)
    assert (dist.min(axis=1) < 0.05).sum() >= 18


def test_nms_keeps_best_of_duplicates() -> None:
    rows = np.array([[0, 0, 10, 10, 0.9], [1, 1, 10, 10, 0.8], [20, 0, 30, 10, 0.7]], np.float32)
    kept = nms(rows)
    assert len(kept) == 2
    assert kept[0, 4] == pytest.approx(0.9)


def test_item_cut_by_tile_border_counted_once() -> None:
    # Picture 1088 wide: tiles at x=0 and x=448. An item spanning x 600..700 is cut by the
    # first tile's right border (an inner border) and seen whole in the second.
    origins = [(0, 0), (448, 0)]
    left = [Detection((600.0, 100.0, 640.0, 180.0), 0.8)]
    right = [Detection((152.0, 100.0, 252.0, 180.0), 0.9)]
    merged = merge_tiles([left, right], origins, 1088, 640)
    assert len(merged) == 1
    assert merged[0, 0] == pytest.approx(600.0)
    # An item wider than the overlap is cut in both tiles: its two pieces fuse into one.
    left = [Detection((300.0, 100.0, 640.0, 180.0), 0.8)]
    right = [Detection((0.0, 100.0, 350.0, 180.0), 0.7)]
    merged = merge_tiles([left, right], origins, 1088, 640)
    assert len(merged) == 1
    assert merged[0, 0] == pytest.approx(300.0) and merged[0, 2] == pytest.approx(798.0)
    # A box touching the *photo* edge is not a cut: it stays.
    merged = merge_tiles([[Detection((0.0, 0.0, 50.0, 50.0), 0.9)], []], origins, 1088, 640)
    assert len(merged) == 1


def _perfect_tile_detections(boxes: np.ndarray, ox: int, oy: int, width: int, height: int):
    """What a perfect detector reports in one tile: the visible part of each item at least
    half inside it (the scene generator's count rule)."""
    vis_w, vis_h = min(TILE, width - ox), min(TILE, height - oy)
    dets = []
    for b in boxes - np.array([ox, oy, ox, oy], np.float32):
        c = [max(b[0], 0), max(b[1], 0), min(b[2], vis_w), min(b[3], vis_h)]
        if c[2] <= c[0] or c[3] <= c[1]:
            continue
        if (c[2] - c[0]) * (c[3] - c[1]) >= 0.5 * (b[2] - b[0]) * (b[3] - b[1]):
            dets.append(Detection(tuple(float(v) for v in c), 0.9))
    return dets


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_tiling_geometry_counts_every_item_once(seed: int) -> None:
    from gateway.pipeline import detect as d
    from gateway.training.scenes import render_scene

    scene = render_scene(seed, width=4000, height=3000, n_items=60, style="warehouse")
    h, w = scene.image.shape[:2]
    boxes = scene.boxes()
    preview_scale = TILE / max(h, w)
    # Tiles at three times the preview's resolution: 3x2..4x3 tiles, items cut everywhere.
    scale = 3 * preview_scale
    bw, bh = round(w * scale), round(h * scale)
    origins = [(x, y) for y in d._starts(bh) for x in d._starts(bw)]
    assert 1 < len(origins) <= d.MAX_TILES
    per_tile = [_perfect_tile_detections(boxes * scale, x, y, bw, bh) for x, y in origins]
    merged = merge_tiles(per_tile, origins, bw, bh)
    assert len(merged) == scene.total


def test_working_scale_tiles_only_for_small_items() -> None:
    from gateway.pipeline import detect as d

    def rows(side: float, n: int = 8) -> np.ndarray:
        return np.array([[0, 0, side, side, 0.9]] * n, np.float32)

    assert d.working_scale(rows(80), 0.16, 3000, 4000) == 0.16
    assert d.working_scale(np.zeros((0, 5), np.float32), 0.16, 3000, 4000) == 0.16
    want = 0.16 * d.TARGET_ITEM_PX / 32
    assert d.working_scale(rows(32), 0.16, 3000, 4000) == pytest.approx(want)
    scale = d.working_scale(rows(20), 0.16, 3000, 4000)
    assert 0.16 < scale < 0.16 * d.TARGET_ITEM_PX / 20  # shrunk to bound the work
    tiles = len(d._starts(round(4000 * scale))) * len(d._starts(round(3000 * scale)))
    assert tiles <= d.MAX_TILES
    # A handful of small detections (windows, signs in a cluttered room) does not up-scale.
    assert d.working_scale(rows(20, d.MIN_TILED_ITEMS - 1), 0.16, 3000, 4000) == 0.16


def test_threshold_choice_and_count_metrics() -> None:
    rng = np.random.default_rng(0)
    cands, truth = [], []
    for n in (3, 10, 20, 40):
        good = np.column_stack([rng.uniform(0, 100, (n, 4)), rng.uniform(0.7, 0.95, n)])
        bad = np.column_stack([rng.uniform(0, 100, (5, 4)), rng.uniform(0.05, 0.45, 5)])
        cands.append(np.vstack([good, bad]).astype(np.float32))
        truth.append(n)
    thr = choose_threshold(cands, truth)
    assert 0.45 <= thr <= 0.7
    m = count_metrics(cands, truth, thr)
    assert m["exact"] == 1.0 and m["mae"] == 0.0
    assert m["bins"]["31-60"]["n"] == 1
    m = count_metrics(cands, truth, 0.05)
    assert m["exact"] == 0.0 and m["mae"] == 5.0


def test_ap50_perfect_and_ignored() -> None:
    gt = EvalImage(np.zeros((1, 1, 3), np.uint8), np.array([[0, 0, 10, 10]], np.float32),
                   np.array([[50, 50, 60, 60]], np.float32))
    perfect = np.array([[0, 0, 10, 10, 0.9], [50, 50, 60, 60, 0.8]], np.float32)
    assert ap50([perfect], [gt]) == pytest.approx(1.0)
    wrong = np.array([[20, 20, 30, 30, 0.9], [0, 0, 10, 10, 0.5]], np.float32)
    assert ap50([wrong], [gt]) == pytest.approx(0.5)


def test_count_confidence_drops_near_threshold() -> None:
    far = [Detection((0, 0, 1, 1), 0.95), Detection((0, 0, 1, 1), 0.05)]
    near = [Detection((0, 0, 1, 1), 0.95), Detection((0, 0, 1, 1), 0.52)]
    assert count_confidence(far, 0.5, 0.15) == pytest.approx(1.0)
    assert count_confidence(near, 0.5, 0.15) < 0.6
    assert count_confidence([], 0.5, 0.15) == 1.0
    # A narrower calibrated band leaves a near miss less ambiguous.
    assert count_confidence(near, 0.5, 0.05) > count_confidence(near, 0.5, 0.15)


def test_assign_items_rules() -> None:
    row1 = [Detection((x, 0.0, x + 90.0, 100.0), 0.9) for x in (0.0, 100.0, 200.0, 300.0)]
    row2 = [Detection((x, 200.0, x + 90.0, 300.0), 0.9) for x in (0.0, 100.0)]
    dets = row1 + row2
    labels = [((10.0, 40.0, 50.0, 60.0), "SKU-A"), ((310.0, 40.0, 350.0, 60.0), "SKU-B")]
    out = name_items(dets, labels, None, "SKU-BIN").skus
    # Own labels, then nearest labelled neighbour in the row, then the bin's SKU.
    assert out[:4] == ["SKU-A", "SKU-A", "SKU-B", "SKU-B"]
    assert out[4:] == ["SKU-BIN", "SKU-BIN"]
    assert name_items(row2, [], None, None).skus == [None, None]
    # Two labels in one item: majority wins.
    two = [((10.0, 10.0, 20.0, 20.0), "X"), ((30.0, 30.0, 40.0, 40.0), "Y"),
           ((50.0, 50.0, 60.0, 60.0), "Y")]
    assert name_items(row1[:1], two, None, None).skus == ["Y"]


@pytest.mark.triton
def test_detection_through_real_triton(inference) -> None:
    from gateway.pipeline.detect import META_PATH
    from gateway.training.scenes import render_scene

    if not (META_PATH.parent / "model.onnx").exists():
        pytest.skip("item_detector/1/model.onnx not trained yet")
    assert inference.model_ready("item_detector")
    misses = 0
    for seed, (w, h) in ((11, (1920, 1080)), (12, (1440, 1080)), (13, (4000, 3000))):
        scene = render_scene(3_000_000 + seed, width=w, height=h, difficulty=0.3)
        dets = detect_items(scene.image, inference)
        misses += abs(len(dets) - scene.total) > 1
        assert all(0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h for d in dets)
    assert misses == 0
