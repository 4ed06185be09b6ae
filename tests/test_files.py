"""Atomic writes: a failed write leaves the old file whole and no temporary behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.files import write_atomic


def test_write_atomic_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "catalog.csv"
    target.write_bytes(b"old")
    write_atomic(target, b"new", sync_dir=True)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.csv"]

def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "catalog.csv"
    target.write_bytes(b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gateway.files.os.fsync", failing_fsync)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.csv"]
