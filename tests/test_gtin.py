"""GTIN normalisation and GS1 parsing: the keys the catalog lookup relies on."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.gtin import (
    expand_upce,
    gs1_date,
    gs1_hri,
    gtin_check_digit,
    normalize_gtin,
    parse_gs1,
)


def test_upca_ean13_gtin14_compare_equal() -> None:
    upca = "036000291452"
    assert normalize_gtin(upca) == "00036000291452"
    assert normalize_gtin("0" + upca) == normalize_gtin(upca)
    assert normalize_gtin("00" + upca) == normalize_gtin(upca)


def test_ean8_and_ean13() -> None:
    assert normalize_gtin("96385074") == "00000096385074"
    assert normalize_gtin("4006381333931") == "04006381333931"
    assert normalize_gtin(" 4006381333931\n") == "04006381333931"


@pytest.mark.parametrize(
    "bad",
    ["4006381333932", "036000291453", "", "abc", "12345", "40063813339310", "4006381333931x",
     "４００６３８１３３３９３１"],
)  # fmt: skip
def test_rejects_bad_check_digit_and_lengths(bad: str) -> None:
    assert normalize_gtin(bad) is None


def test_check_digit() -> None:
    assert gtin_check_digit("400638133393") == 1
    assert gtin_check_digit("0950110153000") == 3


def test_upce_expansion() -> None:
    assert expand_upce("04252614") == "042100005264"
    assert expand_upce("01234565") == "012345000065"
    assert expand_upce("04252615") is None  # wrong check digit
    assert expand_upce("24252614") is None  # number system must be 0 or 1


def test_parse_raw_with_fnc1_separators() -> None:
    raw = "]C1" + "0109501101530003" + "17260100" + "10AB-12\x1d" + "21XYZ987"
    ais = parse_gs1(raw)
    assert ais == {"01": "09501101530003", "17": "260100", "10": "AB-12", "21": "XYZ987"}
    assert list(ais) == ["01", "17", "10", "21"]
    assert gs1_hri(ais) == "(01)09501101530003(17)260100(10)AB-12(21)XYZ987"


def test_parse_bracketed_hri() -> None:
    ais = parse_gs1("(01)09501101530003(17)261231(10)LOT7(21)S1")
    assert ais == {"01": "09501101530003", "17": "261231", "10": "LOT7", "21": "S1"}
    assert parse_gs1(gs1_hri(ais)) == ais


def test_fixed_length_fields_do_not_derail() -> None:
    raw = "00" + "3" * 17 + "5" + "02" + "09501101530003" + "15261231" + "3103000250"
    raw += "3712\x1d10B1"
    ais = parse_gs1(raw)
    assert ais == {
        "00": "333333333333333335",
        "02": "09501101530003",
        "15": "261231",
        "3103": "000250",
        "37": "12",
        "10": "B1",
    }
    # GS after a fixed-length field is tolerated.
    assert parse_gs1("0109501101530003\x1d10ABC") == {"01": "09501101530003", "10": "ABC"}
    # 3-digit and 4-digit AIs.
    assert parse_gs1("0109501101530003240PART-9\x1d8200http://x") == {
        "01": "09501101530003",
        "240": "PART-9",
        "8200": "http://x",
    }


def test_zxing_blackbox_gs1_datamatrix_string() -> None:
    text = "01095040000591012112345678p901\x1d101234567p\x1d171411208200http://www.gs1.org/demo/"
    assert parse_gs1(text) == {
        "01": "09504000059101",
        "21": "12345678p901",
        "10": "1234567p",
        "17": "141120",
        "8200": "http://www.gs1.org/demo/",
    }


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "01123",
        "(01)123",
        "(17)26AB31",
        "0109501101530003" + "17ABCDEF",
        "(1)x",
        "x(01)1",
        "(01)09501101530003(17)261331",
        "0109501101530003" + "15260230",
    ],
)
def test_malformed_returns_empty(bad: str) -> None:
    assert parse_gs1(bad) == {}


def test_gs1_date() -> None:
    today = dt.date(2026, 11, 22)
    assert gs1_date("261231", today=today) == dt.date(2026, 12, 31)
    assert gs1_date("240200", today=today) == dt.date(2024, 2, 29)  # DD=00: end of month, leap
    assert gs1_date("250200", today=today) == dt.date(2025, 2, 28)
    assert gs1_date("991231", today=today) == dt.date(1999, 12, 31)  # > 50 years ahead
    assert gs1_date("760101", today=today) == dt.date(2076, 1, 1)  # exactly 50 ahead: this century
    for bad in ("261331", "260230", "2612", "26AB01"):
        with pytest.raises(ValueError):
            gs1_date(bad, today=today)
