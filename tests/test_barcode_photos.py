"""Decode + codes stages on real phone photos (zxing-cpp black-box subset in ../shared).

Expected text is compared the way zxing's black-box tests do: the ``NAME.txt`` content (line
endings normalised: the files' CRLF were turned into LF when the sets were copied), with two
equivalences our output form needs: GS1 codes are reported as bracketed HRI, so they match when
their AIs equal the AIs parsed from the raw expected string; EAN/UPC match on the GTIN, since
a UPC-A is reported with its 12 printed digits where the expected file holds 13.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from gateway.gtin import normalize_gtin, parse_gs1
from gateway.pipeline.codes import read_codes
from gateway.pipeline.decode import decode_image
from gateway.pipeline.types import Code

PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "barcode-photos"
IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg"}
TARGET_ACCURACY = 0.85

pytestmark = pytest.mark.skipif(
    not PHOTOS.is_dir(), reason=f"real barcode photos not present at {PHOTOS}"
)


def _images(folder: str) -> list[Path]:
    return sorted(p for p in (PHOTOS / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read(path: Path) -> list[Code]:
    gray = decode_image(path.read_bytes(), max_bytes=25 << 20, max_pixels=50_000_000, gray=True)
    return read_codes(gray)


def _matches(expected: str, codes: list[Code]) -> bool:
    expected = expected.replace("\r\n", "\n")
    gtin = normalize_gtin(expected) if expected.isdigit() else None
    ais = parse_gs1(expected) if expected[:1].isdigit() else {}
    for code in codes:
        if code.text.replace("\r\n", "\n") == expected:
            return True
        if gtin is not None and code.gtin == gtin:
            return True
        if ais and code.ai == ais:
            return True
    return False


def test_accuracy_on_folders_with_expected_text() -> None:
    per_folder: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses = []
    for folder in sorted(p.name for p in PHOTOS.iterdir() if p.is_dir()):
        for image in _images(folder):
            expected = image.with_suffix(".txt")
            if not expected.exists():
                continue
            ok = _matches(expected.read_text(encoding="utf-8"), _read(image))
            per_folder[folder][0] += ok
            per_folder[folder][1] += 1
            if not ok:
                misses.append(f"{folder}/{image.name}")
    good = sum(v[0] for v in per_folder.values())
    total = sum(v[1] for v in per_folder.values())
    table = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in per_folder.items())
    report = f"{good}/{total} = {good / total:.3f} ({table}); misses: {misses}"
    print(report)
    assert total >= 150, report  # the set is all there
    assert good / total >= TARGET_ACCURACY, report


def test_zero_codes_on_false_positive_photos() -> None:
    found = {}
    for image in _images("falsepositives-1"):
        codes = _read(image)
        if codes:
            found[image.name] = [(c.format, c.text) for c in codes]
    assert found == {}


def test_multi_code_photos() -> None:
    def formats(name: str) -> list[str]:
        return sorted(c.format for c in _read(PHOTOS / "multi-1" / name))

    assert formats("3xean-8.png") == ["EAN-8"] * 3
    assert formats("multi-dm.png") == ["DataMatrix"] * 5  # identical codes, five places
    assert formats("multi-qr.png") == ["QRCode"] * 4
    assert formats("1.png") == ["QRCode", "UPC-A"]
    assert formats("#360.png") == ["Aztec", "Code39", "PDF417", "QRCode"]
