"""Detector versions (issue 15): candidates are written beside the live version and never
served until promoted; promotion refuses a candidate that counted worse on the held-out slice
unless forced; rollback follows the history; ``shelfcount model`` says so in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as cli_main
from gateway.config import REPO_ROOT
from gateway.inference.versions import DetectorVersions, VersionError
from gateway.training import from_store
from gateway.training.data import DataError, LabelledImage

SHIPPED = REPO_ROOT / "triton_models" / "item_detector"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A model repository holding a copy of the shipped detector (version 1)."""
    folder = tmp_path / "models" / "item_detector"
    (folder / "1").mkdir(parents=True)
    shutil.copy(SHIPPED / "config.pbtxt", folder)
    for name in ("model.py", "model.onnx", "meta.json"):
        shutil.copy(SHIPPED / "1" / name, folder / "1")
    (folder / "weights.pt").write_bytes(b"shipped weights")
    return tmp_path / "models"


def figures(right: float, mae: float) -> dict[str, Any]:
    return {"n": 10, "right": right, "mae": mae, "within1": right, "bias": 0.0, "ap50": 0.5}


def candidate(versions: DetectorVersions, tmp_path: Path, right: float, mae: float = 1.0,
              parent: int = 1) -> int:
    (tmp_path / "c.onnx").write_bytes((SHIPPED / "1" / "model.onnx").read_bytes())
    (tmp_path / "c.pt").write_bytes(b"candidate weights")
    meta = {"threshold": 0.35, "parent": parent,
            "heldout": {"current_version": parent, "candidate": figures(right, mae),
                        "current": figures(0.5, 1.0)}}
    return versions.add(tmp_path / "c.onnx", tmp_path / "c.pt", meta)


def test_a_candidate_is_not_live_until_promoted(repo: Path, tmp_path: Path) -> None:
    versions = DetectorVersions(repo)
    assert versions.numbers() == [1] and versions.live() == 1
    assert versions.weights(1) == repo / "item_detector" / "weights.pt"
    assert candidate(versions, tmp_path, 0.7) == 2
    assert versions.numbers() == [1, 2]
    assert versions.live() == 1  # pinned in config.pbtxt: a restarted Triton serves 1
    assert (repo / "item_detector" / "2" / "model.py").read_bytes() == (
        SHIPPED / "1" / "model.py").read_bytes()
    assert versions.weights(2) == repo / "item_detector" / "2" / "weights.pt"
    assert not list((repo / "item_detector").glob(".candidate-*"))  # no half version left
    assert versions.promote(2, by="anna") == 1
    assert versions.live() == 2
    config = (repo / "item_detector" / "config.pbtxt").read_text()
    assert config.count("version_policy") == 1
    assert "version_policy: { specific: { versions: [ 2 ] } }" in config
    assert 'name: "item_detector"' in config and "dynamic_batching" in config
    entry = versions.history()[-1]
    assert (entry["action"], entry["from"], entry["to"], entry["by"]) == ("promote", 1, 2, "anna")


def test_worse_or_uncompared_candidates_need_force(repo: Path, tmp_path: Path) -> None:
    versions = DetectorVersions(repo)
    worse = candidate(versions, tmp_path, 0.4)
    with pytest.raises(VersionError, match="worse than live version 1"):
        versions.promote(worse)
    tie_worse_mae = candidate(versions, tmp_path, 0.5, mae=1.5)
    with pytest.raises(VersionError, match="worse"):
        versions.promote(tie_worse_mae)
    assert versions.live() == 1 and versions.history() == []
    assert versions.promote(worse, force=True) == 1 and versions.live() == worse
    better_than_1 = candidate(versions, tmp_path, 0.9)  # but compared with 1, not live 2
    with pytest.raises(VersionError, match="compared with version 1, but version 2 is live"):
        versions.promote(better_than_1)
    with pytest.raises(VersionError, match="already live"):
        versions.promote(worse, force=True)
    with pytest.raises(VersionError, match="no version 9"):
        versions.promote(9, force=True)


def test_rollback_follows_the_history(repo: Path, tmp_path: Path) -> None:
    versions = DetectorVersions(repo)
    with pytest.raises(VersionError, match="nothing to roll back to"):
        versions.rollback()
    two, three = candidate(versions, tmp_path, 0.7), candidate(versions, tmp_path, 0.8)
    versions.promote(two)
    versions.promote(three, force=True)
    assert versions.rollback() == (3, 2) and versions.live() == 2
    assert versions.rollback() == (2, 1) and versions.live() == 1
    with pytest.raises(VersionError, match="nothing to roll back to"):
        versions.rollback()
    # A torn last line (crash mid-append) does not lose the rest of the history.
    with open(repo / "item_detector" / "promotions.jsonl", "a") as handle:
        handle.write('{"action": "prom')
    assert [e["to"] for e in versions.history()] == [2, 3, 2, 1]


def test_model_commands(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHELFCOUNT_MODEL_REPOSITORY", str(repo))
    versions = DetectorVersions(repo)
    worse = candidate(versions, tmp_path, 0.3)
    assert cli_main(["model", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["live"] == 1 and [v["version"] for v in listed["versions"]] == [1, 2]
    assert listed["versions"][1]["heldout"]["right"] == 0.3
    assert cli_main(["model", "promote", str(worse)]) == 2
    err = capsys.readouterr().err.strip()
    assert "worse than live version 1" in err and "--force" in err and "\n" not in err
    assert cli_main(["model", "promote", str(worse), "--force"]) == 0
    assert f"version {worse} is live (was 1)" in capsys.readouterr().out
    assert cli_main(["model", "list"]) == 0
    table = capsys.readouterr().out
    assert any(line.startswith("*") and line.split()[1] == str(worse)
               for line in table.splitlines())
    assert cli_main(["model", "rollback"]) == 0
    assert "version 1 is live again" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:  # argparse: not a number
        cli_main(["model", "promote", "x"])
    assert info.value.code == 2 and "invalid int value" in capsys.readouterr().err


def photo(count_id: str) -> from_store.Corrected:
    import numpy as np

    return from_store.Corrected(count_id, LabelledImage(np.zeros((8, 8, 3), np.uint8),
                                                         np.zeros((0, 4), np.float32),
                                                         np.zeros(0, np.float32)))


def test_held_out_slice_is_by_photo_and_stable() -> None:
    photos = [photo(f"count-{i}") for i in range(60)]
    train, held = from_store.split(photos)
    ids = {p.count_id for p in held}
    assert 4 <= len(held) <= 20 and not ids & {p.count_id for p in train}
    assert len(train) + len(held) == 60
    # More corrections later: a photo held out stays held out (never trained on later).
    _, held_more = from_store.split(photos + [photo(f"later-{i}") for i in range(40)])
    assert ids <= {p.count_id for p in held_more}
    two_train, two_held = from_store.split(photos[:2])
    assert len(two_train) == 1 and len(two_held) == 1
    with pytest.raises(DataError, match="at least 2"):
        from_store.split(photos[:1])


def test_train_from_an_empty_store_says_why(tmp_path: Path, repo: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHELFCOUNT_MODEL_REPOSITORY", str(repo))
    shutil.copy(SHIPPED / "weights.pt", repo / "item_detector" / "weights.pt")
    assert cli_main(["train", "--from-store", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no corrected photos in the store") and "\n" not in err
    assert cli_main(["train", "--from-store", "--steps", "0"]) == 2
    assert "--steps must be positive" in capsys.readouterr().err
    assert DetectorVersions(repo).numbers() == [1]  # nothing written


def test_each_version_counts_with_its_own_threshold(repo: Path, tmp_path: Path) -> None:
    from gateway.pipeline.detect import calibration_for, default_band, default_threshold

    versions = DetectorVersions(repo)
    number = candidate(versions, tmp_path, 0.7)
    meta = versions.meta(number)
    meta.update(threshold=0.5, confidence_band=0.1)
    (repo / "item_detector" / str(number) / "meta.json").write_text(json.dumps(meta))
    assert calibration_for(repo, str(number)) == (0.5, 0.1)
    shipped = json.loads((SHIPPED / "1" / "meta.json").read_text())
    assert calibration_for(repo, "1") == (shipped["threshold"], shipped["confidence_band"])
    for unknown in (None, "7", "../1"):  # no such version, or not a version name
        assert calibration_for(repo, unknown) == (default_threshold(), default_band())
