"""People in a photo: faces (Triton's ``face_detector``) and whole people where no face shows
(``person_detector``: seen from behind or from above) found and blurred out of the copy that
is kept.

The count is always made from the original pixels (an item behind a person still counts);
only the stored photo, which managers, exports and thumbnails see, is blurred. A face's region
is grown (hair, ears) and pixelated, then smoothed: a plain Gaussian blur of a large face can
leave enough structure for a face detector to find it again. A body's box already holds the
whole person and is blurred as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from gateway.inference.client import InferenceClient

FACE_SIDE = 640  # the people models' input long side (the face model's max_side)
GROW = 0.35  # each side of a face box grows by this share of its size
BLOCKS = 6  # a blurred region is this many blocks across
JPEG_QUALITY = 92
FACE, BODY = "face", "body"  # what a region of CountResult.people holds (6th entry)

Finder = Callable[[np.ndarray], list[tuple[tuple[float, float, float, float], float]]]


def _found(finders: Sequence[Finder], image: np.ndarray) -> list[list[list[float]]]:
    """Each finder's boxes in a BGR photo as ``[x0, y0, x1, y1, score]`` in its pixels. The
    photo is shrunk once, here, not in Triton: a 12 MP frame is 36 MB on the wire, 640 px
    1 MB."""
    h, w = image.shape[:2]
    scale = min(1.0, FACE_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image
    return [[[round(v / scale, 1) for v in box] + [round(score, 3)]
             for box, score in finder(small)] for finder in finders]


def find_faces(client: InferenceClient, image: np.ndarray) -> list[list[float]]:
    """Faces in a BGR photo: ``[x0, y0, x1, y1, score]`` in its pixels."""
    return _found([client.faces], image)[0]


def find_people(client: InferenceClient, image: np.ndarray) -> list[list[float | str]]:
    """Everything to blur in a BGR photo: ``[x0, y0, x1, y1, score, "face" | "body"]`` in its
    pixels; faces first, then whole bodies (a person seen from behind has no face to find)."""
    faces, bodies = _found([client.faces, client.people], image)
    return [[*f, FACE] for f in faces] + [[*b, BODY] for b in bodies]


def blur_regions(image: np.ndarray, boxes: Sequence[Sequence[float | str]]) -> np.ndarray:
    """A copy of ``image`` with every box pixelated and smoothed; faces (boxes without a 6th
    entry, as results stored before bodies were found, or ``"face"``) grown by GROW first."""
    out = image.copy()
    h, w = out.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        grow = 0.0 if len(box) > 5 and box[5] == BODY else GROW
        gx, gy = grow * (x1 - x0), grow * (y1 - y0)
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


def redacted_jpeg(image: np.ndarray, boxes: Sequence[Sequence[float | str]]) -> bytes:
    """The photo to keep: people blurred, re-encoded (no EXIF: no GPS or device left in it)."""
    ok, buf = cv2.imencode(".jpg", blur_regions(image, boxes),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the blurred photo could not be encoded")
    return buf.tobytes()
