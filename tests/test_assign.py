"""Naming each detected item: own label, pile, look, row, bin; which items are worth reading;
and reads too fragile to name an unknown product."""

from __future__ import annotations

import numpy as np

from gateway.catalog import Catalog
from gateway.pipeline.appearance import describe, distances, nearest_product
from gateway.pipeline.assign import name_items, orphan_reads, stacks
from gateway.pipeline.fuse import classify_codes
from gateway.pipeline.types import Code, Detection

LOCATION, SKU = r"[A-Z]-\d+-\d+", r"SKU-?[A-Z0-9]{1,12}"
BLUE, ORANGE = (200, 60, 20), (30, 120, 230)  # BGR faces of two products


def _det(x0: float, y0: float, w: float = 90.0, h: float = 90.0) -> Detection:
    return Detection((x0, y0, x0 + w, y0 + h), 0.9)


def _label_in(det: Detection, sku: str) -> tuple[tuple[float, float, float, float], str]:
    x0, y0, x1, y1 = det.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - 5, cy - 5, cx + 5, cy + 5), sku


def _paint(dets: list[Detection], colours: list[tuple[int, int, int]]) -> np.ndarray:
    image = np.full((400, 800, 3), 40, np.uint8)
    rng = np.random.default_rng(0)
    for det, colour in zip(dets, colours, strict=True):
        x0, y0, x1, y1 = (int(v) for v in det.box)
        shade = rng.uniform(0.85, 1.1)  # no two cases lit the same
        image[y0:y1, x0:x1] = np.clip(np.array(colour) * shade, 0, 255).astype(np.uint8)
        # a white label on the lower half, like a carton's
        image[y0 + (y1 - y0) // 2: y0 + 3 * (y1 - y0) // 4, x0 + 20: x1 - 20] = 245
    return image


def test_pile_names_the_cases_on_top_of_a_labelled_one() -> None:
    pile = [_det(0, 200), _det(0, 105), _det(0, 10)]  # bottom, middle, top
    other = [_det(300, 200), _det(300, 105)]
    dets = pile + other
    assert stacks(dets)[0] == stacks(dets)[1] == stacks(dets)[2] != stacks(dets)[3]
    labels = [_label_in(pile[0], "SKU-A"), _label_in(other[1], "SKU-B")]
    assert name_items(dets, labels, None, "SKU-BIN").skus == ["SKU-A"] * 3 + ["SKU-B"] * 2


def test_row_rule_stops_where_an_item_looks_like_another_product() -> None:
    row = [_det(x, 200) for x in (0, 100, 200, 300, 400)]
    colours = [BLUE, BLUE, BLUE, ORANGE, ORANGE]
    looks = describe(_paint(row, colours), [d.box for d in row])
    labels = [_label_in(row[0], "SKU-A")]
    # Without looks, the row names everything after its one label.
    assert name_items(row, labels, None, "SKU-BIN").skus == ["SKU-A"] * 5
    # With looks, blue items take the labelled blue product; orange ones, unlike it, are left
    # to the bin's SKU.
    assert name_items(row, labels, looks, "SKU-BIN").skus == ["SKU-A"] * 3 + ["SKU-BIN"] * 2


def test_unlabelled_faces_follow_their_row_unless_the_bin_product_looks_nearer() -> None:
    row = [_det(x, 200) for x in (0, 100, 200, 300)]
    shelf_above = [_det(400, 20), _det(500, 20)]
    dets = row + shelf_above
    image = _paint(dets, [BLUE] * 4 + [ORANGE] * 2)
    for d in row[2:]:  # blue cartons turned label side away: like no labelled facing
        x0, y0, x1, y1 = (int(v) for v in d.box)
        image[y0:y1, x0:x1] = BLUE
    looks = describe(image, [d.box for d in dets])
    # The bin's product (orange) is on the photo and looks even less like them: the row wins.
    labels = [_label_in(row[0], "SKU-A"), _label_in(shelf_above[0], "SKU-BIN")]
    assert name_items(dets, labels, looks, "SKU-BIN").skus == ["SKU-A"] * 4 + ["SKU-BIN"] * 2
    # The bin's product is nowhere labelled: it may be what they are, so the bin's SKU stands.
    labels = [_label_in(row[0], "SKU-A"), _label_in(shelf_above[0], "SKU-C")]
    assert name_items(dets, labels, looks, "SKU-BIN").skus == (
        ["SKU-A"] * 2 + ["SKU-BIN"] * 2 + ["SKU-C"] * 2)


def test_look_names_an_item_on_another_shelf() -> None:
    top = [_det(0, 10), _det(200, 10, w=60, h=60)]  # same product, smaller facing elsewhere
    bottom = [_det(400, 250), _det(500, 250)]
    dets = top + bottom
    looks = describe(_paint(dets, [BLUE, BLUE, ORANGE, ORANGE]), [d.box for d in dets])
    labels = [_label_in(top[0], "SKU-A"), _label_in(bottom[0], "SKU-B")]
    assert name_items(dets, labels, looks, "SKU-BIN").skus == ["SKU-A", "SKU-A", "SKU-B", "SKU-B"]


def test_nearest_product_needs_a_clear_winner() -> None:
    assert nearest_product({"A": 3.0, "B": 20.0}) == "A"
    assert nearest_product({"A": 8.0, "B": 9.0}) is None  # about as much like two
    assert nearest_product({"A": 40.0}) is None  # like nothing named
    assert nearest_product({}) is None


def test_distances_are_small_within_a_product() -> None:
    dets = [_det(0, 0), _det(100, 0), _det(200, 0)]
    looks = describe(_paint(dets, [BLUE, BLUE, ORANGE]), [d.box for d in dets])
    near_same, near_other = distances(looks, [0], [1, 2])[0]
    assert near_same < 12.0 < 25.0 < near_other  # MATCH_DISTANCE, UNLIKE_DISTANCE


def test_reads_go_to_unsure_items_one_per_pile_spread_out() -> None:
    left_pile = [_det(0, 200), _det(0, 105)]
    right_pile = [_det(600, 200), _det(600, 105)]
    middle = [_det(300, 200)]
    dets = left_pile + middle + right_pile
    colours = [BLUE, BLUE, ORANGE, ORANGE, ORANGE]
    looks = describe(_paint(dets, colours), [d.box for d in dets])
    labels = [_label_in(left_pile[0], "SKU-A")]
    naming = name_items(dets, labels, looks)
    picks = orphan_reads(dets, naming, max_reads=6, min_side=60)
    # The labelled blue pile is sure; the orange items are not: one read for the right pile,
    # one for the middle item, never two in one pile.
    assert sorted(picks) in ([2, 3], [2, 4])
    assert orphan_reads(dets, naming, max_reads=1, min_side=60) == [picks[0]]
    assert orphan_reads(dets, naming, max_reads=6, min_side=100) == []  # too small
    everything = [_label_in(d, "SKU-A" if i < 2 else "SKU-B") for i, d in enumerate(dets)]
    assert orphan_reads(dets, name_items(dets, everything, looks), max_reads=6, min_side=60) == []


def test_fragile_reads_of_unknown_gtins_are_dropped(tmp_path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("SKU,Barcode,Product_Description,Unit_Price\n"
                    "SKU-A,4012345600018,Tea,1.00\n")
    catalog = Catalog.from_csv(path)
    sliver_known = Code("EAN-13", "4012345600018", (0, 0, 100, 4), "zxing", "04012345600018")
    sliver_unknown = Code("EAN-13", "6012237600087", (0, 50, 100, 53), "zxing", "06012237600087")
    upce_unknown = Code("UPC-E", "10123454", (0, 100, 60, 140), "zxing", "00101234000054")
    full_unknown = Code("EAN-13", "5901234123457", (0, 200, 100, 240), "zxing", "05901234123457")
    zbar_unknown = Code("EAN-13", "4012345544114", (0, 300, 100, 340), "zbar", "04012345544114")
    zbar_known = Code("EAN-13", "4012345600018", (0, 400, 100, 440), "zbar", "04012345600018")
    assert sliver_unknown.easily_misread and upce_unknown.easily_misread
    assert zbar_unknown.easily_misread
    assert not full_unknown.easily_misread
    items, _ = classify_codes([sliver_known, sliver_unknown, upce_unknown, full_unknown,
                               zbar_unknown, zbar_known], catalog, LOCATION, SKU)
    # Known products are trusted however thin the read; an unknown GTIN only from a solid read.
    assert [ic.sku for ic in items] == ["SKU-A", "05901234123457", "SKU-A"]
    # Without a catalog nothing can confirm a read: every GTIN stays visible.
    items, _ = classify_codes([sliver_unknown], Catalog.empty(), LOCATION, SKU)
    assert [ic.sku for ic in items] == ["06012237600087"]

