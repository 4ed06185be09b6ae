"""`make bench-load`: simulated walkers against a real gateway (real pipeline, real Triton).

Each walker is one WebSocket connection with its own device token. It sends a stored photo
every ``--photo-interval`` seconds and live preview frames at ``--preview-fps``, and measures
the time from sending a photo's bytes to its result. The number of walkers grows level by level
(``--levels``); each level runs ``--duration`` seconds, then waits (bounded) for the photos
still being counted. Reported per level: p50/p95 photo result latency, preview latency and
frames dropped for newer ones, photos counted per second, the CPU the gateways and Tritons
spent per photo (core-seconds, from the processes' own accounting, previews included), and
the first N at which the photo p95 passes 1 s.

``--gateways N --tritons M``: N gateway processes (``shelfcount serve``; several share one
PostgreSQL, ``--database-url``, a fresh database made on that server) and M embedded Tritons
(each gateway spreads over all of them); walkers are dealt over the gateways in turn. After
each level the store is read back: photos acknowledged but not counted (lost) and results a
walker got twice (duplicated) are reported. Loopback only; every loop is bounded. Figures are
printed and written to artifacts/load_bench.json.
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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simple_websocket import Client

from gateway.catalog import import_catalog
from gateway.config import REPO_ROOT, load_settings
from gateway.inference.embedded import EmbeddedTriton
from gateway.server import device_add
from gateway.store import open_store
from gateway.store.types import UNFINISHED
from gateway.training.scenes import encode_jpeg, render_scene
from tests.replica_support import cpu_seconds, fresh_database, replica

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
    duplicated: int = 0  # a second result for one photo
    first_sent: float | None = None
    last_result: float | None = None
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
        self.answered: set[str] = set()
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
                again = started is None and photo_id in self.answered \
                    and message.get("type") == "result"
            if again:
                with self.tally.lock:
                    self.tally.duplicated += 1
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
                    self.tally.last_result = now
                    total = (message.get("timings_ms") or {}).get("total")
                    if total is not None:
                        self.tally.pipeline_ms.append(float(total))
                else:
                    code = str(message.get("code"))
                    self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
            with self.lock:
                self.sent_at.pop(photo_id, None)
                if photo_id in self.outstanding:
                    self.answered.add(photo_id)
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
                if self.tally.first_sent is None:
                    self.tally.first_sent = time.perf_counter()

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


@dataclass
class Fleet:
    """The gateways (URLs, processes) and Tritons under test, and where their store is."""

    urls: list[str]
    gateway_pids: list[int]
    triton_pids: list[int]
    settings: Any
    tokens: list[str]


def run_level(fleet: Fleet, n: int, photos: list[bytes], previews: list[bytes],
              args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    walkers = [Walker(fleet.urls[i % len(fleet.urls)], token, photos, previews, tally,
                      offset=i * args.photo_interval / n)
               for i, token in enumerate(fleet.tokens[:n])]
    cpu_before = cpu_seconds(fleet.gateway_pids), cpu_seconds(fleet.triton_pids)
    threads = [threading.Thread(target=w.run, daemon=True,
                                args=(args.duration, args.photo_interval, args.preview_fps))
               for w in walkers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.duration + 30)
    deadline = time.perf_counter() + DRAIN_LIMIT_S
    unanswered = sum(w.drain(deadline) for w in walkers)
    cpu_gateways = cpu_seconds(fleet.gateway_pids) - cpu_before[0]
    cpu_tritons = cpu_seconds(fleet.triton_pids) - cpu_before[1]
    for walker in walkers:
        walker.close()

    def per_photo(seconds: float) -> float | None:
        return round(seconds / len(tally.photo_ms), 3) if tally.photo_ms else None

    span = (tally.last_result - tally.first_sent) if tally.last_result and tally.first_sent \
        else None
    return {
        "walkers": n,
        "photos_sent": tally.photos_sent,
        "photo_results": len(tally.photo_ms),
        "photos_per_s": round(len(tally.photo_ms) / span, 2) if span else None,
        "cpu_core_s_per_photo": per_photo(cpu_gateways + cpu_tritons),
        # what stays on the CPU when Triton runs on a GPU elsewhere
        "gateway_core_s_per_photo": per_photo(cpu_gateways),
        "triton_core_s_per_photo": per_photo(cpu_tritons),
        "photo_p50_ms": pct(tally.photo_ms, 50),
        "photo_p95_ms": pct(tally.photo_ms, 95),
        "photo_mean_ms": round(statistics.fmean(tally.photo_ms), 1) if tally.photo_ms else None,
        "ack_p50_ms": pct(tally.ack_ms, 50),
        "ack_p95_ms": pct(tally.ack_ms, 95),
        "pipeline_p50_ms": pct(tally.pipeline_ms, 50),
        "pipeline_p95_ms": pct(tally.pipeline_ms, 95),
        "photos_unanswered_after_drain": unanswered,
        "results_duplicated": tally.duplicated,
        "previews_sent": tally.previews_sent,
        "preview_results": len(tally.preview_ms),
        "previews_dropped": tally.previews_dropped,
        "preview_p50_ms": pct(tally.preview_ms, 50),
        "preview_p95_ms": pct(tally.preview_ms, 95),
        "errors": tally.errors,
    }


def store_check(settings: Any) -> dict[str, int]:
    """Every photo the gateways stored, read back from the store: counted once each (a
    count's result is written once) or still unfinished (lost, when the level has drained)."""
    store = open_store(settings)
    try:
        totals: dict[str, int] = {}
        for _source, status, _code, n in store.count_totals():
            totals[status] = totals.get(status, 0) + n
    finally:
        store.close()
    return {"stored": sum(totals.values()), "counted": totals.get("done", 0),
            "unfinished": sum(totals.get(s, 0) for s in UNFINISHED),
            "failed": totals.get("failed", 0)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes")
    parser.add_argument("--tritons", type=int, default=1, help="embedded Tritons")
    parser.add_argument("--triton-url", default=os.environ.get("SHELFCOUNT_TRITON_URL", ""),
                        help="Tritons already running (comma-separated; e.g. on a GPU) instead "
                             "of embedded ones: their CPU is not counted (default: "
                             "SHELFCOUNT_TRITON_URL)")
    parser.add_argument("--database-url", default=os.environ.get(
        "SHELFCOUNT_DATABASE_URL") or os.environ.get("SHELFCOUNT_TEST_DATABASE_URL", ""),
        help="PostgreSQL server for several gateways (a fresh database is made on it); "
             "default: SHELFCOUNT_DATABASE_URL, else SHELFCOUNT_TEST_DATABASE_URL")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every level even after p95 passed 1 s")
    parser.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "load_bench.json"))
    args = parser.parse_args(argv)
    if args.gateways < 1 or args.tritons < 1:
        parser.error("--gateways and --tritons must be at least 1")
    if args.gateways > 1 and not args.database_url.startswith("postgresql"):
        parser.error("several gateways share one PostgreSQL: give --database-url "
                     "postgresql://... (or set SHELFCOUNT_TEST_DATABASE_URL)")
    return args


@contextmanager
def fleet_of(args: argparse.Namespace, walkers: int) -> Iterator[Fleet]:
    """M Tritons, then N gateway processes on one store, and a token per walker."""
    with ExitStack() as stack:
        tritons = []
        for _ in range(0 if args.triton_url else args.tritons):
            triton = EmbeddedTriton(load_settings().model_repository, start_timeout_s=180)
            triton.start()
            stack.callback(triton.stop)
            tritons.append(triton)
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="shelfcount-load-"))) / "data"
        data_dir.mkdir()
        import_catalog(REPO_ROOT / "gateway" / "demo" / "catalog.csv", data_dir)
        env = {"SHELFCOUNT_PHOTO_RATE_PER_MIN": "120"}
        if args.gateways > 1:
            env["SHELFCOUNT_DATABASE_URL"] = stack.enter_context(
                fresh_database(args.database_url))
        settings = load_settings(env=env, data_dir=data_dir)
        tokens = [device_add(settings, f"walker-{i}") for i in range(walkers)]
        urls: list[str] = []
        gateway_pids: list[int] = []
        triton_urls = args.triton_url or ",".join(t.url for t in tritons)
        for _ in range(args.gateways):
            proc, base = stack.enter_context(replica(data_dir, env, triton_urls, 180))
            urls.append(base.replace("http", "ws", 1) + "/ws/count")
            gateway_pids.append(proc.pid)
        yield Fleet(urls, gateway_pids, [t.pid for t in tritons if t.pid], settings, tokens)


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'N':>3} {'photos':>6} {'per s':>6} {'core-s':>6} {'gw':>6} {'p50 ms':>8} "
          f"{'p95 ms':>8} {'pipe p50':>8} {'prev':>5} {'drop':>5} {'prev p50':>8} "
          f"{'lost':>4} {'dup':>4}")
    for r in results:
        print(f"{r['walkers']:>3} {r['photos_sent']:>6} {r['photos_per_s']!s:>6} "
              f"{r['cpu_core_s_per_photo']!s:>6} {r['gateway_core_s_per_photo']!s:>6} "
              f"{r['photo_p50_ms']!s:>8} "
              f"{r['photo_p95_ms']!s:>8} {r['pipeline_p50_ms']!s:>8} {r['previews_sent']:>5} "
              f"{r['previews_dropped']:>5} {r['preview_p50_ms']!s:>8} "
              f"{r['photos_lost']:>4} {r['results_duplicated']:>4}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    pw, ph = (int(v) for v in args.photo_size.lower().split("x"))
    vw, vh = (int(v) for v in args.preview_size.lower().split("x"))
    photos = [encode_jpeg(render_scene(100 + i, width=pw, height=ph), quality=85)
              for i in range(6)]
    previews = [encode_jpeg(render_scene(200 + i, width=vw, height=vh), quality=70)
                for i in range(4)]
    results: list[dict[str, Any]] = []
    knee: int | None = None
    with fleet_of(args, max(levels)) as fleet:
        # Warm-up: first requests build ONNX sessions and caches inside each Triton.
        run_level(fleet, max(len(fleet.urls), args.tritons), photos, previews,
                  argparse.Namespace(**{**vars(args), "duration": 6.0}))
        for n in levels:
            before = store_check(fleet.settings)
            row = run_level(fleet, n, photos, previews, args)
            after = store_check(fleet.settings)
            row["photos_lost"] = after["unfinished"]  # acknowledged, not counted, drained
            row["photos_stored"] = after["stored"] - before["stored"]
            results.append(row)
            print(json.dumps(row), flush=True)
            p95 = row["photo_p95_ms"]
            if knee is None and (p95 is None or p95 > 1000.0 or
                                 row["photos_unanswered_after_drain"]):
                knee = n
                if not args.keep_going:
                    break
    summary = {
        "gateways": args.gateways, "tritons": args.triton_url or args.tritons,
        "photo_size": args.photo_size, "preview_size": args.preview_size,
        "photo_interval_s": args.photo_interval, "preview_fps": args.preview_fps,
        "duration_s": args.duration, "levels": results,
        "p95_passes_1s_at_walkers": knee,
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    print_table(results)
    print(f"{args.gateways} gateway(s), {args.tritons} Triton(s); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"photo p95 passes 1 s at N = {knee if knee is not None else 'not reached'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
