"""docker-compose.yml cannot run here (no Docker, no GPU): check that it is complete."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from gateway.config import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def dockerfile(service: dict) -> Path:
    build = service["build"]
    return REPO_ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def published(service: dict) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in service["ports"]}


def test_services_and_dockerfiles(compose: dict) -> None:
    assert set(compose["services"]) == {"triton", "gateway"}
    for service in compose["services"].values():
        assert dockerfile(service).is_file()
    triton_from = dockerfile(compose["services"]["triton"]).read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3$", triton_from, re.M)
    assert compose["services"]["gateway"]["build"]["context"] == "."


def test_triton_service(compose: dict) -> None:
    triton = compose["services"]["triton"]
    assert published(triton) == {8000, 8001, 8002}
    assert "./triton_models:/models:ro" in triton["volumes"]
    assert "--model-repository=/models" in triton["command"]
    assert triton["command"][0] == "tritonserver"
    [device] = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "ocr_pipeline/ready" in " ".join(triton["healthcheck"]["test"])
    # Promotions are served by reloading the detector through Triton's model control API.
    assert "--model-control-mode=explicit" in triton["command"]
    assert "--load-model=*" in triton["command"]


def test_gateway_service(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert published(gateway) == {8080, 8081}
    env = gateway["environment"]
    assert env["SHELFCOUNT_TRITON_URL"] == "triton:8001"
    fields = set(Settings.model_fields)
    for key in env:  # every variable is one the gateway reads
        assert key.startswith("SHELFCOUNT_") and key[len("SHELFCOUNT_") :].lower() in fields
    volume, _, target = gateway["volumes"][0].partition(":")
    assert target == env["SHELFCOUNT_DATA_DIR"] and volume in compose["volumes"]
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    # The gateway sees the repository Triton serves (the live detector version is there).
    assert f"./triton_models:{env['SHELFCOUNT_MODEL_REPOSITORY']}" in gateway["volumes"]
    text = dockerfile(gateway).read_text()
    assert "EXPOSE 8080 8081" in text and 'CMD ["shelfcount", "serve"]' in text
    ignore_file = dockerfile(gateway).parent / "Dockerfile.dockerignore"
    ignore = [line for line in ignore_file.read_text().split("\n") if line and line[0] != "#"]
    assert ignore[0] == "*" and "!.venv" not in ignore  # the build context stays small


def third_party_imports(model_py: Path) -> set[str]:
    tree = ast.parse(model_py.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    import sys

    return {n for n in names if n not in sys.stdlib_module_names} - {"triton_python_backend_utils"}


def test_triton_image_installs_what_the_models_import() -> None:
    text = (REPO_ROOT / "triton_models" / "Dockerfile").read_text()
    pip_names = {"onnxruntime": "onnxruntime-gpu", "cv2": "opencv-python-headless",
                 "ai_edge_litert": "ai-edge-litert"}
    for model_py in sorted((REPO_ROOT / "triton_models").glob("*/1/model.py")):
        for module in third_party_imports(model_py):
            package = pip_names.get(module, module)
            assert f'"{package}==' in text, f"{model_py} imports {module}; add {package}"
