"""Counted against system quantity: the variance columns and the flags managers act on.

Variance = counted - system; Variance_Pct = variance / system * 100. A line is flagged
"Variance" when |Variance_Pct| exceeds the percentage threshold or |Variance x Unit_Price|
exceeds the value threshold (both configurable: SHELFCOUNT_VARIANCE_PCT, default 10, and
SHELFCOUNT_VARIANCE_VALUE, default 500); "Low stock" when the counted quantity is below the
catalog's Reorder_Point (SHELFCOUNT_REORDER_POINT_DEFAULT, default 10, for SKUs without one);
"Out of stock" at 0. Without a system quantity (no ERP configured) only the stock flags apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import Field

from gateway.config import Settings
from gateway.schema import decimal_or_none

from .plugin import SinkSettings, parse_settings

FLAG_VARIANCE = "Variance"
FLAG_LOW = "Low stock"
FLAG_OUT = "Out of stock"


class VarianceSettings(SinkSettings):
    """The flag thresholds the sheet, the alerts and the review queue share."""

    pct: Decimal = Field(Decimal(10), alias="variance_pct", ge=0,
                         description="variance flag: percentage of the system quantity")
    value: Decimal = Field(Decimal(500), alias="variance_value", ge=0,
                           description="variance flag: value (variance x unit price)")
    reorder_point_default: int = Field(
        10, alias="reorder_point_default", ge=0,
        description="low-stock threshold when the catalog has no `Reorder_Point`")


@dataclass(frozen=True)
class Thresholds:
    pct: Decimal = Decimal(10)
    value: Decimal = Decimal(500)
    default_reorder_point: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """ValueError (one line naming the variable) when a threshold is not a number."""
        parsed = parse_settings(VarianceSettings, settings)
        return cls(parsed.pct, parsed.value, parsed.reorder_point_default)


@dataclass(frozen=True)
class LineVariance:
    """The extra columns for one counted line."""

    system_quantity: Decimal | None
    variance: Decimal | None
    variance_pct: Decimal | None
    flags: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def columns(self) -> dict[str, Any]:
        """System_Quantity, Variance, Variance_Pct, Flag as cell values ('' when unknown)."""
        return {
            "System_Quantity": _num(self.system_quantity),
            "Variance": _num(self.variance),
            "Variance_Pct": "" if self.variance_pct is None
            else float(self.variance_pct.quantize(Decimal("0.1"))),
            "Flag": ", ".join(self.flags),
        }


def _num(value: Decimal | None) -> Any:
    if value is None:
        return ""
    return int(value) if value == value.to_integral_value() else float(value)


def assess(
    row: Mapping[str, Any],
    system_quantity: Decimal | None,
    reorder_point: int | None,
    thresholds: Thresholds,
) -> LineVariance:
    """Variance columns and flags for one CSV row."""
    counted = decimal_or_none(row.get("Quantity_Counted")) or Decimal(0)
    price = decimal_or_none(row.get("Unit_Price"))
    flags: list[str] = []
    variance = pct = None
    if system_quantity is not None:
        variance = counted - system_quantity
        if system_quantity != 0:
            pct = variance / system_quantity * 100
        over_pct = abs(pct) > thresholds.pct if pct is not None else variance != 0
        over_value = price is not None and abs(variance * price) > thresholds.value
        if over_pct or over_value:
            flags.append(FLAG_VARIANCE)
    point = thresholds.default_reorder_point if reorder_point is None else reorder_point
    if counted == 0:
        flags.append(FLAG_OUT)
    elif counted < point:
        flags.append(FLAG_LOW)
    return LineVariance(system_quantity, variance, pct, tuple(flags))


def assess_entry(
    entry: Any,
    system: Mapping[tuple[str, str], Decimal] | None,
    reorder_point: Callable[[str], int | None],
    thresholds: Thresholds,
) -> list[tuple[dict[str, Any], LineVariance]]:
    """Every row of a bay with its variance; ``system`` maps (Location, SKU) to the system
    quantity before the count, None when no ERP supplies one."""
    out = []
    for row in entry.rows:
        key = (str(row.get("Location") or entry.location or ""), str(row.get("SKU") or ""))
        quantity = None if system is None else system.get(key)
        out.append((row, assess(row, quantity, reorder_point(key[1]), thresholds)))
    return out


def reorder_lookup(settings: Settings) -> Callable[[str], int | None]:
    """SKU -> the catalog's Reorder_Point (None when the SKU is unknown)."""
    from gateway.catalog import load_catalog

    catalog = load_catalog(settings.data_dir)

    def lookup(sku: str) -> int | None:
        entry = catalog.by_sku(sku)
        return None if entry is None else entry.reorder_point

    return lookup
