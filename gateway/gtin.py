"""GTIN normalisation and GS1 element-string parsing.

Why this exists: the same carton is read as a 12-digit UPC-A by zbar, as a 13-digit EAN by
zxing-cpp, and printed as a 14-digit GTIN inside a GS1-128 / DataMatrix element string on the
case label. The catalog lookup must treat all three as one key, so every GTIN is normalised to
the 14-digit zero-padded form with its check digit verified (a wrong check digit means a
misread, never a product).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping

GS = "\x1d"  # ASCII group separator: FNC1 as transmitted inside a GS1 element string
_GTIN_LENGTHS = (8, 12, 13, 14)
_SYMBOLOGY_PREFIX = re.compile(r"^\][A-Za-z][0-9A-Za-z]")

# "AIs with predefined length" (GS1 General Specifications, figure 7.8.5-2): keyed by the first
# two digits of the AI, value = AI digits + data digits. Every other AI is variable-length and is
# terminated by FNC1 (GS) unless it is the last element.
_PREDEFINED_TOTAL = {
    "00": 20, "01": 16, "02": 16, "03": 16, "04": 18,
    "11": 8, "12": 8, "13": 8, "14": 8, "15": 8, "16": 8, "17": 8, "18": 8, "19": 8,
    "20": 4,
    "31": 10, "32": 10, "33": 10, "34": 10, "35": 10, "36": 10,
    "41": 16,
}  # fmt: skip
# Date AIs (production, due, packaging, best before, sell by, expiry): YYMMDD, checked as dates
# so that every AI 11-17 that parse_gs1 returns is safe to pass to gs1_date.
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17"})
# AIs whose data must be all digits (a letter there means the parse has derailed).
_NUMERIC_PREFIXES = ("00", "01", "02", "03", "11", "12", "13", "15", "16", "17", "20", "30",
                     "31", "32", "33", "34", "35", "36", "37", "41")  # fmt: skip


def gtin_check_digit(body: str) -> int:
    """Mod-10 check digit for the digits *before* the check digit (GS1 weights 3,1,3,... from
    the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalize_gtin(digits: str) -> str | None:
    """EAN-8 / UPC-A / EAN-13 / GTIN-14 digits -> 14-digit GTIN, or None when not a valid GTIN.

    Surrounding whitespace is ignored; anything else that is not 8, 12, 13 or 14 digits with a
    correct check digit yields None (misreads must not become catalog keys).
    """
    s = digits.strip()
    if len(s) not in _GTIN_LENGTHS or not s.isascii() or not s.isdigit():
        return None
    if gtin_check_digit(s[:-1]) != int(s[-1]):
        return None
    return s.zfill(14)


def expand_upce(digits: str) -> str | None:
    """UPC-E (8 digits: number system 0/1, 6 data, check) -> the equivalent 12-digit UPC-A.

    UPC-E is a zero-suppressed UPC-A, so its GTIN is that of the expanded UPC-A. Returns None
    for anything that is not a UPC-E with a valid check digit.
    """
    s = digits.strip()
    if len(s) != 8 or not s.isdigit() or s[0] not in "01":
        return None
    ns, d, check = s[0], s[1:7], s[7]
    last = d[5]
    if last in "012":
        body = d[0:2] + last + "0000" + d[2:5]
    elif last == "3":
        body = d[0:3] + "00000" + d[3:5]
    elif last == "4":
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + last
    upca = ns + body + check
    return upca if gtin_check_digit(upca[:-1]) == int(check) else None


def _ai_length(s: str, i: int) -> int:
    """Number of digits of the AI starting at s[i] (2, 3 or 4), from the GS1 AI numbering."""
    p = s[i : i + 2]
    first = p[:1]
    if first in ("0", "1", "9") or p in ("20", "21", "22", "30", "37"):
        return 2
    if p in ("23", "24", "25", "40", "41", "42", "71"):
        return 3
    return 4  # 31-36, 39, 43, 70, 72, 8x and the rest


def _strip_prefix(text: str) -> str:
    s = _SYMBOLOGY_PREFIX.sub("", text, count=1) if text.startswith("]") else text
    return s.lstrip(GS)


def _valid_value(ai: str, value: str) -> bool:
    if not value:
        return False
    if ai in _DATE_AIS:
        try:
            gs1_date(value)
        except ValueError:
            return False
        return True
    if ai.startswith(_NUMERIC_PREFIXES):
        return value.isdigit()
    return GS not in value


def _parse_bracketed(s: str) -> dict[str, str]:
    parts = re.split(r"\((\d{2,4})\)", s)
    if parts[0] != "" or len(parts) < 3:
        return {}
    out: dict[str, str] = {}
    for ai, value in zip(parts[1::2], parts[2::2], strict=True):
        expected = _PREDEFINED_TOTAL.get(ai[:2])
        if len(ai) != _ai_length(ai, 0) or not _valid_value(ai, value):
            return {}
        if expected is not None and len(ai) + len(value) != expected:
            return {}
        out[ai] = value
    return out


def _parse_raw(s: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(s):
        n = _ai_length(s, i)
        ai = s[i : i + n]
        if len(ai) != n or not ai.isdigit():
            return {}
        i += n
        total = _PREDEFINED_TOTAL.get(ai[:2])
        if total is not None:
            value = s[i : i + total - n]
            i += total - n
            if len(value) != total - n:
                return {}
            if i < len(s) and s[i] == GS:  # tolerated: FNC1 after a fixed-length field
                i += 1
        else:
            end = s.find(GS, i)
            end = len(s) if end < 0 else end
            value = s[i:end]
            i = end + 1
        if not _valid_value(ai, value):
            return {}
        out[ai] = value
    return out


def parse_gs1(text: str) -> dict[str, str]:
    """GS1 element string -> {AI: value}, in the order they appear; {} if it is not one.

    Accepts the raw form (optional symbology identifier such as ``]C1``/``]d2``, FNC1 sent as
    GS ``\\x1d`` between variable-length fields) and the bracketed human-readable form
    ``(01)09501101020917(17)260131(10)AB12``. Fixed-length AIs (00, 01, 02, 11-19, 20, 31xx-36xx,
    41x) are cut by length, so a missing separator after them does not derail the parse; a
    malformed string (including an impossible date in AIs 11-17) returns {} rather than a
    half-parsed guess.
    """
    s = _strip_prefix(text.strip("\r\n"))
    if not s:
        return {}
    return _parse_bracketed(s) if s.startswith("(") else _parse_raw(s)


def gs1_hri(ais: Mapping[str, str]) -> str:
    """{AI: value} -> bracketed human-readable interpretation, e.g. ``(01)...(17)...``."""
    return "".join(f"({ai}){value}" for ai, value in ais.items())


def gs1_date(value: str, *, today: dt.date | None = None) -> dt.date:
    """GS1 date field YYMMDD (AIs 11-17) -> date.

    DD=00 means the last day of the month. The century follows the GS1 sliding window: a year
    more than 50 years ahead of ``today`` belongs to the previous century, one more than 49
    years behind to the next. Raises ValueError on anything else.
    """
    if len(value) != 6 or not value.isdigit():
        raise ValueError(f"GS1 date must be YYMMDD, got {value!r}")
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    now = today or dt.date.today()
    century, current = divmod(now.year, 100)
    diff = yy - current
    if diff >= 51:
        century -= 1
    elif diff <= -50:
        century += 1
    year = century * 100 + yy
    if not 1 <= mm <= 12:
        raise ValueError(f"GS1 date has month {mm:02d}: {value!r}")
    if dd == 0:
        dd = calendar.monthrange(year, mm)[1]
    return dt.date(year, mm, dd)
