"""The gateway on PostgreSQL (SHELFCOUNT_DATABASE_URL), end to end, when a server is given."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from gateway.store.types import utcnow

from .server_support import running_gateway, shelf_jpeg

PG_URL = os.environ.get("SHELFCOUNT_TEST_DATABASE_URL", "")

pytestmark = pytest.mark.triton


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A database URL whose search_path is a fresh schema (dropped afterwards)."""
    if not PG_URL:
        pytest.skip("SHELFCOUNT_TEST_DATABASE_URL is not set: PostgreSQL gateway test skipped")
    import psycopg

    schema = f"gw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_gateway_counts_and_confirms_on_postgres(triton, tmp_path: Path,
                                                 pg_database_url: str) -> None:
    with running_gateway(tmp_path, triton.url, database_url=pg_database_url) as server:
        assert server.services.store.is_postgres
        assert not (tmp_path / "shelfcount.db").exists()
        token = server.services.store.add_device("walker", "walker")[1]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "pg-1"}
        files = {"photo": ("shelf.jpg", shelf_jpeg(50), "image/jpeg")}
        body = requests.post(server.base_url + "/api/v1/counts", headers=headers, files=files,
                             timeout=120).json()
        assert body["type"] == "result" and body["rows"]
        confirm = requests.post(f"{server.base_url}/api/v1/counts/{body['count_id']}/confirm",
                                headers=headers, timeout=10)
        assert confirm.status_code == 200
        (entry,) = server.services.store.outbox_due("sheets", utcnow(), 10)
        assert entry.count_id == body["count_id"] and entry.rows == body["rows"]
