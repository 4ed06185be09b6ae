"""The embedded server's supervision and the model-repository set-up, on small repositories."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.config import REPO_ROOT
from gateway.inference import repository
from gateway.inference.client import InferenceClient, InferenceUnavailable
from gateway.inference.embedded import EmbeddedTriton, TritonStartError

pytestmark = pytest.mark.triton

ECHO_CONFIG = """
name: "echo"
backend: "python"
max_batch_size: 4
input [ { name: "x", data_type: TYPE_FP32, dims: [ 1 ] } ]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 1 ] } ]
dynamic_batching { }
instance_group [ { count: 1, kind: KIND_CPU } ]
"""
ECHO_MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy())]
            )
            for r in requests
        ]
"""
BROKEN_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("weights missing on purpose")
"""


def write_model(root: Path, name: str, code: str) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(ECHO_CONFIG.replace('"echo"', f'"{name}"'))
    (root / name / "1" / "model.py").write_text(code)


@pytest.fixture()
def small_repo(tmp_path: Path) -> Path:
    """One working model and one (like an unprepared item_detector) that fails to load."""
    root = tmp_path / "models"
    write_model(root, "echo", ECHO_MODEL)
    write_model(root, "item_detector", BROKEN_MODEL)
    return root


def test_broken_optional_model_does_not_block_the_others(small_repo: Path) -> None:
    with EmbeddedTriton(small_repo, required_models=["echo"], start_timeout_s=60) as server:
        status = server.model_status()
        assert status["echo"][0] == "READY"
        assert status["item_detector"][0] == "UNAVAILABLE"
        assert "weights missing on purpose" in status["item_detector"][1]
        client = InferenceClient(server.url, retry_wait_s=1)
        try:
            assert client.is_ready() and client.model_ready("echo")
            assert not client.model_ready("item_detector")
            import numpy as np

            with pytest.raises(InferenceUnavailable, match="item_detector"):
                client.detect(np.zeros((1, 640, 640, 3), np.uint8))
        finally:
            client.close()
        pid = server.pid
        assert pid is not None
    assert server.pid is None
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_failed_required_model_is_reported_fast_with_the_log(small_repo: Path) -> None:
    server = EmbeddedTriton(small_repo, required_models=["echo", "item_detector"])
    started = time.monotonic()
    with pytest.raises(TritonStartError, match="weights missing on purpose") as info:
        server.start()
    assert time.monotonic() - started < 60
    assert "last log lines" in str(info.value)
    assert server.pid is None  # nothing left running


def test_missing_required_model_and_repository(small_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(TritonStartError, match="no such model"):
        EmbeddedTriton(small_repo, required_models=["ocr_pipeline"], start_timeout_s=60).start()
    with pytest.raises(TritonStartError, match="does not exist"):
        EmbeddedTriton(tmp_path / "nowhere").start()


def test_repository_prepare_is_idempotent(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    changed = repository.prepare(repo)
    names = {p.relative_to(repo).as_posix() for p in changed}
    assert names == {"ocr_det/1/model.onnx", "ocr_rec/1/model.onnx", "ocr_rec/1/keys.txt",
                     "face_detector/1/model.onnx", "person_detector/1/model.tflite"}
    keys = (repo / "ocr_rec/1/keys.txt").read_text(encoding="utf-8")[:-1].split("\n")
    assert len(keys) == 6623 and "A" in keys and "-" in keys
    assert repository.prepare(repo) == []
    (repo / "ocr_rec/1/keys.txt").write_text("stale\n", encoding="utf-8")
    assert repository.prepare(repo) == [repo / "ocr_rec/1/keys.txt"]


def test_repository_reports_a_missing_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "rapidocr_onnxruntime" else real_find_spec(name, *a),
    )
    assert repository.main(["--repository", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rapidocr_onnxruntime is not installed" in err[0]
    assert not any(tmp_path.iterdir())


def test_backend_dir_is_outside_the_checkout(tmp_path: Path, small_repo: Path) -> None:
    work = tmp_path / "work"
    with EmbeddedTriton(small_repo, required_models=["echo"], work_dir=work) as server:
        assert server.log_path.parent == work
        stub = work / "backends-py3.11" / "python" / "triton_python_backend_stub"
        assert stub.is_file()
    shutil.rmtree(work)


def test_server_dies_with_its_owner(small_repo: Path) -> None:
    """Even a SIGKILLed gateway leaves no tritonserver behind (parent-death signal)."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gateway.inference.embedded import EmbeddedTriton\n"
        f"server = EmbeddedTriton(Path({str(small_repo)!r}), required_models=['echo'])\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        text=True,
    )
    try:
        line = owner.stdout.readline() if owner.stdout else ""
        server_pid = int(line)
        assert Path(f"/proc/{server_pid}").exists()
    finally:
        owner.kill()
        owner.wait(timeout=10)
    deadline = time.monotonic() + 20
    while alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(server_pid)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")
