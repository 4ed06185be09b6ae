"""Gateway replicas as their own processes (``shelfcount serve``), for the replica tests and
``make bench-load --gateways N``: what a deployment runs, one process per replica."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from gateway.inference.embedded import free_ports

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def replica(data_dir: Path, env: dict[str, str], triton_url: str,
            start_timeout_s: float = 90.0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``shelfcount serve`` in its own process; yields (process, base URL). Its log goes to
    ``gw-<port>.log`` beside ``data_dir``; it is stopped (SIGTERM, then SIGKILL) afterwards."""
    http, grpc = free_ports(2)
    log_path = data_dir.parent / f"gw-{http}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(http),
         "--grpc-port", str(grpc), "--data-dir", str(data_dir)],
        env={**os.environ, **env, "SHELFCOUNT_TRITON_URL": triton_url}, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"))  # noqa: SIM115
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError(log_path.read_text()[-3000:]) from None
                time.sleep(0.3)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new PostgreSQL database on ``server_url``'s server (dropped afterwards); yields its
    URL."""
    import psycopg

    name = f"replicas_{uuid.uuid4().hex[:10]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children so far (the
    processes' own accounting; Triton's Python-backend stubs are its children)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            try:
                times: Any = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total
