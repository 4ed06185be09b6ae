"""The product catalog: what a barcode or SKU text means, its price and its home bin.

Read from a CSV with header ``SKU,Barcode,Product_Description,Unit_Price,Location`` (Location and
any extra columns optional; ``Reorder_Point`` is used by the low-stock flag). A malformed file is
refused as a whole with one line naming the row and the problem, because a half-loaded catalog
would silently price counts wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.files import write_atomic
from gateway.gtin import normalize_gtin

REQUIRED = ("SKU", "Barcode", "Product_Description", "Unit_Price")
DEFAULT_REORDER_POINT = 10
CATALOG_FILE = "catalog.csv"


class CatalogError(Exception):
    """The catalog file cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class CatalogEntry:
    sku: str
    barcode: str
    gtin: str | None
    description: str
    unit_price: Decimal
    location: str | None
    reorder_point: int = DEFAULT_REORDER_POINT
    # How the SKU is bought (issue 16's reorder suggestions); None: the documented default.
    lead_time_days: float | None = None
    service_level: float | None = None
    min_order_qty: int = 0
    pack_size: int = 1
    supplier: str = ""
    lead_time_sd_days: float | None = None  # how much the lead time varies (one sigma)
    order_cost: Decimal | None = None  # cost of placing one order (EOQ)
    holding_cost_pct: float | None = None  # yearly cost of holding a unit, % of its price


class Catalog:
    """Lookups by GTIN, SKU and home location over a loaded catalog."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self.entries = entries
        self._by_sku = {e.sku.upper(): e for e in entries}
        self._by_gtin = {e.gtin: e for e in entries if e.gtin}
        self._by_barcode = {e.barcode: e for e in entries if e.barcode}
        self._by_location: dict[str, CatalogEntry] = {}
        for e in entries:
            if e.location:
                self._by_location.setdefault(e.location.upper(), e)

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def empty(cls) -> Catalog:
        return cls([])

    @classmethod
    def from_csv(cls, path: str | Path) -> Catalog:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise CatalogError(f"catalog file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"cannot read catalog {path}: {exc}") from None
        return cls.from_text(text, source=str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "catalog") -> Catalog:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CatalogError(f"{source}: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        entries: list[CatalogEntry] = []
        seen: set[str] = set()
        for line_no, raw in enumerate(reader, start=2):
            if None in raw:
                raise CatalogError(f"{source}:{line_no}: more fields than the header has")
            row = {k: (v or "").strip() for k, v in raw.items()}
            if not any(row.values()):
                continue
            entries.append(_entry(row, f"{source}:{line_no}", seen))
        if not entries:
            raise CatalogError(f"{source}: no products in the catalog")
        return cls(entries)

    def by_sku(self, sku: str | None) -> CatalogEntry | None:
        return self._by_sku.get(sku.upper()) if sku else None

    def by_gtin(self, gtin: str | None) -> CatalogEntry | None:
        return self._by_gtin.get(gtin) if gtin else None

    def by_code_text(self, text: str) -> CatalogEntry | None:
        """A non-GTIN code (e.g. a Code 128 of the SKU or an internal barcode)."""
        return self._by_barcode.get(text) or self.by_sku(text)

    def home_sku(self, location: str | None) -> str | None:
        entry = self._by_location.get(location.upper()) if location else None
        return entry.sku if entry else None

    def locations(self) -> list[str]:
        return sorted({e.location for e in self.entries if e.location})


def _number(row: dict[str, str], column: str, where: str, kind: type, lo: float,
            hi: float) -> Any:
    raw = (row.get(column) or "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise CatalogError(f"{where}: {column} {raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise CatalogError(f"{where}: {column} must be between {lo:g} and {hi:g}")
    return value


def _supply(row: dict[str, str], where: str) -> dict[str, Any]:
    """The optional buying columns: Lead_Time_Days, Lead_Time_SD_Days, Service_Level,
    Min_Order_Qty, Pack_Size, Supplier, Order_Cost, Holding_Cost_Pct."""
    order_cost = _number(row, "Order_Cost", where, float, 0, 10**9)
    return {
        "lead_time_sd_days": _number(row, "Lead_Time_SD_Days", where, float, 0, 365),
        "order_cost": Decimal(str(order_cost)) if order_cost is not None else None,
        "holding_cost_pct": _number(row, "Holding_Cost_Pct", where, float, 0.01, 1000),
        "lead_time_days": _number(row, "Lead_Time_Days", where, float, 0, 365),
        "service_level": _number(row, "Service_Level", where, float, 0.5, 0.9999),
        "min_order_qty": _number(row, "Min_Order_Qty", where, int, 0, 10**9) or 0,
        "pack_size": _number(row, "Pack_Size", where, int, 1, 10**9) or 1,
        "supplier": (row.get("Supplier") or "").strip(),
    }


def _entry(row: dict[str, str], where: str, seen: set[str]) -> CatalogEntry:
    sku = row["SKU"]
    if not sku:
        raise CatalogError(f"{where}: empty SKU")
    if sku.upper() in seen:
        raise CatalogError(f"{where}: duplicate SKU {sku}")
    seen.add(sku.upper())
    try:
        price = Decimal(row["Unit_Price"] or "0")
    except InvalidOperation:
        raise CatalogError(f"{where}: Unit_Price {row['Unit_Price']!r} is not a number") from None
    if price < 0 or not price.is_finite():
        raise CatalogError(f"{where}: Unit_Price must be a non-negative number")
    barcode = row["Barcode"]
    gtin = normalize_gtin(barcode) if barcode.isdigit() else None
    if barcode.isdigit() and len(barcode) in (8, 12, 13, 14) and gtin is None:
        raise CatalogError(f"{where}: Barcode {barcode} has a wrong check digit")
    reorder_raw = row.get("Reorder_Point", "")
    try:
        reorder = int(reorder_raw) if reorder_raw else DEFAULT_REORDER_POINT
    except ValueError:
        raise CatalogError(f"{where}: Reorder_Point {reorder_raw!r} is not a number") from None
    return CatalogEntry(
        **_supply(row, where),
        sku=sku,
        barcode=barcode,
        gtin=gtin,
        description=row["Product_Description"],
        unit_price=price,
        location=row.get("Location") or None,
        reorder_point=reorder,
    )


def import_catalog(source: str | Path, data_dir: str | Path) -> Catalog:
    """Validate ``source`` and store it as the catalog ``serve`` and ``count`` use.

    Written to a temporary file and renamed, so a crash never leaves a half-written catalog.
    """
    catalog = Catalog.from_csv(source)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    text = Path(source).read_text(encoding="utf-8-sig")
    write_atomic(data_dir / CATALOG_FILE, text.encode("utf-8"))
    return catalog


def load_catalog(data_dir: str | Path) -> Catalog:
    """The stored catalog, or an empty one when none was imported yet."""
    path = Path(data_dir) / CATALOG_FILE
    return Catalog.from_csv(path) if path.exists() else Catalog.empty()
