"""Drop-folder sink: the session's count CSV plus ERP import files, written atomically.

One set of files per session, named ``shelfcount_<date>_<session>`` with the date the
session's first delivery happened (the name is reused afterwards, so a session that runs past
midnight still has one file). Every delivery rewrites the files from the session's confirmed
rows, so delivering a bay twice cannot duplicate a line. Files are written to a temporary name
in the same folder and renamed into place, so an importer polling the folder never reads a
half-written file.

- ``<name>.csv``: the ten CSV columns (gateway.schema.COLUMNS). A bay a manager reopened and
  confirmed again stands with its latest rows only; the ERP files' remark says so.
- ``<name>_sap_b1_counting.csv``: SAP Business One inventory counting lines, columns named
  after the Data Transfer Workbench InventoryCountingLines fields (ItemCode, WarehouseCode,
  BinLocation, Counted, CountedQuantity); warehouse from SHELFCOUNT_SAP_WAREHOUSE (default 01).
- ``<name>_netsuite_adjustment.csv``: a NetSuite inventory adjustment import (External ID,
  Date, Adjustment Account from SHELFCOUNT_NETSUITE_ACCOUNT, Location from
  SHELFCOUNT_NETSUITE_LOCATION, Item, Bin, New Quantity, Memo): the counted quantity is
  absolute, NetSuite works out the change against its own on-hand figure, which is the system
  quantity that matters there.
- ``<name>_findings.csv``: the shelf audit's findings of the session's confirmed bays
  (gateway.sinks.base.FINDING_COLUMNS: location, photo, type, box, SKU, expected SKU,
  confidence), written when the gateway knows them.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from gateway.files import write_atomic
from gateway.schema import COLUMNS

from .base import FINDING_COLUMNS, Entry, SinkError, deliver_each, finding_cells
from .csv_safety import safe_row
from .plugin import SinkContext, SinkPlugin, SinkSettings

SessionRows = Callable[[str], list[dict[str, Any]]]
SessionFindings = Callable[[str], list[dict[str, Any]]]

SAP_COLUMNS = ("ParentKey", "LineNum", "ItemCode", "WarehouseCode", "BinLocation", "Counted",
               "CountedQuantity", "CountDate", "Remarks")
NETSUITE_COLUMNS = ("External ID", "Date", "Adjustment Account", "Location", "Item", "Bin",
                    "New Quantity", "Memo")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "session"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(safe_row(list(row)))
    return buf.getvalue().encode("utf-8")


def _memo(entry: Entry, row: dict[str, Any]) -> str:
    """The ERP files' remark: the session, and whether the bay was reopened and counted again
    (the importer sees the line replaces what it had)."""
    again = " (bay reopened by a manager, counted again)" if row.get("Reopened") else ""
    return f"ShelfCount session {entry.session_id}{again}"


class FolderSettings(SinkSettings):
    drop_dir: Path = Field(alias="drop_dir",
                           description="folder for count CSV + SAP Business One + NetSuite "
                                       "import files")
    sap_warehouse: str = Field("01", alias="sap_warehouse",
                               description="warehouse code in the SAP B1 file")
    netsuite_account: str = Field("Inventory Adjustment", alias="netsuite_account",
                                  description="NetSuite adjustment account column")
    netsuite_location: str = Field("", alias="netsuite_location",
                                   description="NetSuite location column")


class FolderSink:
    """Writes each session's files into the drop folder."""

    name = "folder"

    def __init__(self, directory: Path, session_rows: SessionRows, *,
                 sap_warehouse: str = "01", netsuite_account: str = "Inventory Adjustment",
                 netsuite_location: str = "",
                 session_findings: SessionFindings | None = None) -> None:
        self.directory = directory
        self.session_rows = session_rows
        self.session_findings = session_findings
        self.sap_warehouse = sap_warehouse
        self.netsuite_account = netsuite_account
        self.netsuite_location = netsuite_location

    @classmethod
    def from_config(cls, config: FolderSettings, context: SinkContext) -> FolderSink:
        return cls(config.drop_dir, context.session_rows, sap_warehouse=config.sap_warehouse,
                   netsuite_account=config.netsuite_account,
                   netsuite_location=config.netsuite_location,
                   session_findings=context.session_findings)

    def _stem(self, entry: Entry) -> str:
        session = _safe_name(entry.session_id)
        existing = sorted(self.directory.glob(f"shelfcount_*_{session}.csv"))
        if existing:
            return existing[0].stem
        return f"shelfcount_{entry.created_at.date().isoformat()}_{session}"

    def deliver(self, entry: Entry) -> None:
        if not self.directory.is_dir():
            raise SinkError(f"drop folder {self.directory} does not exist")
        rows = self.session_rows(entry.session_id)
        stem = self._stem(entry)
        date = entry.created_at.date().isoformat()
        try:
            write_atomic(self.directory / f"{stem}.csv",
                         _csv_text(COLUMNS, [[r.get(c, "") for c in COLUMNS] for r in rows]))
            sap = [[stem, i, r.get("SKU", ""), self.sap_warehouse, r.get("Location", ""), "tYES",
                    r.get("Quantity_Counted", ""), date, _memo(entry, r)]
                   for i, r in enumerate(rows) if r.get("SKU")]
            write_atomic(self.directory / f"{stem}_sap_b1_counting.csv",
                         _csv_text(SAP_COLUMNS, sap))
            netsuite = [[stem, date, self.netsuite_account, self.netsuite_location, r["SKU"],
                         r.get("Location", ""), r.get("Quantity_Counted", ""), _memo(entry, r)]
                        for r in rows if r.get("SKU")]
            write_atomic(self.directory / f"{stem}_netsuite_adjustment.csv",
                         _csv_text(NETSUITE_COLUMNS, netsuite))
            if self.session_findings is not None:
                findings = [finding_cells(f) for f in self.session_findings(entry.session_id)]
                write_atomic(self.directory / f"{stem}_findings.csv",
                             _csv_text(FINDING_COLUMNS, findings))
        except OSError as exc:
            raise SinkError(f"cannot write to drop folder {self.directory}: {exc}") from exc

    def deliver_batch(self, entries: Sequence[Entry]) -> list[Exception | None]:
        return deliver_each(self, entries)

    def check(self) -> str | None:
        if not self.directory.is_dir():
            return f"drop folder {self.directory} does not exist"
        if not os.access(self.directory, os.W_OK):
            return f"drop folder {self.directory} is not writable"
        return None


PLUGIN = SinkPlugin("folder", FolderSettings, FolderSink.from_config)
