"""Parsers that pull locations, SKUs, expiry dates and prices out of OCR text.

Why they are tolerant: PP-OCRv4 drops spaces ("EXP2025-12-31"), reads dashes as en dashes
or underscores, and confuses look-alike glyphs inside codes (O/0, I/1, S/5, B/8). Every parser
first tries the text as read and only then a repaired reading, and every result is checked
against the configured pattern or calendar, so repairs cannot invent a value that the text
does not support. All functions return None when nothing credible is found.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from decimal import Decimal, InvalidOperation

from gateway.config import Settings

DEFAULT_LOCATION_PATTERN: str = Settings.model_fields["location_pattern"].default
DEFAULT_SKU_PATTERN: str = Settings.model_fields["sku_pattern"].default

_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043~"})
# Glyphs OCR returns for digits, and for letters, inside codes.
_AS_DIGIT = str.maketrans({"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1",
                           "|": "1", "!": "1", "Z": "2", "S": "5", "B": "8", "G": "6",
                           "T": "7"})
_AS_LETTER = str.maketrans({"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G",
                            "4": "A", "7": "T"})
_DIGITISH = "0-9OQDUILZSBGT|!"
# Separators OCR puts between the parts of a location code (dashes are normalised first).
_SEP = r"[\s\-_]"


def _clean(text: str) -> str:
    return text.translate(_DASHES).upper()


# --------------------------------------------------------------------------------------------
# Locations


def _split_top_level(pattern: str, sep: str = "-") -> list[str]:
    """Split a regex on literal ``sep`` outside brackets, groups and escapes."""
    parts, buf, depth, in_class, escaped = [], [], 0, False, False
    for ch in pattern:
        if escaped:
            buf.append(ch)
            escaped = False
            continue
        if ch == "\\":
            buf.append(ch)
            escaped = True
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return parts


def _token_kind(token: str) -> str:
    """'digit', 'letter' or 'other' for one dash-separated piece of a location pattern."""
    core = re.sub(r"\{[\d,]+\}|[+*?]", "", token)
    if core and re.fullmatch(r"(\\d|\[0-9\])+", core):
        return "digit"
    if core and re.fullmatch(r"(\[A-Z\])+", core):
        return "letter"
    return "other"


def _tolerant_token(token: str, kind: str) -> str:
    if kind == "digit":
        return token.replace("\\d", f"[{_DIGITISH}]").replace("[0-9]", f"[{_DIGITISH}]")
    if kind == "letter":
        return token.replace("[A-Z]", "[A-Z0-9]")
    return token


def _lazy(token: str) -> str:
    """Make a token's trailing quantifier non-greedy."""
    return re.sub(r"(\{[\d,]+\}|[+*?])$", r"\1?", token)


def find_location(text: str, pattern: str | None = None) -> str | None:
    """The first bin location code in ``text``, canonical (e.g. "A-01-1"), else None.

    Accepts "A-01-1", "A 01 1", "a_01_1", "A–01–1", "A-O1-l", and, when the whole line is
    the code, "A011"-style readings without separators.
    """
    pattern = pattern or DEFAULT_LOCATION_PATTERN
    t = _clean(text)
    strict = re.search(rf"(?<![A-Z0-9]){pattern}(?![0-9])", t)
    if strict:
        return strict.group(0)
    tokens = _split_top_level(pattern)
    if len(tokens) < 2:
        return None
    kinds = [_token_kind(tok) for tok in tokens]
    groups = [f"({_tolerant_token(tok, k)})" for tok, k in zip(tokens, kinds, strict=True)]
    # Without separators the split is ambiguous ("A011"): letters take as little as they can.
    lazy = [f"({_tolerant_token(tok, k)})" if k != "letter" else f"({_lazy(tok)})"
            for tok, k in zip(tokens, kinds, strict=True)]
    loose = rf"{_SEP}*".join(lazy)
    candidates = [m for m in re.finditer(
        rf"(?<![A-Z0-9]){rf'{_SEP}+'.join(groups)}(?![0-9A-Z])(?![./:,]?{_SEP}*\d)", t)]
    plain = rf"{_SEP}*".join(f"({tok})" for tok in tokens)
    for joined in (plain, loose):  # real letters and digits first, then look-alikes
        whole = re.fullmatch(rf"\s*{joined}\s*", t)
        if whole:
            candidates.append(whole)
    for m in candidates:
        parts = []
        for value, kind in zip(m.groups(), kinds, strict=True):
            if kind == "digit":
                value = value.translate(_AS_DIGIT)
            elif kind == "letter":
                if not any(c.isalpha() for c in value):
                    break  # "05.06.27" is a date, not bin "OS-06-27"
                value = value.translate(_AS_LETTER)
            parts.append(value)
        if len(parts) != len(kinds):
            continue
        code = "-".join(parts)
        if re.fullmatch(pattern, code):
            return code
    return None


# --------------------------------------------------------------------------------------------
# SKUs


def _literal_prefix(pattern: str) -> str:
    m = re.match(r"[A-Z]+", pattern)
    return m.group(0) if m else ""


def find_sku(text: str, pattern: str | None = None) -> str | None:
    """The first SKU code in ``text`` in canonical form ("SKU 10005" -> "SKU-10005").

    For patterns with a literal prefix (SKU) the prefix may be misread (5KU) and the
    separator may be a space, nothing, or any dash; a mostly-numeric body has O/I/S/B
    repaired to digits. The result always matches ``pattern``.
    """
    pattern = pattern or DEFAULT_SKU_PATTERN
    t = _clean(text)
    prefix = _literal_prefix(pattern)
    if not prefix:
        m = re.search(pattern, t)
        return m.group(0) if m else None
    fuzzy_prefix = "".join(
        f"[{re.escape(c)}{re.escape(c.translate(_AS_DIGIT))}]" if c.translate(_AS_DIGIT) != c
        else re.escape(c) for c in prefix)
    for m in re.finditer(rf"(?<![A-Z0-9]){fuzzy_prefix}\s*[-_.:#]?\s*([A-Z0-9|!]+)", t):
        body = m.group(1)
        digits = sum(c.isdigit() for c in body)
        if re.fullmatch(f"[{_DIGITISH}]+", body) and digits >= max(2, 0.4 * len(body)):
            body = body.translate(_AS_DIGIT)
        bodies = [body]
        merged = re.match(r"(\d{3,})[A-Z]{2}", body)  # "10005EXP2025": OCR joined two words
        if merged:
            bodies.insert(0, merged.group(1))
        for b in bodies:
            for code in (f"{prefix}-{b}", f"{prefix}{b}"):
                if re.fullmatch(pattern, code):
                    return code
    return None


# --------------------------------------------------------------------------------------------
# Expiry dates

_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_MONTHS.update({"SEPT": 9, "MRZ": 3, "MAI": 5, "OKT": 10, "DEZ": 12})
_EXPIRY_WORDS = re.compile(
    r"EXP(?:IRY|IRES|\.)?|BEST\s*BEFORE(?:\s*END)?|BEST\s*BY|BB[E]?\b|USE\s*BY|"
    r"SELL\s*BY|MHD|DLUO|DLC|CONSUMIR|VAL(?:ID)?|\(17\)")
_OTHER_DATE_WORDS = re.compile(r"PROD|MFG|MFD|PACKED|PKD|MADE|LOT|\(11\)|\(13\)")
_D = r"\s*[-./]\s*"
_DATE_FORMS: list[tuple[str, str]] = [
    (rf"(?<!\d)(\d{{4}}){_D}(\d{{1,2}}){_D}(\d{{1,2}})(?!\d)", "ymd"),
    (rf"(?<!\d)(\d{{1,2}}){_D}(\d{{1,2}}){_D}(\d{{4}})(?!\d)", "dmy"),
    (r"(?<!\d)(\d{1,2})\s*([A-Z]{3,4})\.?\s*(\d{4})(?!\d)", "dMy"),
    (r"\(17\)\s*(\d{2})(\d{2})(\d{2})", "gs1"),
    (r"(?<![\d(])(20\d{2})(\d{2})(\d{2})(?!\d)", "ymd"),
    (r"(?<!\d)(\d{1,2})[./](\d{1,2})[./](\d{2})(?![\d./])", "dmy2"),
    (rf"(?<!\d)(\d{{4}}){_D}(\d{{1,2}})(?![\d]|{_D}\d)", "ym"),
    (rf"(?<![\d./-])(\d{{1,2}}){_D}(\d{{4}})(?!\d)", "my"),
    (r"(?<![A-Z])([A-Z]{3,4})\.?\s*(\d{4})(?!\d)", "My"),
]


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _make_date(kind: str, g: tuple[str, ...]) -> date | None:
    try:
        if kind == "ymd":
            y, m, d = int(g[0]), int(g[1]), int(g[2])
        elif kind in ("dmy", "dmy2"):
            d, m, y = int(g[0]), int(g[1]), int(g[2])
            if kind == "dmy2":
                y += 2000
            if m > 12 >= d:  # month-first (US) when day-first is impossible
                d, m = m, d
        elif kind == "dMy":
            d, y = int(g[0]), int(g[2])
            m = _MONTHS.get(g[1], 0)
        elif kind == "gs1":
            y, m, d = 2000 + int(g[0]), int(g[1]), int(g[2])
            if d == 0:  # GS1: day 00 means the end of the month
                d = _last_day(y, m) if 1 <= m <= 12 else 0
        elif kind == "ym":
            y, m = int(g[0]), int(g[1])
            d = _last_day(y, m) if 1 <= m <= 12 else 0
        elif kind == "my":
            m, y = int(g[0]), int(g[1])
            d = _last_day(y, m) if 1 <= m <= 12 else 0
        else:  # "My"
            m, y = _MONTHS.get(g[0], 0), int(g[1])
            d = _last_day(y, m) if 1 <= m <= 12 else 0
        if not 2000 <= y <= 2099:
            return None
        return date(y, m, d)
    except ValueError:
        return None


def _dates_in(t: str) -> list[tuple[int, int, date]]:
    """(start, end, date) of every date reading, longest readings first at each place."""
    found: list[tuple[int, int, date]] = []
    taken: list[tuple[int, int]] = []
    for regex, kind in _DATE_FORMS:
        for m in re.finditer(regex, t):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            d = _make_date(kind, m.groups())
            if d is not None:
                found.append((m.start(), m.end(), d))
                taken.append((m.start(), m.end()))
    return sorted(found)


def _repair_digits(t: str) -> str:
    """Turn look-alike letters into digits inside runs that are mostly digits already."""
    def fix(m: re.Match[str]) -> str:
        run = m.group(0)
        digits = sum(c.isdigit() for c in run)
        bad = sum(c.isalpha() or c in "|!" for c in run)
        return run.translate(_AS_DIGIT) if digits >= 4 and bad <= 2 else run
    return re.sub(rf"[{_DIGITISH}][{_DIGITISH}/.\-]*[{_DIGITISH}]", fix, t)


def find_expiry(text: str) -> date | None:
    """The expiry date in ``text``.

    Knows "EXP 2025-12-31", "EXP2025-12-31", "31/12/2025", "31.12.2025", "31 DEC 2025",
    "(17)251231", and month-only forms ("EXP 2025-12", "BEST BEFORE 12/2025", "DEC 2025")
    which mean the last day of that month. With several dates, the one after an expiry word
    wins, and one after a production word (PROD, MFG, LOT) is skipped.
    """
    t = _clean(text)
    for candidate in (t, _repair_digits(t)):
        dates = _dates_in(candidate)
        if not dates:
            continue
        words = [m.end() for m in _EXPIRY_WORDS.finditer(candidate)]
        if words:
            after = [d for d in dates if d[0] >= words[0] - 6]
            if after:
                return after[0][2]
        others = [m.end() for m in _OTHER_DATE_WORDS.finditer(candidate)]
        for start, _, d in dates:
            prev_other = max((o for o in others if o <= start), default=-1)
            if prev_other < 0 or start - prev_other > 4:
                return d
        return dates[0][2]
    return None


# --------------------------------------------------------------------------------------------
# Prices

_CURRENCY = r"(?:[$€£¥]|EUR|USD|GBP|CHF|SEK|NOK|DKK|PLN|CZK|KR)"
_NUMBER = r"(\d{1,3}(?:[.,' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?|\d+[.,]-)"


def _parse_amount(raw: str) -> Decimal | None:
    s = raw.replace(" ", "").replace("'", "")
    if s.endswith((".-", ",-")):  # "12.-" is 12.00 in Swiss/German notation
        s = s[:-2]
    last_dot, last_comma = s.rfind("."), s.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        dec = "." if last_dot > last_comma else ","
        s = s.replace("," if dec == "." else ".", "").replace(dec, ".")
    elif last_comma >= 0 or last_dot >= 0:
        sep = "," if last_comma >= 0 else "."
        tail = s.rsplit(sep, 1)[1]
        if len(tail) == 3 or s.count(sep) > 1:  # thousands grouping
            s = s.replace(sep, "")
        else:
            s = s.replace(sep, ".")
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    return value.quantize(Decimal("0.01"))


def find_price(text: str) -> Decimal | None:
    """The price in ``text``: "$12.50", "12,50 €", "EUR 3.49", "3.49 EUR", "€3,49", "CHF 12.-".

    A number next to a currency sign or code wins; otherwise a lone amount with two decimals
    (a shelf tag "3.49") that is not part of a date.
    """
    t = _clean(text)
    t = re.sub(r"(?<=\d)[O](?=\d|\b)|(?<=[.,])O", "0", t)
    t = re.sub(r"(?<![A-Z0-9])S(?=\s?\d+[.,]\d{2}(?!\d))", "$", t)  # "$" read as "S"
    for regex in (rf"{_CURRENCY}\s*{_NUMBER}", rf"{_NUMBER}\s*{_CURRENCY}"):
        for m in re.finditer(regex, t):
            value = _parse_amount(m.group(1))
            if value is not None:
                return value
    m = re.search(r"(?<![\d.,/-])(\d{1,5})[.,](\d{2})(?![\d.,/-])", t)
    if m:
        return Decimal(f"{m.group(1)}.{m.group(2)}")
    return None
