"""ONNX export of the detector and the metadata file the gateway reads next to it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from gateway.pipeline.detect import TILE
from gateway.training.model import MAX_DETECTIONS, ExportWrapper, ItemDetector

OPSET = 17


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


def main(argv: list[str] | None = None) -> int:
    """Export a training checkpoint's EMA weights (e.g. while a long run is still going),
    choose its threshold and confidence band as the training command does, measure it and
    write model.onnx + meta.json (+ weights.pt beside the model folder)."""
    import argparse
    import sys
    import time

    from gateway.training.real import REAL_CARTONS, real_dir_or_none, split_by_family
    from gateway.training.shipping import (
        SHIPPED_ONNX,
        TEST_PHOTOS,
        VAL_PHOTOS,
        evaluate_for_shipping,
    )

    ap = argparse.ArgumentParser(prog="python -m gateway.training.export",
                                 description=main.__doc__)
    ap.add_argument("--checkpoint", type=Path, required=True, help="last.pt of a training run")
    ap.add_argument("--out", type=Path, default=SHIPPED_ONNX, help="ONNX path to write")
    ap.add_argument("--val", type=int, default=VAL_PHOTOS, help="synthetic validation photos")
    ap.add_argument("--test", type=int, default=TEST_PHOTOS, help="synthetic test photos")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    state = torch.load(args.checkpoint, map_location="cpu")
    cfg = state["config"]
    model = ItemDetector(cfg.get("width", 1.0))
    model.load_state_dict(state["ema"])
    export_onnx(model, args.out)
    torch.save(model.state_dict(), args.out.parent.parent / "weights.pt")
    meta: dict[str, object] = {
        "data": f"checkpoint {args.checkpoint} (see MODEL.md)", "steps": state["step"],
        "planned_steps": cfg["steps"], "train_wall_s": round(state.get("elapsed_s", 0.0), 1),
        "config": cfg, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # Re-measuring the model the training command wrote: keep what only that command knew.
    old_path = args.out.parent / "meta.json"
    old = json.loads(old_path.read_text()) if old_path.exists() else {}
    if old.get("config") == cfg and old.get("steps") == state["step"]:
        meta.update({k: old[k] for k in ("data", "init", "final_loss") if k in old})
    real = real_dir_or_none()
    if real is None:
        print(f"note: no real photos at {REAL_CARTONS}: synthetic figures only", file=sys.stderr)
    from gateway.training.data import load_labelled_dir

    tune = split_by_family(load_labelled_dir(real))[1] if real else []
    val = REAL_CARTONS / "val" if real else None
    meta.update(evaluate_for_shipping(args.out, args.val, args.test, tune, val, args.quiet))
    write_meta(args.out.parent / "meta.json", meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
