"""PWA benchmark: shutter tap -> result drawn for a 1080p photo, and the live overlay's refresh
rate, measured in Chromium (Pixel 7 emulation, fake 1080p rear camera showing a rendered shelf)
against the real gateway and the embedded Triton on this machine.

    .venv/bin/python -m tests.bench.pwa_bench [--photos 5] [--preview-seconds 10]
        [--size 1080p|12mp] [--throttle-kbps 40 --latency-ms 250]

``--throttle-kbps`` puts a loopback proxy between Chromium and the gateway (uploads held to
that rate, answers delayed by ``--latency-ms``): browsers' own network emulation does not slow
WebSocket uploads.

Figures come from the page itself (performance.now() in the shutter handler until two
animation frames after the result is rendered; one timestamp per preview result drawn) and are
printed and written to artifacts/pwa/bench.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

from gateway.config import load_settings
from gateway.inference.embedded import start_triton
from tests.pwa_support import ARTIFACTS, browser_context, real_gateway, shelf_camera
from tests.throttle_proxy import throttled


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


SIZES = {"1080p": (1920, 1080), "12mp": (4032, 3024)}


@contextmanager
def _link(server: object, args: argparse.Namespace) -> Iterator[str]:
    """The gateway's URL as the phone reaches it: direct, or through the throttling proxy."""
    if not args.throttle_kbps:
        yield server.base_url + "/"  # type: ignore[attr-defined]
        return
    port = urlsplit(server.base_url).port  # type: ignore[attr-defined]
    with throttled(port, up_bps=args.throttle_kbps * 1000,
                   latency_s=args.latency_ms / 1000) as proxy:
        yield f"http://127.0.0.1:{proxy}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--preview-seconds", type=float, default=10.0)
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p")
    parser.add_argument("--throttle-kbps", type=float, help="upload limit in KB/s (none)")
    parser.add_argument("--latency-ms", type=float, default=250.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pwa-bench-"))
    y4m, scene = shelf_camera(work / "shelf.y4m", *SIZES[args.size])
    url, triton = start_triton(load_settings())
    try:
        with real_gateway(url, work / "data") as (server, token), sync_playwright() as p, \
                browser_context(p, y4m) as ctx, _link(server, args) as base:
            page = ctx.new_page()
            page.goto(base)
            page.fill("#pair-token", token)
            page.click("#pair-form button[type=submit]")
            page.wait_for_selector("#locations[open]")
            page.fill("#loc-input", scene.location)
            page.click("#loc-set")
            page.wait_for_function("window.__sc.stats.previews >= 2", timeout=60000)

            # Preview overlay refresh rate over a fixed window on the count screen.
            before = page.evaluate("window.__sc.stats.previews")
            t0 = time.monotonic()
            page.wait_for_timeout(args.preview_seconds * 1000)
            elapsed = time.monotonic() - t0
            s = page.evaluate("window.__sc.stats")
            drawn = s["previews"] - before
            latencies = s["previewLatencies"][-drawn:] if drawn else []

            # Shutter tap -> result drawn, one photo at a time.
            gateway_ms: list[float] = []
            sent: list[list] = []
            for i in range(args.photos):
                page.click("#shutter")
                page.wait_for_function(f"window.__sc.stats.shutters.length >= {i + 1}",
                                       timeout=300000)
                gateway_ms.append(page.evaluate(
                    "window.__sc.store.getPhoto(window.__sc.ui.photoId)"
                    ".then(p => p.result.timings_ms.total)"))
                sent.append(page.evaluate(
                    "window.__sc.store.getPhoto(window.__sc.ui.photoId)"
                    ".then(p => [p.sentBytes, !!p.reduced])"))
                page.click("#next-photo")
                page.wait_for_timeout(500)
            s = page.evaluate("window.__sc.stats")
            width, height = page.evaluate(
                "window.__sc.store.getPhoto(window.__sc.ui.photoId)"
                ".then(p => [p.result.width, p.result.height])")
    finally:
        if triton is not None:
            triton.stop()

    report = {
        "photo": {"width": width, "height": height, "bytes": s["photoBytes"], "via": s["photoVia"],
                  "n": len(s["shutters"]), "sent_bytes": [b for b, _ in sent],
                  "sent_reduced": [r for _, r in sent]},
        "link": ({"upload_kbps": args.throttle_kbps, "latency_ms": args.latency_ms}
                 if args.throttle_kbps else "direct (loopback)"),
        "shutter_to_result_ms": {"p50": round(statistics.median(s["shutters"]), 1),
                                 "max": round(max(s["shutters"]), 1),
                                 "all": [round(v, 1) for v in s["shutters"]]},
        "capture_ms": {"p50": round(statistics.median(s["captures"]), 1)},
        "gateway_total_ms": {"p50": round(statistics.median(gateway_ms), 1)},
        "preview": {"refresh_per_s": round(drawn / elapsed, 2), "frames": drawn,
                    "seconds": round(elapsed, 1),
                    "latency_p50_ms": round(pct(latencies, 50), 1) if latencies else None,
                    "latency_p95_ms": round(pct(latencies, 95), 1) if latencies else None,
                    "boxes_last": s["lastPreviewBoxes"]},
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = f"bench-{args.size}{'-throttled' if args.throttle_kbps else ''}.json"
    (ARTIFACTS / name).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
