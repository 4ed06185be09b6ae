"""The model configurations parse as Triton ModelConfig and follow the project's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.config import REPO_ROOT

MODELS = REPO_ROOT / "triton_models"
OURS = ("ocr_det", "ocr_rec", "ocr_pipeline")


def load(name: str) -> model_config_pb2.ModelConfig:
    text = (MODELS / name / "config.pbtxt").read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.mark.parametrize("name", OURS)
def test_ocr_model_configs(name: str) -> None:
    config = load(name)
    assert config.name == name and config.backend == "python"
    assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
    assert all(
        g.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU for g in config.instance_group
    )
    params = {k: v.string_value for k, v in config.parameters.items()}
    if name != "ocr_pipeline":
        assert params["ort_threads"] == "1"
    assert (MODELS / name / "1" / "model.py").is_file()


def test_pipeline_contract() -> None:
    config = load("ocr_pipeline")
    [image] = config.input
    assert (image.name, list(image.dims), image.allow_ragged_batch) == ("image", [-1, -1, 3], True)
    outputs = {
        o.name: (model_config_pb2.DataType.Name(o.data_type), list(o.dims)) for o in config.output
    }
    assert outputs == {
        "texts": ("TYPE_STRING", [-1]),
        "scores": ("TYPE_FP32", [-1]),
        "boxes": ("TYPE_FP32", [-1, 4]),
    }


def test_every_model_directory_is_documented() -> None:
    readme = (MODELS / "README.md").read_text()
    for folder in sorted(p for p in MODELS.iterdir() if (p / "config.pbtxt").is_file()):
        assert f"| `{folder.name}` |" in readme
    assert "| `item_detector` |" in readme


def test_prepared_weights_are_not_committed() -> None:
    ignore = (REPO_ROOT / ".gitignore").read_text()
    for path in ("ocr_det/1/model.onnx", "ocr_rec/1/model.onnx", "ocr_rec/1/keys.txt"):
        assert f"/triton_models/{path}" in ignore
    assert not any(Path(MODELS).glob("*.onnx"))  # nothing stray at the repository's top
