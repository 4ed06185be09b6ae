"""PWA in a real browser (Chromium + Playwright, Pixel 7 emulation, fake rear camera) against
``FakeGateway``, a test double of the gateway's WebSocket protocol.

These are UI-level tests: installability, layout at 360 px, the review flow, and the offline
outbox surviving a reload. The same flows through the real gateway and Triton are in
tests/test_pwa_e2e.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp

from tests.pwa_support import (
    FAKE_TOKEN,
    FakeGateway,
    browser_context,
    chromium_available,
    confirm_bay,
    page_errors,
    qr_picture,
    shot,
    synthetic_shelf,
    write_y4m,
)

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium "
                                "(make system)")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("cam") / "shelf.y4m", synthetic_shelf(1280, 720))


@pytest.fixture
def gateway() -> Iterator[tuple[FakeGateway, str]]:
    gw = FakeGateway()
    url = gw.start()
    try:
        yield gw, url
    finally:
        gw.stop()


def pair(page: Any, url: str, token: str = FAKE_TOKEN) -> None:
    page.goto(url)
    page.wait_for_selector("#screen-pair:not([hidden])")
    page.fill("#pair-token", token)
    page.fill("#pair-device", "walker-test")
    page.click("#pair-form button[type=submit]")


def pair_at(page: Any, url: str, location: str) -> None:
    """Pair, then type the location in the picker that opens."""
    pair(page, url)
    page.wait_for_selector("#locations[open]")
    page.fill("#loc-input", location)
    page.click("#loc-set")


def wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s).textContent === t",
                           arg=[selector, text], timeout=10000)


def no_horizontal_scroll(page: Any) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_installable_with_maskable_icons(playwright: Any, camera: Path, gateway: Any,
                                         tmp_path: Path) -> None:
    gw, url = gateway
    with browser_context(playwright, camera, profile=tmp_path / "profile") as ctx:
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        errors = page_errors(page)
        page.goto(url)
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
        cdp = ctx.new_cdp_session(page)
        result = cdp.send("Page.getInstallabilityErrors")
        assert result["installabilityErrors"] == []
        manifest = page.evaluate("fetch('manifest.webmanifest').then(r => r.json())")
        purposes = {(i["sizes"], i["purpose"]) for i in manifest["icons"]}
        assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= purposes
        assert manifest["display"] == "standalone" and manifest["orientation"] == "portrait"
        # The app shell is in the service worker's cache: everything the page needs offline.
        cached = page.evaluate("""async () => {
            const c = await caches.open((await caches.keys())[0]);
            return (await c.keys()).map(r => new URL(r.url).pathname);
        }""")
        for path in ("/", "/js/app.js", "/js/store.js", "/styles.css", "/manifest.webmanifest"):
            assert path in cached
        shot(page, "pwa-pair")
        assert errors == []


def test_screens_fit_360px(playwright: Any, camera: Path, gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera, viewport={"width": 360, "height": 740}) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair(page, url)
        page.wait_for_selector("#locations[open]")
        assert no_horizontal_scroll(page)
        shot(page, "pwa-360-location")
        page.fill("#loc-input", "b-12-3")
        page.click("#loc-set")
        wait_text(page, "#loc-value", "B-12-3")
        page.wait_for_function("window.__sc.stats.previews >= 2", timeout=15000)
        assert no_horizontal_scroll(page)
        shot(page, "pwa-360-count")
        page.click("#shutter")
        page.wait_for_selector(".line")
        assert no_horizontal_scroll(page)
        shot(page, "pwa-360-result")
        page.click(".line >> nth=0")
        page.wait_for_selector("#edit[open]")
        assert no_horizontal_scroll(page)
        shot(page, "pwa-360-edit")
        page.click("#edit button[value=cancel]")
        page.click("#next-photo")
        page.click("#session-btn")
        page.wait_for_selector("#screen-session:not([hidden])")
        assert no_horizontal_scroll(page)
        shot(page, "pwa-360-session")
        # Every button is a comfortable touch target (>= 44 CSS px both ways).
        small = page.evaluate("""() => [...document.querySelectorAll('button')]
            .filter(b => b.offsetParent !== null)
            .map(b => [b.id || b.textContent.trim(), b.getBoundingClientRect()])
            .filter(([, r]) => r.width < 44 || r.height < 44).map(([n]) => n)""")
        assert small == []
        assert errors == []


def test_review_flow_sends_correction_and_confirm(playwright: Any, camera: Path,
                                                   gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair(page, url)
        page.wait_for_selector("#locations[open]")
        page.click("#scan-label")  # the gateway (double) reads A-01-1 off the frame
        page.wait_for_selector("#locations", state="hidden")
        wait_text(page, "#loc-value", "A-01-1")
        page.wait_for_function("window.__sc.stats.previews >= 2", timeout=15000)
        # Running counts over the video, honest about guesses (issue 12, finding 5): only the
        # two items whose own code names them carry a SKU, the bin-guessed three are "item".
        page.wait_for_selector("#live .chip:text-is('item: 3')")
        chips = page.locator("#live .chip").all_text_contents()
        assert chips == ["5 items", "SKU-10001: 1", "SKU-10002: 1", "item: 3"], chips
        fit = page.evaluate("getComputedStyle(document.getElementById('video')).objectFit")
        assert fit == "contain"  # the whole counted frame is shown, not a crop
        page.click("#shutter")
        page.wait_for_selector(".line")
        assert page.locator(".line.low").count() == 1  # 0.41 confidence is highlighted
        # The shelf audit: a legend of what was found and one line per finding; the gap is
        # shaded on the photo in its legend colour.
        page.wait_for_selector("#findings:not([hidden])")
        assert page.locator("#finding-legend li").all_text_contents() == [
            "Empty gap: 1", "Misplaced: 1", "Unplanned SKU: 1"]
        page.click("#findings summary")  # folded: the lines keep the room
        assert "SKU-10002 stands where SKU-10001 should" in \
            page.locator("#finding-list").inner_text()
        page.click("#findings summary")
        page.wait_for_function("""() => {
          const c = document.getElementById('photo-overlay');
          const r = c.getBoundingClientRect(), k = c.width / r.width;
          const img = document.getElementById('photo');
          const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
          const ox = (r.width - img.naturalWidth * s) / 2;
          const oy = (r.height - img.naturalHeight * s) / 2;
          const x = ox + img.naturalWidth * 0.78 * s, y = oy + img.naturalHeight * 0.33 * s;
          const ctx = c.getContext('2d');
          const p = ctx.getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data;
          return p[3] > 0 && p[0] > p[1] && p[0] > p[2];
        }""", timeout=5000)
        page.click(".line[data-sku='SKU-10001']")
        for key in ("1", "2"):
            page.click(f"#keypad button:text-is('{key}')")
        page.click("#minus")
        page.click("#damaged")
        page.click("#edit-save")
        page.wait_for_function("document.querySelector(\".line[data-sku='SKU-10001'] .q\")"
                               ".textContent === '11'")
        confirm_bay(page)
        photos = gw.full_photos()
        assert len(photos) == 1 and photos[0]["location"] == "A-01-1"
        assert [(c["sku"], c["quantity"], c.get("condition")) for c in gw.corrections] == [
            ("SKU-10001", 11, "Damaged")]
        assert gw.confirmed == [photos[0]["id"]]
        assert errors == []


def test_offline_queue_survives_reload_and_flushes_once(playwright: Any, camera: Path,
                                                         gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        pair_at(page, url, "A-01-1")
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
        page.click("#shutter")
        page.wait_for_selector(".line")
        first = gw.full_photos()[0]["id"]

        ctx.set_offline(True)
        wait_text(page, "#net", "offline")
        page.click("#next-photo")
        for _ in range(2):
            page.click("#shutter")
            page.wait_for_selector("#result-status:has-text('Saved on this phone')")
            page.click("#next-photo")
        page.click("#session-btn")
        page.click("#bays button:has-text('5 items')")  # the photo counted online
        page.click(".line[data-sku='SKU-10002']")
        page.click("#plus")
        page.click("#edit-save")
        wait_text(page, "#pending", "3 pending")

        page.reload()  # from the service worker's cache: the network is off
        wait_text(page, "#pending", "3 pending")
        page.click("#pending")
        # The session view fills its queue list from IndexedDB after it opens: wait for it.
        page.wait_for_function(
            "document.querySelectorAll('#queued li.wait').length === 3", timeout=5000)
        shot(page, "pwa-offline-session")
        assert len(gw.full_photos()) == 1 and gw.corrections == []

        ctx.set_offline(False)
        page.wait_for_function("document.getElementById('pending').hidden", timeout=15000)
        shot(page, "pwa-online-again")
    photos = gw.full_photos()
    assert len(photos) == 3 and len({p["id"] for p in photos}) == 3
    assert photos[0]["id"] == first
    assert len(gw.counts) == 3
    assert [(c["id"], c["sku"], c["quantity"]) for c in gw.corrections] == [
        (first, "SKU-10002", 2)]


def tap_picture(page: Any, x: float, y: float) -> None:
    """Tap the result photo at a point in pixels of the counted picture."""
    at = page.evaluate("([x, y]) => window.__sc.pictureToClient(x, y)", [x, y])
    page.mouse.click(at["x"], at["y"])


def drag_picture(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at one point of the counted picture, move in steps, let go at another."""
    a = page.evaluate("([x, y]) => window.__sc.pictureToClient(x, y)", list(start))
    b = page.evaluate("([x, y]) => window.__sc.pictureToClient(x, y)", list(end))
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(b["x"], b["y"], steps=6)
    page.mouse.up()


def test_fix_boxes_offline_survives_reload_and_reaches_the_gateway_once(
        playwright: Any, camera: Path, gateway: Any) -> None:
    """Issue 15: take a box out, add one, undo, drag a corner (undo, drag again), name a box's
    product by a long press, save
    while offline, reload, back online: the complete set reaches the gateway once and the
    lines show the new quantities."""
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, url, "A-01-1")
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
        page.click("#shutter")
        page.wait_for_selector(".line")
        result = next(iter(gw.counts.values()))["result"]
        w, h = result["width"], result["height"]
        boxes = result["boxes"]  # four SKU-10001 then one SKU-10002
        # SKU-10002 at 0.41, below SHELFCOUNT_REVIEW_BELOW's default 0.6: asked to check.
        page.wait_for_selector("#check-note:has-text('not sure of SKU-10002')")
        page.click("#fix-boxes")
        page.wait_for_selector("#box-tools:not([hidden])")  # edit mode on before any tap
        wait_text(page, ".line[data-sku='SKU-10001'] .q", "4")
        first = boxes[0]
        tap_picture(page, (first[0] + first[2]) / 2, (first[1] + first[3]) / 2)  # out
        wait_text(page, ".line[data-sku='SKU-10001'] .q", "3")
        tap_picture(page, w * 0.9, h * 0.3)  # an item with no box, right of the SKU-10002 one
        wait_text(page, ".line[data-sku='SKU-10002'] .q", "2")
        tap_picture(page, w * 0.5, h * 0.8)  # a mistake ...
        page.click("#boxes-undo")  # ... taken back
        page.wait_for_selector("#box-summary:has-text('5 items')")
        # The third box's bottom-right corner dragged 12 px right and 9 px down: resized, no
        # box added or taken out by the press; Undo puts it back, the second drag stays.
        third = boxes[2]
        moved, original = [third[2] + 12, third[3] + 9], [third[2], third[3]]
        has_corner = ("([x, y]) => window.__sc.ui.boxEdit.boxes.some("
                      "b => Math.abs(b[2] - x) < 1.5 && Math.abs(b[3] - y) < 1.5)")
        drag_picture(page, (third[2], third[3]), tuple(moved))
        page.wait_for_function(has_corner, arg=moved, timeout=5000)
        page.click("#boxes-undo")
        page.wait_for_function(has_corner, arg=original, timeout=5000)
        drag_picture(page, (third[2], third[3]), tuple(moved))
        page.wait_for_function(has_corner, arg=moved, timeout=5000)
        page.wait_for_selector("#box-summary:has-text('5 items')")
        # A long press names a box's product: the second SKU-10001 box is SKU-10002 too.
        second = boxes[1]
        at = page.evaluate("([x, y]) => window.__sc.pictureToClient(x, y)",
                           [(second[0] + second[2]) / 2, (second[1] + second[3]) / 2])
        page.mouse.move(at["x"], at["y"])
        page.mouse.down()
        page.wait_for_timeout(900)
        page.mouse.up()
        page.wait_for_selector("#box-sku[open]", timeout=5000)
        page.fill("#box-sku-input", "SKU-10002")
        page.click("#box-sku-save")
        wait_text(page, ".line[data-sku='SKU-10002'] .q", "3")
        wait_text(page, ".line[data-sku='SKU-10001'] .q", "2")
        ctx.set_offline(True)
        wait_text(page, "#net", "offline")
        page.click("#boxes-save")
        wait_text(page, "#pending", "1 pending")
        page.wait_for_selector("#check-note", state="hidden")  # checked: no longer asked
        page.reload()
        wait_text(page, "#pending", "1 pending")
        assert gw.box_fixes == []
        ctx.set_offline(False)
        page.wait_for_function("document.getElementById('pending').hidden", timeout=15000)
        page.wait_for_function("""async () => {
            const [p] = await window.__sc.store.allPhotos();
            return p && !p.boxEdit && p.result.rows.map(r => r.Quantity_Counted).join() === "2,3";
        }""", timeout=10000)
    (sent,) = gw.box_fixes
    assert [b[4] for b in sent["boxes"]].count("SKU-10001") == 2
    assert [b[4] for b in sent["boxes"]].count("SKU-10002") == 3
    assert all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for b in sent["boxes"])
    assert any(abs(b[0] - third[0]) < 0.2 and abs(b[1] - third[1]) < 0.2
               and abs(b[2] - third[2] - 12) < 1.5 and abs(b[3] - third[3] - 9) < 1.5
               for b in sent["boxes"]), sent["boxes"]
    # Chromium's offline emulation cuts the open socket mid-frame and logs it; nothing else.
    assert [e for e in errors if "Invalid frame header" not in e] == []


def product_code(ean: str) -> np.ndarray:
    """An EAN-13 on a carton side, as the camera sees it."""
    symbol = np.asarray(zxingcpp.create_barcode(ean, zxingcpp.BarcodeFormat.EAN13)
                        .to_image(scale=4, add_quiet_zones=True)).astype(np.uint8)
    img = np.full((720, 1280), 150, np.uint8)
    h, w = symbol.shape
    img[200:200 + h, 400:400 + w] = symbol
    return cv2.cvtColor(cv2.GaussianBlur(img, (3, 3), 0), cv2.COLOR_GRAY2BGR)


def test_change_a_line_s_product_by_scanning_its_code(playwright: Any, gateway: Any,
                                                      tmp_path: Path) -> None:
    """Issue 12: the correction sheet's "Scan code" reads the product's barcode on the phone
    and picks that catalog product (SKU-10002, EAN 4012345600025 in the test catalog)."""
    gw, url = gateway
    cam = write_y4m(tmp_path / "ean.y4m", product_code("4012345600025"))
    with browser_context(playwright, cam) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, url, "A-01-1")
        page.click("#shutter")
        page.wait_for_selector(".line")
        page.click(".line[data-sku='SKU-10001']")
        page.click("#edit-scan")
        page.wait_for_function(
            "document.getElementById('edit-new-sku').value === 'SKU-10002'", timeout=15000)
        assert "Stretch film roll" in page.text_content("#edit-error")
        page.click("#edit-save")
        deadline = time.monotonic() + 15  # queued, then sent: wait for the gateway to have it
        while not gw.corrections and time.monotonic() < deadline:
            page.wait_for_timeout(100)
    assert [(c["sku"], c.get("new_sku")) for c in gw.corrections] == [("SKU-10001", "SKU-10002")]
    assert errors == []


def test_refused_token_stays_on_pairing(playwright: Any, camera: Path, gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        pair(page, url, token="not-a-token")
        page.wait_for_selector("#pair-error:has-text('unauthorized')")
        assert page.is_visible("#screen-pair")
        shot(page, "pwa-pair-refused")


def test_pairing_link_from_qr_pairs_and_hides_token(playwright: Any, camera: Path,
                                                     gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        page.goto(f"{url}#token={FAKE_TOKEN}")  # what a phone's camera app opens from the QR
        page.wait_for_selector("#locations[open]")
        assert "token" not in page.url  # not left in the history / address bar
        wait_text(page, "#net", "online")
        page.reload()  # paired for good: straight to counting
        page.wait_for_selector("#screen-count:not([hidden])")
        wait_text(page, "#net", "online")  # the reloaded page's own hello, not the first one

        def hellos() -> list[dict[str, Any]]:
            return [m for m in gw.messages if m.get("type") == "hello"]

        for _ in range(50):
            if len(hellos()) >= 2:
                break
            page.wait_for_timeout(100)
        hello = hellos()
        assert len(hello) >= 2 and hello[0]["session"] is None and hello[-1]["session"] == "S1"


def test_tab_killed_before_ack_resends_same_id(playwright: Any, camera: Path,
                                               gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        pair_at(page, url, "A-01-1")
        gw.answer_photos.clear()  # the gateway stores the photo, the answer never arrives
        page.click("#shutter")
        deadline = time.monotonic() + 10
        while not gw.full_photos():
            assert time.monotonic() < deadline, "the photo never reached the gateway"
            time.sleep(0.1)
        page.close()  # the tab dies between "stored on the gateway" and the ack
        gw.answer_photos.set()
        page = ctx.new_page()
        page.goto(url)
        page.click("#session-btn")
        page.wait_for_selector("#bays button:has-text('to confirm')", timeout=15000)
        photos = gw.full_photos()
    assert len(photos) == 2 and photos[0]["id"] == photos[1]["id"]  # sent again, same id
    assert len(gw.counts) == 1  # counted once


def test_triton_outage_shows_waiting_then_result(playwright: Any, camera: Path,
                                                 gateway: Any) -> None:
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, url, "A-01-1")
        gw.outage = True
        page.click("#shutter")
        page.wait_for_selector("#result-status:has-text('counted when Triton is back')")
        assert "Failed" not in page.text_content("#result-status")
        assert page.locator(".line").count() == 0
        shot(page, "pwa-outage-waiting")
        gw.end_outage()
        page.wait_for_selector(".line")
        assert page.is_enabled("#confirm")
        assert errors == []


def test_pairing_by_scanning_the_qr_with_the_camera(playwright: Any, gateway: Any,
                                                    tmp_path: Path) -> None:
    gw, url = gateway
    qr_cam = write_y4m(tmp_path / "qr.y4m", qr_picture(FAKE_TOKEN))
    with browser_context(playwright, qr_cam) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(url)
        # Headless Chromium on Linux has no BarcodeDetector: the vendored ponyfill reads it.
        assert page.evaluate("typeof BarcodeDetector") == "undefined"
        page.click("#pair-scan")
        page.wait_for_selector("#locations[open]", timeout=20000)
        assert page.input_value("#pair-token") == FAKE_TOKEN
        assert page.evaluate("window.__sc.stats.barcodeEngine") == "zxing-wasm"
        wait_text(page, "#net", "online")
        assert errors == []


def bin_label(location: str) -> np.ndarray:
    """A bin label (Code 128 of the location above its text) on a grey shelf edge."""
    symbol = np.asarray(zxingcpp.create_barcode(location, zxingcpp.BarcodeFormat.Code128)
                        .to_image(scale=4, add_quiet_zones=True)).astype(np.uint8)
    img = np.full((720, 1280), 110, np.uint8)
    h, w = symbol.shape
    y0, x0 = 260, (1280 - w) // 2
    img[y0 - 20:y0 + h + 70, x0 - 20:x0 + w + 20] = 255
    img[y0:y0 + h, x0:x0 + w] = symbol
    cv2.putText(img, location, (x0, y0 + h + 50), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 0, 3)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def test_scan_bin_label_reads_its_barcode_on_the_phone(playwright: Any, gateway: Any,
                                                       tmp_path: Path) -> None:
    """The label's barcode is read by the phone (js/barcodes.js) before any frame goes to the
    gateway (whose test double would answer A-01-1): no round trip, no network needed."""
    gw, url = gateway
    label_cam = write_y4m(tmp_path / "label.y4m", bin_label("B-07-2"))
    with browser_context(playwright, label_cam) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair(page, url)
        page.wait_for_selector("#locations[open]")
        page.click("#scan-label")
        wait_text(page, "#loc-value", "B-07-2")
        assert page.evaluate("window.__sc.stats.labelVia") == "phone"
        assert not [m for m in gw.messages if m.get("type") == "photo" and
                    not m.get("preview")]
        assert errors == []


def test_a_bin_on_the_recount_list_is_not_confirmed_in_one_tap(playwright: Any, camera: Path,
                                                               gateway: Any) -> None:
    """Issue 16: a shrinkage alert puts the bin on today's list as a recount; confirming its
    bay asks for a second look, saying why, like a doubtful count does."""
    gw, url = gateway
    gw.tasks = [{"location": "A-01-1", "sku": "SKU-10001", "abc": "A", "recount": True,
                 "reason": "recount: the last count is far from what stock moves explain",
                 "last_count": "2026-11-30", "days_since": 4, "expected": 12}]
    try:
        with browser_context(playwright, camera) as ctx:
            page = ctx.new_page()
            errors = page_errors(page)
            pair_at(page, url, "A-01-1")
            page.click("#shutter")
            page.wait_for_selector(".line")
            page.click("#confirm")
            page.wait_for_selector("#confirm-why:not([hidden])")
            why = page.text_content("#confirm-why")
            assert "a recount was asked for A-01-1 (SKU-10001" in why
            assert gw.confirmed == []
            assert errors == []
    finally:
        gw.tasks = []


def test_confirm_asks_twice_for_a_doubtful_bay_and_can_be_undone(playwright: Any, camera: Path,
                                                                gateway: Any) -> None:
    """Issue 12, finding 4: a one-tap confirm with no guard and no undo."""
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, url, "A-01-1")
        page.click("#shutter")
        page.wait_for_selector(".line")
        page.click("#confirm")  # SKU-10002 at 0.41 confidence: asked, not confirmed
        page.wait_for_selector("#confirm-why:not([hidden])")
        assert "low confidence on SKU-10002" in page.text_content("#confirm-why")
        assert page.text_content("#confirm") == "Confirm anyway"
        shot(page, "pwa-confirm-guard")
        page.click("#confirm")
        page.wait_for_selector("#undo-confirm:not([hidden])")
        page.click("#undo-confirm")
        page.wait_for_selector("#toast:has-text('Confirmation undone')")
        page.wait_for_timeout(11000)  # longer than the hold: nothing reached the gateway
        assert gw.confirmed == [] and page.is_enabled("#confirm")
        confirm_bay(page)
        assert len(gw.confirmed) == 1
        assert errors == []


def test_session_view_bays_left_currency_new_session_and_unpair_ask_first(
        playwright: Any, camera: Path, gateway: Any) -> None:
    """Issue 12, finding 7: "New session" kept the old photos, no bays left, value without
    currency, Unpair was one tap."""
    gw, url = gateway
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, url, "A-01-1")
        page.click("#shutter")
        page.wait_for_selector(".line")
        page.click("#next-photo")
        page.click("#session-btn")
        wait_text(page, "#t-items", "5")
        assert "€" in page.text_content("#t-value")  # SHELFCOUNT_CURRENCY (welcome)
        # Zone A of the catalog: A-01-1 (counted, not confirmed) and A-01-2 are left; B is not.
        wait_text(page, "#bays-left", "2 bays left in this zone: A-01-1, A-01-2")
        shot(page, "pwa-session-bays-left")
        page.once("dialog", lambda d: d.dismiss())
        page.click("#new-session")
        page.wait_for_timeout(300)
        assert page.text_content("#t-items") == "5"  # said no: nothing changed
        asked: list[str] = []

        def accept(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        page.click("#new-session")
        wait_text(page, "#t-items", "0")
        assert "1 bays of this session are not confirmed" in asked[0]
        assert page.text_content("#bays") == "No photos yet."
        wait_text(page, "#net", "online")
        assert [m.get("session") for m in gw.messages if m.get("type") == "hello"][-1] is None
        page.once("dialog", lambda d: d.dismiss())
        page.click("#unpair")
        page.wait_for_timeout(300)
        assert page.is_visible("#screen-session")  # still paired
        # The new session replaces the socket; the fake gateway's (flask-sock) end of the old
        # one can break off mid-frame, which Chromium logs. Anything else is an error.
        assert [e for e in errors if "Invalid frame header" not in e] == []


def test_a_slow_upload_says_sending_with_progress_then_counted(playwright: Any, gateway: Any,
                                                              tmp_path: Path) -> None:
    """Issue 12, finding 6: during a slow upload the screen said "saved on this phone"."""
    from urllib.parse import urlsplit

    import numpy as np

    from tests.throttle_proxy import throttled

    gw, url = gateway
    grain = np.random.default_rng(0).integers(0, 255, (540, 960, 3), dtype=np.uint8)
    camera = write_y4m(tmp_path / "grainy.y4m", grain)  # a photo of ~100+ KB, not 30
    with throttled(urlsplit(url).port, up_bps=40_000, latency_s=0.25) as port, \
            browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, f"http://127.0.0.1:{port}/", "A-01-1")
        wait_text(page, "#net", "online")
        page.click("#shutter")
        page.wait_for_selector("#result-status[data-state=sending]", timeout=10000)
        # Words for the state, not "saved on this phone" (progress in % where the browser's
        # send buffer shows it; the kernel's loopback buffer can swallow a small photo at once).
        text = page.text_content("#result-status")
        assert text.startswith(("Sending", "Sent")), text
        shot(page, "pwa-slow-upload")
        assert page.evaluate("window.__sc.stats.photoBytes") > 80_000  # > 2 s at this rate
        t0 = time.monotonic()
        page.wait_for_selector("#result-status[data-state=done]", timeout=60000)
        assert time.monotonic() - t0 > 0.5  # the proxy really held the upload back
        assert errors == []


def test_on_a_slow_link_codes_go_as_full_resolution_crops_beside_a_small_photo(
        playwright: Any, gateway: Any, tmp_path: Path) -> None:
    """Issue 12: where the phone reads codes in a big photo it sends the photo at 1280 px and
    grey crops of those codes at full resolution after it, which the gateway decodes."""
    from urllib.parse import urlsplit

    from gateway.pipeline.codes import read_codes
    from gateway.training.scenes import render_scene
    from tests.throttle_proxy import throttled

    gw, url = gateway
    scene = render_scene(1777, width=2560, height=1440, difficulty=0.1)
    camera = write_y4m(tmp_path / "codes.y4m", scene.image)
    with throttled(urlsplit(url).port, up_bps=100_000, latency_s=0.25) as port, \
            browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, f"http://127.0.0.1:{port}/", "A-01-1")
        wait_text(page, "#net", "online")
        for i in range(2):  # the first photo goes whole: the link's rate is not known yet
            page.click("#shutter")
            page.wait_for_function(f"window.__sc.stats.shutters.length >= {i + 1}",
                                   timeout=90000)
            if i == 0:
                page.click("#next-photo")
        page.wait_for_function("document.getElementById('result-status').textContent"
                               ".includes('code crops')", timeout=30000)
        first, second = gw.full_photos()
        assert "crops" not in first
        crops = second["crops"]
        assert crops["full"] == [2560, 1440] and 1 <= len(crops["parts"]) <= 64
        blob = gw.crop_bytes[second["id"]]
        assert len(blob) == sum(p["bytes"] for p in crops["parts"])
        offset, read = 0, 0
        for part in crops["parts"]:
            x1, y1, x2, y2 = part["box"]
            assert 0 <= x1 < x2 <= 2560 and 0 <= y1 < y2 <= 1440
            gray = cv2.imdecode(np.frombuffer(blob[offset:offset + part["bytes"]], np.uint8),
                                cv2.IMREAD_GRAYSCALE)
            assert gray is not None and max(gray.shape) <= 320
            read += bool(read_codes(gray))
            offset += part["bytes"]
        assert read >= 0.8 * len(crops["parts"])  # the gateway's readers read the crops
        assert errors == []


def test_on_a_slow_link_the_next_big_photo_goes_at_reduced_size(playwright: Any, gateway: Any,
                                                                tmp_path: Path) -> None:
    """Issue 12, finding 6: a 12 MP photo was always sent whole. After one slow upload the app
    knows the link's rate and sends the next big photo at 2048 px (the full one stays)."""
    from urllib.parse import urlsplit

    from tests.throttle_proxy import throttled

    gw, url = gateway
    import numpy as np

    shelf = synthetic_shelf(2560, 1440).astype(np.int16)
    grain = np.random.default_rng(1).normal(0, 8, shelf.shape).astype(np.int16)
    # Grain: a JPEG the socket's compression cannot shrink, as a real photo.
    camera = write_y4m(tmp_path / "big.y4m", np.clip(shelf + grain, 0, 255).astype(np.uint8))
    with throttled(urlsplit(url).port, up_bps=100_000, latency_s=0.25) as port, \
            browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair_at(page, f"http://127.0.0.1:{port}/", "A-01-1")
        wait_text(page, "#net", "online")
        sent = []
        for i in range(2):
            page.click("#shutter")
            page.wait_for_function(f"window.__sc.stats.shutters.length >= {i + 1}",
                                   timeout=90000)
            sent.append(page.evaluate(
                "window.__sc.store.getPhoto(window.__sc.ui.photoId).then(p => "
                "[p.blob.size, p.sentBytes, !!p.reduced])"))
            if i == 0:
                page.click("#next-photo")
        (full, full_sent, first_reduced), (big, small_sent, second_reduced) = sent
        assert full == full_sent and not first_reduced  # the link's rate was unknown
        assert second_reduced and small_sent < 0.9 * big, sent  # 2048 of 2560 px
        assert "reduced size" in page.text_content("#result-status")
        assert len(gw.full_photos()) == 2
        assert errors == []
