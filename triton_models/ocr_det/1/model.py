"""Triton Python-backend model: PP-OCRv4 DB text detection.

Input ``image`` (UINT8 [H, W, 3], BGR, any size); outputs ``quads`` (FP32 [N, 4, 2], corner
points clockwise from top-left, in the input's pixels) and ``scores`` (FP32 [N]).

Resizing and the DB post-process live here, next to the network, so that any caller (the
``ocr_pipeline`` BLS model, or a client) sends plain pixels. The long side is capped
(``max_side``) because detection cost grows with the pixel count and labels handed to OCR are
small crops anyway.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import onnxruntime as ort
import pyclipper
import triton_python_backend_utils as pb_utils


def make_session(path: str, args: dict, threads: int) -> ort.InferenceSession:
    """One ORT session per instance, one intra-op thread: Triton runs instances in parallel
    and extra threads would only fight over the same cores. Uses CUDA when the installed
    onnxruntime has it (onnxruntime-gpu in the production container), else the CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers: list = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        device = int(args.get("model_instance_device_id") or 0)
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device}))
    return ort.InferenceSession(path, options, providers=providers)


def order_corners(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    pts = points[np.argsort(points[:, 0])]
    left, right = pts[:2], pts[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def line_heights(quads: np.ndarray) -> np.ndarray:
    """Short side of each quad (the text height for horizontal and vertical lines alike)."""
    sides_a = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    sides_b = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    return np.minimum(sides_a, sides_b)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_side = int(params.get("max_side", "960"))
        self.coarse_side = int(params.get("coarse_side", "320"))
        self.refine_below_px = float(params.get("refine_below_px", "16"))
        self.thresh = float(params.get("thresh", "0.3"))
        self.box_thresh = float(params.get("box_thresh", "0.5"))
        self.unclip_ratio = float(params.get("unclip_ratio", "1.6"))
        self.max_candidates = int(params.get("max_candidates", "300"))
        threads = int(params.get("ort_threads", "1"))
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(
                f"{path} is missing: run `python -m gateway.inference.repository`"
            )
        self.session = make_session(path, args, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.kernel = np.ones((2, 2), np.uint8)

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            batch = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            quads_out, scores_out = [], []
            for image in batch:
                quads, scores = self.detect(image)
                quads_out.append(quads)
                scores_out.append(scores)
            count = max((len(s) for s in scores_out), default=0)
            quads_arr = np.zeros((len(batch), count, 4, 2), np.float32)
            scores_arr = np.zeros((len(batch), count), np.float32)
            for i, (q, s) in enumerate(zip(quads_out, scores_out, strict=True)):
                quads_arr[i, : len(s)] = q
                scores_arr[i, : len(s)] = s
            responses.append(
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("quads", quads_arr), pb_utils.Tensor("scores", scores_arr)]
                )
            )
        return responses

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coarse to fine: a cheap pass at ``coarse_side`` is kept when every line it finds is
        comfortably tall there (labels: large print); when it finds nothing or lines near the
        detectable limit (small print, whole shelves), the pass at ``max_side`` decides."""
        height, width = image.shape[:2]
        if height < 4 or width < 4:
            return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
        if self.coarse_side and max(height, width) > self.coarse_side:
            quads, scores, scale = self.detect_at(image, self.coarse_side)
            if len(quads) and line_heights(quads).min() * scale >= self.refine_below_px:
                return quads, scores
        quads, scores, _ = self.detect_at(image, self.max_side)
        return quads, scores

    def detect_at(self, image: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Quads in input pixels from one pass with the long side capped at ``side``, and the
        scale of that pass (detector pixels per input pixel)."""
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        new_h = max(32, int(round(height * scale / 32)) * 32)
        new_w = max(32, int(round(width * scale / 32)) * 32)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        x = resized.astype(np.float32) * (1.0 / 127.5) - 1.0
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        prob = self.session.run(None, {self.input_name: x})[0][0, 0]
        quads, scores = self.boxes_from_map(prob)
        if len(quads):
            quads[:, :, 0] = np.clip(quads[:, :, 0] * (width / new_w), 0, width - 1)
            quads[:, :, 1] = np.clip(quads[:, :, 1] * (height / new_h), 0, height - 1)
        return quads, scores, min(new_w / width, new_h / height)

    def boxes_from_map(self, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DB post-process: threshold, dilate, contours, min-area rectangles, unclip."""
        bitmap = cv2.dilate((prob > self.thresh).astype(np.uint8), self.kernel)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads, scores = [], []
        h, w = prob.shape
        for contour in contours[: self.max_candidates]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < 3:
                continue
            box = cv2.boxPoints(rect)
            score = self.box_score(prob, box)
            if score < self.box_thresh:
                continue
            expanded = self.unclip(box)
            if expanded is None:
                continue
            rect = cv2.minAreaRect(expanded)
            if min(rect[1]) < 5:
                continue
            quad = order_corners(cv2.boxPoints(rect))
            quad[:, 0] = np.clip(quad[:, 0], 0, w)
            quad[:, 1] = np.clip(quad[:, 1], 0, h)
            quads.append(quad)
            scores.append(score)
        if not quads:
            return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
        return np.stack(quads).astype(np.float32), np.asarray(scores, np.float32)

    @staticmethod
    def box_score(prob: np.ndarray, box: np.ndarray) -> float:
        """Mean probability inside the box (the "fast" DB score)."""
        h, w = prob.shape
        x0 = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
        x1 = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
        y0 = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
        y1 = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        shifted = (box - np.array([x0, y0], np.float32)).astype(np.int32)
        cv2.fillPoly(mask, [shifted], 1)
        return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])

    def unclip(self, box: np.ndarray) -> np.ndarray | None:
        """Grow the shrunk DB kernel back to the full text extent."""
        area = cv2.contourArea(box)
        length = cv2.arcLength(box, True)
        if length == 0:
            return None
        distance = area * self.unclip_ratio / length
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(
            box.astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON
        )
        paths = offset.Execute(distance)
        if len(paths) != 1:
            return None
        return np.asarray(paths[0], np.float32).reshape(-1, 1, 2)
