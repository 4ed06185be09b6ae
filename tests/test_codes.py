"""Stage 2 (codes): rendered symbols of every kind the shelves carry, merging, validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import zxingcpp

from gateway.gtin import gs1_date, gtin_check_digit, normalize_gtin
from gateway.pipeline.codes import _zbar, code_to_json, read_codes
from gateway.pipeline.types import Code

F = zxingcpp.BarcodeFormat


def symbol(content: str, fmt: zxingcpp.BarcodeFormat, scale: int = 3, **kw: object) -> np.ndarray:
    """A real symbol rendered by zxing-cpp, grayscale, with a white quiet zone."""
    img = np.asarray(zxingcpp.create_barcode(content, fmt, **kw).to_image(scale=scale))
    if img.shape[0] < img.shape[1] // 4:  # linear codes: give the bars some height
        img = cv2.resize(img, (img.shape[1], img.shape[1] // 3), interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(img, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=255)


def canvas(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A mid-grey textured background standing in for cartons and shelving."""
    rng = np.random.default_rng(seed)
    small = rng.normal(120, 30, (max(h // 16, 2), max(w // 16, 2))).clip(0, 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def paste(img: np.ndarray, sym: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    img[y : y + sym.shape[0], x : x + sym.shape[1]] = sym
    return x, y, x + sym.shape[1], y + sym.shape[0]


def only(codes: list[Code]) -> Code:
    assert len(codes) == 1, codes
    return codes[0]


def test_ean13() -> None:
    code = only(read_codes(symbol("4006381333931", F.EAN13)))
    assert (code.format, code.text, code.gtin) == ("EAN-13", "4006381333931", "04006381333931")
    assert code_to_json(code) == {
        "Format": "EAN-13",
        "Text": "4006381333931",
        "GTIN": "04006381333931",
    }


def test_upca_and_ean13_of_same_item_share_gtin() -> None:
    upca = only(read_codes(symbol("036000291452", F.UPCA)))
    assert (upca.format, upca.text) == ("UPC-A", "036000291452")
    ean = only(read_codes(symbol("0036000291452", F.EAN13)))
    assert ean.gtin == upca.gtin == normalize_gtin("036000291452") == "00036000291452"


def test_upce_and_ean8() -> None:
    upce = only(read_codes(symbol("04252614", F.UPCE)))
    assert (upce.format, upce.text, upce.gtin) == ("UPC-E", "04252614", "00042100005264")
    ean8 = only(read_codes(symbol("96385074", F.EAN8)))
    assert (ean8.format, ean8.gtin) == ("EAN-8", "00000096385074")


def test_code128_plain() -> None:
    code = only(read_codes(symbol("SKU-48213", F.Code128)))
    assert (code.format, code.text, code.gtin, code.ai) == ("Code128", "SKU-48213", None, {})
    assert code_to_json(code) == {"Format": "Code128", "Text": "SKU-48213"}


def _photographed(sym: np.ndarray, seed: int) -> np.ndarray:
    """A symbol as a phone sees it on a carton: on texture, turned a little in perspective,
    blurred, noisy and JPEG-compressed."""
    rng = np.random.default_rng(seed)
    h, w = sym.shape
    img = canvas(w + 160, h + 160, seed)
    paste(img, sym, 80, 80)
    H, W = img.shape
    d = rng.uniform(0.02, 0.06, 4) * W
    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    dst = np.float32([[d[0], 0], [W - d[1], d[2] * 0.3], [W, H], [d[3], H]])
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (W, H),
                              borderValue=120)
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


@pytest.mark.parametrize("content, fmt, name, text", [
    ("12345678", F.Code32, "Code32", "A123456788"),  # Italian pharmacode: A + 9 digits
    ("12345678", F.PZN, "PZN", "-12345678"),  # German pharmacy number (PZN8)
    ("Box 12-a/b", F.Code39Ext, "Code39Ext", "Box 12-a/b"),  # full ASCII: lower case
    ("BIN-A12", F.Code39, "Code39", "BIN-A12"),
])
def test_code39_variants_are_read_with_their_own_names(content: str, fmt: object, name: str,
                                                       text: str) -> None:
    """Issue 17: zxing-cpp 3 reports Code 39's variants under their own formats; they were
    dropped (an unknown format name) until mapped. Clean and photographed symbols."""
    sym = symbol(content, fmt)
    code = only(read_codes(sym))
    assert (code.format, code.text) == (name, text)
    for seed in range(3):
        assert [(c.format, c.text) for c in read_codes(_photographed(sym, seed))] == [
            (name, text)], seed


def test_gs1_128_hri_ais_and_gtin() -> None:
    hri = "(01)09501101530003(17)260131(10)AB12"
    code = only(read_codes(symbol(hri, F.Code128, gs1=True)))
    assert code.format == "GS1-128"
    assert code.text == hri
    assert code.ai == {"01": "09501101530003", "17": "260131", "10": "AB12"}
    assert code.gtin == "09501101530003"
    assert code_to_json(code) == {"Format": "GS1-128", "Text": hri, "GTIN": "09501101530003"}


def test_gs1_datamatrix_with_end_of_month_expiry() -> None:
    hri = "(01)09501101530003(17)260200(10)LOT-7(21)SN0042"
    code = only(read_codes(symbol(hri, F.DataMatrix, scale=6, gs1=True)))
    assert (code.format, code.text, code.gtin) == ("DataMatrix", hri, "09501101530003")
    assert code.ai["21"] == "SN0042" and code.ai["10"] == "LOT-7"
    assert gs1_date(code.ai["17"]).isoformat() == "2026-02-28"


def test_qr_and_plain_datamatrix() -> None:
    qr = only(read_codes(symbol("LOC A-12-3", F.QRCode, scale=6)))
    assert (qr.format, qr.text, qr.gtin) == ("QRCode", "LOC A-12-3", None)
    dm = only(read_codes(symbol("BIN B-07-1", F.DataMatrix, scale=6)))
    assert (dm.format, dm.text) == ("DataMatrix", "BIN B-07-1")


def test_itf14_carton_code() -> None:
    code = only(read_codes(symbol("15400141288763", F.ITF, scale=3)))
    assert (code.format, code.gtin) == ("ITF", "15400141288763")


def test_many_codes_boxes_and_identical_neighbours() -> None:
    img = canvas(1600, 900)
    placed = {
        "a": paste(img, symbol("4006381333931", F.EAN13), 40, 40),
        "b": paste(img, symbol("4006381333931", F.EAN13), 500, 40),  # same product, next carton
        "c": paste(img, symbol("SKU-48213", F.Code128), 40, 450),
        "d": paste(img, symbol("LOC A-12-3", F.QRCode, scale=6), 1100, 400),
        "e": paste(img, cv2.rotate(symbol("036000291452", F.UPCA), cv2.ROTATE_90_CLOCKWISE),
                   1000, 30),
    }  # fmt: skip
    codes = read_codes(img)
    assert sorted(c.text for c in codes) == sorted(
        ["4006381333931", "4006381333931", "SKU-48213", "LOC A-12-3", "036000291452"]
    )
    for code in codes:
        cx, cy = (code.box[0] + code.box[2]) / 2, (code.box[1] + code.box[3]) / 2
        hits = [k for k, (x0, y0, x1, y1) in placed.items() if x0 <= cx <= x1 and y0 <= cy <= y1]
        assert len(hits) == 1, (code, placed)
    eans = [c for c in codes if c.text == "4006381333931"]
    assert abs(eans[0].box[0] - eans[1].box[0]) > 300  # two places, two codes


def test_bgr_input_is_converted() -> None:
    sym = symbol("4006381333931", F.EAN13)
    bgr = cv2.cvtColor(sym, cv2.COLOR_GRAY2BGR)
    bgr[:, :, 0] = 255  # zbar on the raw array would see only this (blank) blue channel
    assert only(read_codes(bgr)).text == "4006381333931"


def test_no_false_positives_on_texture_and_text() -> None:
    assert read_codes(canvas(1200, 800, seed=5)) == []
    page = np.full((800, 1200), 255, np.uint8)
    rng = np.random.default_rng(7)
    for row in range(25):
        line = "".join(rng.choice(list("ABCDEFGH0123456789 -|/IIl1")) for _ in range(40))
        cv2.putText(page, line, (10, 30 + 30 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 0, 2)
    assert read_codes(page) == []
    stripes = np.tile(np.repeat(rng.integers(0, 2, 300) * 255, 3).astype(np.uint8), (300, 1))
    assert read_codes(stripes) == []


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        read_codes(np.zeros((10, 10), np.float32))
    assert read_codes(np.zeros((1, 1), np.uint8)) == []


def test_twelve_megapixel_shelf_all_labels_read() -> None:
    img = canvas(4000, 3000, seed=3)
    truth = []
    rng = np.random.default_rng(11)
    for i in range(20):
        x, y = 60 + (i % 5) * 780, 80 + (i // 5) * 720
        if i % 4 == 3:
            text = f"(01)0950110153000{3}(17)2612{10 + i}(10)L{i:03d}"
            sym = symbol(text, F.DataMatrix, scale=5, gs1=True)
        elif i % 2:
            text = f"SKU-{rng.integers(10000, 99999)}"
            sym = symbol(text, F.Code128, scale=3)
        else:
            body = "".join(str(d) for d in rng.integers(1, 10, 12))
            text = body + str(gtin_check_digit(body))
            sym = symbol(text, F.EAN13, scale=3)
        paste(img, sym, x, y)
        truth.append(text.lstrip("0") if text.isdigit() else text)
    found = [c.text.lstrip("0") if c.text.isdigit() else c.text for c in read_codes(img)]
    assert sorted(found) == sorted(truth)


def test_zbar_binding_reads_linear_codes_at_both_densities() -> None:
    """zbar is called through pyzbar's ctypes bindings (to set the scan density): it must still
    read, and report boxes in the image's pixels."""
    img = np.full((400, 900), 255, np.uint8)
    x0, y0, x1, y1 = paste(img, symbol("4006381333931", F.EAN13), 50, 60)
    for density in (1, 2):
        (code,) = _zbar(img, density=density)
        assert (code.engine, code.format, code.gtin) == ("zbar", "EAN-13", "04006381333931")
        assert x0 <= code.box[0] < code.box[2] <= x1 and y0 <= code.box[1] < code.box[3] <= y1
    assert _zbar(np.asarray(symbol("LOC A-12-3", F.QRCode, scale=6))) == []  # 2D: zxing's job


def test_concurrent_calls_agree_with_sequential() -> None:
    """The pipeline calls read_codes from several worker threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    low_contrast = (symbol("4006381333931", F.EAN13) // 4 + 96).astype(np.uint8)
    images = [
        symbol("SKU-48213", F.Code128),
        symbol("(01)09501101530003(17)260131", F.DataMatrix, scale=6, gs1=True),
        cv2.GaussianBlur(low_contrast, (0, 0), 1.5),
        canvas(640, 480, seed=9),
    ] * 3
    sequential = [read_codes(img) for img in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(read_codes, images))
    assert parallel == sequential
    assert [len(c) for c in sequential[:4]] == [1, 1, 1, 0]


def test_small_datamatrix_labels_are_read_from_enlarged_cut_outs() -> None:
    """A generated bay whose carton labels carry DataMatrix codes of ~2 px modules: the
    whole-photo pass misses nearly all, the enlarged cut-outs of symbol-like places read most,
    each once and with its GTIN, in photo pixels."""
    from gateway.pipeline import codes as codes_mod
    from gateway.training.scene_bays import render_planned_bay

    scene = render_planned_bay(9161).scene
    gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
    truth = [c for c in scene.codes if c.format == "DataMatrix"]
    assert len(truth) >= 30 and all(c.module_px < 2.5 for c in truth)
    whole = [c for c in codes_mod._zxing(gray) if c.format == "DataMatrix"]
    read = [c for c in codes_mod.read_codes(gray) if c.format == "DataMatrix"]
    assert len(whole) <= 5 and len(read) >= 12, (len(whole), len(read))
    for code in read:  # every read sits on a true symbol and carries its content
        cx, cy = (code.box[0] + code.box[2]) / 2, (code.box[1] + code.box[3]) / 2
        match = [t for t in truth if t.box[0] <= cx <= t.box[2] and t.box[1] <= cy <= t.box[3]]
        assert len(match) == 1 and code.gtin and code.text == match[0].text
    centres = {(round((c.box[0] + c.box[2]) / 20), round((c.box[1] + c.box[3]) / 20))
               for c in read}
    assert len(centres) == len(read)  # no symbol read twice
