"""The learning loop end to end (issue 15): walkers' box corrections in a running gateway's
store -> ``labels export`` -> ``train --from-store`` -> ``model promote`` -> the same gateway
and its embedded Triton count with the new version, with no restart and no failed request
while it switches; ``model rollback`` brings the old version back the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.cli import main as cli_main
from gateway.config import REPO_ROOT
from gateway.inference.embedded import EmbeddedTriton
from gateway.server import GatewayServer
from gateway.training.data import load_labelled_dir

from .server_support import new_token, running_gateway, shelf_jpeg

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's model repository, copied (promotion rewrites config.pbtxt)."""
    root = tmp_path_factory.mktemp("promotion") / "triton_models"
    shutil.copytree(REPO_ROOT / "triton_models", root, ignore=shutil.ignore_patterns(
        "[2-9]", "[1-9][0-9]*", "promotions.jsonl", ".lock", ".candidate-*"))
    return root


@pytest.fixture(scope="module")
def served(repo: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[GatewayServer, EmbeddedTriton]]:
    with EmbeddedTriton(repo) as triton:
        data = tmp_path_factory.mktemp("promotion-data")
        # No rate limit: the test counts back to back for as long as a switch takes.
        with running_gateway(data, triton.url, model_repository=repo, model_poll_s=0.5,
                             photo_rate_per_min=100_000.0,
                             model_loader=triton.load_model) as gw:
            yield gw, triton


def count(gw: GatewayServer, token: str, seed: int) -> dict[str, Any]:
    answer = requests.post(f"{gw.base_url}/api/v1/counts",
                           headers={"Authorization": f"Bearer {token}"},
                           files={"photo": ("shelf.jpg", shelf_jpeg(seed), "image/jpeg")},
                           timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


class Counting:
    """Counts photos back to back in a thread, noting each answer's status and version."""

    def __init__(self, gw: GatewayServer, token: str) -> None:
        self.gw, self.token = gw, token
        self.answers: list[tuple[int, str | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seed = 0
        while not self.stop.is_set():
            answer = requests.post(f"{self.gw.base_url}/api/v1/counts",
                                   headers={"Authorization": f"Bearer {self.token}"},
                                   files={"photo": ("s.jpg", shelf_jpeg(40 + seed % 3),
                                                    "image/jpeg")}, timeout=120)
            version = answer.json().get("model_version") if answer.ok else None
            self.answers.append((answer.status_code, version))
            seed += 1

    def until(self, version: str, timeout_s: float) -> None:
        """Wait until a count answered by ``version`` arrives (after the first one sent now)."""
        start = len(self.answers)
        deadline = threading.Event()
        timer = threading.Timer(timeout_s, deadline.set)
        timer.start()
        try:
            while not deadline.wait(0.2):
                if any(v == version for _, v in self.answers[start:]):
                    return
        finally:
            timer.cancel()
        raise AssertionError(f"no count by version {version} in {timeout_s:.0f} s: "
                             f"{self.answers[start:]}")


def test_corrections_train_promote_and_roll_back(served: tuple[GatewayServer, EmbeddedTriton],
                                                 repo: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    gw, triton = served
    token = new_token(gw.settings.data_dir, "walker-teach")
    for seed in (21, 22, 23):  # three photos, each with the walker's own box set
        result = count(gw, token, seed)
        assert result["model_version"] == "1"
        boxes = [[*b[:4], b[5]] for b in result["boxes"]][1:] + [[2.0, 2.0, 60.0, 60.0, ""]]
        put = requests.put(f"{gw.base_url}/api/v1/counts/{result['count_id']}/boxes",
                           json={"boxes": boxes}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
        assert put.status_code == 200, put.text

    monkeypatch.setenv("SHELFCOUNT_MODEL_REPOSITORY", str(repo))
    data_dir = str(gw.settings.data_dir)
    assert cli_main(["labels", "export", str(tmp_path / "labels"), "--data-dir", data_dir]) == 0
    exported = load_labelled_dir(tmp_path / "labels")  # what `train --data` reads
    assert len(exported) == 3 and all(len(b) >= 1 for _, b in exported)

    env = dict(os.environ, SHELFCOUNT_MODEL_REPOSITORY=str(repo))
    trained = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "train", "--from-store", "--steps", "3",
         "--data-dir", data_dir, "--quiet"],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    assert trained.returncode == 0, trained.stderr[-2000:]
    lines = trained.stdout.strip().splitlines()
    assert lines[-1] == "version 2"
    assert any(line.startswith("counted right") for line in lines)
    assert (repo / "item_detector" / "2" / "model.onnx").is_file()
    assert cli_main(["model", "list", "--json"]) == 0
    assert '"live": 1' in capsys.readouterr().out
    assert count(gw, token, 24)["model_version"] == "1"  # written, not served

    counting = Counting(gw, token)
    counting.thread.start()
    try:
        assert cli_main(["model", "promote", "2", "--force"]) == 0
        counting.until("2", 60)
        assert cli_main(["model", "rollback"]) == 0
        counting.until("1", 60)
    finally:
        counting.stop.set()
        counting.thread.join(timeout=120)
    versions = [v for _, v in counting.answers]
    assert versions.count("2") >= 1 and len(versions) >= 3
    statuses = {status for status, _ in counting.answers}
    assert statuses == {200}, counting.answers  # no request failed during either switch
    assert triton.restarts == 0  # served by reloading the model, never by a restart
    assert count(gw, token, 25)["model_version"] == "1"
