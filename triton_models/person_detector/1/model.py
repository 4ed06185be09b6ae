"""Triton Python-backend model: whole people (also seen from behind or above), for blurring.

Input ``image`` (UINT8 [H, W, 3], BGR, any size); outputs ``boxes`` (FP32 [N, 4], x0 y0 x1 y1
of each person's whole body in the input's pixels) and ``scores`` (FP32 [N]).

The network is MediaPipe's BlazePose person detector (``pose_detection.tflite``, Apache-2.0,
copied from the ``mediapipe`` wheel by the set-up step), run by LiteRT's interpreter: it is a
TFLite file with sparse weights that no converter to ONNX handles. It is an SSD over 2,254
fixed anchors on a 224 px letterboxed input; per anchor it predicts a head box and four
keypoints, of which the first two give the centre of the hips and a point on the circle
around the whole body. A person a quarter of the photo high is ~50 px at 224, near its lower
limit, so the photo is read whole and in four overlapping corner tiles, and the bodies found
are merged (NMS). Every spot of the photo is in at least two of these windows; a body only one
window sees is dropped: on real warehouse photos that is what rack uprights and pallet feet
look like, and people are seen in two or three (see config.pbtxt).
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils
from ai_edge_litert.interpreter import Interpreter

SIDE = 224
# (stride, anchors per cell) of the detector's SSD layers; the three stride-32 layers share
# one 7x7 grid. Fixed-size anchors: only their centres are used.
LAYERS = ((8, 2), (16, 2), (32, 6))
TILE_SHARE = 0.6  # a corner tile's side, as a share of the photo's long side
BODY_WIDTH = 0.5  # half the body's width across its axis, as a share of the body's radius
SEEN_IOU = 0.3  # a window's hit this close to a body is a sighting of it


def anchor_centres() -> np.ndarray:
    """The (x, y) centre of each anchor in 0-1 input coordinates, in the network's order."""
    centres = []
    for stride, per_cell in LAYERS:
        cells = SIDE // stride
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.asarray(centres, np.float32)


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """The network's input (1, 224, 224, 3) RGB in [-1, 1], the scale from photo to input
    pixels and the padding's left and top offsets."""
    h, w = image.shape[:2]
    scale = SIDE / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    ox, oy = (SIDE - sw) // 2, (SIDE - sh) // 2
    padded = np.zeros((SIDE, SIDE, 3), np.uint8)
    padded[oy:oy + sh, ox:ox + sw] = small
    tensor = padded[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(tensor[None]), scale, ox, oy


def body_boxes(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray,
               threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (input pixels) around the bodies of the anchors scoring above ``threshold``:
    the body's axis runs from the hips' centre towards the circle point, its length is the
    circle's diameter, its width BODY_WIDTH of that on each side; the head box is included."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
    keep = np.nonzero(scores > threshold)[0]
    if len(keep) == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    a = anchors[keep] * SIDE
    r = raw[keep]
    hips = a + r[:, 4:6]
    axis = a + r[:, 6:8] - hips
    radius = np.maximum(np.hypot(axis[:, 0], axis[:, 1]), 1e-3)
    unit = axis / radius[:, None]
    across = np.stack([-unit[:, 1], unit[:, 0]], axis=1) * (BODY_WIDTH * radius)[:, None]
    along = unit * radius[:, None]
    corners = np.stack([hips + s * along + t * across
                        for s in (-1, 1) for t in (-1, 1)], axis=1)  # (N, 4, 2)
    head = a + r[:, 0:2]
    half = r[:, 2:4] / 2
    x0 = np.minimum(corners[:, :, 0].min(1), head[:, 0] - half[:, 0])
    y0 = np.minimum(corners[:, :, 1].min(1), head[:, 1] - half[:, 1])
    x1 = np.maximum(corners[:, :, 0].max(1), head[:, 0] + half[:, 0])
    y1 = np.maximum(corners[:, :, 1].max(1), head[:, 1] + half[:, 1])
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32), scores[keep]


def windows(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """The whole photo, then four overlapping corner tiles (x, y, width, height)."""
    side = round(max(h, w) * TILE_SHARE)
    xs = sorted({0, max(0, w - side)})
    ys = sorted({0, max(0, h - side)})
    tiles = [(x, y, min(side, w), min(side, h)) for y in ys for x in xs]
    return [(0, 0, w, h), *[t for t in tiles if t != (0, 0, w, h)]]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    rects = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(rects, scores.tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def support(boxes: np.ndarray, windows_found: list[np.ndarray], iou: float) -> np.ndarray:
    """For each box, in how many windows some box overlaps it by ``iou`` or more."""
    counts = np.zeros(len(boxes), np.int64)
    for found in windows_found:
        if len(found) and len(boxes):
            counts += (overlaps(boxes, found) >= iou).any(axis=1)
    return counts


def overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4]."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
                0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class PersonFinder:
    """The detector with its interpreter; not thread-safe (one per model instance).

    A window's hits above ``window_threshold`` count as sightings; a body is kept when it
    scores ``threshold`` and ``min_windows`` windows saw it."""

    def __init__(self, path: str, threads: int, threshold: float, nms_iou: float,
                 window_threshold: float = 0.5, min_windows: int = 2) -> None:
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["shape"][-1]: d["index"] for d in self.interpreter.get_output_details()}
        self.raw, self.logits = outputs[12], outputs[1]
        self.anchors = anchor_centres()
        self.threshold, self.nms_iou = threshold, nms_iou
        self.window_threshold, self.min_windows = window_threshold, min_windows

    def _window(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tensor, scale, ox, oy = letterbox(image)
        self.interpreter.set_tensor(self.input, tensor)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.raw)[0]
        logits = self.interpreter.get_tensor(self.logits)[0, :, 0]
        boxes, scores = body_boxes(raw, logits, self.anchors, self.window_threshold)
        boxes[:, 0::2] = (boxes[:, 0::2] - ox) / scale
        boxes[:, 1::2] = (boxes[:, 1::2] - oy) / scale
        return boxes, scores

    def find(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bodies in a BGR photo: boxes clipped to it, and scores."""
        h, w = image.shape[:2]
        found = []
        for x, y, tw, th in windows(h, w):
            boxes, scores = self._window(image[y:y + th, x:x + tw])
            found.append((boxes + np.array([x, y, x, y], np.float32), scores))
        boxes = np.concatenate([b for b, _ in found])
        scores = np.concatenate([s for _, s in found])
        keep = nms(boxes, scores, self.nms_iou)
        boxes, scores = boxes[keep], scores[keep]
        seen = support(boxes, [b for b, _ in found], SEEN_IOU)
        sure = (scores >= self.threshold) & (seen >= self.min_windows)
        boxes, scores = boxes[sure], scores[sure]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return boxes.reshape(-1, 4), scores.reshape(-1)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.tflite")
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(
                f"{path} is missing: run `python -m gateway.inference.repository`")
        self.finder = PersonFinder(path, int(params.get("threads", "1")),
                                   float(params.get("threshold", "0.7")),
                                   float(params.get("nms_iou", "0.3")),
                                   float(params.get("window_threshold", "0.5")),
                                   int(params.get("min_windows", "2")))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            boxes, scores = self.finder.find(image)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("boxes", boxes.astype(np.float32)),
                pb_utils.Tensor("scores", scores.astype(np.float32))]))
        return responses
