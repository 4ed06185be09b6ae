"""`make bench-load`: simulated walkers against a real gateway (real pipeline, real Triton).

Each walker is one WebSocket connection with its own device token. It sends a stored photo
every ``--photo-interval`` seconds and live preview frames at ``--preview-fps``, and measures
the time from sending a photo's bytes to its result. The number of walkers grows level by level
(``--levels``); each level runs ``--duration`` seconds, then waits (bounded) for the photos
still being counted. Reported per level: p50/p95 photo result latency, preview latency and
frames dropped for newer ones, and the first N at which the photo p95 passes 1 s.
Loopback only; every loop is bounded. Figures are printed and written to
artifacts/load_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simple_websocket import Client

from gateway.catalog import import_catalog
from gateway.config import REPO_ROOT, load_settings
from gateway.inference.embedded import start_triton
from gateway.server import GatewayServer, device_add
from gateway.training.scenes import encode_jpeg, render_scene

DRAIN_LIMIT_S = 60.0


@dataclass
class Tally:
    photo_ms: list[float] = field(default_factory=list)
    pipeline_ms: list[float] = field(default_factory=list)  # the pipeline's own "total"
    ack_ms: list[float] = field(default_factory=list)  # photo stored on disk + in the DB
    preview_ms: list[float] = field(default_factory=list)
    photos_sent: int = 0
    previews_sent: int = 0
    previews_dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Walker:
    """One simulated phone."""

    def __init__(self, url: str, token: str, photos: list[bytes], previews: list[bytes],
                 tally: Tally, offset: float) -> None:
        self.ws = Client.connect(url)
        self.ws.send(json.dumps({"type": "hello", "token": token, "session": None}))
        welcome = json.loads(self.ws.receive(timeout=30) or "{}")
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"no welcome: {welcome}")
        self.photos, self.previews, self.tally, self.offset = photos, previews, tally, offset
        self.sent_at: dict[str, float] = {}
        self.outstanding: set[str] = set()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while self.ws.connected:
            try:
                data = self.ws.receive(timeout=1.0)
            except Exception:  # noqa: BLE001 - connection closed: done
                return
            if data is None:
                continue
            now = time.perf_counter()
            message = json.loads(data)
            photo_id = message.get("id")
            with self.lock:
                started = self.sent_at.get(photo_id)
            if started is None:
                continue
            if message.get("type") == "ack":
                with self.tally.lock:
                    self.tally.ack_ms.append((now - started) * 1000.0)
                continue
            if message.get("type") == "error" and message.get("queued"):
                continue  # the result follows
            elapsed = (now - started) * 1000.0
            with self.tally.lock:
                if message.get("preview"):
                    if message.get("code") == "preview_dropped":
                        self.tally.previews_dropped += 1
                    elif message.get("type") == "result":
                        self.tally.preview_ms.append(elapsed)
                    else:
                        code = str(message.get("code"))
                        self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
                elif message.get("type") == "result":
                    self.tally.photo_ms.append(elapsed)
                    total = (message.get("timings_ms") or {}).get("total")
                    if total is not None:
                        self.tally.pipeline_ms.append(float(total))
                else:
                    code = str(message.get("code"))
                    self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
            with self.lock:
                self.sent_at.pop(photo_id, None)
                self.outstanding.discard(photo_id)

    def _send(self, data: bytes, preview: bool) -> None:
        photo_id = uuid.uuid4().hex
        header = json.dumps({"type": "photo", "id": photo_id, "preview": preview})
        with self.lock:
            self.sent_at[photo_id] = time.perf_counter()
            if not preview:
                self.outstanding.add(photo_id)
        self.ws.send(header)
        self.ws.send(data)
        with self.tally.lock:
            if preview:
                self.tally.previews_sent += 1
            else:
                self.tally.photos_sent += 1

    def run(self, duration_s: float, photo_interval_s: float, preview_fps: float) -> None:
        start = time.perf_counter()
        next_photo = start + self.offset
        next_preview = start + self.offset / 2
        n_photo = n_preview = 0
        while True:
            now = time.perf_counter()
            if now - start >= duration_s:
                return
            if now >= next_photo:
                self._send(self.photos[n_photo % len(self.photos)], preview=False)
                n_photo += 1
                next_photo += photo_interval_s
            if preview_fps > 0 and now >= next_preview:
                self._send(self.previews[n_preview % len(self.previews)], preview=True)
                n_preview += 1
                next_preview += 1.0 / preview_fps
            time.sleep(max(0.0, min(next_photo, next_preview) - time.perf_counter()))

    def drain(self, deadline: float) -> int:
        while time.perf_counter() < deadline:
            with self.lock:
                if not self.outstanding:
                    return 0
            time.sleep(0.1)
        with self.lock:
            return len(self.outstanding)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.reader.join(timeout=5)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return round(ordered[index], 1)


def run_level(url: str, tokens: list[str], photos: list[bytes], previews: list[bytes],
              args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    n = len(tokens)
    walkers = [Walker(url, token, photos, previews, tally, offset=i * args.photo_interval / n)
               for i, token in enumerate(tokens)]
    threads = [threading.Thread(target=w.run, daemon=True,
                                args=(args.duration, args.photo_interval, args.preview_fps))
               for w in walkers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.duration + 30)
    deadline = time.perf_counter() + DRAIN_LIMIT_S
    unanswered = sum(w.drain(deadline) for w in walkers)
    for walker in walkers:
        walker.close()
    return {
        "walkers": n,
        "photos_sent": tally.photos_sent,
        "photo_results": len(tally.photo_ms),
        "photo_p50_ms": pct(tally.photo_ms, 50),
        "photo_p95_ms": pct(tally.photo_ms, 95),
        "photo_mean_ms": round(statistics.fmean(tally.photo_ms), 1) if tally.photo_ms else None,
        "ack_p50_ms": pct(tally.ack_ms, 50),
        "ack_p95_ms": pct(tally.ack_ms, 95),
        "pipeline_p50_ms": pct(tally.pipeline_ms, 50),
        "pipeline_p95_ms": pct(tally.pipeline_ms, 95),
        "photos_unanswered_after_drain": unanswered,
        "previews_sent": tally.previews_sent,
        "preview_results": len(tally.preview_ms),
        "previews_dropped": tally.previews_dropped,
        "preview_p50_ms": pct(tally.preview_ms, 50),
        "preview_p95_ms": pct(tally.preview_ms, 95),
        "errors": tally.errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,2,4,8,12,16,20",
                        help="walker counts to try, in order (default %(default)s)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per level")
    parser.add_argument("--photo-interval", type=float, default=3.0)
    parser.add_argument("--preview-fps", type=float, default=2.0)
    parser.add_argument("--photo-size", default="1920x1080",
                        help="WxH of stored photos (phones may send larger stills)")
    parser.add_argument("--preview-size", default="960x540",
                        help="WxH of preview frames (the PWA sends 960 px wide)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every level even after p95 passed 1 s")
    parser.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "load_bench.json"))
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    pw, ph = (int(v) for v in args.photo_size.lower().split("x"))
    vw, vh = (int(v) for v in args.preview_size.lower().split("x"))
    photos = [encode_jpeg(render_scene(100 + i, width=pw, height=ph), quality=85)
              for i in range(6)]
    previews = [encode_jpeg(render_scene(200 + i, width=vw, height=vh), quality=70)
                for i in range(4)]

    base = load_settings()
    triton_url, triton = start_triton(base)
    data_dir = Path(tempfile.mkdtemp(prefix="shelfcount-load-"))
    import_catalog(REPO_ROOT / "gateway" / "demo" / "catalog.csv", data_dir)
    settings = load_settings(data_dir=data_dir, host="127.0.0.1", port=0, grpc_port=0,
                             triton_url=triton_url, photo_rate_per_min=120.0)
    tokens = [device_add(settings, f"walker-{i}") for i in range(max(levels))]
    server = GatewayServer(settings, triton_url=triton_url).start()
    url = server.base_url.replace("http", "ws", 1) + "/ws/count"
    results: list[dict[str, Any]] = []
    knee: int | None = None
    try:
        # Warm-up: first requests build ONNX sessions and caches inside Triton.
        run_level(url, tokens[:1], photos, previews,
                  argparse.Namespace(**{**vars(args), "duration": 6.0}))
        for n in levels:
            row = run_level(url, tokens[:n], photos, previews, args)
            results.append(row)
            print(json.dumps(row), flush=True)
            p95 = row["photo_p95_ms"]
            if knee is None and (p95 is None or p95 > 1000.0 or
                                 row["photos_unanswered_after_drain"]):
                knee = n
                if not args.keep_going:
                    break
    finally:
        server.stop()
        if triton is not None:
            triton.stop()
    summary = {
        "photo_size": args.photo_size, "preview_size": args.preview_size,
        "photo_interval_s": args.photo_interval, "preview_fps": args.preview_fps,
        "duration_s": args.duration, "levels": results,
        "p95_passes_1s_at_walkers": knee,
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    print(f"{'N':>3} {'photos':>6} {'p50 ms':>8} {'p95 ms':>8} {'pipe p50':>8} {'prev':>5} "
          f"{'drop':>5} {'prev p50':>8} {'prev p95':>8}")
    for r in results:
        print(f"{r['walkers']:>3} {r['photos_sent']:>6} {r['photo_p50_ms']!s:>8} "
              f"{r['photo_p95_ms']!s:>8} {r['pipeline_p50_ms']!s:>8} {r['previews_sent']:>5} "
              f"{r['previews_dropped']:>5} {r['preview_p50_ms']!s:>8} {r['preview_p95_ms']!s:>8}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"photo p95 passes 1 s at N = {knee if knee is not None else 'not reached'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
