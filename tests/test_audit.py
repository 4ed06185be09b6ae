"""The shelf audit: findings from item boxes against a plan (unit), and on generated planned
bays through the real pipeline and Triton (integration), and the `shelfcount audit` CLI."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from gateway.catalog import Catalog
from gateway.config import load_settings
from gateway.pipeline.audit import AuditItem, audit_bay
from gateway.planogram import BayPlan
from gateway.training.scene_bays import render_planned_bay
from gateway.training.scenes import encode_jpeg
from tests.bench.audit_bench import Score, audit_pipeline
from tests.test_cli import DEMO, shelfcount

W, H = 1200, 900


def shelf(y0: float, skus: list[str | None], *, named: bool = True, x0: float = 50,
          w: float = 100, space: float = 10) -> list[AuditItem]:
    """One shelf of items left to right; None leaves that facing empty."""
    out = []
    for k, sku in enumerate(skus):
        if sku is not None:
            x = x0 + k * (w + space)
            out.append(AuditItem((x, y0, x + w, y0 + 150), sku, named, 0.9))
    return out


def of_type(findings, kind: str):
    return [f for f in findings if f.type == kind]


def test_planned_gap_misplaced_extra_and_missing() -> None:
    plan = BayPlan("A-01-1", (("A",) * 4 + ("B",) * 3, ("C",) * 6))
    items = shelf(100, ["A", "A", None, "A", "B", "X", "B"]) + shelf(400, ["C"] * 6)
    findings = audit_bay(items, plan, W, H)
    gaps = of_type(findings, "gap")
    assert len(gaps) == 1 and gaps[0].expected_sku == "A"
    assert 255 <= gaps[0].box[0] <= 275 and 355 <= gaps[0].box[2] <= 375  # the third facing
    (mis,) = of_type(findings, "misplaced")
    assert (mis.sku, mis.expected_sku) == ("X", "B") and mis.box[0] == 50 + 5 * 110
    assert [(f.sku, f.expected_sku) for f in of_type(findings, "extra")] == [("X", "")]
    assert of_type(findings, "missing") == []


def test_an_empty_end_facing_is_placed_by_the_shelves_that_pin_the_bay() -> None:
    # The top shelf's missing end facing fits either end equally; the lower shelf (two SKUs,
    # nothing missing) fixes where the bay starts, so the gap is at the right end.
    plan = BayPlan("A-01-1", (("A",) * 6, ("B",) * 3 + ("C",) * 3))
    items = shelf(100, ["A"] * 5) + shelf(400, ["B"] * 3 + ["C"] * 3)
    (gap,) = of_type(audit_bay(items, plan, W, H), "gap")
    assert gap.box[0] == pytest.approx(50 + 5 * 110, abs=15)


def test_an_empty_planned_shelf_is_a_gap_and_its_sku_is_missing() -> None:
    plan = BayPlan("A-01-1", (("A",) * 5, ("B",) * 5, ("C",) * 5))
    items = shelf(50, ["A"] * 5) + shelf(650, ["C"] * 5)
    findings = audit_bay(items, plan, W, H)
    (gap,) = of_type(findings, "gap")
    assert 300 < (gap.box[1] + gap.box[3]) / 2 < 600 and gap.expected_sku == "B"
    (missing,) = of_type(findings, "missing")
    assert missing.expected_sku == "B" and missing.box == gap.box


def test_unread_items_in_a_slot_are_not_called_missing_or_misplaced() -> None:
    plan = BayPlan("A-01-1", (("A", "A", "B", "B"),))
    items = shelf(100, ["A", "A"]) + shelf(100, [None, None, "A", "A"], named=False)
    findings = audit_bay(items, plan, W, H)
    assert of_type(findings, "missing") == [] and of_type(findings, "misplaced") == []


def test_without_a_planogram_the_home_bin_is_the_plan() -> None:
    plan = BayPlan("A-01-1", (("A",),), planned=False)
    items = shelf(100, ["A", "A", None, None, "A", "Z"])
    findings = audit_bay(items, plan, W, H)
    (gap,) = of_type(findings, "gap")
    assert gap.box[0] == 260 and gap.box[2] == 490  # between the 2nd and the 3rd item
    assert [(f.sku, f.expected_sku) for f in of_type(findings, "misplaced")] == [("Z", "A")]
    assert [f.sku for f in of_type(findings, "extra")] == ["Z"]
    # an empty bin: its SKU is missing
    (missing,) = audit_bay([], plan, W, H)
    assert missing.type == "missing" and missing.expected_sku == "A"
    assert audit_bay(items, None, W, H) == []  # no plan, nothing to audit against


@pytest.fixture(scope="module")
def audited(inference):
    """Twelve generated planned bays counted through the real pipeline and Triton."""
    settings = load_settings()
    catalog = Catalog.from_csv(DEMO)
    score = Score()
    for seed in range(31000, 31012):
        bay = render_planned_bay(seed)
        pipeline = audit_pipeline(settings, inference, catalog, [bay])
        result = pipeline.count(encode_jpeg(bay.scene, 90))
        pipeline.close()
        score.add(result.findings, bay.truth)
        score.audit_ms.append(result.timings_ms["audit"])
    return score.report()


def test_findings_on_generated_bays_match_the_truth(audited) -> None:
    assert audited["gaps_true"] >= 10
    assert audited["gap_recall"] >= 0.8 and audited["gap_precision"] >= 0.8, audited
    assert audited["misplaced_precision"] is None or audited["misplaced_precision"] >= 0.8
    assert audited["missing_exact_bays"] >= 0.8, audited


def test_the_cli_prints_findings_and_skips_bad_photos(triton, tmp_path: Path) -> None:
    bay = render_planned_bay(9103)
    photo, plan = tmp_path / "bay.jpg", tmp_path / "plan.csv"
    photo.write_bytes(encode_jpeg(bay.scene))
    plan.write_text(bay.planogram_csv(), encoding="utf-8")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    env = {**os.environ, "SHELFCOUNT_TRITON_URL": triton.url,
           "SHELFCOUNT_DATA_DIR": str(tmp_path / "data")}
    proc = shelfcount(["audit", "--catalog", str(DEMO), "--planogram", str(plan), str(photo),
                       str(bad)], env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        f"{bad}: not_an_image: Not a JPEG, PNG or WebP image."]
    table = list(csv.reader(io.StringIO(proc.stdout)))
    assert table[0] == ["Image", "Type", "X0", "Y0", "X1", "Y1", "SKU", "Expected_SKU",
                        "Confidence"]
    found = {(r[1], r[6], r[7]) for r in table[1:]}
    truth = {(t.type, t.sku, t.expected_sku) for t in bay.truth}
    assert ("gap", "", "SKU-10010") in found and ("misplaced", "SKU-10003", "SKU-10010") in truth
    assert ("misplaced", "SKU-10003", "SKU-10010") in found
    # the stored planogram is used when none is named; jsonl carries the keys and Image
    assert shelfcount(["planogram", "import", str(plan)], env).returncode == 0
    proc = shelfcount(["audit", "--catalog", str(DEMO), "--format", "jsonl", str(photo)], env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert {tuple(sorted(ln)) for ln in lines} == {
        ("Image", "box", "confidence", "expected_sku", "sku", "type")}
    assert {(ln["type"], ln["sku"]) for ln in lines} == {(r[1], r[6]) for r in table[1:]}


def test_planogram_import_reports_each_bad_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text("Location,Shelf_Row,Position,SKU,Facings\nA-01-1,1,1,SKU-10001,0\n"
                    "A-01-1,1,2,SKU-NOPE,1\n", encoding="utf-8")
    env = {**os.environ, "SHELFCOUNT_DATA_DIR": str(tmp_path / "data")}
    assert shelfcount(["catalog", "import", str(DEMO)], env).returncode == 0
    proc = shelfcount(["planogram", "import", str(plan)], env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and ":2: Facings '0'" in lines[0] and "SKU-NOPE" in lines[1]
    assert not (tmp_path / "data" / "planogram.csv").exists()
