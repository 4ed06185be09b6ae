"""Tryton ERP sink: each confirmed bay becomes a confirmed ``stock.inventory`` (JSON-RPC).

Plain JSON-RPC over HTTP (no proteus at run time). Per bay and location: find the storage
location whose code is the bin's Location and the products whose code is the SKU (either
missing: a clear, non-transient error; the entry stays in the outbox), create a draft
inventory with one line per SKU (the server fills ``expected_quantity``, the system quantity
before the count), tag it with an ``ir.note`` carrying ``shelfcount:<count id>:<location>``,
then confirm it, which books the differences against lost-and-found.

Exactly once: ``stock.inventory`` has no free reference field (``number`` is read-only over
RPC), so the note is the reference. Only ``confirm`` moves stock, and it runs only for an
inventory that carries its note; a retry that finds the note confirms a draft left by a
crash or skips a done one. A crash between creating the draft and writing the note leaves a
draft nobody confirms; the next attempt deletes such untagged drafts this user made for the
location before creating a fresh one.

Speed: a batch of bays costs a fixed handful of calls (look-ups, one create, one note create,
one confirm, one read of the snapshots), not a handful per bay; each Tryton call is one
transaction with its own commit, which is what dominates on SQLite.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from pydantic import Field, SecretStr

from gateway.schema import decimal_or_none

from .base import Entry, SinkError
from .plugin import SinkContext, SinkPlugin, SinkSettings

NOTE_PREFIX = "shelfcount:"
REOPENED_NOTE = "ShelfCount: bay reopened by a manager"
SNAPSHOT_CACHE = 2000


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


def _ref(count_id: str, location: str) -> str:
    return f"{NOTE_PREFIX}{count_id}:{location}"


def _resource_id(resource: object) -> int:
    return int(str(resource).split(",", 1)[1])


@dataclass
class _Lookups:
    """What one batch needs from Tryton, fetched in a handful of calls instead of per bay."""

    tagged: dict[str, int]  # note reference -> inventory id
    locations: dict[str, int]  # code -> storage location id
    products: dict[str, int]  # code -> product id


class TrytonSettings(SinkSettings):
    url: str = Field(alias="tryton_url", description="Tryton JSON-RPC root (stock inventories)")
    db: str = Field(alias="tryton_db", description="Tryton database")
    user: str = Field(alias="tryton_user", description="Tryton user")
    password: SecretStr = Field(alias="tryton_password",
                                description="Tryton password (never logged)")


class TrytonSink:
    """Books counts as confirmed inventories; also the source of system quantities."""

    name = "tryton"

    def __init__(self, client: TrytonClient) -> None:
        self.client = client
        # Count id -> snapshot of the bays booked by this process, for the sheet and alerts
        # that run right after; bounded, older ones are read back from Tryton when needed.
        self._snapshots: OrderedDict[str, dict[tuple[str, str], Decimal]] = OrderedDict()

    @classmethod
    def from_config(cls, config: TrytonSettings, _context: SinkContext | None = None
                    ) -> TrytonSink:
        return cls(TrytonClient(config.url, config.db, config.user,
                                config.password.get_secret_value()))

    # -- lookups -------------------------------------------------------------------------
    def _lookups(self, bays: Sequence[tuple[str, dict[str, dict[str, Decimal]]]]) -> _Lookups:
        refs = [_ref(cid, loc) for cid, lines in bays for loc in lines]
        codes = sorted({loc for _, lines in bays for loc in lines})
        skus = sorted({sku for _, lines in bays for skus in lines.values() for sku in skus})
        m = self.client.model
        notes = m("ir.note", "search_read", [("message", "in", refs)], 0, None, None,
                  ["resource", "message"]) if refs else []
        locations = m("stock.location", "search_read",
                      [("code", "in", codes), ("type", "=", "storage")], 0, None, None,
                      ["code"]) if codes else []
        products = m("product.product", "search_read", [("code", "in", skus)], 0, None, None,
                     ["code"]) if skus else []
        return _Lookups({n["message"]: _resource_id(n["resource"]) for n in notes},
                        {r["code"]: int(r["id"]) for r in locations},
                        {r["code"]: int(r["id"]) for r in products})

    def _drop_untagged_drafts(self, location_ids: Sequence[int]) -> None:
        """Delete drafts this user left at these locations without a note (a crash between
        creating and tagging): nobody will ever confirm them, a retry makes a fresh one."""
        if not location_ids:
            return
        drafts = self.client.model("stock.inventory", "search", [
            ("state", "=", "draft"), ("location", "in", list(location_ids)),
            ("create_uid", "=", self.client.uid)], 0, None, None)
        if not drafts:
            return
        tagged = self.client.model("ir.note", "search_read", [
            ("resource", "in", [f"stock.inventory,{i}" for i in drafts]),
            ("message", "like", NOTE_PREFIX + "%")], 0, None, None, ["resource"])
        keep = {_resource_id(n["resource"]) for n in tagged}
        orphans = [i for i in drafts if i not in keep]
        if orphans:
            self.client.model("stock.inventory", "delete", orphans)

    def _expected(self, inventories: dict[int, str],
                  products: dict[str, int]) -> dict[int, dict[tuple[str, str], Decimal]]:
        """Inventory id -> (Location, SKU) -> expected quantity (the pre-count snapshot)."""
        if not inventories:
            return {}
        lines = self.client.model("stock.inventory.line", "search_read",
                                  [("inventory", "in", list(inventories))], 0, None, None,
                                  ["inventory", "product", "expected_quantity"])
        codes = {pid: code for code, pid in products.items()}
        out: dict[int, dict[tuple[str, str], Decimal]] = defaultdict(dict)
        for ln in lines:
            inv = int(ln["inventory"])
            code = codes.get(int(ln["product"]))
            if code is not None:
                out[inv][(inventories[inv], code)] = Decimal(str(ln["expected_quantity"] or 0))
        return out

    # -- Sink ----------------------------------------------------------------------------
    def deliver(self, entry: Entry) -> None:
        (outcome,) = self.deliver_batch([entry])
        if outcome is not None:
            raise outcome

    def deliver_batch(self, entries: Sequence[Entry]) -> list[Exception | None]:
        """Book a batch in a few calls: create every new inventory in one call, tag them in
        one, confirm them in one (each call one Tryton transaction; a business error in a
        combined call falls back to one call per bay, so one bad bay holds up only itself)."""
        outcomes: list[Exception | None] = [None] * len(entries)
        bays: list[tuple[str, dict[str, dict[str, Decimal]]]] = []
        for i, entry in enumerate(entries):
            try:
                bays.append((entry.count_id, _bay_lines(entry)))
            except SinkError as exc:
                outcomes[i] = exc
                bays.append((entry.count_id, {}))
        try:
            found = self._lookups(bays)
            self._drop_untagged_drafts([found.locations[loc] for cid, lines in bays
                                        for loc in lines if _ref(cid, loc) not in found.tagged
                                        and loc in found.locations])
        except SinkError as exc:
            return [outcome or exc for outcome in outcomes]
        inventories: dict[int, tuple[int, str]] = {}  # inventory -> (entry index, location)
        # (entry index, note reference, inventory values, location)
        new: list[tuple[int, str, dict[str, Any], str]] = []
        for i, (count_id, lines) in enumerate(bays):
            if outcomes[i] is not None:
                continue
            try:
                todo = [(loc, self._inventory_values(loc, counted, found))
                        for loc, counted in lines.items()
                        if _ref(count_id, loc) not in found.tagged]
            except SinkError as exc:
                outcomes[i] = exc
                continue
            inventories.update({found.tagged[_ref(count_id, loc)]: (i, loc) for loc in lines
                                if _ref(count_id, loc) in found.tagged})
            new.extend((i, _ref(count_id, loc), values, loc) for loc, values in todo)
        created = self._each_or_all(new, lambda batch: self.client.model(
            "stock.inventory", "create", [item[2] for item in batch]), outcomes)
        notes = [(i, ref, int(inv), loc) for (i, ref, _, loc), inv in created]
        for (i, _, inv, loc), _ in self._each_or_all(notes, lambda batch: self.client.model(
                "ir.note", "create", [{"resource": f"stock.inventory,{inv}", "message": ref}
                                      for _, ref, inv, _ in batch]), outcomes):
            inventories[inv] = (i, loc)
        states = self._states(list(inventories))
        drafts = [(i, inv) for inv, (i, _) in inventories.items()
                  if states.get(inv) == "draft" and outcomes[i] is None]
        self._each_or_all(drafts, lambda batch: self.client.model(
            "stock.inventory", "confirm", [inv for _, inv in batch]) or [None] * len(batch),
            outcomes)
        self._flag_reopened(entries, inventories, outcomes)
        try:
            expected = self._expected({inv: loc for inv, (_, loc) in inventories.items()},
                                      found.products)
        except SinkError:
            expected = {}  # booked all the same; system_quantities() reads it again later
        for inv, (i, _) in inventories.items():
            if outcomes[i] is None and inv in expected:
                self._snapshots.setdefault(entries[i].count_id, {}).update(expected[inv])
        while len(self._snapshots) > SNAPSHOT_CACHE:
            self._snapshots.popitem(last=False)
        return outcomes

    def _flag_reopened(self, entries: Sequence[Entry], inventories: dict[int, tuple[int, str]],
                       outcomes: list[Exception | None]) -> None:
        """A reopened bay's new inventory gets a second note saying so, for whoever reads it
        in Tryton (the first booking stays: the new count sets the quantity again). Each
        delivery adds the notes still missing, so a retry neither skips nor repeats one."""
        wanted = {f"stock.inventory,{inv}": i for inv, (i, _) in inventories.items()
                  if entries[i].revises and outcomes[i] is None}
        if not wanted:
            return
        m = self.client.model
        try:
            have = {n["resource"] for n in m(
                "ir.note", "search_read", [("resource", "in", list(wanted)),
                                           ("message", "like", f"{REOPENED_NOTE}%")],
                0, None, None, ["resource"])}
            new = [{"resource": res, "message": f"{REOPENED_NOTE} and counted again by "
                    f"{entries[i].walker}; this inventory replaces the bay's earlier ShelfCount "
                    f"count (outbox entry {entries[i].revises})"}
                   for res, i in wanted.items() if res not in have]
            if new:
                m("ir.note", "create", new)
        except SinkError as exc:
            for i in wanted.values():
                outcomes[i] = exc

    def _states(self, inventories: list[int]) -> dict[int, str]:
        if not inventories:
            return {}
        return {int(r["id"]): r["state"] for r in self.client.model(
            "stock.inventory", "read", inventories, ["state"])}

    @staticmethod
    def _each_or_all(items: Sequence[tuple[Any, ...]],
                     call: Callable[[Sequence[tuple[Any, ...]]], list[Any]],
                     outcomes: list[Exception | None]) -> list[tuple[tuple[Any, ...], Any]]:
        """``call`` on all items at once, on a business error item by item; an item's first
        element is its entry's index, where a failure is recorded. Returns (item, result)
        for the items that went through."""
        def fail(item: tuple[Any, ...], exc: SinkError) -> None:
            outcomes[item[0]] = outcomes[item[0]] or exc

        if not items:
            return []
        try:
            return list(zip(items, call(items), strict=True))
        except TrytonError as exc:
            if len(items) == 1:
                fail(items[0], exc)
                return []
        except SinkError as exc:  # Tryton away: the whole batch waits
            for item in items:
                fail(item, exc)
            return []
        done = []
        for item in items:
            try:
                (result,) = call([item])
            except SinkError as exc:
                fail(item, exc)
            else:
                done.append((item, result))
        return done

    @staticmethod
    def _inventory_values(location: str, counted: dict[str, Decimal],
                          found: _Lookups) -> dict[str, Any]:
        if location not in found.locations:
            raise SinkError(f"Tryton has no storage location with code {location!r}",
                            transient=False)
        missing = sorted(set(counted) - set(found.products))
        if missing:
            raise SinkError(f"Tryton has no product with code {', '.join(missing)}",
                            transient=False)
        lines = [{"product": found.products[sku], "quantity": float(qty)}
                 for sku, qty in sorted(counted.items())]
        return {"location": found.locations[location], "empty_quantity": "keep",
                "lines": [["create", lines]]}

    def system_quantities(self, entry: Entry) -> dict[tuple[str, str], Decimal]:
        """(Location, SKU) -> system quantity before this bay's count.

        From the booked inventory's snapshot when the bay is booked already, else the
        on-hand quantity now (the count is not booked yet, so that is "before"). Lines whose
        location or product Tryton does not know have none: the sheet still shows the count.
        """
        if entry.count_id in self._snapshots:
            return self._snapshots[entry.count_id]
        lines = _bay_lines(entry)
        found = self._lookups([(entry.count_id, lines)])
        tagged = {found.tagged[_ref(entry.count_id, loc)]: loc for loc in lines
                  if _ref(entry.count_id, loc) in found.tagged}
        out: dict[tuple[str, str], Decimal] = {}
        for snapshot in self._expected(tagged, found.products).values():
            out.update(snapshot)
        for location, counted in lines.items():
            if location in tagged.values():
                continue
            ids = [found.products[sku] for sku in counted if sku in found.products]
            if location not in found.locations or not ids:
                continue  # unknown to Tryton: no system quantity (the booking reports it)
            recs = self.client.model("product.product", "read", ids, ["code", "quantity"],
                                     context={"locations": [found.locations[location]]})
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


PLUGIN = SinkPlugin("tryton", TrytonSettings, TrytonSink.from_config,
                    provides_system_quantities=True)
