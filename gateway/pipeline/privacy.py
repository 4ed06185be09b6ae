"""People in a photo: faces found (Triton's ``face_detector``) and blurred out of the copy
that is kept.

The count is always made from the original pixels (an item behind a person still counts);
only the stored photo, which managers, exports and thumbnails see, is blurred. A region is
grown around the face (hair, ears) and pixelated, then smoothed: a plain Gaussian blur of a
large face can leave enough structure for a face detector to find it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from gateway.inference.client import InferenceClient

FACE_SIDE = 640  # the face detector's input long side (its config's max_side)
GROW = 0.35  # each side of a face box grows by this share of its size
BLOCKS = 6  # a blurred face is this many blocks across
JPEG_QUALITY = 92


def find_faces(client: InferenceClient, image: np.ndarray) -> list[list[float]]:
    """Faces in a BGR photo: ``[x0, y0, x1, y1, score]`` in its pixels. The photo is shrunk
    here, not in Triton: a 12 MP frame is 36 MB on the wire, its 640 px copy 1 MB."""
    h, w = image.shape[:2]
    scale = min(1.0, FACE_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image
    return [[round(v / scale, 1) for v in box] + [round(score, 3)]
            for box, score in client.faces(small)]


def blur_regions(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """A copy of ``image`` with every box (grown by GROW) pixelated and smoothed."""
    out = image.copy()
    h, w = out.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        gx, gy = GROW * (x1 - x0), GROW * (y1 - y0)
        a, b = max(0, int(x0 - gx)), max(0, int(y0 - gy))
        c, d = min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy)))
        if c - a < 2 or d - b < 2:
            continue
        region = out[b:d, a:c]
        tiny = cv2.resize(region, (BLOCKS, max(1, round(BLOCKS * (d - b) / (c - a)))),
                          interpolation=cv2.INTER_AREA)
        blocks = cv2.resize(tiny, (c - a, d - b), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(c - a, d - b) // BLOCKS) | 1)
        out[b:d, a:c] = cv2.GaussianBlur(blocks, (k, k), 0)
    return out


def redacted_jpeg(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> bytes:
    """The photo to keep: people blurred, re-encoded (no EXIF: no GPS or device left in it)."""
    ok, buf = cv2.imencode(".jpg", blur_regions(image, boxes),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the blurred photo could not be encoded")
    return buf.tobytes()
