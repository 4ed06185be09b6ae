"""Triton Python-backend model: the ShelfCount item detector (onnxruntime).

Input ``images`` (UINT8 [N, 640, 640, 3], BGR tiles); output ``detections`` (FP32
[N, 200, 5]): (x0, y0, x1, y1, score) in tile pixels, best first, padded with score 0.

All requests of one dynamic batch run as one onnxruntime call: a batch of tiles costs less
than the same tiles one by one. Rows under ``floor_score`` are zeroed so clients never see
peaks that no threshold could accept.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.floor = float(params.get("floor_score", "0.05"))
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"{path} is missing: train or check out the model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("ort_threads", "2"))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads starve the gateway and other models on a small CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and (
            "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(
                0, ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])})
            )
        self.session = ort.InferenceSession(path, options, providers=providers)

    def execute(self, requests: list) -> list:
        batches = [pb_utils.get_input_tensor_by_name(r, "images").as_numpy() for r in requests]
        sizes = [len(b) for b in batches]
        out = self.session.run(None, {"images": np.ascontiguousarray(np.concatenate(batches))})[0]
        out = out.astype(np.float32, copy=False)
        out[out[:, :, 4] < self.floor] = 0.0
        responses = []
        start = 0
        for n in sizes:
            tensor = pb_utils.Tensor("detections", out[start : start + n])
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start += n
        return responses
