"""The whole pipeline on rendered bays with ground truth, through the real embedded Triton."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.catalog import Catalog
from gateway.config import load_settings
from gateway.pipeline.run import Pipeline
from gateway.pipeline.types import PipelineError
from gateway.schema import COLUMNS
from gateway.training.scenes import encode_jpeg, render_scene

DEMO = Path(__file__).resolve().parent.parent / "gateway" / "demo" / "catalog.csv"
SEEDS = range(100, 106)


@pytest.fixture(scope="module")
def pipeline(inference):
    p = Pipeline(load_settings(), inference, Catalog.from_csv(DEMO),
                 clock=lambda: datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    yield p
    p.close()


@pytest.fixture(scope="module")
def results(pipeline):
    out = []
    for seed in SEEDS:
        scene = render_scene(seed, width=1920, height=1080)
        out.append((scene, pipeline.count(encode_jpeg(scene))))
    return out


def test_rows_follow_the_schema(results) -> None:
    for _, result in results:
        assert result.rows
        for row in result.rows:
            assert tuple(row) == COLUMNS
            assert isinstance(row["Quantity_Counted"], int) and row["Quantity_Counted"] >= 0
            assert 0.0 <= row["Count_Confidence"] <= 1.0
            assert row["Last_Updated"] == "2026-11-22T12:00:00Z"
        assert set(result.timings_ms) >= {"decode", "codes", "ocr", "fuse", "total"}
        assert (result.width, result.height) == (1920, 1080)


def test_location_and_main_sku_right_on_rendered_bays(results) -> None:
    loc_ok = sku_ok = 0
    for scene, result in results:
        loc_ok += all(r["Location"] == scene.location for r in result.rows)
        counted = {r["SKU"] for r in result.rows if r["Quantity_Counted"] > 0}
        sku_ok += scene.main_sku in counted
    assert loc_ok >= len(SEEDS) - 1, f"location right on {loc_ok}/{len(SEEDS)}"
    assert sku_ok >= len(SEEDS) - 1, f"main SKU found on {sku_ok}/{len(SEEDS)}"


def test_counts_never_exceed_truth_by_much_and_expiry_is_read(results) -> None:
    """"By much" is the product's rule for a right count (MODEL.md): max(1, 10 % of truth)."""
    expiry_hits = expiry_total = 0
    for scene, result in results:
        for row in result.rows:
            truth = scene.counts.get(row["SKU"])
            if truth is not None:
                assert row["Quantity_Counted"] <= truth + max(1, truth // 10), (scene.seed, row)
            if row["SKU"] in scene.expiry and row["Quantity_Counted"]:
                expiry_total += 1
                expiry_hits += row["Expiration_Date"] == scene.expiry[row["SKU"]].isoformat()
    assert expiry_total and expiry_hits >= 0.7 * expiry_total, (expiry_hits, expiry_total)


def test_expired_stock_is_flagged(results) -> None:
    for _, result in results:
        for row in result.rows:
            if row["Expiration_Date"] and row["Quantity_Counted"]:
                expired = row["Expiration_Date"] < "2026-11-22"
                assert (row["Condition"] == "Expired") == expired, row


def test_session_location_used_when_no_bin_label(pipeline) -> None:
    scene = render_scene(7, width=1920, height=1080, with_bin_label=False)
    result = pipeline.count(encode_jpeg(scene), location="C-02-2")
    assert {r["Location"] for r in result.rows} == {"C-02-2"}


def test_preview_is_counted_on_a_small_picture_with_boxes_in_photo_pixels(pipeline) -> None:
    scene = render_scene(101, width=4032, height=3024)
    result = pipeline.count(encode_jpeg(scene), preview=True)
    assert (result.width, result.height) == (4032, 3024)
    assert "ocr" not in result.timings_ms
    for box in result.boxes:
        assert 0 <= box[0] < box[2] <= 4032 and 0 <= box[1] < box[3] <= 3024
    # What named each box, so a live view can tell read SKUs from guessed ones.
    sources = result.to_json()["box_sources"]
    assert len(sources) == len(result.boxes) and "own" in sources
    assert set(sources) <= {"own", "neighbour", "home", "unknown"}


@pytest.mark.parametrize(
    ("data", "code"), [(b"", "empty"), (b"not a photo at all", "not_an_image")]
)
def test_bad_bytes_are_refused_with_a_code(pipeline, data: bytes, code: str) -> None:
    with pytest.raises(PipelineError) as info:
        pipeline.count(data)
    assert info.value.code == code


def test_truncated_photo_is_refused(pipeline) -> None:
    data = encode_jpeg(render_scene(3, width=640, height=480))
    with pytest.raises(PipelineError) as info:
        pipeline.count(data[: len(data) // 2])
    assert info.value.code == "truncated"
