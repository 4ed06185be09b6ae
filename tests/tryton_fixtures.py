"""A real trytond (SQLite) for the ERP sink tests.

The database is built once per test session (trytond-admin, ~20 s), seeded over JSON-RPC with a
company, shelf locations named like bins and products whose code is the SKU, then copied per
test (one .sqlite file per test database, all served by one trytond process). Use from a test
module with ``pytest_plugins = ["tests.tryton_fixtures"]``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from gateway.sinks.tryton import TrytonClient

BIN = Path(sys.executable).parent
TEMPLATE = "template"
USER = "admin"
PASSWORD = "shelfcount-admin-pw"
# Bins and SKUs seeded into the template: the demo catalog's first locations plus a grid of
# extra bins for the 50-bay session; every SKU starts with ON_HAND units in its home bin.
LOCATIONS = [f"A-{i:02d}-{j}" for i in range(1, 27) for j in (1, 2)]
SKUS = [f"SKU-{10001 + i}" for i in range(len(LOCATIONS))]
ON_HAND = 40
# A service (not stock-kept) product: Tryton refuses it on an inventory line, a business error.
SERVICE_SKU = "SKU-SERVICE"


_clients: dict[tuple[str, str], TrytonClient] = {}


@dataclass(frozen=True)
class TrytonDB:
    url: str
    db: str
    user: str = USER
    password: str = PASSWORD
    file: Path | None = None  # the database's SQLite file, for what RPC may not do

    def touch_record(self, table: str, record: int) -> None:
        """Give a record a new write time, as Tryton's own jobs do to done stock moves
        (recomputed cost prices) where a user's RPC is refused."""
        assert self.file is not None
        with sqlite3.connect(self.file) as con:
            con.execute(f'UPDATE "{table}" SET write_date = CURRENT_TIMESTAMP WHERE id = ?',
                        (record,))

    def client(self) -> TrytonClient:
        """A logged-in client for checks, one per database (a login hashes a password)."""
        key = (self.url, self.db)
        if key not in _clients:
            _clients[key] = TrytonClient(self.url, self.db, self.user, self.password)
        return _clients[key]

    def on_hand(self, location: str, sku: str) -> Decimal:
        """The product's quantity in the bin, read straight from Tryton."""
        client = self.client()
        (loc,) = client.model("stock.location", "search", [("code", "=", location)], 0, 1, None)
        (rec,) = client.model("product.product", "search_read", [("code", "=", sku)], 0, 1,
                              None, ["quantity"], context={"locations": [loc]})
        return Decimal(str(rec["quantity"]))

    def env(self) -> dict[str, str]:
        return {"SHELFCOUNT_TRYTON_URL": self.url, "SHELFCOUNT_TRYTON_DB": self.db,
                "SHELFCOUNT_TRYTON_USER": self.user, "SHELFCOUNT_TRYTON_PASSWORD": self.password}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrytonServer:
    """One trytond process serving every database file in ``directory``; stoppable."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config = directory / "trytond.conf"
        self.config.write_text(f"[database]\nuri = sqlite://\npath = {directory}\n")
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *dbs: str) -> None:
        """Start serving (``dbs`` are loaded up front, others on their first request)."""
        env = {**os.environ, "TRYTOND_WEB__LISTEN": f"127.0.0.1:{self.port}"}
        log = open(self.directory / "trytond.log", "ab")  # noqa: SIM115 - owned by the process
        preload = ["-d", *dbs] if dbs else []
        self.proc = subprocess.Popen([str(BIN / "trytond"), "-c", str(self.config), *preload],
                                     env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"trytond exited: see {self.directory / 'trytond.log'}")
            try:
                requests.post(f"{self.url}/", json={"id": 0, "method": "common.server.version",
                                                    "params": []}, timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("trytond did not start within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


def _seed(client: TrytonClient) -> None:
    """Company, bins (storage locations under the warehouse's storage zone), products."""
    m = client.model
    (currency,) = m("currency.currency", "create", [{
        "name": "Euro", "code": "EUR", "symbol": "€",
        "rounding": {"__class__": "Decimal", "decimal": "0.01"}}])
    (party,) = m("party.party", "create", [{"name": "ShelfCount Test Warehouse"}])
    (company,) = m("company.company", "create", [{"party": party, "currency": currency}])
    m("res.user", "write", [client.uid], {"companies": [["add", [company]]], "company": company})
    # Purchase requisitions (approved reorder suggestions) are made by an employee.
    (person,) = m("party.party", "create", [{"name": "ShelfCount Gateway"}])
    (employee,) = m("company.employee", "create", [{"party": person, "company": company}])
    m("res.user", "write", [client.uid], {"employees": [["add", [employee]]],
                                          "employee": employee})
    client.login()  # the context now carries the company and the employee
    (storage,) = m("stock.location", "search", [("code", "=", "STO")], 0, 1, None)
    (unit,) = m("product.uom", "search", [("name", "=", "Unit")], 0, 1, None)
    locations = m("stock.location", "create", [
        {"name": code, "code": code, "type": "storage", "parent": storage} for code in LOCATIONS])
    m("product.template", "create", [{
        "name": f"Test product {sku}", "type": "goods", "default_uom": unit,
        "purchasable": True, "purchase_uom": unit,
        "list_price": {"__class__": "Decimal", "decimal": "10"},
        "products": [["create", [{"suffix_code": sku}]]]} for sku in SKUS])
    m("product.template", "create", [{
        "name": "Shelf labelling service", "type": "service", "default_uom": unit,
        "list_price": {"__class__": "Decimal", "decimal": "1"},
        "products": [["create", [{"suffix_code": SERVICE_SKU}]]]}])
    products = {r["code"]: r["id"] for r in m("product.product", "search_read",
                                             [("code", "in", SKUS)], 0, None, None, ["code"])}
    inventories = m("stock.inventory", "create", [{
        "location": loc, "empty_quantity": "keep",
        "lines": [["create", [{"product": products[sku], "quantity": float(ON_HAND)}]]]}
        for loc, sku in zip(locations, SKUS, strict=True)])
    m("stock.inventory", "confirm", inventories)


def _build_template(server: TrytonServer) -> None:
    """Create the database with the stock and purchase requisition modules (trytond-admin)
    and seed it."""
    directory = server.directory
    (directory / f"{TEMPLATE}.sqlite").touch()
    passfile = directory / "admin-password"
    passfile.write_text(PASSWORD)
    subprocess.run(
        [str(BIN / "trytond-admin"), "-c", str(server.config), "-d", TEMPLATE,
         "--email", "admin@example.com", "-u", "stock", "product", "purchase_requisition",
         "stock_supply", "--activate-dependencies"],
        env={**os.environ, "TRYTONPASSFILE": str(passfile)}, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    server.start(TEMPLATE)
    try:
        _seed(TrytonDB(server.url, TEMPLATE).client())
    finally:
        server.stop()
    # Fold the write-ahead log into the file so a plain copy is the whole database; the
    # servers started later never open the template itself.
    with sqlite3.connect(directory / f"{TEMPLATE}.sqlite") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for suffix in (".sqlite-wal", ".sqlite-shm"):
        (directory / f"{TEMPLATE}{suffix}").unlink(missing_ok=True)


def _cache_key() -> str:
    """Changes with trytond's version and with this file (the seed)."""
    from importlib.metadata import version

    digest = hashlib.sha256(Path(__file__).read_bytes())
    for package in ("trytond", "trytond_stock", "trytond_product",
                    "trytond_purchase_requisition", "trytond_stock_supply"):
        digest.update(version(package).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tryton_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonServer]:
    """The seeded template database and a stopped trytond; ``tryton_db`` starts it.

    Building the template takes trytond-admin ~20 s (minutes on a busy machine), so it is
    kept in pytest's cache directory between runs, keyed by trytond's version and this file.
    """
    if not (BIN / "trytond-admin").exists():
        pytest.skip("trytond is not installed (pip install -e '.[dev]')")
    server = TrytonServer(tmp_path_factory.mktemp("trytond"))
    template = server.directory / f"{TEMPLATE}.sqlite"
    cache = getattr(request.config, "cache", None)
    cached = (cache.mkdir("tryton-template") / f"{_cache_key()}.sqlite"
              if cache is not None else None)
    if cached is not None and cached.exists():
        shutil.copyfile(cached, template)
    else:
        _build_template(server)
        if cached is not None:  # via a rename: a parallel run never copies half a file
            partial = cached.with_suffix(f".{os.getpid()}.partial")
            shutil.copyfile(template, partial)
            os.replace(partial, cached)
    try:
        yield server
    finally:
        server.stop()


_names = itertools.count(1)


@pytest.fixture
def tryton_db(tryton_server: TrytonServer) -> Iterator[TrytonDB]:
    """A fresh copy of the seeded database, served by a trytond of its own.

    trytond 8.2 does not initialise a database it was not started with (login answers
    KeyError 'res.user'), so each test's copy gets its own ~2 s server start.
    """
    directory = tryton_server.directory
    name = f"t{next(_names)}"
    shutil.copyfile(directory / f"{TEMPLATE}.sqlite", directory / f"{name}.sqlite")
    tryton_server.start(name)
    try:
        yield TrytonDB(tryton_server.url, name, file=directory / f"{name}.sqlite")
    finally:
        tryton_server.stop()
        for suffix in (".sqlite", ".sqlite-wal", ".sqlite-shm"):
            (directory / f"{name}{suffix}").unlink(missing_ok=True)


