"""Triton Python-backend model: PP-OCRv4 CRNN text recognition.

Input ``image`` (UINT8 [48, W, 3], BGR text line, height 48, padded on the right); outputs
``text`` (BYTES [1], UTF-8) and ``score`` (FP32 [1], mean max-probability of the kept
characters, 0 when nothing was read).

The greedy CTC decode happens here because the alphabet (``keys.txt``, dumped from the ONNX
metadata) belongs to these weights: callers get text, and the [T, 6625] probability matrix
never crosses a process boundary. Requests of equal width are stacked into one ORT run; the
``ocr_pipeline`` model pads lines to a few bucket widths so that this happens often.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
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


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(folder, "model.onnx")
        keys_path = os.path.join(folder, "keys.txt")
        for needed in (path, keys_path):
            if not os.path.isfile(needed):
                raise pb_utils.TritonModelException(
                    f"{needed} is missing: run `python -m gateway.inference.repository`"
                )
        with open(keys_path, encoding="utf-8") as handle:
            keys = handle.read()
        # Class 0 is the CTC blank; the last class is the space the model was trained with.
        self.classes = np.array(["", *keys[:-1].split("\n"), " "], dtype=object)
        self.session = make_session(path, args, int(params.get("ort_threads", "1")))
        # On CPU, stacking wide lines into one run is slower per line than running them one by
        # one (cache misses; measured 105 vs 70 ms per 640 px line): cap rows x width per run.
        # On a GPU, raise it so that whole batches go in one run.
        self.max_run_columns = int(params.get("max_run_columns", "640"))
        if self.session.get_providers()[0] != "CPUExecutionProvider":
            self.max_run_columns = 1 << 30
        self.input_name = self.session.get_inputs()[0].name
        classes = self.session.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != len(self.classes):
            raise pb_utils.TritonModelException(
                f"keys.txt has {len(self.classes) - 2} characters but the model has "
                f"{classes - 2}: regenerate with `python -m gateway.inference.repository`"
            )

    def execute(self, requests: list) -> list:
        images = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        texts: list[list[str]] = [[] for _ in requests]
        scores: list[list[float]] = [[] for _ in requests]
        by_width: dict[int, list[int]] = {}
        for index, batch in enumerate(images):
            by_width.setdefault(batch.shape[2], []).append(index)
        for width, indices in by_width.items():
            stacked = np.concatenate([images[i] for i in indices])
            rows_per_run = max(1, self.max_run_columns // width)
            decoded = []
            for start in range(0, len(stacked), rows_per_run):
                decoded.extend(self.recognise(stacked[start : start + rows_per_run]))
            start = 0
            for i in indices:
                n = len(images[i])
                texts[i] = [t for t, _ in decoded[start : start + n]]
                scores[i] = [s for _, s in decoded[start : start + n]]
                start += n
        return [
            pb_utils.InferenceResponse(
                [
                    pb_utils.Tensor("text", np.array(t, dtype=object).reshape(-1, 1)),
                    pb_utils.Tensor("score", np.array(s, dtype=np.float32).reshape(-1, 1)),
                ]
            )
            for t, s in zip(texts, scores, strict=True)
        ]

    def recognise(self, lines: np.ndarray) -> list[tuple[bytes, float]]:
        x = lines.astype(np.float32) * (1.0 / 127.5) - 1.0
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        probs = self.session.run(None, {self.input_name: x})[0]
        best = probs.argmax(axis=2)
        best_prob = probs.max(axis=2)
        out = []
        for seq, conf in zip(best, best_prob, strict=True):
            keep = seq != 0
            keep[1:] &= seq[1:] != seq[:-1]  # collapse repeats, then drop blanks
            chars = self.classes[seq[keep]]
            text = "".join(chars).strip()
            score = float(conf[keep].mean()) if keep.any() else 0.0
            out.append((text.encode("utf-8"), score))
        return out
