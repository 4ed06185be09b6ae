"""OCR and detection through the real Triton server (embedded, or SHELFCOUNT_TRITON_URL)."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from gateway.config import load_settings
from gateway.inference.client import InferenceClient, InferenceUnavailable
from gateway.inference.embedded import (
    _group_processes,
    _group_shm_regions,
    free_ports,
    start_triton,
)

pytestmark = pytest.mark.triton


def label(lines: list[str], width: int = 400, height: int = 200) -> np.ndarray:
    """A white label crop with black printed lines, like a bin label cut out of a photo."""
    image = np.full((height, width, 3), 255, np.uint8)
    step = height // (len(lines) + 1)
    for row, text in enumerate(lines, start=1):
        cv2.putText(
            image,
            text,
            (16, row * step + 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0,
            (0, 0, 0),
            2,
            cv2.LINE_AA,
        )
    return image


def squash(text: str) -> str:
    """PP-OCRv4 drops spaces; compare without them."""
    return text.replace(" ", "").upper()


def test_server_and_models_ready(inference: InferenceClient) -> None:
    assert inference.is_ready()
    for name in ("ocr_det", "ocr_rec", "ocr_pipeline"):
        assert inference.model_ready(name), name
    assert not inference.model_ready("no_such_model")


def test_ocr_reads_rendered_labels(inference: InferenceClient) -> None:
    texts = ["A-12-3", "SKU-10005", "EXP 2025-12-31"]
    results = inference.ocr([label([t]) for t in texts])
    assert len(results) == 3
    for expected, lines in zip(texts, results, strict=True):
        assert [squash(line.text) for line in lines] == [squash(expected)]
        assert 0.5 <= lines[0].score <= 1.0


def test_ocr_lines_in_reading_order_with_boxes_in_crop_pixels(inference: InferenceClient) -> None:
    image = label(["A-12-3", "SKU-10005", "EXP 2025-12-31"], width=420, height=240)
    [lines] = inference.ocr([image])
    assert [squash(line.text) for line in lines] == ["A-12-3", "SKU-10005", "EXP2025-12-31"]
    ink_rows = np.where((image < 128).any(axis=(1, 2)))[0]
    ink_cols = np.where((image < 128).any(axis=(0, 2)))[0]
    tops = [line.box[1] for line in lines]
    assert tops == sorted(tops)
    for line in lines:
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        assert x0 <= ink_cols.min() + 8 and y0 >= ink_rows.min() - 12
    assert lines[-1].box[3] >= ink_rows.max() - 4


def test_ocr_batch_of_mixed_sizes_keeps_order(inference: InferenceClient) -> None:
    texts = [f"SKU-{10000 + i * 7}" for i in range(8)]
    sizes = [
        (360, 120),
        (420, 160),
        (300, 110),
        (520, 200),
        (380, 140),
        (460, 130),
        (340, 100),
        (400, 200),
    ]
    crops = [label([t], w, h) for t, (w, h) in zip(texts, sizes, strict=True)]
    crops.append(np.full((50, 80, 3), 255, np.uint8))  # blank: no lines, not an error
    results = inference.ocr(crops)
    assert [[squash(line.text) for line in lines] for lines in results] == [
        *[[t] for t in texts],
        [],
    ]


def test_concurrent_crops_are_batched_inside_triton(triton, inference: InferenceClient) -> None:
    stats_client = grpcclient.InferenceServerClient(triton.url)

    def counts() -> tuple[int, int]:
        [model] = stats_client.get_inference_statistics("ocr_pipeline", as_json=True)["model_stats"]
        return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))

    texts = [f"A-{i}-{i + 1}" for i in range(1, 9)]
    crops = [label([t], 300, 120) for t in texts]
    shared = []
    # Dynamic batching is opportunistic (a request that finds an idle instance runs alone), so
    # a crowded machine may spread one round out: give it a few rounds to show batching.
    for _ in range(3):
        inferences, executions = counts()
        results = inference.ocr(crops)
        # Triton updates its statistics just after it answers: wait for them to settle.
        deadline = time.monotonic() + 10
        after_inferences, after_executions = counts()
        while after_inferences - inferences < len(texts) and time.monotonic() < deadline:
            time.sleep(0.05)
            after_inferences, after_executions = counts()
        assert [[squash(line.text) for line in lines] for lines in results] == [[t] for t in texts]
        assert after_inferences - inferences == len(texts)
        shared.append(after_executions - executions < len(texts))
        if shared[-1]:
            break
    stats_client.close()
    assert any(shared), "no two OCR requests shared an execute() call"


def test_client_is_thread_safe(inference: InferenceClient) -> None:
    texts = [f"SKU-{20000 + i}" for i in range(6)]
    crops = {t: label([t], 360, 120) for t in texts}

    def read(text: str) -> str:
        return "".join(line.text for line in inference.ocr([crops[text]])[0])

    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(read, texts * 2))
    assert [squash(g) for g in got] == texts * 2


def test_ocr_large_and_rotated_inputs(inference: InferenceClient) -> None:
    big = cv2.resize(label(["A-12-3"]), (2400, 1200), interpolation=cv2.INTER_CUBIC)
    vertical = cv2.rotate(label(["SKU-10005"], 420, 120), cv2.ROTATE_90_CLOCKWISE)
    [big_lines, vertical_lines] = inference.ocr([big, vertical])
    assert [squash(line.text) for line in big_lines] == ["A-12-3"]
    ink_cols = np.where((big < 128).any(axis=(0, 2)))[0]
    x0, _, x1, _ = big_lines[0].box  # in the input's own pixels, not the detector's
    assert abs(x0 - ink_cols.min()) < 40 and abs(x1 - ink_cols.max()) < 40
    assert vertical_lines, "vertical text is detected"
    assert vertical_lines[0].box[3] - vertical_lines[0].box[1] > 100


def test_ocr_accepts_grey_and_empty_list(inference: InferenceClient) -> None:
    grey = cv2.cvtColor(label(["A-12-3"]), cv2.COLOR_BGR2GRAY)
    assert [squash(line.text) for line in inference.ocr([grey])[0]] == ["A-12-3"]
    assert inference.ocr([]) == []


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((20, 20, 3), np.float32), "dtype float32"),
        (np.zeros((20, 20, 4), np.uint8), "shape"),
        (np.zeros((20,), np.uint8), "shape"),
        ([[1, 2], [3, 4]], "numpy array"),
    ],
)
def test_ocr_rejects_bad_input(inference: InferenceClient, image: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inference.ocr([label(["A-12-3"]), image])  # type: ignore[list-item]
    assert inference.is_ready()


def test_detect_follows_the_item_detector_contract(inference: InferenceClient) -> None:
    with pytest.raises(ValueError, match="640, 640, 3"):
        inference.detect(np.zeros((1, 320, 320, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        inference.detect(np.zeros((1, 640, 640, 3), np.float32))
    assert inference.detect(np.zeros((0, 640, 640, 3), np.uint8)) == []
    tiles = np.full((10, 640, 640, 3), 255, np.uint8)  # more than one batch of 8
    if not inference.model_ready("item_detector"):
        with pytest.raises(InferenceUnavailable, match="item_detector"):
            inference.detect(tiles)
        return
    results = inference.detect(tiles)
    assert len(results) == 10
    for detections in results:
        for det in detections:
            x0, y0, x1, y1 = det.box
            assert 0 < det.score <= 1 and x0 <= x1 and y0 <= y1


def test_external_url_mode(triton, inference: InferenceClient) -> None:
    url, server = start_triton(load_settings(env={}, triton_url=triton.url))
    assert (url, server) == (triton.url, None)
    client = InferenceClient(url)
    try:
        assert [squash(t.text) for t in client.ocr([label(["A-12-3"])])[0]] == ["A-12-3"]
    finally:
        client.close()


def test_unreachable_server_raises_inference_unavailable() -> None:
    [port] = free_ports(1)
    client = InferenceClient(f"127.0.0.1:{port}", timeout_s=2, retry_wait_s=0.5)
    try:
        assert not client.is_ready()
        assert not client.model_ready("ocr_pipeline")
        with pytest.raises(InferenceUnavailable):
            client.ocr([label(["A-12-3"])])
    finally:
        client.close()


def test_ocr_works_again_after_tritonserver_is_killed(triton, inference: InferenceClient) -> None:
    if triton.server is None:
        pytest.skip("external Triton (SHELFCOUNT_TRITON_URL): not ours to kill")
    server = triton.server
    before = server.pid
    restarts = server.restarts
    assert before is not None
    regions = _group_shm_regions(before)
    assert regions  # the Python-backend stubs' shared memory
    os.kill(before, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.pid == before and time.monotonic() < deadline:
        time.sleep(0.05)
    # The next call lands while the watchdog restarts the server; the client rides over it
    # (generous wait: a restart takes seconds, but much longer on a crowded CI machine).
    patient = InferenceClient(triton.url, retry_wait_s=120)
    try:
        [lines] = patient.ocr([label(["SKU-10005"])])
    finally:
        patient.close()
    assert [squash(line.text) for line in lines] == ["SKU-10005"]
    assert server.pid not in (None, before)
    assert server.restarts > restarts
    assert server.url == triton.url  # same ports: existing clients keep working
    assert not any(os.path.exists(r) for r in regions)  # no leaked /dev/shm after the crash
    assert [squash(t.text) for t in inference.ocr([label(["A-12-3"])])[0]] == ["A-12-3"]


def test_ocr_works_again_after_a_model_process_dies(triton) -> None:
    """A dead Python-backend stub (e.g. OOM-killed) never recovers inside Triton: the model
    answers "not healthy" while the server looks fine, so the watchdog restarts the server."""
    if triton.server is None:
        pytest.skip("external Triton (SHELFCOUNT_TRITON_URL): not ours to kill")
    server = triton.server
    server.wait_ready(120)
    # Right after a restart by the watchdog: the stubs must be known from the moment the
    # server answers ready (once, a stub killed before the watchdog's next look went unseen).
    before = server.pid
    assert before is not None
    os.kill(before, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while server.pid in (None, before) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.wait_ready(120)
    stubs = [
        pid
        for pid, _ in _group_processes(server.pid)
        if "ocr_rec/1/model.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    ]
    assert stubs
    restarts = server.restarts
    for pid in stubs:  # every instance: no healthy twin left to hide the failure
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 90  # the watchdog notices on its own schedule
    while server.restarts == restarts and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.restarts > restarts
    server.wait_ready(120)
    patient = InferenceClient(triton.url, retry_wait_s=120)
    try:
        [lines] = patient.ocr([label(["EXP 2025-12-31"])])
    finally:
        patient.close()
    assert [squash(line.text) for line in lines] == ["EXP2025-12-31"]
