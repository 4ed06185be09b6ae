"""The one client the gateway uses to talk to Triton (``tritonclient.grpc``).

Callers hand over numpy images and get :class:`TextLine` / :class:`Detection` objects back;
tensors, model names and gRPC errors stay in this module. Connection problems and models that
are not ready surface as :class:`InferenceUnavailable` (callers queue the photo and retry),
and bad arguments as ``ValueError`` with a message that says which image is wrong.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE
from tritonclient.utils import InferenceServerException

from gateway.pipeline.types import Detection, TextLine

OCR_MODEL = "ocr_pipeline"
FACE_MODEL = "face_detector"  # people are blurred before a photo is kept
PERSON_MODEL = "person_detector"  # whole people, where no face shows
DETECTOR_MODEL = "item_detector"
DETECTOR_TILE = 640
DETECTOR_MAX_BATCH = 8
# gRPC status codes that mean "the server is not there (yet)", not "your request is wrong".
# CANCELLED: the channel went away under the call (we never cancel calls ourselves).
_UNAVAILABLE_CODES = {
    "StatusCode.UNAVAILABLE",
    "StatusCode.DEADLINE_EXCEEDED",
    "StatusCode.CANCELLED",
}

T = TypeVar("T")


class InferenceUnavailable(Exception):
    """Triton cannot be reached or the model is not ready; the same request may work later."""


class InferenceClient:
    """Thread-safe client for the ShelfCount models served by Triton.

    One gRPC channel is shared by all threads (gRPC channels are thread-safe); it is replaced
    under a lock when the server went away, and a failed call is retried once after the server
    answers ready again (at most ``retry_wait_s``), which rides over a watchdog restart.
    """

    def __init__(self, url: str, timeout_s: float = 30.0, *, retry_wait_s: float = 20.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retry_wait_s = retry_wait_s
        self._lock = threading.Lock()
        self._client = _connect(url)

    # -- health -----------------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Whether the server answers ready (each model has its own readiness)."""
        try:
            return bool(self._current().is_server_ready(client_timeout=5))
        except InferenceServerException:
            return False

    def model_ready(self, name: str) -> bool:
        """Whether ``name`` is loaded and ready (False when absent or failed to load)."""
        try:
            return bool(self._current().is_model_ready(name, client_timeout=5))
        except InferenceServerException:
            return False

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # -- models -----------------------------------------------------------------------------

    def ocr(self, images: Sequence[np.ndarray]) -> list[list[TextLine]]:
        """Text lines of each BGR uint8 image (boxes in that image's pixels).

        Each image is its own request and all are in flight at once, so Triton batches them
        (the OCR model takes ragged batches and stacks all their text lines for recognition).
        """
        arrays = [_as_bgr(image, index) for index, image in enumerate(images)]
        if not arrays:
            return []

        def build(image: np.ndarray) -> list[grpcclient.InferInput]:
            tensor = grpcclient.InferInput("image", [1, *image.shape], "UINT8")
            tensor.set_data_from_numpy(image[None])
            return [tensor]

        outputs = ["texts", "scores", "boxes"]
        results = self._call(
            lambda: self._infer_all(OCR_MODEL, [build(a) for a in arrays], outputs)
        )
        lines: list[list[TextLine]] = []
        for result in results:
            texts = result.as_numpy("texts")[0]
            scores = result.as_numpy("scores")[0]
            boxes = result.as_numpy("boxes")[0]
            lines.append(
                [
                    TextLine(
                        text=t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t),
                        score=float(s),
                        box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                    )
                    for t, s, b in zip(texts, scores, boxes, strict=True)
                ]
            )
        return lines

    def detect(self, tiles: np.ndarray) -> list[list[Detection]]:
        """Item candidates per 640x640 BGR tile (boxes in tile pixels, padding rows dropped).

        Every candidate the model returns above score 0 comes back; the caller applies its
        own threshold and NMS across tiles.
        """
        return self.detect_versioned(tiles)[0]

    def detect_versioned(self, tiles: np.ndarray) -> tuple[list[list[Detection]], str | None]:
        """``detect`` and the detector version Triton answered with (None for no tiles): the
        version that produced these boxes, even while a new one is being promoted."""
        if not isinstance(tiles, np.ndarray):
            raise ValueError(f"tiles must be a numpy array, got {type(tiles).__name__}")
        if tiles.dtype != np.uint8:
            raise ValueError(f"tiles must be uint8 BGR, got dtype {tiles.dtype}")
        shape = (DETECTOR_TILE, DETECTOR_TILE, 3)
        if tiles.ndim != 4 or tiles.shape[1:] != shape:
            raise ValueError(f"tiles must have shape [N, 640, 640, 3], got {list(tiles.shape)}")
        if len(tiles) == 0:
            return [], None
        chunks = [
            np.ascontiguousarray(tiles[i : i + DETECTOR_MAX_BATCH])
            for i in range(0, len(tiles), DETECTOR_MAX_BATCH)
        ]

        def build(chunk: np.ndarray) -> list[grpcclient.InferInput]:
            tensor = grpcclient.InferInput("images", list(chunk.shape), "UINT8")
            tensor.set_data_from_numpy(chunk)
            return [tensor]

        results = self._call(
            lambda: self._infer_all(DETECTOR_MODEL, [build(c) for c in chunks], ["detections"])
        )
        out: list[list[Detection]] = []
        version = None
        for result in results:
            version = result.get_response().model_version or version
            for rows in result.as_numpy("detections"):
                out.append(
                    [
                        Detection(
                            box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                            score=float(r[4]),
                        )
                        for r in rows
                        if r[4] > 0
                    ]
                )
        return out, version

    def faces(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Faces in a BGR uint8 photo: (box in its pixels, score) each (``face_detector``)."""
        return self._boxes(FACE_MODEL, image)

    def people(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Whole people in a BGR uint8 photo: (body box in its pixels, score) each
        (``person_detector``)."""
        return self._boxes(PERSON_MODEL, image)

    def _boxes(self, model: str, image: np.ndarray
               ) -> list[tuple[tuple[float, float, float, float], float]]:
        """One photo through a model answering ``boxes`` [N, 4] and ``scores`` [N]."""
        array = _as_bgr(image, 0)
        tensor = grpcclient.InferInput("image", list(array.shape), "UINT8")
        tensor.set_data_from_numpy(array)
        (result,) = self._call(
            lambda: self._infer_all(model, [[tensor]], ["boxes", "scores"]))
        boxes, scores = result.as_numpy("boxes"), result.as_numpy("scores")
        return [((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s))
                for b, s in zip(boxes.reshape(-1, 4), scores.reshape(-1), strict=True)]

    # -- plumbing ---------------------------------------------------------------------------

    def _current(self) -> grpcclient.InferenceServerClient:
        with self._lock:
            return self._client

    def _reconnect(self, broken: grpcclient.InferenceServerClient) -> None:
        """Replace the channel unless another thread already did. The old one is left to the
        garbage collector: closing it would cancel other threads' calls still on it."""
        with self._lock:
            if self._client is broken:
                self._client = _connect(self.url)

    def _call(self, work: Callable[[], T]) -> T:
        """Run ``work``; on an outage reconnect, wait for readiness, and try once more."""
        client = self._current()
        try:
            return work()
        except InferenceUnavailable:
            self._reconnect(client)
            deadline = time.monotonic() + self.retry_wait_s
            while not self.is_ready() and time.monotonic() < deadline:
                time.sleep(0.25)
            return work()

    def _infer_all(
        self,
        model: str,
        requests: list[list[grpcclient.InferInput]],
        outputs: list[str],
    ) -> list[grpcclient.InferResult]:
        """Send every request at once (``async_infer``) and wait for all the answers."""
        client = self._current()
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        results: list[grpcclient.InferResult | None] = [None] * len(requests)
        errors: list[InferenceServerException | None] = [None] * len(requests)
        pending = threading.Semaphore(0)

        def on_done(index: int, result: object, error: object) -> None:
            results[index] = result  # type: ignore[assignment]
            errors[index] = error  # type: ignore[assignment]
            pending.release()

        sent = 0
        try:
            for index, inputs in enumerate(requests):
                client.async_infer(
                    model,
                    inputs,
                    callback=lambda result, error, i=index: on_done(i, result, error),
                    outputs=requested,
                    client_timeout=self.timeout_s,
                )
                sent += 1
        except InferenceServerException as exc:
            error = _translate(model, exc)
        else:
            error = None
        deadline = time.monotonic() + self.timeout_s + 5
        for _ in range(sent):
            if not pending.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise InferenceUnavailable(f"Triton did not answer {model} in {self.timeout_s}s")
        if error is not None:
            raise error
        for exc in errors:
            if exc is not None:
                raise _translate(model, exc)
        return results  # type: ignore[return-value]


def _connect(url: str) -> grpcclient.InferenceServerClient:
    """A channel that notices a restarted server within a second.

    gRPC's default reconnect back-off grows to two minutes, which would keep a client blind
    long after the watchdog brought Triton back; the other options are tritonclient's defaults.
    """
    return grpcclient.InferenceServerClient(
        url,
        channel_args=[
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


def _translate(model: str, exc: InferenceServerException) -> Exception:
    """Outage -> InferenceUnavailable; anything else -> RuntimeError naming the model."""
    status = str(exc.status() or "")
    message = exc.message() or str(exc)
    # "Stub process ... is not healthy": a model process died; the embedded server's watchdog
    # restarts Triton, an external one needs its operator. Either way: retry later.
    outage = ("not ready", "unknown model", "is not healthy")
    if status in _UNAVAILABLE_CODES or any(text in message for text in outage):
        return InferenceUnavailable(f"Triton model {model} unavailable: {message}")
    return RuntimeError(f"Triton model {model} failed: {message}")


def _as_bgr(image: object, index: int) -> np.ndarray:
    """Validate one OCR input; grey images are widened to three channels."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image {index} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image {index} must be uint8 BGR, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image {index} must have shape [H, W, 3], got {list(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image {index} is empty ({image.shape[1]}x{image.shape[0]} pixels)")
    return np.ascontiguousarray(image)
