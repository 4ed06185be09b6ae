"""``shelfcount history import``, ``receipts import``, ``shipments import`` and ``forecast``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from gateway.config import Settings
from gateway.sinks.csv_safety import safe_cell

HORIZON_DAYS = 28


def add_parsers(sub: Any) -> None:
    """The stock subcommands."""
    for name, what, files in (
            ("history", "past count CSVs (Location, SKU, ..., Quantity_Counted, ..., "
                        "Last_Updated) join the count history", "FILE..."),
            ("receipts", "receipts into stock (SKU, Location, Quantity, Date) between counts",
             "FILE"),
            ("shipments", "shipments out of stock (SKU, Location, Quantity, Date): what left "
                          "a bin as sold or picked, so that a drop they do not explain is "
                          "shrinkage", "FILE")):
        p = sub.add_parser(name, help=what)
        act = p.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
        imp = act.add_parser("import", help=what)
        imp.add_argument("files", nargs="+" if files == "FILE..." else 1, type=Path,
                         metavar="FILE")
        imp.add_argument("--data-dir", type=Path, help="the gateway's data folder")
    mv = sub.add_parser("moves", help="Tryton's done stock moves as receipts and shipments")
    mv_act = mv.add_subparsers(dest="moves_command", required=True, metavar="ACTION")
    mv_sync = mv_act.add_parser("sync", help="read the moves done since the last read")
    mv_sync.add_argument("--data-dir", type=Path, help="the gateway's data folder")
    f = sub.add_parser("forecast", help="demand forecast and reorder suggestion per SKU and "
                       "location, from the count history and receipts")
    f.add_argument("--horizon", type=int, default=HORIZON_DAYS,
                   help=f"days ahead (default {HORIZON_DAYS})")
    f.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    f.add_argument("--data-dir", type=Path, help="the gateway's data folder")


def import_main(args: argparse.Namespace, settings: Settings, kind: str) -> int:
    """Import every file; bad rows are one line each on stderr (file:line) and exit 1."""
    from gateway.stock.imports import read_file
    from gateway.store import open_store

    store = open_store(settings)
    failed = False
    try:
        for path in args.files:
            report = read_file(path, kind)
            for error in report.errors:
                print(error, file=sys.stderr)
            failed = failed or bool(report.errors)
            add = {"history": store.add_history, "receipts": store.add_receipts,
                   "shipments": store.add_shipments}[kind]
            added = add(report.events)
            print(f"{path}: {added} {kind} rows imported, {len(report.events) - added} already "
                  f"there, {len(report.errors)} bad", file=sys.stderr)
    finally:
        store.close()
    return 1 if failed else 0


def forecast_main(args: argparse.Namespace, settings: Settings) -> int:
    """Print one row per SKU and location (csv with header, or jsonl)."""
    from gateway.catalog import load_catalog
    from gateway.stock.forecast import COLUMNS, forecast_table
    from gateway.store import open_store

    if not 1 <= args.horizon <= 365:
        print("shelfcount: --horizon must be 1..365 days", file=sys.stderr)
        return 2
    store = open_store(settings)
    try:
        rows = forecast_table(store, load_catalog(settings.data_dir), args.horizon)
    finally:
        store.close()
    if args.format == "jsonl":
        for row in rows:
            print(json.dumps(row))
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:  # SKUs and locations come from files: no formulas in a spreadsheet
            writer.writerow({k: safe_cell(v) if isinstance(v, str) else v
                             for k, v in row.items()})
    return 0
