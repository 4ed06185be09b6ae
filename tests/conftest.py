"""Shared pytest fixtures.

Triton: ``triton`` starts the real embedded tritonserver once per test session (or uses the
server at ``SHELFCOUNT_TRITON_URL``) and ``inference`` is a ready :class:`InferenceClient` on
it. Tests that only need OCR or detection should ask for ``inference``.

Store: ``store`` is the count store on SQLite and, with ``SHELFCOUNT_TEST_DATABASE_URL``, on
PostgreSQL (a schema of its own per test).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.inference.client import InferenceClient
from gateway.inference.embedded import EmbeddedTriton, start_triton
from gateway.inference.repository import prepare
from gateway.store import Store

PG_URL = os.environ.get("SHELFCOUNT_TEST_DATABASE_URL", "")


@dataclass(frozen=True)
class TritonHandle:
    """What the ``triton`` fixture yields: the gRPC URL, the client, and the embedded server
    (None when the session uses an external one)."""

    url: str
    client: InferenceClient
    server: EmbeddedTriton | None


@pytest.fixture(scope="session")
def triton() -> Iterator[TritonHandle]:
    settings = load_settings()
    if not settings.triton_url:
        ocr_rec = settings.model_repository / "ocr_rec" / "1"
        if not (ocr_rec / "keys.txt").is_file() or not (ocr_rec / "model.onnx").is_file():
            prepare(settings.model_repository)  # same as `make models`
    url, server = start_triton(settings)
    client = InferenceClient(url, timeout_s=settings.triton_request_timeout_s)
    try:
        yield TritonHandle(url=url, client=client, server=server)
    finally:
        client.close()
        if server is not None:
            server.stop()


@pytest.fixture(scope="session")
def inference(triton: TritonHandle) -> InferenceClient:
    return triton.client


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        db = Store(tmp_path / "store.db")
        yield db
        db.close()
        return
    if not PG_URL:
        pytest.skip("SHELFCOUNT_TEST_DATABASE_URL is not set: PostgreSQL store tests skipped")
    db = Store(PG_URL, schema=f"test_{uuid.uuid4().hex[:12]}")
    try:
        yield db
    finally:
        db.drop_schema()
        db.close()
