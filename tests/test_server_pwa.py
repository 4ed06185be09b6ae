"""What the PWA sends reaches the real gateway as the gateway means it (real browser, real
gateway, real Triton): the catalog's locations in the picker, "Mark Damaged" with the
correction, a correction id that makes a re-sent correction count once.
"""

from __future__ import annotations

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
)

pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium (make system)"),
]
sync_api = pytest.importorskip("playwright.sync_api")

RESULT_TIMEOUT_MS = 60000

# Put an already delivered correction back into the PWA's IndexedDB outbox, as if its answer
# had been lost with the connection, and flush: the PWA sends it again with the same id.
RESEND = """async (item) => {
  const db = await new Promise((ok, fail) => {
    const r = indexedDB.open("shelfcount");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
  await new Promise((ok, fail) => {
    const t = db.transaction("outbox", "readwrite");
    t.objectStore("outbox").add({ kind: "correct", created: Date.now(), ...item });
    t.oncomplete = ok;
    t.onerror = () => fail(t.error);
  });
  db.close();
  await window.__sc.link.flush();
  // The gateway's "corrected" answer arrives on its own time: wait for it (bounded).
  const until = Date.now() + 15000;
  let left = (await window.__sc.store.outbox()).length;
  while (left > 0 && Date.now() < until) {
    await new Promise((ok) => setTimeout(ok, 100));
    await window.__sc.link.flush();
    left = (await window.__sc.store.outbox()).length;
  }
  return left;
}"""


def corrections_reached(server: Any, token: str, session: str, n: int) -> dict[str, Any]:
    """The session's one count once the gateway has recorded ``n`` corrections (bounded wait:
    the PWA sends from its outbox on its own schedule)."""
    deadline = time.monotonic() + 15
    while True:
        (count,) = counts_of(server, token, session)
        if len(count["corrections"]) >= n or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


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


def counts_of(server: Any, token: str, session: str) -> list[dict[str, Any]]:
    return json.loads(api_get(server.base_url, f"/sessions/{session}", token))["counts"]


def test_pwa_location_picker_damaged_and_correction_ids(playwright: Any, scene_camera: Any,
                                                         gateway: Any) -> None:
    y4m, scene = scene_camera
    server, token = gateway
    catalog = json.loads(api_get(server.base_url, "/locations", token))["locations"]
    assert scene.location in [c["location"] for c in catalog]
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(server.base_url + "/")
        page.wait_for_selector("#screen-pair:not([hidden])")
        page.fill("#pair-token", token)
        page.fill("#pair-device", "walker-pwa")
        page.click("#pair-form button[type=submit]")
        page.wait_for_selector("#locations[open]")

        # The picker offers every catalog location (nothing used yet on this phone).
        page.wait_for_function("n => document.querySelectorAll('#loc-list button').length >= n",
                               arg=len(catalog), timeout=15000)
        offered = page.eval_on_selector_all("#loc-list button", "bs => bs.map(b => b.dataset.loc)")
        assert offered == [c["location"] for c in catalog]
        home = next(c for c in catalog if c["location"] == scene.location)
        button = page.locator(f"#loc-list button[data-loc='{scene.location}']")
        assert home["sku"] in (button.get_attribute("title") or "")
        button.click()
        page.wait_for_function("t => document.getElementById('loc-value').textContent === t",
                               arg=scene.location, timeout=15000)

        page.click("#shutter")
        page.wait_for_selector(".line", timeout=RESULT_TIMEOUT_MS)
        sku = sorted(scene.counts)[0]
        page.click(f".line[data-sku='{sku}']")
        page.click("#damaged")
        page.click("#edit-save")
        session = page.evaluate("window.__sc.link.session")
        count = corrections_reached(server, token, session, 1)
        (fix,) = count["corrections"]
        assert (fix["sku"], fix["quantity"], fix["model_quantity"], fix["condition"]) == (
            sku, scene.counts[sku], scene.counts[sku], "Damaged")
        assert fix["correction_id"] and fix["by"] == "walker-pwa-test"
        assert next(r for r in count["rows"] if r["SKU"] == sku)["Condition"] == "Damaged"

        # A second correction of the line, then the first one arrives again (its answer was
        # lost): its id tells the gateway it is a re-send, not the walker going back to it.
        page.click(f".line[data-sku='{sku}']")
        page.click("#plus")
        page.click("#edit-save")
        corrections_reached(server, token, session, 2)
        left = page.evaluate(RESEND, {"id": count["photo_id"], "sku": sku,
                                      "quantity": scene.counts[sku], "condition": "Damaged",
                                      "cid": fix["correction_id"]})
        assert left == 0  # the gateway answered "corrected", so the PWA dropped it
        (count,) = counts_of(server, token, session)
        assert [(c["quantity"], c["condition"]) for c in count["corrections"]] == [
            (scene.counts[sku], "Damaged"), (scene.counts[sku] + 1, "Damaged")]
        assert len({c["correction_id"] for c in count["corrections"]}) == 2
        line = next(r for r in count["rows"] if r["SKU"] == sku)
        assert (line["Quantity_Counted"], line["Condition"]) == (scene.counts[sku] + 1, "Damaged")

        confirm_bay(page)
        deadline = time.monotonic() + 15
        while not counts_of(server, token, session)[0]["confirmed_at"]:
            assert time.monotonic() < deadline, "the confirmation did not reach the gateway"
            time.sleep(0.2)
        assert errors == []
    csv_text = api_get(server.base_url, f"/sessions/{session}/counts.csv", token).decode()
    assert any(line.startswith(f"{scene.location},{sku},") and ",Damaged," in line
               for line in csv_text.splitlines())
    rows = gateway[0].services.store.session_rows(session)  # what the sinks receive
    assert next(r for r in rows if r["SKU"] == sku)["Condition"] == "Damaged"
