"""The `shelfcount` command line as outside benchmarks call it, against the real Triton."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.schema import COLUMNS
from gateway.training.scenes import encode_jpeg, render_scene

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "gateway" / "demo" / "catalog.csv"


def shelfcount(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, object]]:
    out = tmp_path_factory.mktemp("photos")
    result = []
    for seed in (11, 12):
        scene = render_scene(seed, width=1920, height=1080)
        path = out / f"bay{seed}.jpg"
        path.write_bytes(encode_jpeg(scene))
        result.append((path, scene))
    return result


@pytest.fixture()
def env(triton, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SHELFCOUNT_TRITON_URL": triton.url,
            "SHELFCOUNT_DATA_DIR": str(tmp_path / "data")}


def test_count_csv_rows_match_the_scenes(photos, env) -> None:
    bad = Path(env["SHELFCOUNT_DATA_DIR"]).parent / "broken.jpg"
    bad.write_bytes(photos[0][0].read_bytes()[:5000])
    args = ["count", "--catalog", str(DEMO), "--quiet", str(photos[0][0]), str(bad),
            str(photos[1][0])]
    proc = shelfcount(args, env)
    assert proc.returncode == 1, proc.stderr  # one photo failed, the others were counted
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err_lines) == 1 and "broken.jpg" in err_lines[0] and "Traceback" not in proc.stderr
    table = list(csv.reader(io.StringIO(proc.stdout)))
    assert tuple(table[0]) == COLUMNS
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in table[1:]]
    for _, scene in photos:
        if scene.location:
            assert any(r["Location"] == scene.location for r in rows)
        main = scene.main_sku
        assert any(r["SKU"] == main and int(r["Quantity_Counted"]) > 0 for r in rows), main


def test_count_jsonl_has_image_key_and_stored_catalog(photos, env) -> None:
    assert shelfcount(["catalog", "import", str(DEMO)], env).returncode == 0
    paths = [str(p) for p, _ in photos]
    proc = shelfcount(["count", "--format", "jsonl", "--location", "A-01-1", *paths], env)
    assert proc.returncode == 0, proc.stderr
    assert "counting" in proc.stderr and "photo" in proc.stderr  # progress bar for many photos
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert objs and all(set(o) == set(COLUMNS) | {"Image", "model_version", "findings"}
                    for o in objs)
    assert {o["model_version"] for o in objs} == {"1"}  # the detector version that counted
    assert {o["Image"] for o in objs} == set(paths)
    assert any(o["Product_Description"] for o in objs)  # priced from the imported catalog


def test_codes_jsonl(tmp_path: Path, env) -> None:
    scene = render_scene(21, width=1920, height=1080, n_items=3, difficulty=0.2)  # big labels
    path = tmp_path / "few.jpg"
    path.write_bytes(encode_jpeg(scene))
    proc = shelfcount(["codes", str(path)], env)
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert objs and all({"Image", "Format", "Text"} <= set(o) for o in objs)
    gs1 = [o for o in objs if o["Text"].startswith("(01)")]
    assert gs1 and all(o["GTIN"] == "04012345600056" for o in gs1)  # GS1 DataMatrix, HRI form
    assert {o["Text"] for o in objs} >= {scene.location}  # the bin label's Code 128


def test_bad_catalog_and_missing_file_are_one_line_errors(tmp_path: Path, env) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("SKU,Price\nx,1\n")
    proc = shelfcount(["catalog", "import", str(bad)], env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing column" in proc.stderr
    proc = shelfcount(["codes", str(tmp_path / "nope.jpg")], env)
    assert proc.returncode == 1 and "cannot read" in proc.stderr


def test_help_explains_options() -> None:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "count", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    for option in ("--catalog", "--location", "--format"):
        assert option in proc.stdout


def test_device_add_prints_token_alone_then_qr(tmp_path: Path) -> None:
    env = {**os.environ, "SHELFCOUNT_DATA_DIR": str(tmp_path / "data")}
    proc = shelfcount(["device", "add", "walker-anna"], env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    token = lines[0]
    assert len(token) >= 20 and " " not in token
    assert len(lines) > 10 and "█" in "".join(lines[1:])  # the QR code for the phone
    linked = shelfcount(["device", "add", "walker-ben", "--url", "https://10.0.0.5:8080/"], env)
    assert linked.returncode == 0 and linked.stdout.splitlines()[0] != token
    bad = shelfcount(["device", "add", ""], env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
