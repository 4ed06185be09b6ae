"""Parsers for OCR text: clean readings, the noise PP-OCRv4 adds, and text that must not match."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from gateway.config import load_settings
from gateway.pipeline.text import find_expiry, find_location, find_price, find_sku


@pytest.mark.parametrize("text, expected", [
    ("A-01-1", "A-01-1"),
    ("BIN A-12-3", "A-12-3"),
    ("LOC: B-02-1 SKU-10005", "B-02-1"),
    ("A 01 1", "A-01-1"),  # spaces for dashes
    ("a_01_1", "A-01-1"),
    ("A\u201301\u20131", "A-01-1"),  # en dashes
    ("A-O1-l", "A-01-1"),  # O/0 and l/1 confusions
    ("C-0Z-2", "C-02-2"),
    ("A011", "A-01-1"),  # PP-OCRv4 dropped the dashes on a line that is only the code
    ("AB123", "AB-12-3"),
    ("AA-123-12", "AA-123-12"),
    ("A-12-3.", "A-12-3"),
])
def test_find_location(text: str, expected: str) -> None:
    assert find_location(text) == expected


@pytest.mark.parametrize("text", ["", "SKU-10005", "EXP 2025-12-31", "A-1234-1", "hello world",
                                  "31/12/2025", "$12.50", "USE BY 05.06.27", "05-06-27",
                                  "EXP2025-12-31", "(17)251231", "4012345600056"])
def test_find_location_rejects(text: str) -> None:
    assert find_location(text) is None


def test_find_location_custom_pattern() -> None:
    assert find_location("rack R07 shelf 3", r"R\d{2}") == "R07"
    assert find_location("Z-9-9", r"[A-Z]-\d-\d") == "Z-9-9"
    assert find_location("A-01-1", r"R\d{2}") is None
    settings = load_settings(env={})
    assert find_location("x A-01-1 y", settings.location_pattern) == "A-01-1"


@pytest.mark.parametrize("text, expected", [
    ("SKU-10005", "SKU-10005"),
    ("SKU 10005", "SKU-10005"),
    ("SKU10005", "SKU-10005"),
    ("sku_10005", "SKU-10005"),
    ("SKU\u201410005", "SKU-10005"),
    ("ITEM SKU:10005 x", "SKU-10005"),
    ("5KU-1OOO5", "SKU-10005"),  # S/5 in the prefix, O/0 in the number
    ("SKU-1OO05", "SKU-10005"),
    ("SKU-10005EXP2025-12-31", "SKU-10005"),  # two label lines joined without a space
    ("SKU-AB12", "SKU-AB12"),  # alphanumeric SKUs are left as read
])
def test_find_sku(text: str, expected: str) -> None:
    assert find_sku(text) == expected


@pytest.mark.parametrize("text", ["", "NOSKU", "SKUS", "SKU-1", "A-01-1", "KU-10005"])
def test_find_sku_rejects(text: str) -> None:
    assert find_sku(text) is None


def test_find_sku_custom_pattern() -> None:
    assert find_sku("ART 123456", r"ART-\d{6}") == "ART-123456"
    assert find_sku("code 123456 here", r"\d{6}") == "123456"


@pytest.mark.parametrize("text, expected", [
    ("EXP 2025-12-31", date(2025, 12, 31)),
    ("EXP2025-12-31", date(2025, 12, 31)),  # PP-OCRv4 drops spaces
    ("31/12/2025", date(2025, 12, 31)),
    ("31.12.2025", date(2025, 12, 31)),
    ("EXP 31/12/2025", date(2025, 12, 31)),
    ("USE BY 05.06.2027", date(2027, 6, 5)),
    ("BEST BEFORE 05.06.2027", date(2027, 6, 5)),
    ("BEST BEFORE 12/2025", date(2025, 12, 31)),  # month only: end of month
    ("BESTBEFORE02/2024", date(2024, 2, 29)),
    ("BB12/2025", date(2025, 12, 31)),
    ("EXP 2025-12", date(2025, 12, 31)),
    ("EXP 2025-11", date(2025, 11, 30)),
    ("31 DEC 2025", date(2025, 12, 31)),
    ("EXP DEC 2025", date(2025, 12, 31)),
    ("EXP 12/31/2025", date(2025, 12, 31)),  # month-first only when day-first is impossible
    ("EXP 31.12.25", date(2025, 12, 31)),
    ("(01)04012345600056(17)251231(10)L123", date(2025, 12, 31)),
    ("(17)260200", date(2026, 2, 28)),  # GS1 day 00 = end of month
    ("EXP 2O25-l2-31", date(2025, 12, 31)),  # O/0, l/1
    ("EXP 2025-I2-3I", date(2025, 12, 31)),
    ("EXP 2025 - 12 - 31", date(2025, 12, 31)),
    ("PROD 2025-01-01 EXP 2026-01-01", date(2026, 1, 1)),  # the expiry, not production
    ("LOT 2024-01-05 31/12/2026", date(2026, 12, 31)),
    ("EXP20251231", date(2025, 12, 31)),
    # PP-OCRv4 readings of generated labels (spaces dropped, letters misread)
    ("SKU-10009 BESTBEFORK20.12.2027", date(2027, 12, 20)),
    ("SKU-10009 TIIII BESTBEF0RE20.12.2027", date(2027, 12, 20)),
    ("USEBY05.06.2027", date(2027, 6, 5)),
])
def test_find_expiry(text: str, expected: date) -> None:
    assert find_expiry(text) == expected


@pytest.mark.parametrize("text", ["", "SKU-10005", "EXP 31/02/2025", "EXP 2025-13-01",
                                  "4012345600056", "$12.50", "A-01-1", "EXP 1899-01-01"])
def test_find_expiry_rejects(text: str) -> None:
    assert find_expiry(text) is None


@pytest.mark.parametrize("text, expected", [
    ("$12.50", "12.50"),
    ("12,50 €", "12.50"),
    ("12,50€", "12.50"),
    ("EUR 3.49", "3.49"),
    ("EUR3.49", "3.49"),
    ("3.49 EUR", "3.49"),
    ("€3,49", "3.49"),
    ("£4.99", "4.99"),
    ("CHF 12.-", "12.00"),
    ("$ 3", "3.00"),
    ("1.234,56 €", "1234.56"),
    ("$1,234.56", "1234.56"),
    ("S12.50", "12.50"),  # "$" read as "S"
    ("$12.5O", "12.50"),  # O/0
    ("Paper towels 8 rolls 6.80", "6.80"),  # shelf tag without currency
    ("PRICE 6,80", "6.80"),
])
def test_find_price(text: str, expected: str) -> None:
    assert find_price(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["", "31.12.2025", "SKU-10005", "A-01-1", "EXP 2025-12-31",
                                  "4012345600056", "6 x 1.5 L"])
def test_find_price_rejects(text: str) -> None:
    assert find_price(text) is None
