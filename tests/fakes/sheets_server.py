"""A Google-Sheets-API-compatible server for tests, served over HTTP on loopback.

gspread talks to it exactly as it talks to Google (the sink only swaps the API root), so the
tests exercise the real client library, real OAuth service-account JWT signing and real HTTP.
Implemented: the OAuth token endpoint (JWT bearer grant, signature checked against the
registered service account's public key), spreadsheet metadata GET, ``:batchUpdate`` with
addSheet / repeatCell / updateSheetProperties, and values get / update / append / clear.
``inject`` makes the next API calls fail (429 quota, 5xx) and ``stop``/``start`` take the server
down and bring it back on the same port.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

API_PREFIX = "/v4/spreadsheets"
TOKEN_PATH = "/token"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_CELL = re.compile(r"^([A-Z]*)(\d*)$")


@dataclass
class Grid:
    """One worksheet: its properties, its cells (rows of values) and the formats applied."""

    sheet_id: int
    title: str
    index: int
    row_count: int = 1000
    column_count: int = 26
    frozen_rows: int = 0
    values: list[list[Any]] = field(default_factory=list)
    formats: list[dict[str, Any]] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        grid: dict[str, Any] = {"rowCount": self.row_count, "columnCount": self.column_count}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        return {"sheetId": self.sheet_id, "title": self.title, "index": self.index,
                "sheetType": "GRID", "gridProperties": grid}


@dataclass
class Book:
    """A spreadsheet."""

    key: str
    title: str
    sheets: list[Grid] = field(default_factory=list)
    next_sheet_id: int = 1

    def sheet(self, title: str | None) -> Grid | None:
        if title is None:
            return self.sheets[0] if self.sheets else None
        return next((s for s in self.sheets if s.title == title), None)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def parse_range(text: str) -> tuple[str | None, int, int, int | None, int | None]:
    """Split A1 notation into (sheet title, first row, first col, last row, last col).

    Rows and columns are 0-based; None as a last row/column means "to the end".
    """
    title: str | None = None
    ref = text
    if text.startswith("'"):
        end = 1
        while True:
            end = text.index("'", end)
            if text[end:end + 2] == "''":
                end += 2
                continue
            break
        title = text[1:end].replace("''", "'")
        ref = text[end + 2:] if text[end + 1:end + 2] == "!" else ""
    elif "!" in text:
        title, ref = text.rsplit("!", 1)
    elif not _CELL.match(text.split(":")[0] or "?"):
        title, ref = text, ""
    if not ref:
        return title, 0, 0, None, None
    start, _, end = ref.partition(":")
    s_col, s_row = _CELL.match(start).groups()  # type: ignore[union-attr]
    first_row = int(s_row) - 1 if s_row else 0
    first_col = _col_index(s_col) if s_col else 0
    if not end:
        if s_row and s_col:
            return title, first_row, first_col, first_row, first_col
        end = start
    e_col, e_row = _CELL.match(end).groups()  # type: ignore[union-attr]
    last_row = int(e_row) - 1 if e_row else None
    last_col = _col_index(e_col) if e_col else None
    return title, first_row, first_col, last_row, last_col


class FakeSheets:
    """The server: state, failure injection and a Flask app served by a werkzeug thread."""

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}
        self.public_keys: dict[str, Any] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.formulas: list[str] = []
        self._failures: list[tuple[int, float | None]] = []
        self._lock = threading.RLock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = self._build_app()

    # -- test controls -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve (again) on the same port as before, or on a free one the first time."""
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take the server down: connections are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None

    def create_spreadsheet(self, title: str = "Counts") -> str:
        key = secrets.token_hex(12)
        with self._lock:
            self.books[key] = Book(key, title, [Grid(0, "Sheet1", 0)])
        return key

    def service_account(self, email: str = "counter@shelfcount.iam.example") -> dict[str, Any]:
        """A service-account JSON (as Google issues it) whose key this server trusts."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        self.public_keys[email] = key.public_key()
        return {
            "type": "service_account", "project_id": "shelfcount-test",
            "private_key_id": secrets.token_hex(8), "private_key": pem,
            "client_email": email, "client_id": "1",
            "token_uri": self.url + TOKEN_PATH,
        }

    def inject(self, status: int, count: int = 1, retry_after: float | None = None,
               after: int = 0) -> None:
        """Make the next ``count`` API calls (not token calls) answer ``status``, once
        ``after`` calls have been answered normally."""
        with self._lock:
            self._failures.extend([(0, None)] * after + [(status, retry_after)] * count)

    def rows(self, key: str, title: str) -> list[list[Any]]:
        sheet = self.books[key].sheet(title)
        return [] if sheet is None else [list(r) for r in sheet.values]

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    # -- HTTP ----------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask("fake-sheets")

        @app.post(TOKEN_PATH)
        def token() -> Response:
            return self._token()

        @app.route(API_PREFIX + "/<path:rest>", methods=["GET", "POST", "PUT"])
        def api(rest: str) -> Response:
            return self._api(rest)

        return app

    def _error(self, status: int, message: str, reason: str) -> Response:
        resp = jsonify({"error": {"code": status, "message": message, "status": reason}})
        resp.status_code = status
        return resp

    def _token(self) -> Response:
        form = request.form
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._error(400, "unsupported grant_type", "INVALID_ARGUMENT")
        try:
            head, body, sig = form["assertion"].split(".")
            claims = json.loads(_b64url_decode(body))
            pub = self.public_keys[claims["iss"]]
            pub.verify(_b64url_decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except Exception as exc:  # noqa: BLE001 - any defect in the assertion is a 400
            return self._error(400, f"invalid_grant: {exc!r}", "INVALID_ARGUMENT")
        # google-auth always signs for Google's token endpoint, whatever token_uri says.
        if (claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.url + TOKEN_PATH)
                or claims.get("exp", 0) < time.time()
                or "spreadsheets" not in claims.get("scope", "")):
            return self._error(400, "invalid_grant: bad audience, scope or expiry",
                               "INVALID_ARGUMENT")
        tok = secrets.token_urlsafe(24)
        self.tokens.add(tok)
        return jsonify({"access_token": tok, "expires_in": 3600, "token_type": "Bearer"})

    def _api(self, rest: str) -> Response:
        self.requests.append((request.method, unquote(rest)))
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._error(401, "Request had invalid authentication credentials.",
                               "UNAUTHENTICATED")
        with self._lock:
            status, retry_after = self._failures.pop(0) if self._failures else (0, None)
            if status:
                resp = self._error(status, "injected failure",
                                   "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE")
                if retry_after is not None:
                    resp.headers["Retry-After"] = str(retry_after)
                return resp
            key, _, tail = rest.partition("/")
            key, _, action = key.partition(":")
            book = self.books.get(key)
            if book is None:
                return self._error(404, "Requested entity was not found.", "NOT_FOUND")
            if not tail and request.method == "GET":
                return jsonify(self._metadata(book))
            if not tail and action == "batchUpdate":
                return self._batch_update(book, request.get_json())
            if tail == "values:batchClear" and request.method == "POST":
                cleared = []
                for rng in (request.get_json() or {}).get("ranges", []):
                    resp = self._values(book, rng, "clear")
                    if resp.status_code != 200:
                        return resp
                    cleared.append(resp.get_json()["clearedRange"])
                return jsonify({"spreadsheetId": book.key, "clearedRanges": cleared})
            if tail.startswith("values/"):
                rng, _, verb = unquote(tail[len("values/"):]).rpartition(":")
                if not rng or not re.fullmatch(r"append|clear", verb):
                    rng, verb = unquote(tail[len("values/"):]), ""
                return self._values(book, rng, verb)
            return self._error(400, f"unsupported call {request.method} {rest}", "INVALID_ARGUMENT")

    def _metadata(self, book: Book) -> dict[str, Any]:
        return {"spreadsheetId": book.key, "properties": {"title": book.title, "locale": "en_US"},
                "sheets": [{"properties": s.properties()} for s in book.sheets]}

    def _batch_update(self, book: Book, body: dict[str, Any]) -> Response:
        replies: list[dict[str, Any]] = []
        for req in body.get("requests", []):
            if "addSheet" in req:
                props = req["addSheet"].get("properties", {})
                title = props.get("title") or f"Sheet{book.next_sheet_id + 1}"
                if book.sheet(title) is not None:
                    return self._error(400, f'A sheet with the name "{title}" already exists.',
                                       "INVALID_ARGUMENT")
                grid = props.get("gridProperties", {})
                sheet = Grid(book.next_sheet_id, title, len(book.sheets),
                             grid.get("rowCount", 1000), grid.get("columnCount", 26))
                book.next_sheet_id += 1
                book.sheets.append(sheet)
                replies.append({"addSheet": {"properties": sheet.properties()}})
            elif "repeatCell" in req:
                rc = req["repeatCell"]
                sheet = self._by_id(book, rc["range"]["sheetId"])
                if sheet is None:
                    return self._error(400, "no such sheet", "INVALID_ARGUMENT")
                sheet.formats.append({"range": rc["range"], "cell": rc.get("cell", {}),
                                      "fields": rc.get("fields", "")})
                replies.append({})
            elif "updateSheetProperties" in req:
                usp = req["updateSheetProperties"]
                sheet = self._by_id(book, usp["properties"].get("sheetId", 0))
                if sheet is None:
                    return self._error(400, "no such sheet", "INVALID_ARGUMENT")
                grid = usp["properties"].get("gridProperties", {})
                if "frozenRowCount" in grid:
                    sheet.frozen_rows = int(grid["frozenRowCount"])
                if "title" in usp["properties"]:
                    sheet.title = usp["properties"]["title"]
                replies.append({})
            else:
                return self._error(400, f"unsupported request {sorted(req)}", "INVALID_ARGUMENT")
        return jsonify({"spreadsheetId": book.key, "replies": replies})

    @staticmethod
    def _by_id(book: Book, sheet_id: int) -> Grid | None:
        return next((s for s in book.sheets if s.sheet_id == sheet_id), None)

    def _values(self, book: Book, rng: str, verb: str) -> Response:
        title, r0, c0, r1, c1 = parse_range(rng)
        sheet = book.sheet(title)
        if sheet is None:
            return self._error(400, f"Unable to parse range: {rng}", "INVALID_ARGUMENT")
        a1 = f"'{sheet.title}'!{rng.rsplit('!', 1)[-1]}"
        if request.method == "GET" and verb != "clear":
            return jsonify(self._get(sheet, a1, r0, c0, r1, c1))
        if verb == "clear":
            for r, row in enumerate(sheet.values):
                if r0 <= r and (r1 is None or r <= r1):
                    for c in range(c0, len(row) if c1 is None else min(c1 + 1, len(row))):
                        row[c] = ""
            return jsonify({"spreadsheetId": book.key, "clearedRange": a1})
        option = request.args.get("valueInputOption")
        if option not in {"RAW", "USER_ENTERED"}:
            return self._error(400, "valueInputOption is required", "INVALID_ARGUMENT")
        values = [[self._input(v, option) for v in row]
                  for row in (request.get_json() or {}).get("values", [])]
        if verb == "append":
            used = [i for i, row in enumerate(sheet.values) if any(v != "" for v in row)]
            r0 = max(r0, used[-1] + 1 if used else 0)
        self._write(sheet, r0, c0, values)
        updates = {"spreadsheetId": book.key, "updatedRange": a1,
                   "updatedRows": len(values), "updatedCells": sum(len(r) for r in values)}
        if verb == "append":
            return jsonify({"spreadsheetId": book.key, "tableRange": a1, "updates": updates})
        return jsonify(updates)

    def _input(self, value: Any, option: str) -> Any:
        """RAW stores what was sent; USER_ENTERED parses it like a person typing it."""
        if option == "USER_ENTERED" and isinstance(value, str):
            if value.startswith("'"):
                return value[1:]
            if value.startswith(("=", "+", "-", "@")) and not re.fullmatch(r"-?\d+(\.\d+)?",
                                                                            value):
                self.formulas.append(value)
        return value

    @staticmethod
    def _write(sheet: Grid, r0: int, c0: int, values: list[list[Any]]) -> None:
        for i, row in enumerate(values):
            r = r0 + i
            while len(sheet.values) <= r:
                sheet.values.append([])
            target = sheet.values[r]
            while len(target) < c0 + len(row):
                target.append("")
            target[c0:c0 + len(row)] = row
            sheet.row_count = max(sheet.row_count, r + 1)

    @staticmethod
    def _get(sheet: Grid, a1: str, r0: int, c0: int, r1: int | None,
             c1: int | None) -> dict[str, Any]:
        render = request.args.get("valueRenderOption", "FORMATTED_VALUE")
        rows = sheet.values[r0:None if r1 is None else r1 + 1]
        out = []
        for row in rows:
            cells = row[c0:None if c1 is None else c1 + 1]
            if render == "FORMATTED_VALUE":
                cells = [_formatted(v) for v in cells]
            while cells and cells[-1] == "":
                cells.pop()
            out.append(cells)
        while out and not out[-1]:
            out.pop()
        if request.args.get("majorDimension") == "COLUMNS":
            width = max((len(r) for r in out), default=0)
            out = [[r[c] if c < len(r) else "" for r in out] for c in range(width)]
            out = [col[:max((i + 1 for i, v in enumerate(col) if v != ""), default=0)]
                   for col in out]
        body: dict[str, Any] = {"range": a1, "majorDimension":
                                request.args.get("majorDimension", "ROWS")}
        if out:
            body["values"] = out
        return body


def _formatted(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class SheetsEnv:
    """A running fake, one spreadsheet on it, and a credentials file for it."""

    fake: FakeSheets
    key: str
    credentials: Any

    def env(self) -> dict[str, str]:
        return {"SHELFCOUNT_SHEETS_CREDENTIALS": str(self.credentials),
                "SHELFCOUNT_SHEETS_SPREADSHEET": self.key,
                "SHELFCOUNT_SHEETS_ENDPOINT": self.fake.url}


@pytest.fixture
def sheets(tmp_path: Any) -> Iterator[SheetsEnv]:
    """The fake Sheets API on a free loopback port, stopped after the test."""
    fake = FakeSheets()
    fake.start()
    try:
        key = fake.create_spreadsheet()
        path = tmp_path / "service-account.json"
        path.write_text(json.dumps(fake.service_account()))
        yield SheetsEnv(fake, key, path)
    finally:
        fake.stop()
