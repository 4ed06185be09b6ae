"""ONNX export of the detector and the metadata file the gateway reads next to it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from gateway.pipeline.detect import TILE
from gateway.pipeline.types import Detection
from gateway.training.model import MAX_DETECTIONS, ExportWrapper, ItemDetector

OPSET = 17
# Candidates below this never leave the model runner: they cannot matter for any threshold
# the validation search picks, and they would only cost NMS time.
FLOOR_SCORE = 0.05


def export_onnx(model: ItemDetector, path: Path) -> None:
    """uint8 BGR ``images [N,640,640,3]`` -> ``detections [N,200,5]`` with a dynamic batch."""
    wrapper = ExportWrapper(model.eval(), MAX_DETECTIONS).eval()
    dummy = torch.zeros(1, TILE, TILE, 3, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (dummy,), str(tmp), opset_version=OPSET, input_names=["images"],
            output_names=["detections"], dynamic_axes={"images": {0: "batch"},
                                                       "detections": {0: "batch"}},
            dynamo=False,
        )
    tmp.replace(path)


def write_meta(path: Path, meta: dict[str, object]) -> None:
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


class LocalDetector:
    """The exported model run in-process with onnxruntime, with InferenceClient.detect's shape.

    Used by training-time evaluation and threshold search (thousands of tiles, where a server
    round trip adds nothing); the gateway always goes through Triton.
    """

    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning worker threads starve everyone else on a shared 2-core machine.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), opts,
                                            providers=["CPUExecutionProvider"])

    def detect(self, tiles: np.ndarray) -> list[list[Detection]]:
        out = self.session.run(None, {"images": np.ascontiguousarray(tiles, np.uint8)})[0]
        return [
            [Detection(box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                       score=float(r[4])) for r in rows if r[4] >= FLOOR_SCORE]
            for rows in out
        ]
