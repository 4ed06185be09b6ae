"""Catalog loading: lookups by GTIN form, SKU and home bin; clear errors on bad files."""

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.catalog import Catalog, CatalogError, import_catalog, load_catalog

DEMO = Path(__file__).resolve().parent.parent / "gateway" / "demo" / "catalog.csv"
HEADER = "SKU,Barcode,Product_Description,Unit_Price,Location\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cat.csv"
    path.write_text(text)
    return path


def test_demo_catalog_loads_and_looks_up_every_form() -> None:
    cat = Catalog.from_csv(DEMO)
    entry = cat.by_sku("SKU-10005")
    assert entry is not None and entry.unit_price == Decimal("3.49")
    assert cat.by_gtin("0" + entry.barcode) is entry  # GTIN-14 of the EAN-13
    assert cat.by_sku("sku-10005") is entry
    assert cat.home_sku("B-01-1") == "SKU-10005"
    assert cat.home_sku("Z-99-9") is None
    assert entry.reorder_point == 30


def test_upc_a_and_gtin14_forms_match(tmp_path: Path) -> None:
    cat = Catalog.from_csv(write(tmp_path, HEADER + "P1,036000291452,Tissues,2.00,A-01-1\n"))
    assert cat.by_gtin("00036000291452") is not None
    assert cat.entries[0].location == "A-01-1"


def test_extra_columns_ignored_and_location_optional(tmp_path: Path) -> None:
    text = "SKU,Barcode,Product_Description,Unit_Price,Colour\nP1,,Thing,1.5,red\n"
    cat = Catalog.from_csv(write(tmp_path, text))
    assert cat.by_sku("P1").location is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SKU,Barcode,Unit_Price\nP1,123,1\n", "missing column(s) Product_Description"),
        (HEADER + "P1,,Thing,abc,\n", "Unit_Price 'abc' is not a number"),
        (HEADER + "P1,,Thing,-1,\n", "non-negative"),
        (HEADER + ",,Thing,1,\n", "empty SKU"),
        (HEADER + "P1,,A,1,\nP1,,B,2,\n", "duplicate SKU P1"),
        (HEADER + "P1,4012345600019,A,1,\n", "wrong check digit"),
        (HEADER + "P1,,A,1,B,extra\n", "more fields than the header"),
        (HEADER, "no products"),
    ],
)
def test_malformed_catalog_is_refused_with_one_line(tmp_path: Path, text: str, fragment: str):
    with pytest.raises(CatalogError) as info:
        Catalog.from_csv(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        Catalog.from_csv(tmp_path / "nope.csv")


def test_import_stores_the_catalog_for_later_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert len(load_catalog(data)) == 0
    import_catalog(DEMO, data)
    assert len(load_catalog(data)) == 12
    with pytest.raises(CatalogError):
        import_catalog(write(tmp_path, "garbage"), data)
    assert len(load_catalog(data)) == 12  # a bad import never replaces a good catalog
