"""The ``shelfcount`` command line.

The forms ``count``, ``codes``, ``catalog import`` and ``serve`` are a contract with outside
benchmarks and clients: extend them, never rename them. Errors are one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway import model_commands
from gateway.config import Settings, load_settings
from gateway.logs import setup_logging
from gateway.schema import COLUMNS
from gateway.sinks.csv_safety import safe_cell
from gateway.stock import commands as stock_commands

EXIT_OK, EXIT_PHOTO_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shelfcount",
        description="Count stock on warehouse shelves from photos (through NVIDIA Triton).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("count", help="count the items in shelf photos and print count rows")
    c.add_argument("--catalog", metavar="FILE", type=Path,
                   help="catalog CSV (SKU,Barcode,Product_Description,Unit_Price,Location); "
                        "default: the catalog imported with 'shelfcount catalog import'")
    c.add_argument("--location", metavar="LOC",
                   help="bin location to use when the photo shows no readable bin label")
    c.add_argument("--planogram", metavar="FILE", type=Path,
                   help="planogram CSV (Location,Shelf_Row,Position,SKU,Facings) for the "
                        "jsonl 'findings'; default: the one imported with 'planogram import'")
    c.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                   help="csv: header + one row per (photo, location, SKU); "
                        "jsonl: one JSON object per row with an extra 'Image' key")
    c.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    c.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG or WebP photos")

    k = sub.add_parser("codes", help="print every barcode / 2D code decoded in photos")
    k.add_argument("--format", choices=("jsonl",), default="jsonl",
                   help="jsonl: one JSON object per code with Image, Format, Text, GTIN")
    k.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG or WebP photos")

    a = sub.add_parser("audit", help="shelf audit: gaps, misplaced items, missing and extra "
                                     "SKUs in shelf photos, one finding per line")
    a.add_argument("--catalog", metavar="FILE", type=Path,
                   help="catalog CSV; default: the one imported with 'catalog import'")
    a.add_argument("--planogram", metavar="FILE", type=Path,
                   help="planogram CSV (Location,Shelf_Row,Position,SKU,Facings); default: the "
                        "one imported with 'planogram import'; without one the catalog's home "
                        "bin is the plan (one SKU per bin)")
    a.add_argument("--location", metavar="LOC",
                   help="bin location to use when the photo shows no readable bin label")
    a.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                   help="csv: header Image,Type,X0,Y0,X1,Y1,SKU,Expected_SKU,Confidence; "
                        "jsonl: type, box, sku, expected_sku, confidence and Image")
    a.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG or WebP photos")

    pg = sub.add_parser("planogram", help="manage the shelf plan used by the audit")
    pg_sub = pg.add_subparsers(dest="planogram_command", required=True, metavar="ACTION")
    pgi = pg_sub.add_parser("import", help="check a planogram CSV (every bad line reported) "
                                           "and store it for serve/count/audit")
    pgi.add_argument("file", type=Path, metavar="FILE", help="planogram CSV file")

    cat = sub.add_parser("catalog", help="manage the product catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    imp = cat_sub.add_parser("import", help="validate a catalog CSV and store it for serve/count")
    imp.add_argument("file", type=Path, metavar="FILE", help="catalog CSV file")

    s = sub.add_parser("serve", help="run the gateway (HTTP + WebSocket + gRPC) with Triton")
    s.add_argument("--host", help="address to listen on (SHELFCOUNT_HOST, default 0.0.0.0)")
    s.add_argument("--port", type=int, help="HTTP/WebSocket port (SHELFCOUNT_PORT, default 8080)")
    s.add_argument("--grpc-port", type=int,
                   help="gRPC port for fixed cameras (SHELFCOUNT_GRPC_PORT, default 8081)")
    s.add_argument("--data-dir", type=Path,
                   help="catalog, count store and photos (SHELFCOUNT_DATA_DIR, default ./data)")
    s.add_argument("--tls", action="store_true", default=None,
                   help="serve HTTPS/WSS (self-signed certificate unless SHELFCOUNT_TLS_CERT "
                        "and SHELFCOUNT_TLS_KEY name files)")

    d = sub.add_parser("device", help="pair phones and cameras")
    d_sub = d.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    add = d_sub.add_parser("add", help="create a device token (printed alone on the first line, "
                                       "then a QR code for the phone)")
    add.add_argument("name", help="a name for the device, e.g. 'walker-anna'")
    add.add_argument("--role", choices=("walker", "manager"), default="walker",
                     help="walkers count; managers also read every session (default walker)")
    add.add_argument("--url", metavar="URL",
                     help="the gateway address phones open (e.g. https://10.0.0.5:8080): the QR "
                          "then opens the app already paired; without it the QR holds the token")
    add.add_argument("--replace", action="store_true",
                     help="the name is taken: give it a new token (the old one stops working)")
    d_sub.add_parser("list", help="devices: name, role, created, last seen, revoked")
    rev = d_sub.add_parser("revoke", help="take a device's token away (its open connections "
                                          "end within seconds; its counts stay)")
    rev.add_argument("name")

    for name, helptext in (("train", "train or fine-tune the item detector"),
                           ("eval", "evaluate the item detector (AP@0.5 and count accuracy)")):
        sub.add_parser(name, help=f"{helptext} (see 'shelfcount {name} --help')")

    e = sub.add_parser("export", help="re-send a session's confirmed counts to a sink")
    e.add_argument("session", help="count session id")
    e.add_argument("--to", required=True, choices=("sheets", "tryton", "folder"),
                   help="sink to send to (it must be configured, see 'shelfcount doctor')")

    lab = sub.add_parser("labels", help="walkers' corrected boxes as a training set")
    lab_sub = lab.add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    lex = lab_sub.add_parser("export", help="write the photos whose boxes a person corrected, "
                             "with those boxes (read by 'shelfcount train --data DIR')")
    lex.add_argument("dir", type=Path, help="folder to write (images/ + labels/ or "
                     "annotations.json)")
    lex.add_argument("--format", choices=("yolo", "coco"), default="yolo",
                     help="YOLO (one class: item) or COCO (boxes keep their SKU); default yolo")
    lex.add_argument("--since", help="only corrections from this date on (YYYY-MM-DD)")
    lex.add_argument("--data-dir", type=Path, help="the gateway's data folder")

    model_commands.add_parser(sub)
    stock_commands.add_parsers(sub)

    sub.add_parser("doctor", help="check each configured sink, one line each")
    sub.add_parser("sinks", help="every sink's settings, as a Markdown table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "eval"):
        # The training commands own their options (and their --help).
        from gateway.training import cli as training_cli

        entry = training_cli.train_main if argv[0] == "train" else training_cli.eval_main
        return entry(argv[1:])
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            data_dir=getattr(args, "data_dir", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            grpc_port=getattr(args, "grpc_port", None),
            tls=getattr(args, "tls", None),
        )
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    setup_logging(settings.log_level)
    try:
        return _dispatch(args, settings)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head -1`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.catalog import CatalogError
    from gateway.planogram import PlanogramError

    simple = {"count": cmd_count, "codes": cmd_codes, "audit": cmd_audit,
              "planogram": cmd_planogram, "device": cmd_device, "labels": cmd_labels,
              "model": model_commands.model_main, "forecast": stock_commands.forecast_main}
    try:
        if args.command in simple:
            return simple[args.command](args, settings)
        match args.command:
            case "catalog":
                from gateway.catalog import import_catalog

                catalog = import_catalog(args.file, settings.data_dir)
                print(f"imported {len(catalog)} products into {settings.data_dir}", file=sys.stderr)
                return EXIT_OK
            case "serve":
                from gateway.server.serve import serve_main

                return serve_main(settings)
            case "export":
                from gateway.sinks.commands import export_main

                return export_main(settings, args.session, args.to)
            case "history" | "receipts" | "shipments":
                return stock_commands.import_main(args, settings, args.command)
            case "moves":
                from gateway.stock.moves_sync import sync_main

                return sync_main(settings)
            case "doctor":
                from gateway.sinks.commands import doctor_main

                return doctor_main(settings)
            case "sinks":
                from gateway.sinks.commands import sinks_main

                return sinks_main()
    except (CatalogError, PlanogramError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    return EXIT_USAGE


def _fail(message: str, code: int) -> int:
    print(f"shelfcount: {message}", file=sys.stderr)
    return code


def _load_catalog(args: argparse.Namespace, settings: Settings):
    from gateway.catalog import Catalog, load_catalog

    return Catalog.from_csv(args.catalog) if args.catalog else load_catalog(settings.data_dir)


def _load_planogram(args: argparse.Namespace, settings: Settings):
    from gateway.planogram import Planogram, load_planogram

    path = getattr(args, "planogram", None)
    return Planogram.from_csv(path) if path else load_planogram(settings.data_dir)


def _counting(args: argparse.Namespace, settings: Settings,
              work: Callable[[object, str, bytes], None], *, progress: bool) -> int:
    """Start Triton, build the pipeline (catalog, planogram), run ``work(pipeline, path,
    bytes)`` on each photo, stop everything; the exit status says whether any photo failed."""
    from gateway.inference.embedded import start_triton
    from gateway.inference.pool import connect
    from gateway.pipeline.run import Pipeline

    catalog = _load_catalog(args, settings)
    planogram = _load_planogram(args, settings)
    try:
        url, server = start_triton(settings)
    except (RuntimeError, OSError, TimeoutError) as exc:
        return _fail(f"cannot start Triton: {exc}", EXIT_UNAVAILABLE)
    client = connect(url, settings.triton_request_timeout_s)
    pipeline = Pipeline(settings, client, catalog, planogram=planogram)
    try:
        failed = _each_photo(args.images, lambda path, data: work(pipeline, path, data),
                             progress=progress)
    finally:
        pipeline.close()
        client.close()
        if server is not None:
            server.stop()
    return EXIT_PHOTO_FAILED if failed else EXIT_OK


def cmd_count(args: argparse.Namespace, settings: Settings) -> int:
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    if args.format == "csv":
        writer.writerow(COLUMNS)

    def emit(pipeline, path: str, data: bytes) -> None:
        result = pipeline.count(data, location=args.location)
        for row in result.rows:
            if args.format == "csv":
                writer.writerow([safe_cell(row[c]) for c in COLUMNS])
            else:
                out.write(json.dumps({**row, "Image": path,
                                      "model_version": result.model_version,
                                      "findings": result.findings}) + "\n")
        out.flush()

    return _counting(args, settings, emit, progress=len(args.images) > 1 and not args.quiet)


AUDIT_COLUMNS = ("Image", "Type", "X0", "Y0", "X1", "Y1", "SKU", "Expected_SKU", "Confidence")


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    if args.format == "csv":
        writer.writerow(AUDIT_COLUMNS)

    def emit(pipeline, path: str, data: bytes) -> None:
        for f in pipeline.count(data, location=args.location).findings:
            if args.format == "csv":
                writer.writerow([safe_cell(v) for v in (path, f["type"], *f["box"], f["sku"],
                                                        f["expected_sku"], f["confidence"])])
            else:
                out.write(json.dumps({**f, "Image": path}) + "\n")
        out.flush()

    return _counting(args, settings, emit, progress=False)


def cmd_planogram(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.catalog import load_catalog
    from gateway.planogram import PlanogramError, import_planogram

    catalog = load_catalog(settings.data_dir)
    known = (lambda sku: catalog.by_sku(sku) is not None) if len(catalog) else None
    try:
        plan = import_planogram(args.file, settings.data_dir, known)
    except PlanogramError as exc:
        for problem in exc.problems:
            print(f"shelfcount: {problem}", file=sys.stderr)
        return EXIT_USAGE
    bays = len({s.location.upper() for s in plan.slots})
    print(f"imported {len(plan)} slots in {bays} bays into {settings.data_dir}",
          file=sys.stderr)
    return EXIT_OK


def cmd_codes(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pipeline.codes import code_to_json, read_codes
    from gateway.pipeline.decode import decode_image

    def emit(path: str, data: bytes) -> None:
        gray = decode_image(data, max_bytes=settings.max_image_bytes,
                            max_pixels=settings.max_image_pixels, gray=True)
        for code in read_codes(gray):
            print(json.dumps({"Image": path, **code_to_json(code)}))

    return EXIT_PHOTO_FAILED if _each_photo(args.images, emit, progress=False) else EXIT_OK


def _each_photo(paths: list[str], work: Callable[[str, bytes], None], *, progress: bool) -> int:
    """Run ``work`` on each photo; a photo that fails is one stderr line, and the rest go on.

    Returns how many photos failed.
    """
    from tqdm import tqdm

    from gateway.inference.client import InferenceUnavailable
    from gateway.pipeline.types import PipelineError

    failed = 0
    for path in tqdm(paths, desc="counting", unit="photo", file=sys.stderr,
                     disable=not progress, leave=False):
        try:
            work(path, Path(path).read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        except PipelineError as exc:
            print(f"{path}: {exc.code}: {exc.message}", file=sys.stderr)
        except InferenceUnavailable as exc:
            print(f"{path}: triton_unavailable: {exc}", file=sys.stderr)
        else:
            continue
        failed += 1
    return failed


def cmd_labels(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from gateway.store import open_photos, open_store
    from gateway.store.labels import export_labels

    since = None
    if args.since:
        try:
            since = datetime.strptime(args.since, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return _fail(f"--since {args.since!r}: expected a date YYYY-MM-DD", EXIT_USAGE)
    store = open_store(settings)
    try:
        report = export_labels(store, open_photos(settings), args.dir, fmt=args.format,
                               since=since)
    except OSError as exc:
        return _fail(f"{args.dir}: cannot write: {exc.strerror or exc}", EXIT_USAGE)
    finally:
        store.close()
    skipped = f", {len(report.skipped)} skipped (photo removed by retention)" \
        if report.skipped else ""
    print(f"wrote {report.photos} photos, {report.boxes} boxes to {args.dir} "
          f"({args.format}){skipped}", file=sys.stderr)
    return EXIT_OK


def cmd_device(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.store import open_store
    from gateway.store.types import StoreError, to_ts

    if args.device_command == "add":
        return cmd_device_add(args, settings)
    store = open_store(settings)
    try:
        if args.device_command == "revoke":
            device = store.revoke_device(args.name)
            print(f"revoked {device.name} ({device.role}); its open connections end within "
                  "seconds", file=sys.stderr)
            return EXIT_OK
        print("name\trole\tcreated\tlast_seen\trevoked\ttoken_expires")
        ttl = float(settings.token_ttl_days)
        for d in store.list_devices():
            expires = d.token_expires(ttl)
            print("\t".join([d.name, d.role, to_ts(d.created_at),
                             to_ts(d.last_seen) if d.last_seen else "-",
                             to_ts(d.revoked_at) if d.revoked_at else "-",
                             to_ts(expires) if expires else "-"]))
        return EXIT_OK
    except StoreError as exc:
        return _fail(exc.message, EXIT_USAGE)
    finally:
        store.close()


def cmd_device_add(args: argparse.Namespace, settings: Settings) -> int:
    import io

    import qrcode

    from gateway.server.serve import device_add
    from gateway.store.types import StoreError

    try:
        token = device_add(settings, args.name, args.role, replace=args.replace)
    except StoreError as exc:
        return _fail(exc.message, EXIT_USAGE)
    print(token)
    qr = qrcode.QRCode(border=1)
    qr.add_data(f"{args.url.rstrip('/')}/#token={token}" if args.url else token)
    buf = io.StringIO()
    qr.print_ascii(out=buf, invert=True)
    print(buf.getvalue(), end="")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
