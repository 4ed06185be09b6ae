"""Corrections: people's changes to a count's lines, each kept beside the model's figure."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from gateway.schema import BoxCorrection
from gateway.schema import Correction as CorrectionMessage

from .corrections import Line, already_recorded, check_open, corrected_lines, split_lines
from .devices_repo import new_id
from .engine import Database
from .rows import SPLIT
from .tables import box_corrections, corrections, counts
from .types import (
    BoxEdit,
    Correction,
    CountRecord,
    Device,
    StoreError,
    from_ts,
    to_ts,
    utcnow,
)

_CHUNK = 500  # ids per IN (...) list


class CorrectionRepository:
    """The ``corrections`` table."""

    db: Database
    _count: Callable[[Connection, str], CountRecord | None]  # CountRepository's
    _records: Callable[..., list[CountRecord]]  # CountRepository's

    def box_corrected_counts(self, since: datetime | None = None) -> list[CountRecord]:
        """Counts whose boxes a person corrected (at or after ``since``), oldest first."""
        query = select(box_corrections.c.count_id).distinct()
        if since is not None:
            query = query.where(box_corrections.c.corrected_at >= to_ts(since))
        with self.db.tx() as conn:
            ids = list(conn.execute(query).scalars())
            return self._records(conn, counts.c.id.in_(ids)) if ids else []

    def correct(self, count_id: str, fix: CorrectionMessage, *, by: Device,
                catalog: dict[str, Any] | None = None) -> CountRecord:
        """Set one line's quantity (and Condition, expiry, SKU), keeping the model's figure
        and who/when. ``fix`` is already valid as a message (gateway.schema.Correction); what
        is checked here depends on the count.

        ``fix.condition`` is what the person saw, e.g. "Damaged"; None keeps the line's
        Condition. ``fix.expiry`` (ISO date, "" for none) fixes a misread date. ``new_sku``: the
        line is another product (or the unidentified line, ``sku`` "", is this one): the line
        is taken out and its items join ``new_sku``'s line; ``catalog`` then describes
        ``new_sku``. ``split`` (n, Condition): n of the line's items go to a line of their own
        with that Condition (e.g. 2 of 12 Damaged). Refused once the bay is confirmed: what
        the sinks received must stay what the store shows.

        Idempotent, because phones re-send what they are not sure arrived: a
        ``correction_id`` already recorded for this count returns the count unchanged, and so
        does, without one, a correction identical to the line's latest one by the same device
        (same quantity and Condition). Both are checked before the confirmation, so a re-sent
        correction that arrived before the bay was confirmed is not an error.
        """
        sku, new_sku, client_id = fix.sku, fix.new_sku, fix.correction_id
        now = utcnow()
        with self.db.tx() as conn:
            record = self._count(conn, count_id)
            if record is None:
                raise StoreError("not_found", "no such count")
            if already_recorded(record, by=by, sku=new_sku or sku, location=fix.location,
                                 quantity=fix.quantity, condition=fix.condition,
                                 client_id=client_id, expiry=fix.expiry):
                return record
            check_open(record)
            lines = corrected_lines(record, sku=sku, quantity=fix.quantity,
                                    location=fix.location, catalog=catalog,
                                    condition=fix.condition, now=now, new_sku=new_sku,
                                    expiry=fix.expiry)
            if fix.split is not None:
                lines = split_lines(record, lines, (fix.split.quantity, fix.split.condition),
                                    now)
            _write_lines(conn, count_id, lines, by=by, client_id=client_id, now=now,
                         condition=fix.condition, sku=new_sku or sku)
            conn.execute(update(counts).where(counts.c.id == count_id)
                         .values(updated_at=to_ts(now)))
            updated = self._count(conn, count_id)
        assert updated is not None
        return updated


    def correct_boxes(self, count_id: str, fix: BoxCorrection, *, by: Device,
                      catalogs: dict[str, dict[str, Any] | None],
                      findings: list[dict[str, Any]] | None = None) -> CountRecord:
        """Take a person's complete set of item boxes for a photo: each SKU's line quantity
        becomes its number of boxes (lines written as corrections, the model's figures kept),
        and the boxes are kept with who and when. ``catalogs``: per box SKU, its catalog
        entry (a line the photo did not have is described from it); ``findings``: the shelf
        audit's from these boxes (None: not worked out, the model's stay).

        Idempotent on ``fix.correction_id``; refused once the bay is confirmed, and for boxes
        outside the photo.
        """
        now = utcnow()
        with self.db.tx() as conn:
            record = self._count(conn, count_id)
            if record is None:
                raise StoreError("not_found", "no such count")
            if fix.correction_id is not None and conn.execute(
                    select(box_corrections.c.id).where(
                        (box_corrections.c.count_id == count_id)
                        & (box_corrections.c.client_id == fix.correction_id))).first():
                return record
            check_open(record)
            check_inside(record, fix)
            for sku, quantity in line_targets(record, fix).items():
                current = self._count(conn, count_id)
                assert current is not None
                lines = corrected_lines(current, sku=sku, quantity=quantity, location=None,
                                        catalog=catalogs.get(sku), condition=None, now=now,
                                        new_sku=None, expiry=None)
                _write_lines(conn, count_id, lines, by=by, client_id=None, now=now,
                             condition=None, sku=sku)
            conn.execute(box_corrections.insert().values(
                id=new_id(), count_id=count_id, boxes_json=json.dumps(
                    [list(b) for b in fix.boxes]), by_device=by.id, by_name=by.name,
                corrected_at=to_ts(now), client_id=fix.correction_id,
                findings_json=None if findings is None else json.dumps(findings)))
            conn.execute(update(counts).where(counts.c.id == count_id)
                         .values(updated_at=to_ts(now)))
            updated = self._count(conn, count_id)
        assert updated is not None
        return updated


def check_inside(record: CountRecord, fix: BoxCorrection) -> None:
    """Boxes are in pixels of the stored photo: none may reach outside it."""
    width = float((record.result or {}).get("width") or 0)
    height = float((record.result or {}).get("height") or 0)
    for i, (_x0, _y0, x1, y1, _sku) in enumerate(fix.boxes):
        if x1 > width or y1 > height:
            raise StoreError("bad_request", f"box {i} reaches outside the photo "
                             f"({width:g} x {height:g} pixels)")


def line_targets(record: CountRecord, fix: BoxCorrection) -> dict[str, int]:
    """Per SKU whose count the boxes change, the quantity its main line must get (a split
    part, e.g. 2 Damaged, keeps its items: the main line takes the rest)."""
    wanted = Counter(box[4] for box in fix.boxes)
    totals: Counter[str] = Counter()
    split: Counter[str] = Counter()
    for row in record.rows:
        sku, quantity = str(row.get("SKU") or ""), int(row.get("Quantity_Counted") or 0)
        totals[sku] += quantity
        if row.get(SPLIT):
            split[sku] += quantity
    skus = sorted(set(wanted) | set(totals), key=lambda s: (s == "", s))
    return {sku: max(0, wanted[sku] - split[sku]) for sku in skus
            if wanted[sku] != totals[sku]}


def _write_lines(conn: Connection, count_id: str, lines: list[Line], *, by: Device,
                 client_id: str | None, now: datetime, condition: str | None,
                 sku: str) -> None:
    """Record the full rows a correction writes; ``condition`` goes with ``sku``'s line."""
    for i, (line_sku, model_quantity, row) in enumerate(lines):
        cid = client_id if client_id is None or i == len(lines) - 1 else (
            f"{client_id[:90]}:{i}")
        conn.execute(corrections.insert().values(
            id=new_id(), count_id=count_id, location=row.get("Location"), sku=line_sku,
            model_quantity=model_quantity, quantity=int(row["Quantity_Counted"]),
            row_json=json.dumps(row, default=str), by_device=by.id, by_name=by.name,
            corrected_at=to_ts(now), row_condition=condition if line_sku == sku else None,
            client_id=cid))


def box_edits_for(conn: Connection, count_ids: Sequence[str]) -> dict[str, BoxEdit]:
    """Each count's newest box correction."""
    out: dict[str, BoxEdit] = {}
    for start in range(0, len(count_ids), _CHUNK):
        chunk = list(count_ids[start:start + _CHUNK])
        rows = conn.execute(select(box_corrections)
                            .where(box_corrections.c.count_id.in_(chunk))
                            .order_by(box_corrections.c.corrected_at, box_corrections.c.id))
        for r in rows.mappings():  # oldest first: the newest stays
            out[r["count_id"]] = BoxEdit(
                r["id"], r["count_id"], json.loads(r["boxes_json"]), r["by_device"],
                r["by_name"], from_ts(r["corrected_at"]), r["client_id"],  # type: ignore[arg-type]
                json.loads(r["findings_json"]) if r["findings_json"] else None)
    return out


def copy_corrections(conn: Connection, source: CountRecord, count_id: str) -> None:
    """Give ``count_id`` the same corrections and boxes as ``source`` (a reopened bay's
    copy)."""
    edit = source.box_edit
    if edit is not None:
        conn.execute(box_corrections.insert().values(
            id=new_id(), count_id=count_id, boxes_json=json.dumps(edit.boxes),
            by_device=edit.by_device, by_name=edit.by_name,
            corrected_at=to_ts(edit.corrected_at), client_id=edit.client_id,
            findings_json=None if edit.findings is None else json.dumps(edit.findings)))
    for c in source.corrections:
        conn.execute(corrections.insert().values(
            id=new_id(), count_id=count_id, location=c.location, sku=c.sku,
            model_quantity=c.model_quantity, quantity=c.quantity,
            row_json=json.dumps(c.row, default=str), by_device=c.by_device, by_name=c.by_name,
            corrected_at=to_ts(c.corrected_at), row_condition=c.condition,
            client_id=c.client_id))


def corrections_for(conn: Connection, count_ids: Sequence[str]
                    ) -> dict[str, tuple[Correction, ...]]:
    """Each count's corrections, oldest first."""
    out: dict[str, list[Correction]] = {}
    for start in range(0, len(count_ids), _CHUNK):
        chunk = list(count_ids[start:start + _CHUNK])
        rows = conn.execute(select(corrections).where(corrections.c.count_id.in_(chunk))
                            .order_by(corrections.c.corrected_at, corrections.c.id)).mappings()
        for r in rows:
            out.setdefault(r["count_id"], []).append(Correction(
                r["id"], r["count_id"], r["location"], r["sku"], r["model_quantity"],
                r["quantity"], json.loads(r["row_json"]), r["by_device"], r["by_name"],
                from_ts(r["corrected_at"]), r["row_condition"], r["client_id"],  # type: ignore[arg-type]
            ))
    return {k: tuple(v) for k, v in out.items()}
