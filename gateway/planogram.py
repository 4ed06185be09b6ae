"""The shelf plan: which SKU should stand where in a bay, for the shelf audit.

Read from a CSV with header ``Location,Shelf_Row,Position,SKU,Facings``: shelf rows counted
from the top (1 = top shelf), positions from the left (1 = leftmost), ``Facings`` how many
items stand side by side in that slot. Unlike the catalog, a bad line does not hide the
others' problems: every bad line is reported (file and line each) and nothing is stored, so a
manager fixes the file in one go instead of one error per import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.files import write_atomic

COLUMNS = ("Location", "Shelf_Row", "Position", "SKU", "Facings")
PLANOGRAM_FILE = "planogram.csv"
MAX_ROWS, MAX_POSITIONS, MAX_FACINGS = 50, 500, 200


class PlanogramError(Exception):
    """The planogram cannot be used; ``problems`` holds one line per bad line of the file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else
                         f"{problems[0]} (and {len(problems) - 1} more)")
        self.problems = problems


@dataclass(frozen=True)
class PlanSlot:
    """One planned slot: ``facings`` items of ``sku`` side by side."""

    location: str
    row: int  # from the top, 1-based
    position: int  # from the left, 1-based
    sku: str
    facings: int


@dataclass(frozen=True)
class BayPlan:
    """What should stand in one bay: its shelf rows top to bottom, each a run of SKUs, one
    entry per facing from left to right. ``planned``: from a planogram (else the catalog's
    home SKU, one SKU per bin, with no known layout)."""

    location: str
    rows: tuple[tuple[str, ...], ...]
    planned: bool = True

    @property
    def skus(self) -> list[str]:
        """The planned SKUs, each once, in shelf order."""
        return list(dict.fromkeys(s for row in self.rows for s in row))


class Planogram:
    """Planned slots by location (case-insensitive, as bin labels are)."""

    def __init__(self, slots: list[PlanSlot]) -> None:
        self.slots = slots
        self._by_location: dict[str, list[PlanSlot]] = {}
        for slot in slots:
            self._by_location.setdefault(slot.location.upper(), []).append(slot)

    def __len__(self) -> int:
        return len(self.slots)

    @classmethod
    def empty(cls) -> Planogram:
        return cls([])

    @classmethod
    def from_csv(cls, path: str | Path,
                 known_sku: Callable[[str], bool] | None = None) -> Planogram:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise PlanogramError([f"planogram file not found: {path}"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanogramError([f"cannot read planogram {path}: {exc}"]) from None
        return cls.from_text(text, source=str(path), known_sku=known_sku)

    @classmethod
    def from_text(cls, text: str, source: str = "planogram",
                  known_sku: Callable[[str], bool] | None = None) -> Planogram:
        """Parse and check every line; ``known_sku``: refuse SKUs the catalog lacks."""
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise PlanogramError([f"{source}: missing column(s) {', '.join(missing)}"])
        reader.fieldnames = header
        slots: list[PlanSlot] = []
        problems: list[str] = []
        seen: set[tuple[str, int, int]] = set()
        for line_no, raw in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
            if None in raw:
                problems.append(f"{source}:{line_no}: more fields than the header has")
                continue
            if not any(row.values()):
                continue
            try:
                slot = _slot(row, known_sku)
            except ValueError as exc:
                problems.append(f"{source}:{line_no}: {exc}")
                continue
            key = (slot.location.upper(), slot.row, slot.position)
            if key in seen:
                problems.append(f"{source}:{line_no}: {slot.location} row {slot.row} position "
                                f"{slot.position} is planned twice")
                continue
            seen.add(key)
            slots.append(slot)
        if problems:
            raise PlanogramError(problems)
        if not slots:
            raise PlanogramError([f"{source}: no slots in the planogram"])
        return cls(slots)

    def plan_for(self, location: str | None) -> BayPlan | None:
        """The bay's rows top to bottom, facings left to right; None: nothing planned there.

        Row and position numbers only order the slots: a plan numbering rows 2 and 5 has two
        shelves, because a photo shows the shelves, not their numbers.
        """
        slots = self._by_location.get(location.upper()) if location else None
        if not slots:
            return None
        rows: dict[int, list[PlanSlot]] = {}
        for slot in slots:
            rows.setdefault(slot.row, []).append(slot)
        return BayPlan(location or "", tuple(
            tuple(sku for slot in sorted(rows[r], key=lambda x: x.position)
                  for sku in [slot.sku] * slot.facings)
            for r in sorted(rows)))


def _positive(row: dict[str, str], column: str, top: int) -> int:
    raw = row.get(column, "")
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise ValueError(f"{column} {raw!r} must be a whole number from 1 to {top}")
    return int(raw)


def _slot(row: dict[str, str], known_sku: Callable[[str], bool] | None) -> PlanSlot:
    location, sku = row.get("Location", ""), row.get("SKU", "")
    if not location:
        raise ValueError("empty Location")
    if not sku:
        raise ValueError("empty SKU")
    if known_sku is not None and not known_sku(sku):
        raise ValueError(f"SKU {sku} is not in the catalog")
    return PlanSlot(location, _positive(row, "Shelf_Row", MAX_ROWS),
                    _positive(row, "Position", MAX_POSITIONS), sku,
                    _positive(row, "Facings", MAX_FACINGS))


def import_planogram(source: str | Path, data_dir: str | Path,
                     known_sku: Callable[[str], bool] | None = None) -> Planogram:
    """Check ``source`` and store it as the plan ``serve``, ``count`` and ``audit`` use
    (written atomically: a crash never leaves half a plan)."""
    planogram = Planogram.from_csv(source, known_sku)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(data_dir / PLANOGRAM_FILE,
                 Path(source).read_text(encoding="utf-8-sig").encode("utf-8"))
    return planogram


def load_planogram(data_dir: str | Path) -> Planogram:
    """The stored planogram, or an empty one when none was imported."""
    path = Path(data_dir) / PLANOGRAM_FILE
    return Planogram.from_csv(path) if path.exists() else Planogram.empty()
