"""Issue 18, observability: /metrics in Prometheus' format on a real gateway (embedded Triton):
photos received and counted, the queue's depth, per-stage latencies, the outbox per sink."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gateway.training.scenes import encode_jpeg, render_scene

from .server_support import WsClient, new_token, outcome, running_gateway

pytestmark = pytest.mark.triton


def _scrape(base_url: str) -> dict[tuple[str, tuple], float]:
    answer = requests.get(f"{base_url}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(
        "text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_metrics_follow_photos_and_deliveries(triton, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    data = tmp_path / "data"
    env = {"SHELFCOUNT_DROP_DIR": str(drop), "SHELFCOUNT_SAP_WAREHOUSE": "WH1"}
    with running_gateway(data, triton.url, env=env) as gw:
        before = _scrape(gw.base_url)
        assert before[("shelfcount_count_queue_depth", ())] == 0
        assert before[("shelfcount_sink_waiting", (("sink", "folder"),))] == 0
        phone = WsClient(gw)
        try:
            phone.hello(new_token(data, "walker-metrics"))
            ids = [str(uuid.uuid4()) for _ in range(2)]
            for k, photo_id in enumerate(ids):
                phone.photo(photo_id, encode_jpeg(render_scene(60 + k, location=f"A-0{k + 1}-1",
                                                               difficulty=0.2)))
                phone.wait_for(outcome(photo_id))
            phone.send({"type": "confirm", "id": ids[0]})
            phone.wait_for(lambda m: m["type"] == "confirmed" and m["id"] == ids[0])
        finally:
            phone.close()
        deadline = time.monotonic() + 30
        while True:
            after = _scrape(gw.base_url)
            if after.get(("shelfcount_sink_deliveries_total", (("sink", "folder"),))) == 1:
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.3)
    assert after[("shelfcount_photos_received_total", (("source", "ws"),))] == 2
    assert after[("shelfcount_photos_counted_total", ())] == 2
    assert after[("shelfcount_count_queue_depth", ())] == 0
    assert after[("shelfcount_sink_waiting", (("sink", "folder"),))] == 0
    assert after[("shelfcount_sink_retries_total", (("sink", "folder"),))] == 0
    # Every stage of both counts observed, in seconds.
    assert after[("shelfcount_stage_seconds_count", (("stage", "total"),))] == 2
    assert 0 < after[("shelfcount_stage_seconds_sum", (("stage", "total"),))] < 60
    assert after[("shelfcount_stage_seconds_count", (("stage", "codes"),))] == 2
    assert after[("shelfcount_triton_errors_total", ())] == 0
