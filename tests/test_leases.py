"""Count leases between gateway replicas on one database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from gateway.store import Store
from gateway.store.types import utcnow


def queued(store: Store, n: int) -> list[str]:
    device, _ = store.add_device("phone-leases")
    session = store.create_session(device)
    ids = []
    for k in range(n):
        record, _ = store.add_count(session_id=session.id, device_id=device.id,
                                    client_id=f"p{k}", source="test", location=None,
                                    photo_hash=f"{k:064x}", photo_bytes=1)
        ids.append(record.id)
    return ids


def test_one_replica_at_a_time_and_a_dead_ones_photos_go_to_another(store: Store) -> None:
    a, b = queued(store, 2)
    now = utcnow()
    assert store.claim_count(a, "gw-1", 30, now)
    assert store.claim_count(a, "gw-1", 30, now)  # keeping one's own lease
    assert not store.claim_count(a, "gw-2", 30, now)
    # gw-2 polls: only the photo nobody holds
    assert store.claim_expired("gw-2", 30, now=now) == [b]
    assert store.claim_expired("gw-3", 30, now=now) == []
    # gw-1 keeps renewing; gw-2 stops (it died): 31 s later only its photo is free
    later = now + timedelta(seconds=20)
    assert store.renew_leases([a], "gw-1", 30, later) == {a}
    assert store.claim_expired("gw-3", 30, now=now + timedelta(seconds=31)) == [b]
    assert store.renew_leases([b], "gw-2", 30, now + timedelta(seconds=32)) == set()
    # a finished count cannot be taken, and finishing twice counts once
    assert store.finish_count(a, {"rows": []}, once=True)
    assert not store.finish_count(a, {"rows": []}, once=True)
    assert not store.claim_count(a, "gw-2", 30, now + timedelta(days=1))
    assert store.lease_owners() == {"gw-3"}
    assert store.take_over("gw-3", "gw-4", 30) == [b] and store.lease_owners() == {"gw-4"}
    store.release_leases("gw-4")
    assert store.claim_count(b, "gw-5", 30)  # released: free at once
