"""Accessibility of every PWA screen (issue 12, finding 9): axe-core (vendored from npm,
tests/vendor/axe-core, MPL-2.0) finds no serious or critical violation, and every touch target
is at least 48 CSS px both ways. Chromium with phone emulation, against the protocol-faithful
fake gateway (tests/pwa_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import test_pwa_ui
from tests.pwa_support import browser_context, chromium_available, page_errors, shot

pytestmark = pytest.mark.skipif(not chromium_available(),
                                reason="needs /usr/bin/chromium (make system)")
sync_api = pytest.importorskip("playwright.sync_api")
# The UI module's fixtures: a Playwright driver, a fake camera, the fake gateway.
playwright = test_pwa_ui.playwright
camera = test_pwa_ui.camera
gateway = test_pwa_ui.gateway

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
TOUCH_PX = 48

# Serious and critical violations, as "rule id: target"; label-content-name-mismatch (a
# button's accessible name must contain its visible text) is experimental in axe, so enabled.
RUN_AXE = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations'],
    rules: {'label-content-name-mismatch': {enabled: true}}});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .flatMap(v => v.nodes.map(n => `${v.id}: ${n.target.join(' ')}`));
}"""

SMALL_TARGETS = f"""() => [...document.querySelectorAll('button, input, select, a[href]')]
  .filter(b => b.offsetParent !== null && getComputedStyle(b).visibility !== 'hidden')
  .filter(b => !b.closest('dialog:not([open])'))
  .map(b => [b.id || b.textContent.trim() || b.name, b.getBoundingClientRect()])
  .filter(([, r]) => r.width < {TOUCH_PX} || r.height < {TOUCH_PX})
  .map(([n, r]) => `${{n}} ${{Math.round(r.width)}}x${{Math.round(r.height)}}`)"""


# A toast fading in or out is, for a fifth of a second, text at partial opacity: axe would
# judge its contrast mid-fade. Audit the page with the fade off, once it is fully on or off.
TOAST_SETTLED = """() => ['0', '1'].includes(
  getComputedStyle(document.getElementById('toast')).opacity)"""


def audit(page: Any, screen: str) -> list[str]:
    """axe-core's serious/critical findings and undersized targets on the page as shown."""
    # No fade while axe runs (a toast may time out mid-audit): on or off, never in between.
    page.add_style_tag(content="#toast { transition: none !important; }")
    page.wait_for_function(TOAST_SETTLED, timeout=5000)
    shot(page, f"a11y-{screen}")
    page.add_script_tag(path=str(AXE))
    found = [f"{screen}: {v}" for v in page.evaluate(RUN_AXE)]
    found += [f"{screen}: target {t}" for t in page.evaluate(SMALL_TARGETS)]
    if not page.evaluate("!!document.querySelector('.screen:not([hidden]) h1, dialog[open] h1,"
                         " dialog[open] h2')"):
        found.append(f"{screen}: no heading")
    return found


def test_every_screen_passes_axe_and_has_big_targets(playwright: Any, camera: Path,
                                                     gateway: Any) -> None:
    from tests.pwa_support import FAKE_TOKEN

    gw, url = gateway
    problems: list[str] = []
    with browser_context(playwright, camera) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(url)
        page.wait_for_selector("#screen-pair:not([hidden])")
        problems += audit(page, "pair")
        page.fill("#pair-token", FAKE_TOKEN)
        page.click("#pair-form button[type=submit]")
        page.wait_for_selector("#locations[open]")
        problems += audit(page, "locations")
        page.fill("#loc-input", "A-01-1")
        page.click("#loc-set")
        page.wait_for_function("window.__sc.stats.previews >= 2", timeout=15000)
        # The "N pending" pill shows whenever something waits to be sent: audit it too.
        page.evaluate("document.getElementById('pending').hidden = false")
        problems += audit(page, "count")
        page.click("#shutter")
        page.wait_for_selector(".line")
        problems += audit(page, "result")
        page.click(".line >> nth=0")
        page.wait_for_selector("#edit[open]")
        problems += audit(page, "edit")
        page.click("#edit button[value=cancel]")
        page.click("#next-photo")
        page.click("#session-btn")
        page.wait_for_selector("#screen-session:not([hidden])")
        problems += audit(page, "session")
        assert errors == []
    assert problems == [], "\n".join(problems)
