"""PWA end to end: Chromium (Pixel 7 emulation) with a fake rear camera showing a rendered shelf
scene, through the real gateway (GatewayServer, as `shelfcount serve` runs it) and the real
embedded Triton. Nothing is mocked.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pwa_support import (
    api_get,
    browser_context,
    chromium_available,
    confirm_bay,
    page_errors,
    real_gateway,
    shelf_camera,
    shot,
)

pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium (make system)"),
]
sync_api = pytest.importorskip("playwright.sync_api")

RESULT_TIMEOUT_MS = 60000


@pytest.fixture(scope="module")
def scene_camera(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return shelf_camera(tmp_path_factory.mktemp("cam") / "shelf.y4m")


@pytest.fixture
def gateway(triton: Any, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    with real_gateway(triton.url, tmp_path / "data") as (server, token):
        yield server, token


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        yield p


def wait_text(page: Any, selector: str, text: str, timeout: int = 15000) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s).textContent === t",
                           arg=[selector, text], timeout=timeout)


def wait_async(page: Any, predicate: str, timeout_s: float = RESULT_TIMEOUT_MS / 1000) -> None:
    """Poll an async predicate (wait_for_function does not await a returned promise)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(300)


def pair(page: Any, url: str, token: str) -> None:
    page.goto(url)
    page.wait_for_selector("#screen-pair:not([hidden])")
    shot(page, "e2e-1-pair")
    page.fill("#pair-token", token)
    page.fill("#pair-device", "walker-e2e")
    page.click("#pair-form button[type=submit]")
    page.wait_for_selector("#locations[open]")


def shown_quantities(page: Any) -> dict[str, int]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.line')]
        .map(b => [b.dataset.sku, Number(b.querySelector('.q').textContent)]))""")


def test_count_correct_confirm_reaches_session_csv(playwright: Any, scene_camera: Any,
                                                  gateway: Any) -> None:
    y4m, scene = scene_camera
    server, token = gateway
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair(page, server.base_url + "/", token)

        # Location first: the gateway reads the bin label off a camera frame.
        page.click("#scan-label")
        try:
            wait_text(page, "#loc-value", scene.location, timeout=RESULT_TIMEOUT_MS)
        except sync_api.Error as exc:
            raise AssertionError(f"label scan: {page.text_content('#scan-msg')!r}") from exc

        # Live preview: frames go to the gateway and its results are drawn over the video.
        page.wait_for_function("window.__sc.stats.previews >= 3", timeout=RESULT_TIMEOUT_MS)
        shot(page, "e2e-2-live")

        page.click("#shutter")
        page.wait_for_selector(".line", timeout=RESULT_TIMEOUT_MS)
        shot(page, "e2e-3-result")
        shown = shown_quantities(page)
        assert shown == scene.counts  # one line per SKU, the scene's true counts
        assert page.locator("#result-status").text_content().startswith(scene.location)

        sku = sorted(scene.counts)[0]
        corrected = scene.counts[sku] + 2
        page.click(f".line[data-sku='{sku}']")
        page.click("#plus")
        page.click("#plus")
        shot(page, "e2e-4-correct")
        page.click("#edit-save")
        page.wait_for_function("document.getElementById('pending').hidden", timeout=15000)
        confirm_bay(page)
        shot(page, "e2e-5-confirmed")
        session = page.evaluate("window.__sc.link.session")
        page.click("#result-next-loc")
        page.wait_for_selector("#locations[open]")
        page.click("#loc-form button[value=cancel]")
        page.click("#session-btn")
        page.wait_for_selector("#screen-session:not([hidden])")
        shot(page, "e2e-6-session")
        assert page.text_content("#t-bays") == "1"
        with page.expect_download() as download:
            page.click("#csv")  # the walker's own copy, fetched with the device token
        from_pwa = Path(download.value.path()).read_bytes().decode()
        assert errors == []

    text = api_get(server.base_url, f"/sessions/{session}/counts.csv", token).decode()
    assert from_pwa == text
    rows = list(csv.DictReader(io.StringIO(text)))
    got = {r["SKU"]: int(r["Quantity_Counted"]) for r in rows}
    assert got == {**scene.counts, sku: corrected}
    assert {r["Location"] for r in rows} == {scene.location}
    detail = json.loads(api_get(server.base_url, f"/sessions/{session}", token))
    (count,) = detail["counts"]
    assert [(c["sku"], c["model_quantity"], c["quantity"]) for c in count["corrections"]] == [
        (sku, scene.counts[sku], corrected)]


def test_offline_photos_and_correction_reach_gateway_once(playwright: Any, scene_camera: Any,
                                                          gateway: Any) -> None:
    y4m, scene = scene_camera
    server, token = gateway
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        pair(page, server.base_url + "/", token)
        page.fill("#loc-input", scene.location)
        page.click("#loc-set")
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
        page.click("#shutter")
        page.wait_for_selector(".line", timeout=RESULT_TIMEOUT_MS)
        first = page.evaluate("window.__sc.ui.photoId")
        session = page.evaluate("window.__sc.link.session")

        ctx.set_offline(True)
        wait_text(page, "#net", "offline")
        # Two more parts of this wide bay, offline (plain retakes would replace the first).
        page.click("#add-part")
        for _ in range(2):
            page.click("#shutter")
            page.wait_for_selector("#result-status:has-text('Saved on this phone')")
            page.click("#add-part")
        page.click("#session-btn")
        page.click("#bays li:last-child button")  # the bay: its photo counted before offline
        sku = sorted(scene.counts)[-1]
        page.wait_for_selector(f".line[data-sku='{sku}']")
        model_quantity = shown_quantities(page)[sku]
        page.click(f".line[data-sku='{sku}']")
        page.click("#minus")
        page.click("#edit-save")
        wait_text(page, "#pending", "3 pending")

        page.reload()  # offline: the service worker serves the app, IndexedDB kept the queue
        wait_text(page, "#pending", "3 pending")
        page.click("#pending")
        shot(page, "e2e-7-offline-queue")

        ctx.set_offline(False)
        page.wait_for_function("document.getElementById('pending').hidden",
                               timeout=RESULT_TIMEOUT_MS)
        wait_async(page, "async () => (await window.__sc.store.allPhotos()).every(p => p.result)")
        page.click("#back-count")
        page.click("#session-btn")
        shot(page, "e2e-8-flushed")

    detail = json.loads(api_get(server.base_url, f"/sessions/{session}", token))
    counts = detail["counts"]
    assert len(counts) == 3 and len({c["photo_id"] for c in counts}) == 3
    assert [c["status"] for c in counts] == ["done"] * 3, counts
    by_photo = {c["photo_id"]: c for c in counts}
    assert [(c["sku"], c["quantity"]) for c in by_photo[first]["corrections"]] == [
        (sku, model_quantity - 1)]
    assert all(not c["corrections"] for pid, c in by_photo.items() if pid != first)


def test_installable_from_the_gateway(playwright: Any, scene_camera: Any, gateway: Any,
                                      tmp_path: Path) -> None:
    y4m, _ = scene_camera
    server, _ = gateway
    with browser_context(playwright, y4m, profile=tmp_path / "profile") as ctx:
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        errors = page_errors(page)
        page.goto(server.base_url + "/")
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
        result = ctx.new_cdp_session(page).send("Page.getInstallabilityErrors")
        assert result["installabilityErrors"] == []
        assert errors == []


def test_live_boxes_drawn_over_video(playwright: Any, scene_camera: Any, gateway: Any,
                                     triton: Any) -> None:
    if not triton.client.model_ready("item_detector"):
        pytest.skip("the item_detector model is not deployed (triton_models/item_detector/1/"
                    "model.onnx): live preview boxes come from it")
    y4m, scene = scene_camera
    server, token = gateway
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        pair(page, server.base_url + "/", token)
        page.fill("#loc-input", scene.location)
        page.click("#loc-set")
        page.wait_for_function(f"window.__sc.stats.lastPreviewBoxes >= {scene.total - 2}",
                               timeout=30000)
        painted = page.evaluate("""() => {
            const c = document.getElementById('overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
            return n;
        }""")
        assert painted > 1000  # box outlines drawn over the video
        assert page.locator("#live .chip-total").text_content().endswith("items")
        shot(page, "e2e-live-boxes")
