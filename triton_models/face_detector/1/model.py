"""Triton Python-backend model: CenterFace face detection.

Input ``image`` (UINT8 [H, W, 3], BGR, any size); outputs ``boxes`` (FP32 [N, 4], x0 y0 x1 y1
in the input's pixels) and ``scores`` (FP32 [N]).

CenterFace predicts, on a grid 4x coarser than its input, a face-centre heatmap, the face's
log-size and the centre's sub-cell offset. Here the photo is shrunk to ``max_side`` (padded to
a multiple of 32, as the network's strides need), peaks above ``threshold`` become boxes, and
overlapping ones are merged (NMS), all next to the network so a client sends plain pixels.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

STRIDE = 4


def make_session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers: list = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(path, options, providers=providers)


def prepare(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The network's input (1, 3, H, W) float RGB 0-255, H and W multiples of 32, and the
    factor from input to photo pixels."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image
    sh, sw = small.shape[:2]
    ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
    padded = np.zeros((ph, pw, 3), np.uint8)
    padded[:sh, :sw] = small
    rgb = padded[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), 1.0 / scale


def decode(heat: np.ndarray, size: np.ndarray, offset: np.ndarray,
           threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (input pixels) and scores of the heatmap cells above ``threshold``."""
    ys, xs = np.nonzero(heat[0, 0] > threshold)
    if len(ys) == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    fh = np.exp(size[0, 0, ys, xs]) * STRIDE
    fw = np.exp(size[0, 1, ys, xs]) * STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
    boxes = np.stack([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], axis=1)
    return boxes.astype(np.float32), heat[0, 0, ys, xs].astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    rects = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(rects, scores.tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_side = int(params.get("max_side", "960"))
        self.threshold = float(params.get("threshold", "0.4"))
        self.nms_iou = float(params.get("nms_iou", "0.3"))
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(
                f"{path} is missing: run `python -m gateway.inference.repository`")
        self.session = make_session(path, int(params.get("ort_threads", "1")))
        self.input_name = self.session.get_inputs()[0].name

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            tensor, back = prepare(image, self.max_side)
            heat, size, offset, _marks = self.session.run(None, {self.input_name: tensor})
            boxes, scores = decode(heat, size, offset, self.threshold)
            keep = nms(boxes, scores, self.nms_iou)
            boxes, scores = boxes[keep] * back, scores[keep]
            h, w = image.shape[:2]
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("boxes", boxes.astype(np.float32).reshape(-1, 4)),
                pb_utils.Tensor("scores", scores.astype(np.float32).reshape(-1))]))
        return responses
