"""Two gateway processes on one PostgreSQL and one photo folder: photos acknowledged by a
replica that is then killed (-9) are counted by the other, each once, and the survivor answers
for the whole session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.catalog import import_catalog
from gateway.config import load_settings
from gateway.inference.embedded import free_ports
from gateway.server.serve import device_add

from .conftest import PG_URL
from .server_support import DEMO_CATALOG, shelf_jpeg

pytestmark = pytest.mark.triton
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for the replicas (dropped afterwards)."""
    if not PG_URL:
        pytest.skip("SHELFCOUNT_TEST_DATABASE_URL is not set: the replica test needs PostgreSQL")
    import psycopg

    name = f"replicas_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def replica(data_dir: Path, env: dict[str, str], triton_url: str) -> Iterator[Any]:
    """``shelfcount serve`` in its own process; yields (process, base URL)."""
    http, grpc = free_ports(2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(http),
         "--grpc-port", str(grpc), "--data-dir", str(data_dir)],
        env={**os.environ, **env, "SHELFCOUNT_TRITON_URL": triton_url}, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=open(data_dir.parent / f"gw-{http}.log", "wb"))  # noqa: SIM115
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    log = (data_dir.parent / f"gw-{http}.log").read_text()[-3000:]
                    raise RuntimeError(log) from None
                time.sleep(0.3)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_killed_replicas_photos_are_counted_by_the_other_once(
        triton, database: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    import_catalog(DEMO_CATALOG, data_dir)
    env = {"SHELFCOUNT_DATABASE_URL": database, "SHELFCOUNT_LEASE_S": "3"}
    token = device_add(load_settings(env=env, data_dir=data_dir), "walker-replicas")
    headers = {"Authorization": f"Bearer {token}"}
    (dead,) = free_ports(1)  # replica A's Triton is away: its photos wait, leased by A
    with replica(data_dir, env, f"127.0.0.1:{dead}") as (a, a_url), \
            replica(data_dir, env, triton.url) as (_, b_url):
        acked, session = [], None
        for seed in (11, 12, 13):
            resp = requests.post(f"{a_url}/api/v1/counts", headers=headers,
                                 files={"photo": ("bay.jpg", shelf_jpeg(seed), "image/jpeg")},
                                 data={"id": str(uuid.uuid4())}, timeout=90)
            assert resp.status_code == 202, resp.text  # stored; A waits for its Triton
            acked.append(resp.json()["count_id"])
            session = resp.json()["session"]
        time.sleep(4)  # B must not take photos A still holds (A renews its leases)
        counts = requests.get(f"{b_url}/api/v1/sessions/{session}", headers=headers,
                              timeout=10).json()["counts"]
        assert {c["status"] for c in counts} == {"waiting"}
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=10)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = requests.get(f"{b_url}/api/v1/sessions/{session}", headers=headers,
                                  timeout=10).json()["counts"]
            if len(counts) == 3 and all(c["status"] == "done" for c in counts):
                break
            time.sleep(0.5)
        assert sorted(c["id"] for c in counts) == sorted(acked)
        assert all(c["status"] == "done" and c["rows"] for c in counts), counts
