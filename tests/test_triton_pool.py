"""Several Tritons (SHELFCOUNT_TRITON_URL=a,b): calls spread over two real embedded Tritons,
one killed (-9) in the middle costs no photo, and it is back in turn once its watchdog has it
answering again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from gateway.catalog import Catalog
from gateway.config import load_settings
from gateway.inference.client import InferenceClient, InferenceUnavailable
from gateway.inference.embedded import EmbeddedTriton, free_ports
from gateway.inference.pool import TritonPool, connect, triton_urls
from gateway.pipeline.run import Pipeline
from gateway.training.scenes import encode_jpeg, render_scene

pytestmark = pytest.mark.triton
DEMO = Path(__file__).resolve().parent.parent / "gateway" / "demo" / "catalog.csv"


def test_the_setting_lists_tritons() -> None:
    assert triton_urls(" a:8001, b:8001 ,,a:8001") == ["a:8001", "b:8001"]
    assert isinstance(connect("127.0.0.1:1"), InferenceClient)
    pool = connect("127.0.0.1:1,127.0.0.1:2")
    assert isinstance(pool, TritonPool) and pool.url == "127.0.0.1:1,127.0.0.1:2"
    pool.close()
    with pytest.raises(ValueError):
        TritonPool(["127.0.0.1:1"])


def test_no_triton_answering_is_unavailable_at_once() -> None:
    a, b = free_ports(2)
    pool = TritonPool([f"127.0.0.1:{a}", f"127.0.0.1:{b}"], timeout_s=2)
    started = time.monotonic()
    with pytest.raises(InferenceUnavailable, match="no Triton answered"):
        pool.ocr([render_scene(1, width=320, height=240).image])
    assert time.monotonic() - started < 10 and pool.serving() == []
    assert not pool.is_ready()
    pool.close()


@pytest.fixture(scope="module")
def second() -> Iterator[EmbeddedTriton]:
    settings = load_settings()
    server = EmbeddedTriton(settings.model_repository,
                            start_timeout_s=settings.triton_start_timeout_s)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def detector_calls(url: str) -> int:
    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics("item_detector", as_json=True)
    return sum(int(m["inference_stats"]["success"].get("count", 0))
               for m in stats.get("model_stats", []))


def test_photos_spread_over_tritons_and_survive_one_stopping(triton, second) -> None:
    pool = TritonPool([triton.url, second.url], timeout_s=30, recheck_s=0.5)
    pipeline = Pipeline(load_settings(), pool, Catalog.from_csv(DEMO))
    photos = [encode_jpeg(render_scene(seed, width=1280, height=720)) for seed in range(30, 34)]

    def counts() -> list[list[tuple[str, int]]]:
        return [[(r["SKU"], r["Quantity_Counted"]) for r in pipeline.count(p).rows]
                for p in photos]

    try:
        before = [detector_calls(triton.url), detector_calls(second.url)]
        first = counts()
        after = [detector_calls(triton.url), detector_calls(second.url)]
        assert after[0] > before[0] and after[1] > before[1]  # both Tritons counted
        url, pid = second.url, second.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # the dead one is set aside on its first failed call; no photo is lost
        assert counts() == first
        assert pool.serving() == [triton.url]
        second.wait_ready(120)  # its watchdog starts it again, on the same port
        assert second.url == url and second.pid != pid
        back = detector_calls(url)
        for _ in range(20):
            time.sleep(0.6)
            pipeline.count(photos[0])
            if detector_calls(url) > back:
                break
        assert detector_calls(url) > back and set(pool.serving()) == {triton.url, url}
    finally:
        pipeline.close()
        pool.close()
