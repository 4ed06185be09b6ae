"""The shelf audit through the real gateway and Triton: findings in the result, a planogram
imported while the gateway runs, findings worked out again from a person's boxes, and the
confirmed bay's findings in the drop folder."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.planogram import import_planogram
from gateway.server import GatewayServer
from gateway.training.scene_bays import render_planned_bay
from gateway.training.scenes import encode_jpeg

from .server_support import new_token, running_gateway

pytestmark = pytest.mark.triton
BAY = 9103  # a generated bay: one gap, two stacked cartons of SKU-10003 in SKU-10010's slot


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    root = tmp_path_factory.mktemp("gw-audit")
    (root / "drop").mkdir()
    with running_gateway(root / "data", triton.url,
                         env={"SHELFCOUNT_DROP_DIR": str(root / "drop")}) as server:
        yield server


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(gw: GatewayServer, token: str, photo: bytes) -> dict[str, Any]:
    resp = requests.post(f"{gw.base_url}/api/v1/counts", headers=auth(token),
                         files={"photo": ("bay.jpg", photo, "image/jpeg")}, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def kinds(findings: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(f["type"], f["sku"], f["expected_sku"]) for f in findings}


def test_findings_follow_the_plan_the_boxes_and_reach_the_drop_folder(
        gw: GatewayServer, tmp_path: Path) -> None:
    drop = Path(gw.settings.data_dir).parent / "drop"
    token = new_token(gw.settings.data_dir, "walker-audit")
    bay = render_planned_bay(BAY)
    photo = encode_jpeg(bay.scene)
    # Without a planogram the bin's home SKU is the plan: every other SKU is misplaced.
    before = post(gw, token, photo)
    assert ("misplaced", "SKU-10003", "SKU-10010") in kinds(before["findings"])
    assert ("extra", "SKU-10003", "") in kinds(before["findings"])
    # The planogram imported while the gateway runs is used from the next photo on.
    plan = tmp_path / "plan.csv"
    plan.write_text(bay.planogram_csv(), encoding="utf-8")
    import_planogram(plan, gw.settings.data_dir)
    result = post(gw, token, photo)
    found = kinds(result["findings"])
    assert ("gap", "", "SKU-10010") in found and ("misplaced", "SKU-10003", "SKU-10010") in found
    assert ("extra", "SKU-10003", "") not in found  # SKU-10003 is planned in this bay
    # The walker says the two misplaced cartons are the slot's SKU after all: their findings
    # go, the gap stays; the stored result says so.
    wrong = [f["box"] for f in result["findings"] if f["type"] == "misplaced"]
    boxes = [[*b[:4], "SKU-10010" if list(b[:4]) in wrong else b[5]] for b in result["boxes"]]
    fixed = requests.put(f"{gw.base_url}/api/v1/counts/{result['count_id']}/boxes",
                         json={"boxes": boxes}, headers=auth(token), timeout=30)
    assert fixed.status_code == 200, fixed.text
    stored = requests.get(f"{gw.base_url}/api/v1/counts/{result['count_id']}",
                          headers=auth(token), timeout=10).json()
    assert len(wrong) == 2 and ("gap", "", "SKU-10010") in kinds(stored["findings"])
    assert [f for f in stored["findings"] if f["type"] == "misplaced"] == []
    confirmed = requests.post(f"{gw.base_url}/api/v1/counts/{result['count_id']}/confirm",
                              headers=auth(token), timeout=30)
    assert confirmed.status_code == 200, confirmed.text
    for _ in range(100):
        files = list(drop.glob("*_findings.csv"))
        if files:
            break
        gw.outbox.wake()
        time.sleep(0.1)
    (path,) = files
    with open(path, newline="", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert {(r["Type"], r["Expected_SKU"]) for r in lines} >= {("gap", "SKU-10010")}
    assert {r["Photo"] for r in lines} == {result["count_id"]}
    assert {r["Location"] for r in lines} == {bay.scene.location}
