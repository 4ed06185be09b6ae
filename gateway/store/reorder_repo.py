"""Reorder suggestions: the forecast's orders as a manager's to-do list, and their ERP requests.

A (SKU, location) has at most one open suggestion; it follows the forecast (quantity and facts
refreshed, expired when stock no longer needs it). Once a manager decides, the row is history:
an approved one blocks a new suggestion while the order is on its way (until a receipt for the
key is recorded after the approval, or twice the lead time has passed), a dismissed one until
the key is counted again. An approval's ERP request has its own retry schedule (``erp_*``),
read by the purchase worker the way the outbox worker reads the outbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from .devices_repo import new_id
from .engine import Database
from .tables import reorder_suggestions, stock_receipts
from .types import StoreError, from_ts, to_ts

r = reorder_suggestions.c
STATES = ("open", "approved", "dismissed", "expired")


@dataclass(frozen=True)
class ReorderSuggestion:
    """One suggestion with the forecast facts it came from and its ERP delivery state."""

    id: str
    sku: str
    location: str
    quantity: int
    facts: dict[str, Any]
    state: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    erp: dict[str, Any] = field(default_factory=dict)


def _suggestion(row: Any) -> ReorderSuggestion:
    return ReorderSuggestion(
        row["id"], row["sku"], row["location"], int(row["quantity"]),
        json.loads(row["facts_json"]), row["state"], from_ts(row["created_at"]),  # type: ignore[arg-type]
        from_ts(row["updated_at"]), row["decided_by"], from_ts(row["decided_at"]),  # type: ignore[arg-type]
        row["note"], {"attempts": int(row["erp_attempts"]), "done_at": from_ts(row["erp_done_at"]),
                      "error": row["erp_error"], "reference": row["erp_reference"],
                      "retry_at": from_ts(row["erp_retry_at"])})


def _facts(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("On_Hand", "Daily_Demand", "Days_Until_Stockout", "Reorder_Point", "Method",
            "Last_Count", "Lead_Time_Days")
    return {k: row.get(k) for k in keep}


class ReorderRepository:
    """The ``reorder_suggestions`` table."""

    db: Database

    def refresh_suggestions(self, rows: Iterable[dict[str, Any]], now: datetime) -> None:
        """Bring the open suggestions in line with forecast rows (``shelfcount forecast``'s
        columns, plus ``Lead_Time_Days``). Two refreshes at once: the one that loses the race
        for a new open suggestion (a unique index) runs again and updates it instead."""
        rows = list(rows)
        try:
            self._refresh(rows, now)
        except IntegrityError:
            self._refresh(rows, now)

    def _refresh(self, rows: list[dict[str, Any]], now: datetime) -> None:
        wanted = {(x["SKU"], x["Location"]): x for x in rows if x.get("Suggested_Order_Qty")}
        stamp = to_ts(now)
        with self.db.tx() as conn:
            latest = self._latest_per_key(conn)
            for key, row in wanted.items():
                last = latest.get(key)
                if last is not None and last.state == "open":
                    conn.execute(update(reorder_suggestions).where(
                        r.id == last.id, r.state == "open").values(
                        quantity=int(row["Suggested_Order_Qty"]), updated_at=stamp,
                        facts_json=json.dumps(_facts(row))))
                elif last is None or not self._blocks(conn, last, row, now):
                    conn.execute(reorder_suggestions.insert().values(
                        id=new_id(), sku=key[0], location=key[1],
                        quantity=int(row["Suggested_Order_Qty"]),
                        facts_json=json.dumps(_facts(row)), state="open", created_at=stamp,
                        updated_at=stamp))
            stale = [s.id for k, s in latest.items() if s.state == "open" and k not in wanted]
            if stale:
                conn.execute(update(reorder_suggestions)
                             .where(r.id.in_(stale), r.state == "open")
                             .values(state="expired", updated_at=stamp))

    @staticmethod
    def _latest_per_key(conn: Connection) -> dict[tuple[str, str], ReorderSuggestion]:
        out: dict[tuple[str, str], ReorderSuggestion] = {}
        for row in conn.execute(select(reorder_suggestions).where(r.state != "expired")
                                .order_by(r.created_at)).mappings():
            out[(row["sku"], row["location"])] = _suggestion(row)
        return out

    @staticmethod
    def _blocks(conn: Connection, last: ReorderSuggestion, row: dict[str, Any],
                now: datetime) -> bool:
        """Whether the manager's last decision on this key still stands."""
        assert last.decided_at is not None
        if last.state == "dismissed":
            return str(row.get("Last_Count") or "") <= last.decided_at.date().isoformat()
        lead = float(last.facts.get("Lead_Time_Days") or 7)
        if now - last.decided_at > timedelta(days=2 * lead):
            return False  # the order should have come: the forecast may ask again
        received = conn.execute(select(stock_receipts.c.sku).where(
            stock_receipts.c.sku == last.sku, stock_receipts.c.location == last.location,
            stock_receipts.c.received_at > to_ts(last.decided_at)).limit(1)).first()
        return received is None

    def suggestions(self, states: Sequence[str] = ("open",),
                    decided_limit: int | None = None) -> list[ReorderSuggestion]:
        """Suggestions in these states, oldest first; of the decided ones (approved,
        dismissed) only the ``decided_limit`` latest decisions when given."""
        wanted = list(states)
        open_ = [s for s in wanted if s in ("open", "expired")]
        decided = [s for s in wanted if s not in open_]
        with self.db.tx() as conn:
            rows = list(conn.execute(select(reorder_suggestions).where(r.state.in_(open_))
                                     .order_by(r.created_at, r.id)).mappings()) if open_ else []
            if decided:
                query = (select(reorder_suggestions).where(r.state.in_(decided))
                         .order_by(r.decided_at.desc(), r.id))
                if decided_limit is not None:
                    query = query.limit(int(decided_limit))
                rows += list(conn.execute(query).mappings())
            rows.sort(key=lambda x: (x["created_at"], x["id"]))
            return [_suggestion(x) for x in rows]

    def suggestion(self, suggestion_id: str) -> ReorderSuggestion:
        with self.db.tx() as conn:
            return self._get(conn, suggestion_id)

    @staticmethod
    def _get(conn: Connection, suggestion_id: str) -> ReorderSuggestion:
        row = conn.execute(select(reorder_suggestions).where(r.id == suggestion_id)).mappings()
        found = row.first()
        if found is None:
            raise StoreError("not_found", f"no reorder suggestion {suggestion_id}")
        return _suggestion(found)

    def decide_suggestion(self, suggestion_id: str, action: str, by: str, now: datetime, *,
                          quantity: int | None = None,
                          note: str | None = None) -> ReorderSuggestion:
        """Approve (optionally with another quantity) or dismiss an open suggestion. Doing
        the same again answers the suggestion as it is; the other decision is a conflict.
        The update holds only while the suggestion is still open, so two managers (or a
        refresh expiring it) deciding at once cannot both win: the loser gets the answer for
        the state the winner left."""
        target = {"approve": "approved", "dismiss": "dismissed"}[action]
        values: dict[str, Any] = {"state": target, "decided_by": by,
                                  "decided_at": to_ts(now), "updated_at": to_ts(now),
                                  "note": note}
        if quantity is not None:
            values["quantity"] = quantity
        with self.db.tx() as conn:
            current = self._get(conn, suggestion_id)
            if current.state == "open":
                done = conn.execute(update(reorder_suggestions).where(
                    r.id == suggestion_id, r.state == "open").values(**values))
                if done.rowcount == 1:
                    return self._get(conn, suggestion_id)
        return self._answer_decided(self.suggestion(suggestion_id), target, quantity)

    @staticmethod
    def _answer_decided(current: ReorderSuggestion, target: str,
                        quantity: int | None) -> ReorderSuggestion:
        if current.state != target:
            raise StoreError("conflict", f"the suggestion is {current.state}")
        if quantity is not None and quantity != current.quantity:
            raise StoreError("conflict", f"already approved for {current.quantity}")
        return current

    def erp_due(self, now: datetime, limit: int) -> list[ReorderSuggestion]:
        """Approved suggestions whose ERP request is not made yet and whose retry time has
        come, in order of approval."""
        query = (select(reorder_suggestions)
                 .where(r.state == "approved", r.erp_done_at.is_(None),
                        or_(r.erp_retry_at.is_(None), r.erp_retry_at <= to_ts(now)))
                 .order_by(r.decided_at, r.id).limit(int(limit)))
        with self.db.tx() as conn:
            return [_suggestion(x) for x in conn.execute(query).mappings()]

    def erp_mark_done(self, suggestion_id: str, reference: str, now: datetime) -> None:
        self._erp(suggestion_id, erp_done_at=to_ts(now), erp_reference=reference,
                  erp_error=None, erp_retry_at=None)

    def erp_mark_failed(self, suggestion_id: str, error: str, retry_at: datetime) -> None:
        self._erp(suggestion_id, erp_error=error[:1000], erp_retry_at=to_ts(retry_at))

    def _erp(self, suggestion_id: str, **values: Any) -> None:
        with self.db.tx() as conn:
            done = conn.execute(update(reorder_suggestions)
                                .where(and_(r.id == suggestion_id, r.state == "approved"))
                                .values(erp_attempts=r.erp_attempts + 1, **values))
            if done.rowcount == 0:
                raise StoreError("not_found", f"no approved reorder suggestion {suggestion_id}")
