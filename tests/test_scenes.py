"""The synthetic scene generator: deterministic, self-consistent ground truth, real codes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import zxingcpp

from gateway.pipeline.text import find_expiry, find_location, find_sku
from gateway.training.scenes import (
    COUNT_MIN_VISIBLE,
    Scene,
    demo_catalog_rows,
    encode_jpeg,
    main,
    render_scene,
    render_training_sample,
)

# 3 px modules read reliably (shared notes); a small perspective tilt shrinks them by ~1 %.
READABLE_MODULE_PX = 2.9


def _inside(box, w: float, h: float, tol: float = 0.01) -> bool:
    x0, y0, x1, y1 = box
    return -tol <= x0 < x1 <= w + tol and -tol <= y0 < y1 <= h + tol


def _centre_in(point_box, box) -> bool:
    cx = (point_box[0] + point_box[2]) / 2
    cy = (point_box[1] + point_box[3]) / 2
    return box[0] - 4 <= cx <= box[2] + 4 and box[1] - 4 <= cy <= box[3] + 4


def _decoded(scene: Scene) -> list[tuple[str, tuple[float, float, float, float]]]:
    gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
    out = []
    for r in zxingcpp.read_barcodes(gray):
        pts = [r.position.top_left, r.position.top_right, r.position.bottom_right,
               r.position.bottom_left]
        xs, ys = [p.x for p in pts], [p.y for p in pts]
        out.append((r.text, (min(xs), min(ys), max(xs), max(ys))))
    return out


def test_same_seed_same_scene_and_different_seeds_differ() -> None:
    a = render_scene(11, width=800, height=600)
    b = render_scene(11, width=800, height=600)
    c = render_scene(12, width=800, height=600)
    assert np.array_equal(a.image, b.image)
    assert a.to_json() == b.to_json()
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("style", ["warehouse", "retail"])
def test_ground_truth_is_self_consistent(style: str) -> None:
    for seed in range(6):
        s = render_scene(seed, width=960, height=720, style=style, difficulty=0.8)
        assert s.image.shape == (720, 960, 3) and s.image.dtype == np.uint8
        assert s.style == style
        for it in s.items:
            assert _inside(it.box, s.width, s.height), it
            fx0, fy0, fx1, fy1 = it.full_box
            assert fx0 <= it.box[0] + 1e-3 and fy0 <= it.box[1] + 1e-3
            assert fx1 >= it.box[2] - 1e-3 and fy1 >= it.box[3] - 1e-3
            assert 0 < it.visible_fraction <= 1
            assert it.counted == (it.visible_fraction >= COUNT_MIN_VISIBLE)
            assert it.cut == (it.visible_fraction < 0.999)
        counted: dict[str, int] = {}
        for it in s.items:
            if it.counted:
                counted[it.sku] = counted.get(it.sku, 0) + 1
        assert {k: v for k, v in s.counts.items() if v} == counted
        assert s.main_sku in s.counts
        assert s.total == sum(s.counts.values())
        for code in s.codes:
            assert _inside(code.box, s.width, s.height)
            if code.item is not None:  # a label lies on its own item
                assert _centre_in(code.box, s.items[code.item].full_box)
        assert all(i < len(s.items) and s.items[i].damaged for i in s.damaged)
        assert s.boxes().shape == (s.total, 4)


def test_requested_item_count_is_placed() -> None:
    for seed, n in [(1, 1), (2, 7), (3, 25), (4, 60), (5, 0)]:
        s = render_scene(seed, width=1280, height=960, n_items=n, difficulty=0.3)
        # a facing far outside the frame is dropped; almost all are listed
        assert n - 3 <= len(s.items) <= n
        assert s.total <= len(s.items)
    empty = render_scene(9, n_items=0, width=640, height=480)
    assert empty.items == [] and empty.counts == {empty.main_sku: 0}


def test_bin_label_decodes_to_the_location_and_reads_as_text() -> None:
    rows = demo_catalog_rows()
    homes = {r["SKU"]: r["Location"] for r in rows}
    for seed in range(5):
        s = render_scene(seed, difficulty=0.5)
        assert s.location == homes[s.main_sku]
        assert s.bin_label_box is not None and _inside(s.bin_label_box, s.width, s.height)
        hits = [box for text, box in _decoded(s) if text == s.location]
        assert hits and any(_centre_in(b, s.bin_label_box) for b in hits)
        loc_texts = [t for t in s.texts if t.role == "location"]
        assert loc_texts and loc_texts[0].cap_px >= 20
        assert find_location(loc_texts[0].text) == s.location
    forced = render_scene(3, location="Z-99-9", width=800, height=600)
    assert forced.location == "Z-99-9"
    no_label = render_scene(3, with_bin_label=False, width=800, height=600)
    assert no_label.location is None and no_label.bin_label_box is None


def test_large_codes_decode_in_1080p_scenes() -> None:
    expected = found = 0
    for seed in range(6):
        s = render_scene(seed, n_items=6, difficulty=0.3)
        decoded = _decoded(s)
        for code in s.codes:
            if code.module_px < READABLE_MODULE_PX:
                continue
            expected += 1
            found += any(t == code.text and _centre_in(b, code.box) for t, b in decoded)
    assert expected >= 12
    assert found >= 0.85 * expected, (found, expected)


def test_12mp_bay_codes_decode() -> None:
    gtins = {r["Barcode"] for r in demo_catalog_rows()}
    readable = found = 0
    for seed in (21, 22):
        s = render_scene(seed, width=4032, height=3024, n_items=30, style="warehouse",
                         difficulty=0.3)
        codes = [c for c in s.codes if c.module_px >= READABLE_MODULE_PX and c.item is not None]
        decoded = _decoded(s)
        readable += len(codes)
        found += sum(any(t == c.text and _centre_in(b, c.box) for t, b in decoded)
                     for c in codes)
        for c in codes:
            assert (c.text in gtins) or c.text.startswith("(01)0")
    assert readable >= 20
    assert found >= 0.8 * readable, (found, readable)


def test_printed_text_matches_ground_truth() -> None:
    checked = 0
    for seed in range(8):
        s = render_scene(seed, width=1920, height=1080, n_items=8)
        for t in s.texts:
            if t.item is None:
                continue
            sku = s.items[t.item].sku
            if t.role == "sku":
                assert find_sku(t.text) == sku
            if t.role == "expiry":
                assert find_expiry(t.text) == s.expiry[sku], t.text
                checked += 1
        for c in s.codes:
            if c.gs1 and c.item is not None:  # (17) carries the same expiry as the print
                yymmdd = c.text.split("(17)")[1][:6]
                assert s.expiry[s.items[c.item].sku].strftime("%y%m%d") == yymmdd
    assert checked > 0


@pytest.mark.parametrize("style", ["warehouse", "retail"])
def test_hard_negatives_do_not_overlap_items(style: str) -> None:
    seen = 0
    for seed in range(12):
        s = render_scene(seed, width=960, height=720, style=style, difficulty=0.9)
        for _, nb in s.negatives:
            seen += 1
            area = (nb[2] - nb[0]) * (nb[3] - nb[1])
            for it in s.items:  # touching (a tag under a bottle) is fine, covering is not
                ix = min(nb[2], it.box[2]) - max(nb[0], it.box[0])
                iy = min(nb[3], it.box[3]) - max(nb[1], it.box[1])
                assert ix <= 4 or iy <= 4 or ix * iy <= 0.05 * area
    assert seen > 0


def test_training_sample_is_square_and_scaled() -> None:
    a = render_training_sample(5, 384)
    b = render_training_sample(5, 384)
    assert a.image.shape == (384, 384, 3)
    assert np.array_equal(a.image, b.image)
    for it in a.items:
        assert _inside(it.box, 384, 384)
    assert a.total == sum(a.counts.values())


def test_jpeg_and_cli(tmp_path) -> None:
    s = render_scene(4, width=640, height=480)
    data = encode_jpeg(s, 85)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == s.image.shape
    assert main(["--out", str(tmp_path), "--n", "2", "--seed", "7", "--width", "640",
                 "--height", "480"]) == 0
    truth = json.loads((tmp_path / "scene_000007.json").read_text())
    assert truth["width"] == 640 and truth["counts"]
    assert (tmp_path / "scene_000008.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert main(["--out", str(tmp_path), "--n", "-1"]) == 2


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        render_scene(1, style="garage")
    with pytest.raises(ValueError):
        render_scene(1, width=40, height=400)
    with pytest.raises(ValueError):
        render_scene(1, skus=["SKU-NOPE"])


def test_options_skus_catalog_and_no_codes() -> None:
    forced = render_scene(8, width=960, height=720, skus=["SKU-10005", "SKU-10007"],
                          n_items=20, difficulty=0.2)
    assert forced.main_sku == "SKU-10005" and forced.location == "B-01-1"
    assert {it.sku for it in forced.items} <= {"SKU-10005", "SKU-10007"}
    bare = render_scene(8, width=960, height=720, with_codes=False)
    assert all(c.item is None for c in bare.codes)
    assert not any(it.labelled for it in bare.items)
    rows = [{"SKU": "X-1", "Barcode": "036000291452", "Product_Description": "Tea 20 bags",
             "Unit_Price": "2.00", "Location": "Q-07-2"}]
    own = render_scene(4, catalog=rows, n_items=4, style="warehouse", difficulty=0.2)
    assert own.location == "Q-07-2" and own.counts.get("X-1", 0) >= 1
    upc = [c for c in own.codes if c.item is not None]
    assert upc and all(c.format in ("UPC-A", "DataMatrix", "Code 128") for c in upc)


def test_resized_scales_every_box() -> None:
    s = render_scene(6, width=1280, height=960)
    half = s.resized(0.5)
    assert half.image.shape == (480, 640, 3)
    for a, b in zip(s.items, half.items, strict=True):
        assert np.allclose(np.asarray(a.box) / 2, b.box)
    assert half.counts == s.counts and half.location == s.location
