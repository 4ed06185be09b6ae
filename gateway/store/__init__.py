"""Durable storage of the gateway: the count database and the photo directory.

``open_store(settings)`` picks PostgreSQL when ``settings.database_url`` is set, else SQLite
at ``<data_dir>/shelfcount.db``. Photos live under ``<data_dir>/photos`` (see PhotoStore).
Sinks read confirmed bays through ``Store.outbox_due`` / ``outbox_mark_delivered`` /
``outbox_mark_failed`` (entries are :class:`OutboxEntry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .db import Store, hash_token
from .photos import PhotoStore
from .types import (
    ROLES,
    Correction,
    CountRecord,
    Device,
    OutboxEntry,
    Session,
    StoreError,
)

__all__ = [
    "ROLES",
    "CountRecord",
    "Correction",
    "Device",
    "OutboxEntry",
    "PhotoStore",
    "Session",
    "Store",
    "StoreError",
    "hash_token",
    "open_photos",
    "open_store",
]


def open_store(settings: Any) -> Store:
    """The store the gateway, the CLI and the sinks share."""
    if settings.database_url:
        return Store(settings.database_url)
    return Store(Path(settings.data_dir) / "shelfcount.db")


def open_photos(settings: Any) -> Any:
    """The photo store: a bucket when SHELFCOUNT_PHOTO_STORE names one (s3://...), else
    ``<data_dir>/photos`` on disk. Both offer put / get / exists / delete / redact."""
    if settings.photo_store:
        from .photos_s3 import S3PhotoStore

        return S3PhotoStore.from_settings(settings.photo_store, dict(settings.extra))
    return PhotoStore(Path(settings.data_dir) / "photos")
