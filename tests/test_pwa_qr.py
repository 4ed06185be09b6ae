"""The PWA's own QR reader (pwa/js/qr.js), run in Chromium on codes made by the `qrcode` package
(the one `shelfcount device add` uses): every version it supports, every error-correction level,
with damaged modules, and on pictures (rotated, inverted, perspective)."""

from __future__ import annotations

import base64
import random
import secrets
import string
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import qrcode
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

from tests.pwa_support import BASE_FLAGS, CHROMIUM, FakeGateway, chromium_available

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium "
                                "(make system)")
sync_api = pytest.importorskip("playwright.sync_api")

LEVELS = (ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q, ERROR_CORRECT_H)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    gw = FakeGateway()
    url = gw.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BASE_FLAGS)
            try:
                pg = browser.new_page()
                pg.goto(url + "manifest.webmanifest")  # same origin, without starting the app
                pg.evaluate("import('/js/qr.js').then(m => { window.qr = m; })")
                yield pg
            finally:
                browser.close()
    finally:
        gw.stop()


def matrix(text: str, version: int | None, level: int) -> list[list[int]]:
    qr = qrcode.QRCode(version=version, error_correction=level, border=0)
    qr.add_data(text)
    qr.make(fit=version is None)
    return [[int(v) for v in row] for row in qr.get_matrix()]


def decode_matrix(page: Any, m: list[list[int]]) -> str | None:
    return page.evaluate("m => window.qr.decodeMatrix((r, c) => m[r][c], m.length)", m)


@pytest.mark.parametrize("version", range(1, 11))
def test_every_version_and_level_with_damage(page: Any, version: int) -> None:
    rng = np.random.default_rng(version)
    for level in LEVELS:
        m = matrix("pair", version, level)
        assert decode_matrix(page, m) == "pair"
        dim = len(m)
        for _ in range(3):  # a few wrong modules in the data area: Reed-Solomon repairs them
            r, c = (int(v) for v in rng.integers(9, dim - 9, 2))
            m[r][c] ^= 1
        assert decode_matrix(page, m) == "pair"


def test_segments_and_tokens(page: Any) -> None:
    for text in ("HELLO WORLD 42", "0123456789012", secrets.token_urlsafe(32),
                 "https://gateway.local:8443/#token=" + secrets.token_urlsafe(32), "Zählung ✓"):
        assert decode_matrix(page, matrix(text, None, ERROR_CORRECT_M)) == text


def picture(text: str, *, box: int, angle: float, tilt: float, invert: bool) -> np.ndarray:
    qr = qrcode.QRCode(border=2, box_size=box)
    qr.add_data(text)
    code = np.array(qr.make_image().convert("L"))
    if invert:
        code = 255 - code
    img = np.full((720, 1280), 60, np.uint8)
    h, w = code.shape
    y0, x0 = (720 - h) // 2, (1280 - w) // 2
    img[y0:y0 + h, x0:x0 + w] = code
    src = np.float32([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
    d = tilt * w
    dst = np.float32([[x0 + d, y0], [x0 + w - d, y0 + d * 0.3], [x0 + w, y0 + h],
                      [x0, y0 + h - d * 0.2]])
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (1280, 720),
                              borderValue=60)
    img = cv2.warpAffine(img, cv2.getRotationMatrix2D((640, 360), angle, 1.0), (1280, 720),
                         borderValue=60)
    return cv2.GaussianBlur(img, (3, 3), 0)


@pytest.mark.parametrize(("box", "angle", "tilt", "invert"), [
    (8, 0, 0, False), (6, 8, 0.05, False), (5, -15, 0, True), (4, 3, 0.08, False),
    (10, 30, 0, True), (8, 0, 0.1, False),
])
def test_pictures(page: Any, box: int, angle: float, tilt: float, invert: bool) -> None:
    rng = random.Random(box * 1000 + angle)
    for _ in range(2):  # tokens like `device add` prints, reproducible per case
        token = "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=43))
        gray = picture(token, box=box, angle=angle, tilt=tilt, invert=invert)
        rgba = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGBA)
        found = page.evaluate(
            """([b64, w, h]) => {
                const bytes = Uint8ClampedArray.from(atob(b64), ch => ch.charCodeAt(0));
                return window.qr.decodeQr({ data: bytes, width: w, height: h });
            }""",
            [base64.b64encode(rgba.tobytes()).decode(), 1280, 720])
        assert found == token


def test_no_code_no_answer(page: Any) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (240, 320, 4), dtype=np.uint8)
    assert page.evaluate(
        """([b64, w, h]) => window.qr.decodeQr({
            data: Uint8ClampedArray.from(atob(b64), ch => ch.charCodeAt(0)),
            width: w, height: h })""",
        [base64.b64encode(noise.tobytes()).decode(), 320, 240]) is None
