"""Devices: pairing (a token per phone, stored hashed), lookup by token, revocation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import func, select, update

from .engine import Database
from .tables import devices
from .types import ROLES, Device, StoreError, from_ts, to_ts, utcnow


def hash_token(token: str) -> str:
    """Tokens are stored hashed: a leaked database does not leak working tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


class DeviceRepository:
    """The ``devices`` table."""

    db: Database

    def add_device(self, name: str, role: str = "walker") -> tuple[Device, str]:
        """Create a device (or re-pair an existing one) and return it with a fresh token.

        Re-adding a name replaces its token: the old phone stops working, which is what a
        manager wants when a phone is lost or re-paired.
        """
        name = name.strip()
        if not name or len(name) > 100:
            raise StoreError("bad_request", "device name must be 1-100 characters")
        if role not in ROLES:
            raise StoreError("bad_request", f"role must be one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        now = to_ts(utcnow())
        with self.db.tx() as conn:
            found = conn.execute(select(devices.c.id, devices.c.created_at)
                                 .where(devices.c.name == name)).first()
            if found:
                device_id, created = found
                conn.execute(update(devices).where(devices.c.id == device_id).values(
                    role=role, token_hash=hash_token(token), revoked_at=None, token_at=now))
            else:
                device_id, created = new_id(), now
                conn.execute(devices.insert().values(
                    id=device_id, name=name, role=role, token_hash=hash_token(token),
                    created_at=now, token_at=now))
        device = Device(device_id, name, role, from_ts(created),  # type: ignore[arg-type]
                        token_at=from_ts(now))
        return device, token

    def device_by_token(self, token: str) -> Device | None:
        if not token:
            return None
        return self._device_where((devices.c.token_hash == hash_token(token))
                                  & devices.c.revoked_at.is_(None))

    def device_by_name(self, name: str) -> Device | None:
        return self._device_where(devices.c.name == name)

    def revoke_device(self, name: str) -> Device:
        """Take a device's token away for good (its counts stay); re-pairing gives a new one."""
        now = to_ts(utcnow())
        with self.db.tx() as conn:
            device_id = conn.execute(select(devices.c.id).where(devices.c.name == name)).scalar()
            if device_id is None:
                raise StoreError("not_found", f"no device named {name!r}")
            conn.execute(update(devices).where(devices.c.id == device_id).values(
                revoked_at=func.coalesce(devices.c.revoked_at, now),
                token_hash=f"revoked:{device_id}:{secrets.token_hex(8)}"))
            return _device(conn.execute(select(devices).where(devices.c.id == device_id))
                           .mappings().one())

    def touch_device(self, device_id: str) -> None:
        """Record that a device was just seen (the caller limits how often)."""
        with self.db.tx() as conn:
            conn.execute(update(devices).where(devices.c.id == device_id)
                         .values(last_seen=to_ts(utcnow())))

    def list_devices(self) -> list[Device]:
        with self.db.tx() as conn:
            rows = conn.execute(select(devices).order_by(devices.c.name)).mappings()
            return [_device(r) for r in rows]

    def _device_where(self, condition: Any) -> Device | None:
        with self.db.tx() as conn:
            found = conn.execute(select(devices).where(condition)).mappings().first()
        return None if found is None else _device(found)


def _device(r: Any) -> Device:
    return Device(r["id"], r["name"], r["role"], from_ts(r["created_at"]),  # type: ignore[arg-type]
                  from_ts(r["last_seen"]), from_ts(r["revoked_at"]), from_ts(r["token_at"]))
