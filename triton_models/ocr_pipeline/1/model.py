"""Triton Python-backend model: OCR of a whole image in one request (BLS).

Input ``image`` (UINT8 [H, W, 3], BGR); outputs ``texts`` (BYTES [N]), ``scores`` (FP32 [N])
and ``boxes`` (FP32 [N, 4], x0, y0, x1, y1 in the input's pixels), lines in reading order.

Why a model and not client code: the gateway then sends pixels and gets text back in one round
trip, and the crop-and-batch logic runs next to the models in production too. Requests that
arrive together (ragged batching) are handled in one ``execute`` call: detection requests go
out concurrently, then every text line of every image is padded to a bucket width and sent to
``ocr_rec`` in stacks, so the recogniser runs few, full batches instead of one line at a time.
"""

from __future__ import annotations

import asyncio
import json
import math

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

LINE_HEIGHT = 48
# Lines are padded to a multiple of BUCKET_STEP so that equal-width requests can be stacked.
# Recognition cost grows with the padded width, so the step stays small: on CPU padding is pure
# waste, and under load the batcher still finds equal widths among concurrent photos.
BUCKET_STEP = 32
MAX_LINE_WIDTH = 1280
# One line per rec request: idle rec instances each take one (parallel on CPU); when they are
# busy, Triton's dynamic batcher hands them the queued equal-width lines as one batch.
REC_LINES_PER_REQUEST = 1
PAD_VALUE = 128  # mid-grey: what the recogniser was trained to see beyond the text


class BLSError(Exception):
    """A downstream model (ocr_det / ocr_rec) returned an error."""


def bucket_for(width: int) -> int:
    return min(MAX_LINE_WIDTH, -(-width // BUCKET_STEP) * BUCKET_STEP)


def crop_line(image: np.ndarray, quad: np.ndarray, max_width: int) -> np.ndarray:
    """Warp one text quad straight into a [48, w, 3] line image (one resampling step)."""
    tl, tr, br, bl = quad
    width = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    if height >= 1.5 * width:  # vertical text: read it rotated a quarter turn
        tl, tr, br, bl = tr, br, bl, tl
        width, height = height, width
    out_w = int(min(max_width, max(8, math.ceil(LINE_HEIGHT * width / max(height, 1.0)))))
    src = np.array([tl, tr, br, bl], np.float32)
    dst = np.array([[0, 0], [out_w, 0], [out_w, LINE_HEIGHT], [0, LINE_HEIGHT]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(
        image,
        matrix,
        (out_w, LINE_HEIGHT),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def reading_order(boxes: np.ndarray) -> list[int]:
    """Indices of line boxes top to bottom, left to right within a row."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    rows: list[list[int]] = []
    for i in order:
        cy = (boxes[i][1] + boxes[i][3]) / 2
        if rows:
            last = boxes[rows[-1][0]]
            if abs(cy - (last[1] + last[3]) / 2) < 0.5 * (last[3] - last[1]):
                rows[-1].append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: boxes[j][0])]


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.min_text_score = float(params.get("min_text_score", "0.5"))
        self.max_line_width = min(MAX_LINE_WIDTH, int(params.get("max_line_width", "1280")))
        # Recognition costs ~30 ms of CPU per line: bound the work one image can cause.
        self.max_lines = int(params.get("max_lines_per_image", "100"))

    async def execute(self, requests: list) -> list:
        images: list[np.ndarray] = []
        owner: list[int] = []  # request index of each image
        for r_index, request in enumerate(requests):
            batch = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            for image in batch:
                images.append(image)
                owner.append(r_index)
        try:
            results = await self.ocr(images)
        except BLSError as exc:
            error = pb_utils.TritonError(str(exc))
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        for r_index in range(len(requests)):
            mine = [results[i] for i, o in enumerate(owner) if o == r_index]
            count = max((len(m[0]) for m in mine), default=0)
            texts = np.full((len(mine), count), b"", dtype=object)
            scores = np.zeros((len(mine), count), np.float32)
            boxes = np.zeros((len(mine), count, 4), np.float32)
            for row, (t, s, b) in enumerate(mine):
                texts[row, : len(t)] = t
                scores[row, : len(s)] = s
                if b:
                    boxes[row, : len(b)] = np.stack(b)
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor("texts", texts),
                        pb_utils.Tensor("scores", scores),
                        pb_utils.Tensor("boxes", boxes),
                    ]
                )
            )
        return responses

    async def ocr(self, images: list[np.ndarray]) -> list[tuple[list, list, list]]:
        detections = await asyncio.gather(
            *[self.call("ocr_det", image[None], ["quads", "scores"]) for image in images]
        )
        lines: list[tuple[int, np.ndarray, np.ndarray]] = []  # (image, line pixels, box)
        for i, (found, _scores) in enumerate(detections):
            quads = found[0]
            if len(quads) > self.max_lines:  # keep the tallest lines: labels' main print
                heights = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
                quads = quads[np.argsort(-heights, kind="stable")[: self.max_lines]]
            for quad in quads:
                line = crop_line(images[i], quad, self.max_line_width)
                box = np.array(
                    [quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()],
                    np.float32,
                )
                lines.append((i, line, box))
        by_bucket: dict[int, list[int]] = {}
        for index, (_, line, _) in enumerate(lines):
            by_bucket.setdefault(bucket_for(line.shape[1]), []).append(index)
        jobs, members = [], []
        for width, indices in by_bucket.items():
            for start in range(0, len(indices), REC_LINES_PER_REQUEST):
                chunk = indices[start : start + REC_LINES_PER_REQUEST]
                stack = np.full((len(chunk), LINE_HEIGHT, width, 3), PAD_VALUE, np.uint8)
                for row, index in enumerate(chunk):
                    line = lines[index][1]
                    stack[row, :, : line.shape[1]] = line
                jobs.append(self.call("ocr_rec", stack, ["text", "score"]))
                members.append(chunk)
        recognised: dict[int, tuple[bytes, float]] = {}
        for chunk, (texts, scores) in zip(members, await asyncio.gather(*jobs), strict=True):
            for row, index in enumerate(chunk):
                recognised[index] = (texts[row, 0], float(scores[row, 0]))
        results: list[tuple[list, list, list]] = [([], [], []) for _ in images]
        for index, (image_index, _, box) in enumerate(lines):
            text, score = recognised[index]
            if text and score >= self.min_text_score:
                results[image_index][0].append(text)
                results[image_index][1].append(score)
                results[image_index][2].append(box)
        ordered = []
        for texts, scores, boxes in results:
            order = reading_order(np.array(boxes)) if boxes else []
            ordered.append(
                ([texts[i] for i in order], [scores[i] for i in order], [boxes[i] for i in order])
            )
        return ordered

    @staticmethod
    async def call(model: str, data: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=model,
            inputs=[pb_utils.Tensor("image", np.ascontiguousarray(data))],
            requested_output_names=outputs,
        )
        response = await request.async_exec()
        if response.has_error():
            raise BLSError(f"{model}: {response.error().message()}")
        return [pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs]
