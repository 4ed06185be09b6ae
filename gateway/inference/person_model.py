"""The person detector's weights: MediaPipe's BlazePose person detector, as shipped inside the
``mediapipe`` 0.10.14 wheel (Apache-2.0).

Installed with ``--no-deps`` only for this file (its own dependencies pull JAX, matplotlib and
a second OpenCV); later mediapipe wheels no longer ship model files. The file is copied as it
is into the model repository, where Triton's Python backend runs it with LiteRT's interpreter
(``ai-edge-litert``): its sparse (DENSIFY) weights defeat the TFLite-to-ONNX converters.
"""

from __future__ import annotations

from pathlib import Path

from gateway.inference.wheel_files import WheelFileError, wheel_file

WHEEL_HINT = "pip install --no-deps mediapipe==0.10.14 ai-edge-litert==2.3.0"
TFLITE = Path("modules") / "pose_detection" / "pose_detection.tflite"
TFLITE_MAGIC = b"TFL3"  # the flatbuffer identifier at bytes 4-8 of every TFLite model


class PersonModelError(Exception):
    """The person model cannot be prepared (wheel missing, file unreadable)."""


def pose_detector_path() -> Path:
    """The detector file inside the installed wheel (mediapipe 0.10.14 ships it)."""
    try:
        return wheel_file("mediapipe", TFLITE, WHEEL_HINT)
    except WheelFileError as exc:
        raise PersonModelError(str(exc)) from exc


def pose_detector_bytes(path: Path | None = None) -> bytes:
    """The detector's TFLite bytes, checked to be a TFLite model."""
    path = path or pose_detector_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PersonModelError(f"cannot read the person model: {exc}") from exc
    if data[4:8] != TFLITE_MAGIC:
        raise PersonModelError(f"{path} is not a TFLite model")
    return data
