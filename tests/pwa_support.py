"""Support for the PWA's browser tests: fake camera, Chromium launch, a protocol test double.

Chromium gets a fake rear camera from a y4m file (the only way to feed a chosen picture to
getUserMedia headless); flags and facts come from /work/shared/notes/browser-testing.md.
``FakeGateway`` speaks the gateway's WebSocket protocol (issue 4) for unit-level UI tests only:
it lets the UI's queueing and rendering be tested without Triton. End-to-end tests use the
real gateway and the real Triton.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
PWA_DIR = REPO / "pwa"
ARTIFACTS = REPO / "artifacts" / "pwa"
CHROMIUM = "/usr/bin/chromium"

BASE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--mute-audio",
]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def camera_flags(y4m: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]


def write_y4m(path: Path, bgr: np.ndarray, frames: int = 1) -> Path:
    """Write a still as a y4m clip (I420) that Chromium's fake camera plays in a loop."""
    h, w = bgr.shape[:2]
    if w % 2 or h % 2:
        bgr = bgr[: h - h % 2, : w - w % 2]
        h, w = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n")
            f.write(i420)
    return path


def synthetic_shelf(width: int = 1280, height: int = 720, seed: int = 0) -> np.ndarray:
    """A plain picture with box-like shapes, for tests that only need *a* camera picture."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), (60, 70, 80), np.uint8)
    for row in range(2):
        y0 = 60 + row * height // 2
        cv2.rectangle(img, (0, y0 + height // 2 - 90), (width, y0 + height // 2 - 70),
                      (200, 200, 200), -1)
        for i in range(6):
            x0 = 40 + i * (width - 80) // 6
            color = tuple(int(c) for c in rng.integers(60, 220, 3))
            cv2.rectangle(img, (x0, y0 + 40), (x0 + (width - 80) // 6 - 20, y0 + height // 2 - 95),
                          color, -1)
    return img


def qr_picture(text: str, width: int = 1280, height: int = 720, box: int = 6) -> np.ndarray:
    """A QR code (as `shelfcount device add` shows it) in the middle of a dim picture."""
    import qrcode

    qr = qrcode.QRCode(border=2, box_size=box)
    qr.add_data(text)
    code = np.array(qr.make_image().convert("L"))
    img = np.full((height, width), 50, np.uint8)
    h, w = code.shape
    y0, x0 = (height - h) // 2, (width - w) // 2
    img[y0:y0 + h, x0:x0 + w] = code
    rot = cv2.getRotationMatrix2D((width / 2, height / 2), 7, 1.0)
    img = cv2.warpAffine(img, rot, (width, height), borderValue=50)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


@contextmanager
def browser_context(playwright: Any, y4m: Path, *, profile: Path | None = None,
                    device: str = "Pixel 7", **overrides: Any) -> Iterator[Any]:
    """A phone-emulating Chromium context with the fake camera and camera permission.

    With ``profile`` the context is persistent (needed for installability checks: a normal
    context counts as incognito). The gateway's Content-Security-Policy is bypassed by default
    because Playwright's string predicates are evaluated with eval; the app's own behaviour under
    the policy is checked with ``bypass_csp=False`` (tests/test_pwa_bays.py).
    """
    opts = dict(playwright.devices[device])
    opts.pop("default_browser_type", None)
    opts.update(permissions=["camera"], bypass_csp=True)
    opts.update(overrides)
    args = BASE_FLAGS + camera_flags(y4m)
    if profile is not None:
        ctx = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args, **opts)
        try:
            yield ctx
        finally:
            ctx.close()
        return
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    try:
        ctx = browser.new_context(**opts)
        try:
            yield ctx
        finally:
            ctx.close()
    finally:
        browser.close()


def shot(page: Any, name: str) -> Path:
    """Save a screenshot under artifacts/pwa/ (git-ignored) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def page_errors(page: Any) -> list[str]:
    """Collect uncaught page errors and console errors into a list the test can assert on."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    return errors


# --------------------------------------------------------------------------------------------
# Test double of the gateway's WebSocket protocol (unit-level UI tests only).

FAKE_TOKEN = "test-token-walker"
FAKE_LOCATION = "A-01-1"


def _fake_rows(location: str | None, n: int) -> list[dict[str, object]]:
    loc = location or FAKE_LOCATION
    return [
        {"Location": loc, "SKU": "SKU-10001", "Product_Description": "Cardboard carton",
         "Quantity_Counted": n - 1, "Unit_Price": "12.50", "Total_Value": f"{12.5 * (n - 1):.2f}",
         "Condition": "Good", "Expiration_Date": "", "Last_Updated": "2026-01-01T00:00:00Z",
         "Count_Confidence": 0.93},
        {"Location": loc, "SKU": "SKU-10002", "Product_Description": "Stretch film roll",
         "Quantity_Counted": 1, "Unit_Price": "8.90", "Total_Value": "8.90",
         "Condition": "Good", "Expiration_Date": "2027-03-31",
         "Last_Updated": "2026-01-01T00:00:00Z",
         "Count_Confidence": 0.41},
    ]


class FakeGateway:
    """Serves pwa/ and a protocol-faithful /ws/count; records what reached it.

    Idempotent on photo ids like the real gateway, so tests can assert "exactly once" by
    looking at ``counts`` (distinct stored photos) and ``messages`` (everything received).
    """

    def __init__(self) -> None:
        from flask import Flask, request, send_from_directory
        from flask_sock import Sock

        self.messages: list[dict[str, Any]] = []
        self.counts: dict[str, dict[str, Any]] = {}
        self.corrections: list[dict[str, Any]] = []
        self.box_fixes: list[dict[str, Any]] = []  # distinct (by correction id) boxes messages
        self.confirmed: list[str] = []
        self.tasks: list[dict[str, Any]] = []  # GET /api/v1/tasks answers these
        self.crop_bytes: dict[str, bytes] = {}  # photo id -> the code crops sent after it
        self.sessions = 0
        # While set, stored photos get no ack/result: a test can lose the tab "in flight".
        self.answer_photos = threading.Event()
        self.answer_photos.set()
        # Triton outage: photos are acked, told "queued", and counted when end_outage() runs.
        self.outage = False
        self.parked: list[tuple[Any, dict[str, Any]]] = []
        self.lock = threading.Lock()
        app = Flask(__name__)
        sock = Sock(app)

        @app.get("/")
        def index() -> Any:
            return send_from_directory(PWA_DIR, "index.html")

        @app.get("/<path:name>")
        def static_file(name: str) -> Any:
            return send_from_directory(PWA_DIR, name)

        @app.get("/api/v1/locations")
        def locations() -> Any:  # the location picker's catalog list, as the gateway answers
            if request.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
                return {"type": "error", "code": "unauthorized", "message": "bad token"}, 401
            return {"locations": [{"location": FAKE_LOCATION, "sku": "SKU-10001",
                                   "description": "Cardboard carton"},
                                  {"location": "A-01-2", "sku": "SKU-10002",
                                   "description": "Stretch film roll"},
                                  {"location": "B-01-1", "sku": "SKU-10003",
                                   "description": "Packing tape"}]}

        @app.get("/api/v1/products")
        def products() -> Any:  # the correction sheet's product search
            if request.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
                return {"type": "error", "code": "unauthorized", "message": "bad token"}, 401
            return {"products": [{"sku": "SKU-10001", "description": "Cardboard carton",
                                  "barcode": "4012345600018", "location": FAKE_LOCATION},
                                 {"sku": "SKU-10002", "description": "Stretch film roll",
                                  "barcode": "4012345600025", "location": "A-01-2"}]}

        @app.get("/api/v1/tasks")
        def tasks() -> Any:  # the location picker's "count today" list
            if request.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
                return {"type": "error", "code": "unauthorized", "message": "bad token"}, 401
            return {"tasks": self.tasks}

        @sock.route("/ws/count")
        def ws(conn: Any) -> None:
            self._serve(conn)

        self.app = app
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def _photo_bytes(self, msg: dict[str, Any], data: bytes) -> bytes:
        """The photo's JPEG; code crops that follow it (PROTOCOL.md "Slow links") are kept."""
        crops = sum(p["bytes"] for p in (msg.get("crops") or {}).get("parts", []))
        if crops:
            with self.lock:
                self.crop_bytes[msg["id"]] = data[len(data) - crops:]
            data = data[:len(data) - crops]
        return data

    def _serve(self, conn: Any) -> None:
        hello = json.loads(conn.receive())
        with self.lock:
            self.messages.append(hello)
        if hello.get("type") != "hello" or hello.get("token") != FAKE_TOKEN:
            conn.send(json.dumps({"type": "error", "code": "unauthorized",
                                  "message": "unknown token"}))
            conn.close(reason=1008)
            return
        with self.lock:
            session = hello.get("session")
            if not session:
                self.sessions += 1
                session = f"S{self.sessions}"
        conn.send(json.dumps({"type": "welcome", "session": session, "currency": "EUR"}))
        while True:
            text = conn.receive()
            if text is None:
                return
            msg = json.loads(text)
            with self.lock:
                self.messages.append(msg)
            kind = msg.get("type")
            if kind == "photo":
                data = self._photo_bytes(msg, conn.receive())
                frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if frame is None:
                    conn.send(json.dumps({"type": "error", "id": msg["id"], "code": "not_an_image",
                                          "message": "not an image"}))
                    continue
                result = self._result(msg, frame)
                if not msg.get("preview"):
                    with self.lock:
                        stored = self.counts.setdefault(msg["id"], {**msg, "result": result})
                    result = stored["result"]
                    if not self.answer_photos.is_set():
                        continue
                    conn.send(json.dumps({"type": "ack", "id": msg["id"]}))
                    if self.outage:
                        with self.lock:
                            self.parked.append((conn, result))
                        conn.send(json.dumps({
                            "type": "error", "id": msg["id"], "code": "triton_unavailable",
                            "queued": True, "message": "stored; counted when Triton is back"}))
                        continue
                conn.send(json.dumps(result))
            elif kind == "correct":
                with self.lock:
                    self.corrections.append(msg)
                conn.send(json.dumps({"type": "corrected", "id": msg["id"]}))
            elif kind == "boxes":
                conn.send(json.dumps({"type": "boxes_saved", "id": msg["id"],
                                      "correction_id": msg.get("correction_id")}))
                conn.send(json.dumps(self._boxes_result(msg)))
            elif kind == "confirm":
                with self.lock:
                    if msg["id"] not in self.confirmed:
                        self.confirmed.append(msg["id"])
                conn.send(json.dumps({"type": "confirmed", "id": msg["id"]}))
            elif kind == "ping":
                conn.send(json.dumps({"type": "pong"}))

    def _boxes_result(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Like the gateway: the photo's lines follow the person's boxes (idempotent on the
        correction id)."""
        with self.lock:
            if all(b.get("correction_id") != msg.get("correction_id") for b in self.box_fixes):
                self.box_fixes.append(msg)
            stored = self.counts[msg["id"]]["result"]
        n = {sku: sum(1 for b in msg["boxes"] if b[4] == sku) for sku in ("SKU-10001",
                                                                            "SKU-10002")}
        rows = _fake_rows(stored["rows"][0]["Location"], 2)
        for row in rows:
            row["Quantity_Counted"] = n[str(row["SKU"])]
        return {**stored, "rows": rows, "box_sources": ["person"] * len(msg["boxes"]),
                "boxes": [[*b[:4], 1.0, b[4]] for b in msg["boxes"]]}

    @staticmethod
    def _result(msg: dict[str, Any], frame: np.ndarray) -> dict[str, Any]:
        h, w = frame.shape[:2]
        boxes = [[w * (0.1 + 0.15 * i), h * 0.2, w * (0.22 + 0.15 * i), h * 0.45, 0.9,
                  "SKU-10001" if i < 4 else "SKU-10002"] for i in range(5)]
        return {"type": "result", "id": msg["id"], "rows": _fake_rows(msg.get("location"), 5),
                "boxes": boxes, "codes": [{"Format": "Code128", "Text": FAKE_LOCATION}],
                # Two items show their own code; three are named after the bin (a guess).
                "box_sources": ["own", "home", "home", "home", "own"],
                "timings_ms": {"total": 5.0}, "width": w, "height": h,
                # the shelf audit: an empty facing after the fifth item, the fifth misplaced
                "findings": [
                    {"type": "gap", "box": [w * 0.72, h * 0.2, w * 0.84, h * 0.45], "sku": "",
                     "expected_sku": "SKU-10001", "confidence": 0.9},
                    {"type": "misplaced", "box": boxes[4][:4], "sku": "SKU-10002",
                     "expected_sku": "SKU-10001", "confidence": 0.95},
                    {"type": "extra", "box": boxes[4][:4], "sku": "SKU-10002",
                     "expected_sku": "", "confidence": 0.95}]}

    def start(self) -> str:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_port}/"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def end_outage(self) -> None:
        """Triton is back: send the parked results (as the real gateway's retry loop does)."""
        with self.lock:
            self.outage = False
            parked, self.parked = self.parked, []
        for conn, result in parked:
            conn.send(json.dumps(result))

    def full_photos(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m.get("type") == "photo" and not m.get("preview")]



# --------------------------------------------------------------------------------------------
# The real gateway (end-to-end tests and the benchmark).


@contextmanager
def real_gateway(triton_url: str, data_dir: Path) -> Iterator[tuple[Any, str]]:
    """The gateway exactly as ``shelfcount serve`` runs it (on a free port, demo catalog
    imported, one walker paired); yields (GatewayServer, walker token)."""
    from gateway.catalog import import_catalog
    from gateway.config import load_settings
    from gateway.server.serve import GatewayServer, device_add

    settings = load_settings(data_dir=data_dir, host="127.0.0.1", port=0, grpc_port=0)
    import_catalog(REPO / "gateway" / "demo" / "catalog.csv", data_dir)
    token = device_add(settings, "walker-pwa-test")
    server = GatewayServer(settings, triton_url=triton_url).start()
    try:
        yield server, token
    finally:
        server.stop()


def api_get(base_url: str, path: str, token: str) -> bytes:
    """GET a gateway REST path with the walker's bearer token."""
    import urllib.request

    req = urllib.request.Request(f"{base_url}/api/v1{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.read()


def shelf_camera(path: Path, width: int = 1920, height: int = 1080) -> tuple[Path, Any]:
    """A y4m fake camera showing a rendered shelf scene; returns (y4m path, scene truth).

    The first easy scene (two SKUs, nothing cut by the frame) whose every counted item carries
    a label whose barcode decodes on the still: its true counts are then what the gateway can
    establish, with or without the item detector, so a test may demand them exactly.
    """
    from gateway.pipeline.codes import read_codes
    from gateway.training.scenes import render_scene

    for seed in range(1, 200):
        scene = render_scene(seed, width=width, height=height, n_items=10, difficulty=0.0,
                             style="warehouse")
        counted = [it for it in scene.items if it.counted]
        if (len(scene.counts) != 2 or not scene.location or any(it.cut for it in scene.items)
                or not all(it.labelled for it in counted)):
            continue
        gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
        texts = [c.text for c in read_codes(gray)]
        if scene.location in texts and len(texts) - 1 >= len(counted):
            return write_y4m(path, scene.image), scene
    raise RuntimeError("no fully readable scene in seeds 1-199")


def confirm_bay(page: Any, timeout_ms: int = 40000) -> None:
    """Tap Confirm (twice when the app asks for a second look), then wait until the phone
    shows the bay confirmed: the confirmation waits 10 s on the phone for an undo first."""
    page.click("#confirm")
    page.wait_for_timeout(100)
    if page.is_visible("#confirm-why"):
        page.click("#confirm")
    page.wait_for_function(
        "document.getElementById('result-status').textContent.includes('confirmed')",
        timeout=timeout_ms)
