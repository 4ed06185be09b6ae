"""Helpers for the gateway tests: start real gateways on free ports, talk WebSocket to them."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simple_websocket import Client, ConnectionClosed

from gateway.catalog import import_catalog
from gateway.config import REPO_ROOT, load_settings
from gateway.server import GatewayServer, device_add

DEMO_CATALOG = REPO_ROOT / "gateway" / "demo" / "catalog.csv"


@functools.cache
def shelf_jpeg(seed: int, width: int = 1280, height: int = 720) -> bytes:
    """A synthetic shelf photo with real barcodes (cached: rendering costs CPU)."""
    from gateway.training.scenes import encode_jpeg, render_scene

    return encode_jpeg(render_scene(seed, width=width, height=height))


def gateway_settings(data_dir: Path, triton_url: str, env: dict[str, str] | None = None,
                     **overrides: Any) -> Any:
    """Settings for a test gateway; ``env`` holds SHELFCOUNT_* variables (e.g. sinks')."""
    values: dict[str, Any] = dict(data_dir=data_dir, host="127.0.0.1", port=0, grpc_port=0,
                                  triton_url=triton_url, triton_retry_s=0.5)
    values.update(overrides)
    return load_settings(env=env or {}, **values)


@contextmanager
def running_gateway(data_dir: Path, triton_url: str, env: dict[str, str] | None = None,
                    model_loader: Callable[[str], None] | None = None,
                    **overrides: Any) -> Iterator[GatewayServer]:
    """A real gateway (HTTP + WS + gRPC) on free loopback ports; always stopped afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "catalog.csv").exists():
        import_catalog(DEMO_CATALOG, data_dir)
    server = GatewayServer(gateway_settings(data_dir, triton_url, env, **overrides),
                           triton_url=triton_url, model_loader=model_loader)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_token(data_dir: Path, name: str, role: str = "walker") -> str:
    return device_add(load_settings(env={}, data_dir=data_dir), name, role)


class WsClient:
    """A phone: JSON text messages and binary photos over /ws/count."""

    def __init__(self, server: GatewayServer, **kwargs: Any) -> None:
        url = server.base_url.replace("http", "ws", 1) + "/ws/count"
        self.ws = Client.connect(url, **kwargs)
        self.inbox: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def hello(self, token: str, session: str | None = None) -> dict[str, Any]:
        self.send({"type": "hello", "token": token, "session": session, "device": "pytest"})
        return self.recv()

    def photo(self, photo_id: str, data: bytes, **fields: Any) -> None:
        self.send({"type": "photo", "id": photo_id, **fields})
        self.send(data)

    def recv(self, timeout: float = 60.0) -> dict[str, Any]:
        if self.inbox:
            return self.inbox.pop(0)
        data = self.ws.receive(timeout=timeout)
        if data is None:
            raise TimeoutError("no message from the gateway")
        return json.loads(data)

    def wait_for(self, match: Callable[[dict[str, Any]], bool],
                 timeout: float = 120.0) -> dict[str, Any]:
        """The first message matching ``match``; others are kept for later ``recv`` calls."""
        deadline = time.monotonic() + timeout
        for i, message in enumerate(self.inbox):
            if match(message):
                return self.inbox.pop(i)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message; got {self.inbox}")
            data = self.ws.receive(timeout=left)
            if data is None:
                continue
            message = json.loads(data)
            if match(message):
                return message
            self.inbox.append(message)

    def closed_within(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                data = self.ws.receive(timeout=0.2)
                if data is not None:
                    self.inbox.append(json.loads(data))
                if not self.ws.connected:
                    return True
        except ConnectionClosed:
            return True
        return False

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already closed by the server
            pass


def outcome(photo_id: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the final result/error of a photo (not the queued notice)."""
    return lambda m: m.get("id") == photo_id and (
        m["type"] == "result" or (m["type"] == "error" and not m.get("queued"))
    )
