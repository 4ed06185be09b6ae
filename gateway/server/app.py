"""The Flask application: REST blueprint, WebSocket route, health, and the PWA's files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask_sock import Sock
from werkzeug.exceptions import ClientDisconnected, HTTPException, NotFound

from gateway.schema import ApiErrorBody

from . import ws
from .errors import ApiError
from .openapi import operation
from .rest import api
from .services import Services
from .stock_api import stock_api

log = logging.getLogger("shelfcount.gateway.http")

RECEIVE_BYTES = 256 * 1024  # socket reads for WebSocket frames (default 4 KiB is slow for JPEGs)
PING_INTERVAL_S = 25.0  # finds phones that vanished without closing
# Every response: the PWA runs only its own files (no inline script, no framing), pictures are
# blob: URLs of photos, the socket is the gateway's own.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                               "style-src 'self'; "
                               "img-src 'self' blob: data:; connect-src 'self' ws: wss:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _register_probes(app: Flask, services: Services) -> None:
    """What orchestrators and monitoring ask, without a token: readiness and metrics (counts
    and latencies, no content)."""

    @operation("Readiness of gateway, Triton and store (no token; also served at /healthz). "
               "probe=ready: 200 while photos can be stored and acknowledged (the store "
               "answers; photos wait for Triton), for an orchestrator's readiness probe; "
               "probe=live: 200 while the process serves requests, for its liveness probe",
               public=True, query={"probe": {"type": "string", "enum": ["ready", "live"]}},
               responses={200: ({"type": "object"}, "all ready"),
                          400: (ApiErrorBody, "unknown probe"),
                          503: ({"type": "object"}, "something is not ready")})
    def healthz() -> tuple[Response, int]:
        probe = request.args.get("probe", "")
        if probe == "live":  # touches nothing: a slow database must not restart the pod
            return jsonify({"status": "ok", "gateway": "ok"}), 200
        if probe not in ("", "ready"):
            return jsonify(ApiError("bad_request", "probe must be ready or live").to_json()), 400
        ok, body = services.health(models_too=probe != "ready")
        if probe == "ready":
            ok = body["store"] == "ok"
        return jsonify(body), 200 if ok else 503

    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/api/v1/healthz", "api_healthz", healthz)

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = services.metrics.render()
        return Response(body, content_type=content_type)


def create_app(settings: Any, services: Services) -> Flask:
    """Build the app around already-constructed ``services`` (tests pass their own)."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_message_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_message_bytes
    app.config["SOCK_SERVER_OPTIONS"] = {
        "max_message_size": settings.max_message_bytes,
        "receive_bytes": RECEIVE_BYTES,
        "ping_interval": PING_INTERVAL_S,
    }
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["shelfcount"] = services
    app.register_blueprint(api)
    app.register_blueprint(stock_api)
    sock = Sock(app)
    pwa_dir = Path(settings.pwa_dir).resolve()

    @sock.route("/ws/count")
    def ws_count(socket: Any) -> None:
        ws.handle(socket, services)

    @app.before_request
    def no_websocket_compression() -> None:
        # permessage-deflate is inflated before any size check (1 MiB on the wire became
        # 1 GiB); JPEGs do not compress anyway. Without the offer the handshake declines it,
        # and a frame that claims compression is a protocol error that ends the connection.
        if request.path == "/ws/count":
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)

    @app.before_request
    def limit_connections() -> Response | None:
        if request.path.startswith(("/api/", "/ws/")) and request.path != "/api/v1/healthz":
            if not services.connections.acquire():
                response = jsonify(ApiError("too_many_connections",
                                            "the gateway is at its connection limit").to_json())
                response.status_code = 503
                response.headers["Retry-After"] = "5"
                return response
            g.holds_connection = True
        return None

    @app.teardown_request
    def release_connection(_exc: BaseException | None) -> None:
        if g.pop("holds_connection", False):
            services.connections.release()

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.tls:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    _register_error_handlers(app)

    _register_probes(app, services)

    @app.get("/")
    def pwa_index() -> Response:
        return _pwa_file(pwa_dir, "index.html")

    @app.get("/<path:filename>")
    def pwa_files(filename: str) -> Response:
        return _pwa_file(pwa_dir, filename)

    return app


def _pwa_file(root: Path, filename: str) -> Response:
    """A file of the PWA (send_from_directory refuses paths leaving ``root``)."""
    if not root.is_dir():
        raise NotFound("the PWA is not installed")
    response = send_from_directory(root, filename)
    if filename in ("index.html", "sw.js", "service-worker.js", "manifest.webmanifest"):
        # The app shell must update when the gateway does; the service worker caches it.
        response.headers["Cache-Control"] = "no-cache"
    return response


def _register_error_handlers(app: Flask) -> None:
    """Every error as the protocol's JSON error shape (never an HTML page or a traceback)."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(TimeoutError, _slow_body)
    app.register_error_handler(ClientDisconnected, _slow_body)
    app.register_error_handler(Exception, _unexpected)


def _api_error(exc: ApiError) -> tuple[Response, int]:
    response = jsonify(exc.to_json())
    if exc.code == "unauthorized":
        response.headers["WWW-Authenticate"] = "Bearer"
    retry = exc.extra.get("retry_after_s")
    if retry is not None:
        response.headers["Retry-After"] = str(max(1, round(float(str(retry)))))
    return response, exc.status


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    code = {413: "too_large", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.code or 500, "bad_request")
    return jsonify({"type": "error", "code": code, "message": exc.description}), exc.code or 500


def _slow_body(_exc: Exception) -> tuple[Response, int]:
    # A body that stopped arriving (SHELFCOUNT_READ_TIMEOUT_S per read; Werkzeug reports
    # a failed read of a sized body as ClientDisconnected): the client's doing, not ours.
    response = jsonify(ApiError("request_timeout", "the request body stopped arriving",
                                408).to_json())
    response.headers["Connection"] = "close"
    return response, 408


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return jsonify({"type": "error", "code": "internal_error",
                    "message": "internal error"}), 500
