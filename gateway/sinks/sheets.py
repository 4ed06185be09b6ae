"""Google Sheets sink: confirmed bays appended to a shared spreadsheet (gspread).

Layout: a worksheet per day (``2026-11-22``) or per session (``Session <id>``;
SHELFCOUNT_SHEETS_WORKSHEET=day|session) with the ten CSV columns, then Count_ID, Session,
Walker, System_Quantity, Variance, Variance_Pct, Flag; its header row is bold and frozen. A
"Variances" worksheet with the same columns lists the flagged lines, a "Findings" worksheet
the shelf audit's findings (gateway.sinks.base.FINDING_COLUMNS, then Count_ID, Session,
Walker, Confirmed_At).

Exactly once: before appending, the Count_ID column of the target worksheet is read back and
bays already there are left out, so a retry after a lost response (or a worker killed between
sending and recording) never duplicates rows. Entries of one batch go in one append request
per worksheet: Sheets quotas count requests, not rows.

The API root is one setting (SHELFCOUNT_SHEETS_ENDPOINT): gspread builds absolute Google URLs
(gspread.urls), so the HTTP client rewrites that root; the OAuth token URL comes from the
service-account file's ``token_uri`` as google-auth reads it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import google.auth.exceptions
import gspread
import requests
from google.oauth2.service_account import Credentials
from gspread.http_client import HTTPClient
from pydantic import Field

from gateway.schema import COLUMNS

from .base import FINDING_COLUMNS, Entry, SinkError, finding_cells
from .csv_safety import safe_cell
from .plugin import SinkContext, SinkPlugin, SinkSettings
from .variance import LineVariance, Thresholds, assess_entry

GOOGLE_ROOT = "https://sheets.googleapis.com"


class SheetsSettings(SinkSettings):
    credentials: Path = Field(alias="sheets_credentials",
                              description="service-account JSON file for Google Sheets")
    spreadsheet: str = Field(alias="sheets_spreadsheet", description="spreadsheet key")
    endpoint: str = Field(GOOGLE_ROOT, alias="sheets_endpoint",
                          description="Sheets API root (tests point it at a loopback server)")
    worksheet: Literal["day", "session"] = Field(
        "day", alias="sheets_worksheet", description="one worksheet per `day` or per `session`")
SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
EXTRA_COLUMNS = ("Count_ID", "Session", "Walker", "System_Quantity", "Variance",
                 "Variance_Pct", "Flag")
HEADER = COLUMNS + EXTRA_COLUMNS
REOPENED = "Reopened"  # Flag of the lines of a bay confirmed again after a manager reopened it
VARIANCES = "Variances"
FINDINGS = "Findings"
FINDINGS_HEADER = (*FINDING_COLUMNS, "Count_ID", "Session", "Walker", "Confirmed_At")
TIMEOUT_S = 30.0

SystemQuantities = Callable[[Entry], dict[tuple[str, str], Decimal]]
ReorderPoint = Callable[[str], int | None]


class EndpointHTTPClient(HTTPClient):
    """gspread's HTTP client talking to another API root than Google's."""

    def __init__(self, auth: Any, session: Any = None, *, root: str = GOOGLE_ROOT) -> None:
        super().__init__(auth, session)
        self.root = root.rstrip("/")
        self.set_timeout(TIMEOUT_S)

    def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        if endpoint.startswith(GOOGLE_ROOT):
            endpoint = self.root + endpoint[len(GOOGLE_ROOT):]
        return super().request(method, endpoint, *args, **kwargs)


class OffGoogleCredentials(Credentials):
    """Service-account credentials for a Sheets-compatible API that is not Google's.

    google-auth looks up a "regional access boundary" at Google's IAM API in the background
    after getting a token; with another API root that is a stray call to Google (and, offline,
    a stream of DNS failures), so it is skipped. The token exchange itself still goes to the
    credentials file's ``token_uri``.
    """

    def _is_regional_access_boundary_lookup_required(self) -> bool:
        return False


def _as_sink_error(exc: Exception, what: str) -> SinkError:
    """Translate client-library failures: quota and server errors wait, others need a person."""
    if isinstance(exc, gspread.exceptions.APIError):
        code = exc.response.status_code
        retry = exc.response.headers.get("Retry-After")
        transient = code in (408, 429) or code >= 500
        return SinkError(f"Sheets {what}: HTTP {code} {exc.error.get('message', '')}".strip(),
                         transient=transient,
                         retry_after=float(retry) if retry and retry.isdigit() else None)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return SinkError(f"Sheets {what}: the token endpoint refused the service account "
                         f"({exc})", transient=False)
    if isinstance(exc, requests.RequestException | google.auth.exceptions.TransportError):
        return SinkError(f"Sheets {what}: API unreachable ({type(exc).__name__})")
    return SinkError(f"Sheets {what}: {type(exc).__name__}: {exc}")


class SheetsSink:
    """Appends confirmed bays to the spreadsheet, once each."""

    name = "sheets"

    def __init__(self, credentials_file: Path, spreadsheet: str, *, endpoint: str = GOOGLE_ROOT,
                 layout: str = "day", thresholds: Thresholds | None = None,
                 reorder_point: ReorderPoint | None = None,
                 system_quantities: SystemQuantities | None = None) -> None:
        if layout not in ("day", "session"):
            raise ValueError("SHELFCOUNT_SHEETS_WORKSHEET must be 'day' or 'session'")
        self.credentials_file = credentials_file
        self.spreadsheet_key = spreadsheet
        self.endpoint = endpoint
        self.layout = layout
        self.thresholds = thresholds or Thresholds()
        self.reorder_point = reorder_point or (lambda sku: None)
        self.system_quantities = system_quantities
        self._book: gspread.Spreadsheet | None = None
        self._sheets: dict[str, gspread.Worksheet] = {}

    @classmethod
    def from_config(cls, config: SheetsSettings, context: SinkContext) -> SheetsSink:
        return cls(config.credentials, config.spreadsheet, endpoint=config.endpoint,
                   layout=config.worksheet, thresholds=Thresholds.from_settings(context.settings),
                   reorder_point=context.reorder_point,
                   system_quantities=context.system_quantities)

    # -- connection ----------------------------------------------------------------------
    def _spreadsheet(self) -> gspread.Spreadsheet:
        if self._book is None:
            try:
                info = json.loads(self.credentials_file.read_text(encoding="utf-8"))
                kind = Credentials if self.endpoint.rstrip("/") == GOOGLE_ROOT \
                    else OffGoogleCredentials
                creds = kind.from_service_account_info(info, scopes=SCOPES)
            except (OSError, ValueError, KeyError) as exc:
                raise SinkError(f"Sheets credentials {self.credentials_file} unusable: {exc}",
                                transient=False) from exc
            client = gspread.Client(auth=creds, http_client=lambda auth, session:
                                    EndpointHTTPClient(auth, session, root=self.endpoint))
            try:
                self._book = client.open_by_key(self.spreadsheet_key)
            except gspread.exceptions.SpreadsheetNotFound as exc:
                raise SinkError(f"spreadsheet {self.spreadsheet_key!r} not found (is it shared "
                                f"with {info.get('client_email')}?)", transient=False) from exc
            except Exception as exc:  # noqa: BLE001 - translated, see _as_sink_error
                raise _as_sink_error(exc, "open") from exc
        return self._book

    def _worksheet(self, title: str) -> gspread.Worksheet:
        """The worksheet (created when missing; the header comes with the first rows)."""
        if title in self._sheets:
            return self._sheets[title]
        book = self._spreadsheet()
        existing = {ws.title: ws for ws in book.worksheets()}
        ws = existing.get(title)
        if ws is None:
            ws = book.add_worksheet(title, rows=1000, cols=len(HEADER))
        self._sheets[title] = ws
        return ws

    def _ensure_header(self, ws: gspread.Worksheet, header: Sequence[str]) -> None:
        """Write the header row, bold on a tint, and freeze it (2 requests)."""
        ws.update([list(header)], "A1", value_input_option="RAW")
        ws.spreadsheet.batch_update({"requests": [
            {"repeatCell": {
                "range": {"sheetId": ws.id, "startRowIndex": 0, "endRowIndex": 1,
                          "startColumnIndex": 0, "endColumnIndex": len(header)},
                "cell": {"userEnteredFormat": {
                    "textFormat": {"bold": True},
                    "backgroundColor": {"red": 0.85, "green": 0.89, "blue": 0.95}}},
                "fields": "userEnteredFormat(textFormat,backgroundColor)"}},
            {"updateSheetProperties": {
                "properties": {"sheetId": ws.id, "gridProperties": {"frozenRowCount": 1}},
                "fields": "gridProperties.frozenRowCount"}},
        ]})

    def _append_new(self, title: str, rows_by_count: dict[str, list[list[Any]]],
                    header: Sequence[str] = HEADER) -> None:
        """Append the rows of the count ids not yet in the worksheet (one request)."""
        ws = self._worksheet(title)
        present = ws.col_values(list(header).index("Count_ID") + 1)
        if not present or present[0] != "Count_ID":
            self._ensure_header(ws, header)
        seen = {str(v) for v in present[1:]}
        values = [row for cid, rows in rows_by_count.items() if cid not in seen for row in rows]
        if values:
            ws.append_rows(values, value_input_option="RAW", insert_data_option="INSERT_ROWS",
                           table_range="A1")

    def replace_worksheet(self, title: str, header: Sequence[str],
                          rows: Sequence[Sequence[Any]]) -> None:
        """Make a worksheet hold exactly these rows (a report, not a log): written from A1,
        then what lies below cleared (2 requests). In that order a failed write leaves the
        last report whole instead of an empty sheet. Cells are made safe for a spreadsheet."""
        values = [list(header)] + [[safe_cell(v) if isinstance(v, str) else v for v in r]
                                   for r in rows]
        try:
            ws = self._worksheet(title)
            ws.update(values, "A1", value_input_option="RAW")
            last = gspread.utils.rowcol_to_a1(1, max(ws.col_count, len(header)))
            ws.batch_clear([f"A{len(values) + 1}:{last.rstrip('0123456789')}"])
        except SinkError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated, see _as_sink_error
            self._sheets.pop(title, None)
            raise _as_sink_error(exc, f"write {title!r}") from exc

    # -- rows ----------------------------------------------------------------------------
    def worksheet_title(self, entry: Entry) -> str:
        if self.layout == "session":
            return f"Session {entry.session_id}"
        return entry.created_at.date().isoformat()

    def assess_entry(self, entry: Entry) -> list[tuple[dict[str, Any], LineVariance]]:
        system = self.system_quantities(entry) if self.system_quantities else None
        return assess_entry(entry, system, self.reorder_point, self.thresholds)

    @staticmethod
    def _cells(entry: Entry, row: dict[str, Any], line: LineVariance) -> list[Any]:
        extra = {"Count_ID": entry.count_id, "Session": entry.session_id,
                 "Walker": entry.walker, **line.columns()}
        if entry.revises:  # a reopened bay, confirmed again
            extra["Flag"] = ", ".join(f for f in (REOPENED, extra["Flag"]) if f)
        return [safe_cell(row.get(c, "")) for c in COLUMNS] + \
            [safe_cell(extra[c]) for c in EXTRA_COLUMNS]

    @staticmethod
    def _finding_cells(entry: Entry, finding: dict[str, Any]) -> list[Any]:
        return [safe_cell(v) for v in (*finding_cells(finding), entry.count_id,
                                       entry.session_id, entry.walker,
                                       entry.created_at.isoformat())]

    # -- Sink ----------------------------------------------------------------------------
    def deliver(self, entry: Entry) -> None:
        (outcome,) = self.deliver_batch([entry])
        if outcome is not None:
            raise outcome

    def deliver_batch(self, entries: Sequence[Entry]) -> list[Exception | None]:
        outcomes: dict[str, Exception | None] = {}
        by_sheet: dict[str, dict[str, list[list[Any]]]] = defaultdict(dict)
        flagged: dict[str, list[list[Any]]] = {}
        findings: dict[str, list[list[Any]]] = {}
        for entry in entries:
            try:
                lines = self.assess_entry(entry)
            except SinkError as exc:
                outcomes[entry.id] = exc
                continue
            title = self.worksheet_title(entry)
            by_sheet[title][entry.count_id] = [self._cells(entry, r, ln) for r, ln in lines]
            flags = [self._cells(entry, r, ln) for r, ln in lines
                     if ln.flagged or entry.revises]
            if flags:
                flagged[entry.count_id] = flags
            if entry.findings:
                findings[entry.count_id] = [self._finding_cells(entry, f)
                                            for f in entry.findings]
        failed: dict[str, Exception] = {}
        for title, rows in [*by_sheet.items(), (VARIANCES, flagged), (FINDINGS, findings)]:
            if not rows:
                continue
            try:
                self._append_new(title, rows, FINDINGS_HEADER if title == FINDINGS else HEADER)
            except SinkError as exc:
                failed.update(dict.fromkeys(rows, exc))
            except Exception as exc:  # noqa: BLE001 - translated per count
                self._sheets.pop(title, None)  # maybe deleted by a person: look it up again
                failed.update(dict.fromkeys(rows, _as_sink_error(exc, f"append to {title!r}")))
        return [outcomes.get(e.id) or failed.get(e.count_id) for e in entries]

    def check(self) -> str | None:
        try:
            book = self._spreadsheet()
            book.fetch_sheet_metadata()
        except SinkError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as one line
            return str(_as_sink_error(exc, "metadata"))
        return None


PLUGIN = SinkPlugin("sheets", SheetsSettings, SheetsSink.from_config)
