"""PWA end to end, issue 12 findings 1 and 2: what is recorded is the bay the walker approved.

Chromium (Pixel 7 emulation), fake rear camera showing a rendered bay, the real gateway and the
real embedded Triton. Finding 1: a bin label that disagrees with the chosen location was
confirmed silently. Finding 2: retakes multiplied the bay's count.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from gateway.training.scenes import encode_jpeg, render_scene
from tests import test_pwa_e2e
from tests.pwa_support import (
    api_get,
    browser_context,
    chromium_available,
    confirm_bay,
    page_errors,
    shot,
)
from tests.test_pwa_a11y import audit
from tests.test_pwa_e2e import RESULT_TIMEOUT_MS, pair, wait_text

pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium (make system)"),
]
sync_api = pytest.importorskip("playwright.sync_api")
# The e2e module's fixtures: a Playwright driver, the fake camera's bay, a real gateway.
playwright = test_pwa_e2e.playwright
scene_camera = test_pwa_e2e.scene_camera
gateway = test_pwa_e2e.gateway


def start_at(page: Any, server: Any, token: str, location: str) -> None:
    """Pair with the walker's token and type the bay's location in the picker."""
    pair(page, server.base_url + "/", token)
    page.fill("#loc-input", location)
    page.click("#loc-set")


def csv_rows(server: Any, token: str, session: str) -> list[dict[str, str]]:
    text = api_get(server.base_url, f"/sessions/{session}/counts.csv", token).decode()
    return list(csv.DictReader(io.StringIO(text)))


def take_photo(page: Any, seen: int) -> None:
    """Shutter, then wait until the result screen shows the new photo's lines."""
    page.click("#shutter")
    page.wait_for_function(f"window.__sc.stats.shutters.length >= {seen + 1}",
                           timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector(".line", timeout=RESULT_TIMEOUT_MS)


def test_a_label_that_disagrees_with_the_chosen_location_is_asked_before_confirm(
    playwright: Any, scene_camera: Any, gateway: Any
) -> None:
    y4m, scene = scene_camera
    server, token = gateway
    chosen = "C-02-2" if scene.location != "C-02-2" else "C-01-1"
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair(page, server.base_url + "/", token)
        page.fill("#loc-input", chosen)
        page.click("#loc-set")
        wait_text(page, "#loc-value", chosen)
        take_photo(page, 0)
        page.wait_for_selector("#loc-conflict:not([hidden])", timeout=RESULT_TIMEOUT_MS)
        shot(page, "bays-1-location-conflict")
        message = page.text_content("#loc-conflict-msg")
        assert scene.location in message and chosen in message
        assert page.is_disabled("#confirm")  # never confirmed silently
        # The status line shows what would be recorded, not the chosen location.
        assert page.text_content("#result-status").startswith(scene.location)
        page.click("#loc-use-read")
        page.wait_for_selector("#loc-conflict", state="hidden")
        page.wait_for_function("document.getElementById('pending').hidden", timeout=15000)
        confirm_bay(page)
        session = page.evaluate("window.__sc.link.session")
        assert errors == []
    rows = csv_rows(server, token, session)
    assert {r["Location"] for r in rows} == {scene.location}
    (entry,) = server.services.store.outbox_entries(session)
    assert entry.location == scene.location


def test_a_retake_replaces_the_bay_and_parts_are_summed(
    playwright: Any, scene_camera: Any, gateway: Any
) -> None:
    y4m, scene = scene_camera
    server, token = gateway
    truth = sum(scene.counts.values())
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        start_at(page, server, token, scene.location)
        take_photo(page, 0)
        first = page.evaluate("window.__sc.ui.photoId")
        page.click("#next-photo")  # back to the camera: the same bay again
        take_photo(page, 1)
        page.wait_for_selector("#bay-note:not([hidden])", timeout=RESULT_TIMEOUT_MS)
        assert "replaces" in page.text_content("#bay-note")
        shot(page, "bays-2-retake")
        session = page.evaluate("window.__sc.link.session")
        page.click("#next-photo")
        page.click("#session-btn")
        page.wait_for_selector("#screen-session:not([hidden])")
        wait_text(page, "#t-items", str(truth))  # not twice the bay
        assert page.text_content("#t-photos") == "1"
        # One bay, its current photo, the replaced one as history.
        assert page.locator("#bays li").count() == 1
        assert "1 replaced photo" in page.text_content("#bays")
        shot(page, "bays-3-session")
        assert sum(int(r["Quantity_Counted"]) for r in csv_rows(server, token, session)) == truth
        page.click("#bays li button")
        page.wait_for_function(f"window.__sc.ui.photoId !== {json.dumps(first)}")

        # A wide bay: "Add part of this bay" sums the next photo into it.
        page.click("#next-photo")
        take_photo(page, 2)  # a third photo of the bay: another retake
        current = page.evaluate("window.__sc.ui.photoId")
        page.click("#add-part")
        take_photo(page, 3)
        wait_text(page, "#bay-note", f"2 photos of this bay, summed: {2 * truth} items. "
                  "Items seen in two photos are counted twice.", timeout=RESULT_TIMEOUT_MS)
        shot(page, "bays-4-part")
        assert page.evaluate("window.__sc.ui.photoId") != current
        confirm_bay(page)
        assert errors == []
    rows = csv_rows(server, token, session)
    assert sum(int(r["Quantity_Counted"]) for r in rows) == 2 * truth
    (entry,) = server.services.store.outbox_entries(session)
    assert sum(int(r["Quantity_Counted"]) for r in entry.rows) == 2 * truth


def test_corrections_change_the_product_add_a_missed_sku_and_fix_the_expiry(
    playwright: Any, scene_camera: Any, gateway: Any
) -> None:
    """Issue 12, finding 3: only quantities could be corrected."""
    y4m, scene = scene_camera
    server, token = gateway
    first, second = sorted(scene.counts)
    products = json.loads(api_get(server.base_url, "/products", token))["products"]
    other, missed = [p for p in products if p["sku"] not in scene.counts][:2]
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        start_at(page, server, token, scene.location)
        take_photo(page, 0)
        # The first line is another product: found by its barcode; its expiry was misread.
        page.click(f".line[data-sku='{first}']")
        page.fill("#edit-new-sku", other["barcode"])
        page.fill("#edit-expiry", "2031-05-31")
        shot(page, "bays-5-change-sku")
        page.click("#edit-save")
        page.wait_for_selector(f".line[data-sku='{other['sku']}']", timeout=RESULT_TIMEOUT_MS)
        # A SKU the photo missed.
        page.click("#add-sku")
        page.fill("#edit-new-sku", missed["sku"])
        page.click("#keypad button:text-is('4')")
        page.click("#edit-save")
        page.wait_for_selector(f".line[data-sku='{missed['sku']}']", timeout=RESULT_TIMEOUT_MS)
        # A product that is not in the catalog is refused in the sheet, not sent.
        page.click(f".line[data-sku='{missed['sku']}']")
        page.fill("#edit-new-sku", "NO-SUCH-SKU")
        page.click("#edit-save")
        page.wait_for_selector("#edit-error:has-text('not in the catalog')")
        page.click("#edit button[value=cancel]")
        page.wait_for_function("document.getElementById('pending').hidden", timeout=15000)
        shown = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.line')]
            .map(b => [b.dataset.sku, Number(b.querySelector('.q').textContent)]))""")
        assert shown == {other["sku"]: scene.counts[first], second: scene.counts[second],
                         missed["sku"]: 4}
        session = page.evaluate("window.__sc.link.session")
        confirm_bay(page)
        assert errors == []
    rows = {r["SKU"]: r for r in csv_rows(server, token, session)}
    assert set(rows) == {other["sku"], second, missed["sku"]}
    assert rows[other["sku"]]["Expiration_Date"] == "2031-05-31"
    assert rows[other["sku"]]["Product_Description"] == other["description"]
    assert int(rows[missed["sku"]]["Quantity_Counted"]) == 4


def test_the_manager_reviews_the_day_in_the_app_on_phone_and_desk(
    playwright: Any, scene_camera: Any, gateway: Any
) -> None:
    """Issue 12, finding 8: managers had no screen of their own."""
    from gateway.server.serve import device_add
    from tests.server_support import WsClient, outcome

    y4m, scene = scene_camera
    server, walker = gateway
    manager = device_add(server.settings, "manager-mia", "manager")
    phone = WsClient(server)
    try:
        phone.hello(walker)
        phone.photo("w-1", encode_jpeg(scene), location="C-02-2")  # label disagrees
        phone.wait_for(outcome("w-1"))
        phone.photo("w-2", encode_jpeg(render_scene(37, difficulty=0.2)))
        second = phone.wait_for(outcome("w-2"))
        for viewport in ({"width": 412, "height": 915}, {"width": 1366, "height": 900}):
            with browser_context(playwright, y4m, viewport=viewport) as ctx:
                page = ctx.new_page()
                errors = page_errors(page)
                pair(page, server.base_url + "/", manager)
                page.click("#loc-form button[value=cancel]")
                page.click("#review-btn")
                page.wait_for_selector("#review-queue .review-item.flagged")
                page.wait_for_function(
                    "[...document.querySelectorAll('#review-queue img')].some(i => i.naturalWidth)")
                assert "walker-pwa-test: 0 of 2 bays confirmed" in page.text_content(
                    "#review-sessions")
                shot(page, f"bays-6-review-{viewport['width']}")
                assert audit(page, f"review-{viewport['width']}") == []  # axe, targets, h1
                assert errors == []
        # On the desk: send the conflicted bay back, approve the other.
        with browser_context(playwright, y4m, viewport={"width": 1366, "height": 900}) as ctx:
            page = ctx.new_page()
            pair(page, server.base_url + "/", manager)
            page.click("#loc-form button[value=cancel]")
            page.click("#review-btn")
            flagged = page.locator("#review-queue .review-item.flagged").first
            flagged.wait_for()
            assert "location:" in flagged.text_content()
            flagged.locator("input").fill("label says another bin: check")
            flagged.locator("button[data-act=recount]").click()
            told = phone.wait_for(lambda m: m["type"] == "recount")
            assert told["id"] == "w-1" and told["note"] == "label says another bin: check"
            item = page.locator(f"#review-queue [data-count='{second['count_id']}']")
            item.locator("button[data-act=approve]").click()
            page.wait_for_selector(f"#review-queue [data-count='{second['count_id']}'].done")
            assert server.services.store.get_count(second["count_id"]).confirmed_at is not None
            # Reopen it: the bay is open again (a copy replaces the confirmed photo).
            page.locator(f"#review-queue [data-count='{second['count_id']}'] "
                         "button[data-act=reopen]").click()
            page.wait_for_selector("#review-queue .review-item:has-text('reopened')")
        assert server.services.store.get_count(second["count_id"]).superseded_by
    finally:
        phone.close()


def test_a_line_is_split_by_condition_in_the_sheet(playwright: Any, scene_camera: Any,
                                                   gateway: Any) -> None:
    """Issue 12, finding 3: "split a line by condition (e.g. 2 of 12 Damaged)"."""
    y4m, scene = scene_camera
    server, token = gateway
    sku = max(scene.counts, key=scene.counts.get)
    total = scene.counts[sku]
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        start_at(page, server, token, scene.location)
        take_photo(page, 0)
        page.click(f".line[data-sku='{sku}']")
        page.fill("#edit-split", "2")
        page.click("#edit-save")
        page.wait_for_selector(f".line[data-sku='{sku}'][data-split='Damaged']",
                               timeout=RESULT_TIMEOUT_MS)
        page.wait_for_function("document.getElementById('pending').hidden", timeout=15000)
        main = page.locator(f".line[data-sku='{sku}']:not([data-split]) .q").text_content()
        split = page.locator(f".line[data-sku='{sku}'][data-split] .q").text_content()
        assert (int(main), int(split)) == (total - 2, 2)
        shot(page, "bays-7-split")
        session = page.evaluate("window.__sc.link.session")
        confirm_bay(page)
        assert errors == []
    rows = [r for r in csv_rows(server, token, session) if r["SKU"] == sku]
    damaged = [int(r["Quantity_Counted"]) for r in rows if r["Condition"] == "Damaged"]
    kept = [int(r["Quantity_Counted"]) for r in rows if r["Condition"] != "Damaged"]
    assert (damaged, kept) == ([2], [total - 2])  # the rest keeps its Condition


def test_the_app_works_under_the_gateways_content_security_policy(
    playwright: Any, scene_camera: Any, gateway: Any
) -> None:
    """Issue 13: CSP without inline script or eval; the app pairs, counts and shows the result
    with the policy enforced and nothing refused (a refusal is a console error)."""
    y4m, scene = scene_camera
    server, token = gateway
    with browser_context(playwright, y4m, bypass_csp=False) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(server.base_url + "/")
        page.wait_for_selector("#screen-pair:not([hidden])")
        page.fill("#pair-token", token)
        page.click("#pair-form button[type=submit]")
        page.wait_for_selector("#locations[open]")
        page.fill("#loc-input", scene.location)
        page.click("#loc-set")
        page.click("#shutter")
        page.wait_for_selector(".line", timeout=RESULT_TIMEOUT_MS)
        page.wait_for_selector("#result-status[data-state=done]")
        page.click("#next-photo")
        page.click("#session-btn")
        page.wait_for_selector("#screen-session:not([hidden])")
        assert errors == []
