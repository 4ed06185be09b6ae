"""The PWA's barcode reader (pwa/js/barcodes.js: the vendored barcode-detector ponyfill on
ZXing-C++ WebAssembly, where the browser has no BarcodeDetector), run in Chromium: the pairing
QR on pictures (rotated, inverted, perspective), the label symbologies the gateway reads, and
its WebAssembly served by the gateway itself (no CDN)."""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
import pytest
import qrcode
import zxingcpp

from tests.pwa_support import BASE_FLAGS, CHROMIUM, FakeGateway, chromium_available

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium "
                                "(make system)")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    gw = FakeGateway()
    url = gw.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BASE_FLAGS)
            try:
                pg = browser.new_page()
                hosts: set[str] = set()
                pg.on("request", lambda r: hosts.add(urlparse(r.url).netloc))
                pg.goto(url + "manifest.webmanifest")  # same origin, without starting the app
                pg.evaluate("""import('/js/barcodes.js').then(async m => {
                    window.reader = await m.barcodeReader(m.LABEL_FORMATS); })""")
                pg.wait_for_function("window.reader !== undefined")
                pg.hosts = hosts
                yield pg
            finally:
                browser.close()
    finally:
        gw.stop()


def read(page: Any, gray: np.ndarray) -> list[dict[str, str]]:
    """What the app's reader finds on a picture: [{format, rawValue}]."""
    h, w = gray.shape
    rgba = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGBA)
    return page.evaluate(
        """async ([b64, w, h]) => {
            const bytes = Uint8ClampedArray.from(atob(b64), ch => ch.charCodeAt(0));
            const found = await window.reader.detect(new ImageData(bytes, w, h));
            return found.map(f => ({ format: f.format, rawValue: f.rawValue }));
        }""",
        [base64.b64encode(rgba.tobytes()).decode(), w, h])


def on_canvas(code: np.ndarray, *, angle: float = 0.0, tilt: float = 0.0,
              invert: bool = False, background: int = 60) -> np.ndarray:
    """A code in the middle of a 1280x720 picture, turned and tilted like a held phone."""
    if invert:
        code = 255 - code
    img = np.full((720, 1280), background, np.uint8)
    h, w = code.shape
    y0, x0 = (720 - h) // 2, (1280 - w) // 2
    img[y0:y0 + h, x0:x0 + w] = code
    src = np.float32([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
    d = tilt * w
    dst = np.float32([[x0 + d, y0], [x0 + w - d, y0 + d * 0.3], [x0 + w, y0 + h],
                      [x0, y0 + h - d * 0.2]])
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (1280, 720),
                              borderValue=background)
    img = cv2.warpAffine(img, cv2.getRotationMatrix2D((640, 360), angle, 1.0), (1280, 720),
                         borderValue=background)
    return cv2.GaussianBlur(img, (3, 3), 0)


def qr_code(text: str, box: int) -> np.ndarray:
    qr = qrcode.QRCode(border=2, box_size=box)
    qr.add_data(text)
    return np.array(qr.make_image().convert("L"))


@pytest.mark.parametrize(("box", "angle", "tilt", "invert"), [
    (8, 0, 0, False), (6, 8, 0.05, False), (5, -15, 0, True), (4, 3, 0.08, False),
    (10, 30, 0, True), (8, 0, 0.1, False),
])
def test_pairing_qr_on_pictures(page: Any, box: int, angle: float, tilt: float,
                                invert: bool) -> None:
    rng = random.Random(box * 1000 + angle)
    for _ in range(2):  # tokens like `device add` prints, reproducible per case
        token = "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=43))
        found = read(page, on_canvas(qr_code(token, box), angle=angle, tilt=tilt,
                                     invert=invert))
        assert [(f["format"], f["rawValue"]) for f in found] == [("qr_code", token)]


@pytest.mark.parametrize(("fmt", "name", "text"), [
    (zxingcpp.BarcodeFormat.Code128, "code_128", "A-02-3"),
    (zxingcpp.BarcodeFormat.Code39, "code_39", "B-14-2"),
    (zxingcpp.BarcodeFormat.DataMatrix, "data_matrix", "LOC C-07-1"),
    (zxingcpp.BarcodeFormat.EAN13, "ean_13", "4006381333931"),
    (zxingcpp.BarcodeFormat.QRCode, "qr_code", "A-11-4"),
])
def test_label_symbologies_the_gateway_reads(page: Any, fmt: Any, name: str,
                                             text: str) -> None:
    symbol = np.asarray(zxingcpp.create_barcode(text, fmt).to_image(scale=4, add_quiet_zones=True))
    found = read(page, on_canvas(symbol.astype(np.uint8), angle=4, background=200))
    assert [(f["format"], f["rawValue"]) for f in found] == [(name, text)]


def test_no_code_no_answer_and_nothing_from_another_host(page: Any) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8)
    assert read(page, noise) == []
    origin = {urlparse(page.url).netloc}
    assert page.hosts == origin  # the .wasm came from the gateway, not a CDN
    engine = page.evaluate("window.reader.engine")
    assert engine == "zxing-wasm"  # headless Chromium on Linux has no BarcodeDetector
