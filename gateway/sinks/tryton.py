"""Tryton ERP sink: each confirmed bay becomes a confirmed ``stock.inventory`` (JSON-RPC).

Plain JSON-RPC over HTTP (no proteus at run time). Per bay and location: find the storage
location whose code is the bin's Location and the products whose code is the SKU (either
missing: a clear, non-transient error; the entry stays in the outbox), create a draft
inventory with one line per SKU (the server fills ``expected_quantity``, the system quantity
before the count), tag it with an ``ir.note`` carrying ``shelfcount:<count id>:<location>``,
then confirm it, which books the differences against lost-and-found.

Exactly once: ``stock.inventory`` has no free reference field (``number`` is read-only over
RPC), so the note is the reference. Only ``confirm`` moves stock, and it runs only for an
inventory found through its note; a retry that finds the note confirms a draft left by a
crash or skips a done one. A crash between creating the draft and writing the note leaves a
draft nobody confirms; the next attempt deletes such untagged drafts this user made for the
location before creating a fresh one.
"""

from __future__ import annotations

import base64
import threading
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import requests

from gateway.config import Settings

from .base import Entry, SinkError, deliver_each
from .variance import decimal_or_none

NOTE_PREFIX = "shelfcount:"


class TrytonError(SinkError):
    """Tryton answered with a business error (HTTP 200 with an ``error`` member)."""


class TrytonClient:
    """A logged-in JSON-RPC session with one Tryton database (login is slow: reuse it)."""

    def __init__(self, url: str, db: str, user: str, password: str,
                 timeout_s: float = 30.0) -> None:
        self.endpoint = f"{url.rstrip('/')}/{db}/rpc/"
        self.user = user
        self._password = password
        self.timeout_s = timeout_s
        self._http = requests.Session()
        self._auth: str | None = None
        self.uid: int | None = None
        self.context: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _post(self, method: str, params: list[Any], auth: bool) -> Any:
        headers = {"Authorization": self._auth} if auth and self._auth else {}
        try:
            resp = self._http.post(self.endpoint, json={"id": 1, "method": method,
                                                        "params": params},
                                   headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise SinkError(f"Tryton at {self.endpoint} unreachable: "
                            f"{type(exc).__name__}") from exc
        if resp.status_code == 401:
            raise PermissionError("Tryton refused the login or session")
        if resp.status_code == 404:
            raise SinkError(f"Tryton has no database at {self.endpoint}", transient=False)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise SinkError(f"Tryton answered HTTP {resp.status_code}",
                            retry_after=_retry_after(resp))
        if resp.status_code != 200:
            raise SinkError(f"Tryton answered HTTP {resp.status_code}", transient=False)
        body = resp.json()
        if body.get("error"):
            raise TrytonError(f"Tryton refused {method}: {_error_text(body['error'])}",
                              transient=False)
        return body.get("result")

    def login(self) -> None:
        try:
            result = self._post("common.db.login",
                                [self.user, {"password": self._password}, "en"], auth=False)
        except PermissionError as exc:
            raise SinkError(f"Tryton login for user {self.user!r} refused",
                            transient=False) from exc
        self.uid, token = result[0], result[1]
        raw = f"{self.user}:{self.uid}:{token}".encode()
        self._auth = "Session " + base64.b64encode(raw).decode()
        self.context = self._post("model.res.user.get_preferences", [True, {}], auth=True)

    def model(self, model: str, method: str, *args: Any,
              context: dict[str, Any] | None = None) -> Any:
        """Call ``model.<model>.<method>`` with the user's context (plus ``context``),
        logging in when needed."""
        with self._lock:
            if self._auth is None:
                self.login()
            method_name = f"model.{model}.{method}"
            params = [*args, {**self.context, **(context or {})}]
            try:
                return self._post(method_name, params, auth=True)
            except PermissionError:
                self.login()  # session expired (server restarted): once more, fresh
            try:
                return self._post(method_name, params, auth=True)
            except PermissionError:
                raise SinkError("Tryton refused a fresh session", transient=False) from None


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _error_text(error: Any) -> str:
    if isinstance(error, list) and len(error) == 2 and isinstance(error[1], list) and error[1]:
        return f"{error[0]}: {error[1][0]}"
    return str(error)


def _bay_lines(entry: Entry) -> dict[str, dict[str, Decimal]]:
    """Location -> SKU -> counted quantity (lines of one SKU added up; rows without SKU left
    out: nothing to book them against)."""
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in entry.rows:
        sku = str(row.get("SKU") or "").strip()
        location = str(row.get("Location") or entry.location or "").strip()
        if not sku:
            continue
        if not location:
            raise SinkError(f"count {entry.count_id}: a row for {sku} has no Location",
                            transient=False)
        out[location][sku] += decimal_or_none(row.get("Quantity_Counted")) or Decimal(0)
    return {loc: dict(skus) for loc, skus in out.items()}


class TrytonSink:
    """Books counts as confirmed inventories; also the source of system quantities."""

    name = "tryton"

    def __init__(self, client: TrytonClient) -> None:
        self.client = client
        self._snapshots: dict[str, dict[tuple[str, str], Decimal]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TrytonSink:
        extra = settings.extra
        return cls(TrytonClient(extra["tryton_url"], extra["tryton_db"], extra["tryton_user"],
                                extra["tryton_password"]))

    # -- lookups -------------------------------------------------------------------------
    def _location_id(self, code: str) -> int:
        ids = self.client.model("stock.location", "search",
                                [("code", "=", code), ("type", "=", "storage")], 0, 1, None)
        if not ids:
            raise SinkError(f"Tryton has no storage location with code {code!r}",
                            transient=False)
        return int(ids[0])

    def _product_ids(self, skus: Sequence[str]) -> dict[str, int]:
        found = self.client.model("product.product", "search_read",
                                  [("code", "in", list(skus))], 0, None, None, ["code"])
        ids = {rec["code"]: int(rec["id"]) for rec in found}
        missing = sorted(set(skus) - set(ids))
        if missing:
            raise SinkError(f"Tryton has no product with code {', '.join(missing)}",
                            transient=False)
        return ids

    def _tagged_inventory(self, ref: str) -> int | None:
        notes = self.client.model("ir.note", "search_read", [("message", "=", ref)],
                                  0, 1, None, ["resource"])
        if not notes:
            return None
        resource = str(notes[0]["resource"])
        return int(resource.split(",", 1)[1])

    def _expected(self, inventory_id: int, location: str) -> dict[tuple[str, str], Decimal]:
        lines = self.client.model("stock.inventory.line", "search_read",
                                  [("inventory", "=", inventory_id)], 0, None, None,
                                  ["product", "expected_quantity"])
        codes = {int(r["id"]): r["code"] for r in self.client.model(
            "product.product", "read", [int(ln["product"]) for ln in lines], ["code"])}
        return {(location, codes[int(ln["product"])]):
                Decimal(str(ln["expected_quantity"] or 0)) for ln in lines}

    # -- Sink ----------------------------------------------------------------------------
    def deliver(self, entry: Entry) -> None:
        snapshot: dict[tuple[str, str], Decimal] = {}
        for location, counted in _bay_lines(entry).items():
            snapshot.update(self._book(entry.count_id, location, counted))
        self._snapshots[entry.count_id] = snapshot

    def _book(self, count_id: str, location: str,
              counted: dict[str, Decimal]) -> dict[tuple[str, str], Decimal]:
        ref = f"{NOTE_PREFIX}{count_id}:{location}"
        inventory = self._tagged_inventory(ref)
        if inventory is None:
            location_id = self._location_id(location)
            products = self._product_ids(sorted(counted))
            self._drop_untagged_drafts(location_id)
            lines = [{"product": products[sku], "quantity": float(qty)}
                     for sku, qty in sorted(counted.items())]
            (inventory,) = self.client.model("stock.inventory", "create", [{
                "location": location_id, "empty_quantity": "keep",
                "lines": [["create", lines]]}])
            self.client.model("ir.note", "create",
                              [{"resource": f"stock.inventory,{inventory}", "message": ref}])
        (state,) = self.client.model("stock.inventory", "read", [inventory], ["state"])
        if state["state"] == "draft":
            self.client.model("stock.inventory", "confirm", [inventory])
        return self._expected(inventory, location)

    def _drop_untagged_drafts(self, location_id: int) -> None:
        drafts = self.client.model("stock.inventory", "search", [
            ("state", "=", "draft"), ("location", "=", location_id),
            ("create_uid", "=", self.client.uid)], 0, None, None)
        if not drafts:
            return
        tagged = self.client.model("ir.note", "search_read", [
            ("resource", "in", [f"stock.inventory,{i}" for i in drafts]),
            ("message", "like", NOTE_PREFIX + "%")], 0, None, None, ["resource"])
        keep = {int(str(n["resource"]).split(",", 1)[1]) for n in tagged}
        orphans = [i for i in drafts if i not in keep]
        if orphans:
            self.client.model("stock.inventory", "delete", orphans)

    def deliver_batch(self, entries: Sequence[Entry]) -> list[Exception | None]:
        return deliver_each(self, entries)

    def system_quantities(self, entry: Entry) -> dict[tuple[str, str], Decimal]:
        """(Location, SKU) -> system quantity before this bay's count.

        From the booked inventory's snapshot when the bay is booked already, else the
        on-hand quantity now (the count is not booked yet, so that is "before").
        """
        if entry.count_id in self._snapshots:
            return self._snapshots[entry.count_id]
        out: dict[tuple[str, str], Decimal] = {}
        for location, counted in _bay_lines(entry).items():
            inventory = self._tagged_inventory(f"{NOTE_PREFIX}{entry.count_id}:{location}")
            if inventory is not None:
                out.update(self._expected(inventory, location))
                continue
            location_id = self._location_id(location)
            products = self._product_ids(sorted(counted))
            recs = self.client.model("product.product", "read", list(products.values()),
                                     ["code", "quantity"], context={"locations": [location_id]})
            out.update({(location, r["code"]): Decimal(str(r["quantity"] or 0)) for r in recs})
        return out

    def check(self) -> str | None:
        try:
            self.client.login()
            if not self.client.context.get("company"):
                return f"user {self.client.user!r} has no current company (stock needs one)"
            self.client.model("stock.inventory", "search", [], 0, 1, None)
        except SinkError as exc:
            return str(exc)
        return None
