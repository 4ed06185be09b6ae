"""`shelfcount labels export`: walkers' corrected boxes become a training set that
`shelfcount train --data` reads back with the same boxes (YOLO and COCO)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.cli import main
from gateway.config import load_settings
from gateway.schema import BoxCorrection
from gateway.store import open_photos, open_store
from gateway.training.data import load_labelled_dir

BOXES = [[10.0, 20.0, 110.0, 140.0, "SKU-1"], [150.5, 30.0, 260.0, 170.0, "SKU-1"],
         [300.0, 200.0, 420.0, 330.0, ""]]


def photo_bytes(width: int = 640, height: int = 480) -> bytes:
    img = np.full((height, width, 3), 90, np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture
def corrected(tmp_path: Path) -> Path:
    """A data dir whose store holds three counted photos: two with corrected boxes (one of
    them since purged by retention), one never corrected."""
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    store, photos = open_store(settings), open_photos(settings)
    walker, _ = store.add_device("walker-l", "walker")
    session = store.create_session(walker)
    ids = []
    for i in range(3):
        data = photo_bytes()
        digest = photos.put(data + bytes([i]))  # three distinct photo files
        record, _ = store.add_count(session_id=session.id, device_id=walker.id,
                                    client_id=f"p{i}", source="ws", location=f"A-01-{i + 1}",
                                    photo_hash=digest, photo_bytes=len(data))
        row = {"Location": f"A-01-{i + 1}", "SKU": "SKU-1", "Quantity_Counted": 2}
        store.finish_count(record.id, {"rows": [row], "boxes": [], "width": 640,
                                       "height": 480})
        ids.append(record.id)
    store.correct_boxes(ids[0], BoxCorrection(boxes=BOXES), by=walker, catalogs={})
    store.correct_boxes(ids[1], BoxCorrection(boxes=BOXES[:1]), by=walker, catalogs={})
    photos.delete(store.get_count(ids[1]).photo_hash)
    store.close()
    return settings.data_dir


def run(data_dir: Path, *args: str) -> int:
    return main([*args[:2], "--data-dir", str(data_dir), *args[2:]])


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_corrected_photos_export_and_read_back(corrected: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               fmt: str) -> None:
    out = tmp_path / f"set-{fmt}"
    assert run(corrected, "labels", "export", str(out), "--format", fmt) == 0
    err = capsys.readouterr().err
    assert "1 photos, 3 boxes" in err and "1 skipped" in err
    (pair,) = load_labelled_dir(out)
    assert np.allclose(pair[1], np.array([b[:4] for b in BOXES]), atol=0.01)
    assert pair[0].suffix == ".jpg" and cv2.imread(str(pair[0])).shape == (480, 640, 3)


def test_since_and_bad_arguments(corrected: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "later"
    assert run(corrected, "labels", "export", str(out), "--since", "2999-01-01") == 0
    assert "0 photos" in capsys.readouterr().err
    assert list((out / "images").iterdir()) == []
    assert run(corrected, "labels", "export", str(out), "--since", "yesterday") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--since" in err[0]
