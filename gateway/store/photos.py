"""Photos on disk, addressed by the SHA-256 of their bytes (never in the database).

Content addressing makes the same photo sent twice one file, and lets the database refer to a
photo by a short stable key. Files are written to a temporary name, fsynced and renamed, so a
photo the gateway acknowledged is complete on disk even after a crash.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from gateway.files import write_atomic

_HASH = re.compile(r"[0-9a-f]{64}")


class PhotoStore:
    """A directory of photos: ``<root>/ab/cd/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not _HASH.fullmatch(digest):
            raise ValueError(f"not a photo hash: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its hash (a no-op when already stored, or when
        the stored copy was redacted: a re-sent original must not bring the faces back)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if _redacted(target).exists() or (target.exists() and
                                           target.stat().st_size == len(data)):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data, sync_dir=True)
        return digest

    def redact(self, digest: str, data: bytes) -> None:
        """Replace the photo ``digest`` names with ``data`` (people blurred), for good: the
        original bytes are gone from disk once this returns. The photo keeps its name (the
        hash of what the walker sent), which is how counts and re-sends refer to it."""
        target = self.path(digest)
        marker = _redacted(target)
        write_atomic(marker, b"", sync_dir=True)  # first: a re-sent original stays out
        write_atomic(target, data, sync_dir=True)

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
        _redacted(self.path(digest)).unlink(missing_ok=True)


def _redacted(path: Path) -> Path:
    return path.with_name(path.name + ".redacted")
