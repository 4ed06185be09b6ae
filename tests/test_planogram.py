"""The planogram file: parsed, checked line by line, stored, and turned into bay plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.planogram import Planogram, PlanogramError, import_planogram, load_planogram

HEADER = "Location,Shelf_Row,Position,SKU,Facings\n"


def test_plan_for_orders_rows_and_positions_and_expands_facings() -> None:
    plan = Planogram.from_text(HEADER + "a-01-1,2,2,SKU-B,1\nA-01-1,2,1,SKU-A,2\n"
                                        "A-01-1,5,1,SKU-C,3\nB-02-1,1,1,SKU-X,1\n")
    bay = plan.plan_for("A-01-1")
    assert bay is not None and bay.planned
    # rows 2 and 5 are the bay's two shelves; positions order the slots left to right
    assert bay.rows == (("SKU-A", "SKU-A", "SKU-B"), ("SKU-C",) * 3)
    assert bay.skus == ["SKU-A", "SKU-B", "SKU-C"]
    assert plan.plan_for("b-02-1").rows == (("SKU-X",),)  # bin labels are case-insensitive
    assert plan.plan_for("C-09-9") is None and plan.plan_for(None) is None


def test_every_bad_line_is_reported_with_its_line_number() -> None:
    text = HEADER + ("A-01-1,1,1,SKU-A,2\n"
                     "A-01-1,0,1,SKU-A,2\n"      # row 0
                     ",1,2,SKU-A,1\n"            # no location
                     "A-01-1,1,1,SKU-B,1\n"      # slot planned twice
                     "A-01-1,1,3,SKU-Z,1\n"      # unknown SKU
                     "A-01-1,1,4,SKU-A,many\n"   # facings not a number
                     "A-01-1,1,5,SKU-A,1,extra\n")
    with pytest.raises(PlanogramError) as err:
        Planogram.from_text(text, source="p.csv", known_sku=lambda s: s in {"SKU-A", "SKU-B"})
    problems = err.value.problems
    assert [p.split(":")[1] for p in problems] == ["3", "4", "5", "6", "7", "8"]
    assert "Shelf_Row '0'" in problems[0] and "empty Location" in problems[1]
    assert "planned twice" in problems[2] and "SKU-Z is not in the catalog" in problems[3]
    assert "Facings 'many'" in problems[4] and "more fields" in problems[5]


def test_missing_columns_and_empty_files_are_refused() -> None:
    with pytest.raises(PlanogramError, match="missing column"):
        Planogram.from_text("Location,SKU\nA,B\n")
    with pytest.raises(PlanogramError, match="no slots"):
        Planogram.from_text(HEADER)


def test_import_stores_the_plan_and_a_bad_file_leaves_the_old_one(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "A-01-1,1,1,SKU-A,3\n", encoding="utf-8")
    import_planogram(good, tmp_path / "data")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "A-01-1,1,1,,3\n", encoding="utf-8")
    with pytest.raises(PlanogramError):
        import_planogram(bad, tmp_path / "data")
    assert load_planogram(tmp_path / "data").plan_for("A-01-1").rows == (("SKU-A",) * 3,)
    assert len(load_planogram(tmp_path / "empty")) == 0
