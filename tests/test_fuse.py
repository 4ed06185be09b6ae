"""Fusion rules: where Location, SKU, quantity, condition and confidence come from."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gateway.catalog import Catalog
from gateway.config import Settings
from gateway.pipeline.fuse import Evidence, build_rows, classify_codes, gather_facts
from gateway.pipeline.ocr_regions import Region, choose_regions, label_box
from gateway.pipeline.types import Code, Detection, TextLine

DEMO = Path(__file__).resolve().parent.parent / "gateway" / "demo" / "catalog.csv"
CAT = Catalog.from_csv(DEMO)
S = Settings()
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WATER = CAT.by_sku("SKU-10005")  # home bin B-01-1, price 3.49
OIL = CAT.by_sku("SKU-10006")


def ean(entry, x: float) -> Code:
    return Code("EAN-13", entry.barcode, (x, 100, x + 100, 140), "zxing", gtin="0" + entry.barcode)


def rows_for(codes: list[Code], location: str | None = None, ocr=(), **detector):
    """The fuse stage as the pipeline runs it: classify codes, gather facts, build rows."""
    item_codes, location_codes = classify_codes(codes, CAT, S.location_pattern, S.sku_pattern)
    facts = gather_facts(item_codes, location_codes, list(ocr), CAT, session_location=location,
                         location_pattern=S.location_pattern, sku_pattern=S.sku_pattern)
    return build_rows(Evidence(item_codes=item_codes, **detector), facts, CAT, now=NOW)


def test_codes_only_counts_distinct_items_and_prices_them() -> None:
    codes = [ean(WATER, 0), ean(WATER, 200), ean(OIL, 400),
             Code("Code128", "B-01-1", (0, 500, 200, 540), "zbar")]
    rows, boxes = rows_for(codes, location="Z-09-9")
    by_sku = {r["SKU"]: r for r in rows}
    assert set(by_sku) == {"SKU-10005", "SKU-10006"}
    water = by_sku["SKU-10005"]
    assert water["Location"] == "B-01-1"  # the bin label beats the session's location
    assert water["Quantity_Counted"] == 2
    assert water["Unit_Price"] == "3.49" and water["Total_Value"] == "6.98"
    assert water["Condition"] == "Good"
    assert water["Last_Updated"] == "2026-11-22T10:00:00Z"
    assert 0 < water["Count_Confidence"] < 1  # without the detector, hidden items may exist
    assert len(boxes) == 3


def test_home_sku_with_no_items_is_out_of_stock() -> None:
    rows, _ = rows_for([ean(OIL, 0)], location="B-01-1")
    water = next(r for r in rows if r["SKU"] == "SKU-10005")
    assert water["Quantity_Counted"] == 0 and water["Condition"] == "Out of Stock"
    assert water["Location"] == "B-01-1"


def test_empty_photo_gives_one_honest_row() -> None:
    rows, boxes = rows_for([])
    assert len(rows) == 1 and rows[0]["Quantity_Counted"] == 0 and boxes == []
    assert rows[0]["Count_Confidence"] < 0.2


def test_gs1_expiry_in_the_past_marks_expired() -> None:
    code = Code("GS1-128", f"(01)0{WATER.barcode}(17)250131", (0, 0, 50, 20), "zxing",
                gtin="0" + WATER.barcode, ai={"01": "0" + WATER.barcode, "17": "250131"})
    rows, _ = rows_for([code])
    assert rows[0]["Expiration_Date"] == "2025-01-31"
    assert rows[0]["Condition"] == "Expired"


def test_ocr_location_and_label_expiry() -> None:
    img = np.zeros((400, 600, 3), np.uint8)
    label = Region("label", "SKU-10006", (100, 50, 300, 150), 1.0, img[50:150, 100:300])
    overview = Region("overview", None, (0, 0, 600, 400), 0.5, img)
    ocr = [
        (label, [TextLine("EXP2027-03-31", 0.97, (10, 10, 90, 20))]),
        (overview, [TextLine("C-02-1", 0.9, (10, 10, 60, 30))]),
    ]
    rows, _ = rows_for([ean(OIL, 120)], location="A-01-1", ocr=ocr)
    oil = next(r for r in rows if r["SKU"] == "SKU-10006")
    assert oil["Location"] == "C-02-1"  # OCR of the bin label beats the session's location
    assert oil["Expiration_Date"] == "2027-03-31" and oil["Condition"] == "Good"


def test_detector_counts_and_disagreement_lowers_confidence() -> None:
    dets = [Detection((i * 100.0, 0, i * 100.0 + 90, 200), 0.9) for i in range(5)]
    agree = dict(codes=[ean(WATER, 0)], detections=dets, item_skus=["SKU-10005"] * 5,
                 item_sources=["own"] + ["neighbour"] * 4,
                 count_confidence={"SKU-10005": 0.95})
    rows, boxes = rows_for(**agree, location="B-01-1")
    assert rows[0]["Quantity_Counted"] == 5 and len(boxes) == 5 and boxes[0][5] == "SKU-10005"
    missed = dict(codes=[ean(WATER, x) for x in (0, 150, 300)], detections=dets[:2],
                  item_skus=["SKU-10005"] * 2, item_sources=["own"] * 2,
                  count_confidence={"SKU-10005": 0.95})
    rows2, boxes2 = rows_for(**missed, location="B-01-1")
    # Codes outside every detected box are items the detector missed: counted and drawn.
    assert rows2[0]["Quantity_Counted"] == 4 and len(boxes2) == 4
    assert rows2[0]["Count_Confidence"] < rows[0]["Count_Confidence"] * 0.8


def test_unknown_gtin_kept_not_dropped() -> None:
    code = Code("EAN-13", "4006381333931", (0, 0, 10, 10), "zxing", gtin="04006381333931")
    rows, _ = rows_for([code])
    assert rows[0]["SKU"] == "04006381333931" and rows[0]["Quantity_Counted"] == 1
    assert rows[0]["Unit_Price"] == "0.00"


def test_label_regions_a_few_per_sku_and_inside_photo() -> None:
    img = np.zeros((1000, 1000, 3), np.uint8)
    codes = [((x, 500.0, x + 100.0, 540.0), "SKU-1") for x in (0, 200, 400, 600)]
    regions = choose_regions(img, codes + [((900.0, 10.0, 990.0, 40.0), "SKU-2")], False)
    assert [r.sku for r in regions].count("SKU-1") == 2
    assert all(0 <= r.box[0] <= r.box[2] <= 1000 and 0 <= r.box[1] <= r.box[3] <= 1000
               for r in regions)
    x0, y0, x1, y1 = label_box((100, 100, 200, 140), 1000, 1000)
    assert x0 < 100 and y0 < 100 and x1 > 200 and y1 > 140
    assert choose_regions(img, [], True)[0].purpose == "overview"


def test_detected_items_are_cropped_whole_for_ocr() -> None:
    img = np.zeros((1000, 1000, 3), np.uint8)
    regions = choose_regions(img, [], False, items=[(100.0, 200.0, 400.0, 900.0)])
    assert [r.purpose for r in regions] == ["item"]
    assert regions[0].box == (100.0, 200.0, 400.0, 900.0)
    assert max(regions[0].image.shape[:2]) <= 640


def test_small_items_are_enlarged_for_ocr_and_text_maps_back() -> None:
    img = np.zeros((1000, 1000, 3), np.uint8)
    small, bottle, big = (100.0, 200.0, 200.0, 280.0), (500, 500, 540, 700), (0, 0, 320, 240)
    a, b, c = choose_regions(img, [], False, items=[small, bottle, big])
    assert a.scale == 2.0 and a.image.shape[:2] == (160, 200)
    assert b.scale == 2.0  # a narrow item: enlarged at most twice, not to the full 200 px
    assert c.scale == 1.0 and c.image.shape[:2] == (240, 320)  # large enough as it is
    # A text box in the enlarged crop lands back on the photo where the print is.
    assert a.to_photo((20.0, 40.0, 120.0, 80.0)) == (110.0, 220.0, 160.0, 240.0)


def test_detector_finding_nothing_does_not_empty_a_labelled_bin() -> None:
    # A close-up of one case too big for the detector: its label text is all there is.
    img = np.zeros((400, 600, 3), np.uint8)
    overview = Region("overview", None, (0, 0, 600, 400), 1.0, img)
    ocr = [(overview, [TextLine("SKU-10005", 0.98, (300, 150, 500, 190))])]
    nothing = dict(detections=[], item_skus=[], item_sources=[], count_confidence={})
    rows, boxes = rows_for([], location="B-01-1", ocr=ocr, **nothing)
    water = next(r for r in rows if r["SKU"] == "SKU-10005")
    assert water["Quantity_Counted"] == 1 and water["Condition"] == "Good" and len(boxes) == 1
    # With no code and no text either, the bin is reported empty, as before.
    rows, _ = rows_for([], location="B-01-1", **nothing)
    assert rows[0]["Quantity_Counted"] == 0 and rows[0]["Condition"] == "Out of Stock"
