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


def confirmed(store: Store, n: int) -> list[str]:
    """``n`` confirmed bays: outbox entries; returns their ids, oldest first."""
    device, _ = store.add_device("walker-outbox", "walker")
    session = store.create_session(device)
    for k in range(n):
        record, _ = store.add_count(session_id=session.id, device_id=device.id,
                                    client_id=f"c{k}", source="test", location=f"A-1-{k}",
                                    photo_hash=f"{k:064x}", photo_bytes=1)
        store.finish_count(record.id, {"rows": [{"Location": f"A-1-{k}", "SKU": "S",
                                                 "Quantity_Counted": k}], "boxes": []})
        store.confirm_count(record.id, device)
    return [e.id for e in store.outbox_entries(session.id)]


def test_outbox_deliveries_are_claimed_by_one_replica_at_a_time(store: Store) -> None:
    ids = confirmed(store, 3)
    now = utcnow()
    first = store.outbox_claim("folder", "gw-1", now, 2, 30)
    assert [e.id for e in first] == ids[:2]
    # another replica polling at once gets only what gw-1 did not take; the sinks apart
    assert [e.id for e in store.outbox_claim("folder", "gw-2", now, 10, 30)] == ids[2:]
    assert store.outbox_claim("folder", "gw-3", now, 10, 30) == []
    assert len(store.outbox_claim("tryton", "gw-3", now, 10, 30)) == 3
    # a claim is not a delivery attempt: no retries counted, nothing delivered yet
    assert store.outbox_totals(["folder"]) == {"folder": {"delivered": 0, "waiting": 3,
                                                          "retries": 0}}
    store.outbox_mark_delivered(ids[0], "folder")
    store.outbox_mark_failed(ids[1], "folder", "HTTP 503", now + timedelta(seconds=5))
    # the failed one is due again 5 s later, to anyone (a mark ends the claim); ids[2] is
    # still gw-2's until its lease runs out
    later = now + timedelta(seconds=6)
    assert [e.id for e in store.outbox_claim("folder", "gw-3", later, 10, 30)] == [ids[1]]
    store.outbox_renew([ids[2]], "folder", "gw-2", 30, later)  # gw-2 alive: renews
    assert store.outbox_claim("folder", "gw-4", later + timedelta(seconds=29), 10, 30) == []
    # gw-2 and gw-3 die: 31 s after their last renewal their claims are free
    store.outbox_renew([ids[1]], "folder", "gw-3", 30, later + timedelta(seconds=10))
    after = later + timedelta(seconds=31)
    assert [e.id for e in store.outbox_claim("folder", "gw-4", after, 10, 30)] == [ids[2]]
    assert store.outbox_owners() == {"gw-3", "gw-4"}
    store.outbox_release("gw-4")
    assert store.outbox_owners() == {"gw-3"}
    assert store.outbox_status(ids[1])["folder"]["attempts"] == 1
    assert store.outbox_totals(["folder"])["folder"] == {"delivered": 1, "waiting": 2,
                                                         "retries": 0}


def test_a_camera_round_is_run_by_one_replica_and_finished_by_another(store: Store) -> None:
    minute = "2026-12-07T06:30:00+00:00"
    now = utcnow()
    run = store.claim_camera_run("aisle-a", minute, "gw-1", 30, now)
    assert run is not None and run.session_id is None
    assert store.claim_camera_run("aisle-a", minute, "gw-2", 30, now) is None
    assert store.claim_camera_run("aisle-b", minute, "gw-2", 30, now) is not None
    store.camera_run_session(run, "session-1")
    assert store.renew_camera_run(run, "gw-1", 30)
    # gw-1 dies half-way: once its lease ran out another replica takes the round over, in the
    # same session; rounds started before ``since`` stay as they are
    stalled = store.claim_stalled_camera_runs("gw-2", 30, since=now - timedelta(hours=1),
                                              now=utcnow() + timedelta(seconds=31))
    assert [(r.zone, r.session_id) for r in stalled] == [("aisle-a", "session-1"),
                                                          ("aisle-b", None)]
    assert not store.renew_camera_run(run, "gw-1", 30)  # taken over
    assert store.claim_stalled_camera_runs("gw-3", 30, since=now - timedelta(hours=1)) == []
    store.finish_camera_run(stalled[0], "gw-2")
    assert store.claim_stalled_camera_runs(
        "gw-3", 30, since=now - timedelta(hours=1),
        now=utcnow() + timedelta(minutes=5)) == [stalled[1]]
    assert store.claim_stalled_camera_runs(
        "gw-3", 30, since=now + timedelta(seconds=1),
        now=utcnow() + timedelta(minutes=10)) == []


def test_outcomes_counted_by_another_replica_reach_this_ones_listeners(store: Store) -> None:
    from gateway.server.hub import Hub
    from gateway.server.outcome_watch import OutcomeWatcher

    (count_id,) = queued(store, 1)
    hub, published = Hub(), []
    watcher = OutcomeWatcher(store, hub.watched, lambda r: published.append(r.status))
    assert watcher.run_once() == 0  # nobody follows anything: no query, nothing sent
    hub.subscribe(count_id, lambda message: None)  # a walker's socket follows the photo
    assert watcher.run_once() == 1 and published == ["queued"]
    assert watcher.run_once() == 0
    assert store.finish_count(count_id, {"rows": []}, once=True)  # another replica counted it
    assert watcher.run_once() == 1 and published == ["queued", "done"]
    assert watcher.run_once() == 0
