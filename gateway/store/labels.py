"""Walkers' corrected boxes as a training set (``shelfcount labels export``).

Every photo whose item boxes a person corrected (the newest set of each) is written with its
boxes, in YOLO (``images/`` + ``labels/``, one class: item) or COCO (``images/`` +
``annotations.json``, each box keeping its SKU); both are what ``shelfcount train --data``
reads. Photos already removed by the retention period are skipped and said.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .db import Store
from .photos import PhotoStore
from .types import CountRecord

FORMATS = ("yolo", "coco")


@dataclass
class LabelsReport:
    """What an export wrote."""

    photos: int = 0
    boxes: int = 0
    skipped: list[str] = field(default_factory=list)  # count ids whose photo is gone


def export_labels(store: Store, photos: PhotoStore, out: Path, *, fmt: str = "yolo",
                  since: datetime | None = None) -> LabelsReport:
    """Write the corrected photos (box corrections at or after ``since``) under ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    report = LabelsReport()
    coco: dict[str, list[dict[str, Any]]] = {"images": [], "annotations": [],
                                             "categories": [{"id": 1, "name": "item"}]}
    for record in store.box_corrected_counts(since):
        try:
            data = photos.get(record.photo_hash)
        except FileNotFoundError:
            report.skipped.append(record.id)
            continue
        name = f"{record.id}{_suffix(data)}"
        (out / "images" / name).write_bytes(data)
        boxes = record.box_edit.boxes if record.box_edit else []
        if fmt == "yolo":
            _write_yolo(out / "labels" / f"{record.id}.txt", record, boxes)
        else:
            _add_coco(coco, record, name, boxes)
        report.photos += 1
        report.boxes += len(boxes)
    if fmt == "coco":
        (out / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n")
    return report


def _size(record: CountRecord) -> tuple[float, float]:
    result = record.result or {}
    return float(result.get("width") or 1), float(result.get("height") or 1)


def _write_yolo(path: Path, record: CountRecord, boxes: list[list[Any]]) -> None:
    width, height = _size(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
             f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
             for x0, y0, x1, y1, _sku in boxes]
    path.write_text("".join(line + "\n" for line in lines))


def _add_coco(doc: dict[str, list[dict[str, Any]]], record: CountRecord, name: str,
              boxes: list[list[Any]]) -> None:
    width, height = _size(record)
    image_id = len(doc["images"]) + 1
    doc["images"].append({"id": image_id, "file_name": name, "width": int(width),
                          "height": int(height), "count_id": record.id})
    for x0, y0, x1, y1, sku in boxes:
        doc["annotations"].append({
            "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            "sku": sku})


def _suffix(data: bytes) -> str:
    if data[:2] == b"\xff\xd8":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".jpg"
