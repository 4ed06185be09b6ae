"""The person detector's weights: MediaPipe's BlazePose person detector, as shipped inside the
``mediapipe`` 0.10.14 wheel (Apache-2.0).

Installed with ``--no-deps`` only for this file (its own dependencies pull JAX, matplotlib and
a second OpenCV); later mediapipe wheels no longer ship model files. The file is copied as it
is into the model repository, where Triton's Python backend runs it with LiteRT's interpreter
(``ai-edge-litert``): its sparse (DENSIFY) weights defeat the TFLite-to-ONNX converters.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

WHEEL_HINT = "pip install --no-deps mediapipe==0.10.14 ai-edge-litert==2.3.0"
TFLITE = Path("modules") / "pose_detection" / "pose_detection.tflite"
TFLITE_MAGIC = b"TFL3"  # the flatbuffer identifier at bytes 4-8 of every TFLite model


class PersonModelError(Exception):
    """The person model cannot be prepared (wheel missing, file unreadable)."""


def pose_detector_path() -> Path:
    """The detector file inside the installed wheel, found without importing mediapipe."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise PersonModelError(f"mediapipe is not installed; run: {WHEEL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / TFLITE
    if not path.is_file():
        raise PersonModelError(f"{path} is missing (mediapipe 0.10.14 ships it); run: {WHEEL_HINT}")
    return path


def pose_detector_bytes(path: Path | None = None) -> bytes:
    """The detector's TFLite bytes, checked to be a TFLite model."""
    try:
        data = (path or pose_detector_path()).read_bytes()
    except OSError as exc:
        raise PersonModelError(f"cannot read the person model: {exc}") from exc
    if data[4:8] != TFLITE_MAGIC:
        raise PersonModelError(f"{path or pose_detector_path()} is not a TFLite model")
    return data
