"""The set-up's rewrite of the OCR graphs computes the same function with fewer nodes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from gateway.inference.onnx_simplify import simplified_bytes, simplify
from gateway.inference.repository import DET_ONNX, REC_ONNX, rapidocr_models_dir


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32), name)
    )


def _tiny_model() -> onnx.ModelProto:
    """conv -> *s+t -> hard-swish -> *s+t -> 1x1 conv -> *s+t -> padded depthwise conv, as
    paddle2onnx writes PP-LCNetV3 blocks (weights as Constant nodes, opset 12)."""
    rng = np.random.default_rng(0)
    scalar = {n: np.array([v], np.float32) for n, v in
              (("s1", 1.3), ("t1", -0.2), ("three", 3.0), ("zero", 0.0), ("six", 6.0),
               ("s2", 0.7), ("t2", 0.4), ("s3", 1.1), ("t3", 0.3))}
    nodes = [_const(n, v) for n, v in scalar.items()] + [
        _const("w1", rng.normal(size=(4, 3, 3, 3))), _const("b1", rng.normal(size=4)),
        _const("w2", rng.normal(size=(6, 4, 1, 1))),
        _const("w3", rng.normal(size=(6, 1, 3, 3))), _const("b3", rng.normal(size=6)),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["s1", "c1"], ["m1"]),
        helper.make_node("Add", ["m1", "t1"], ["a1"]),
        helper.make_node("Add", ["a1", "three"], ["h1"]),
        helper.make_node("Clip", ["h1", "zero", "six"], ["h2"]),
        helper.make_node("Mul", ["a1", "h2"], ["h3"]),
        helper.make_node("Div", ["h3", "six"], ["hs"]),
        helper.make_node("Mul", ["hs", "s2"], ["m2"]),
        helper.make_node("Add", ["m2", "t2"], ["a2"]),
        helper.make_node("Conv", ["a2", "w2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Mul", ["c2", "s3"], ["m3"]),
        helper.make_node("Add", ["m3", "t3"], ["a3"]),
        helper.make_node("Mul", ["a3", "s2"], ["m4"]),
        helper.make_node("Add", ["m4", "t2"], ["a4"]),
        # Padded: the border would see t2 where the original sees zeros, so this stays.
        helper.make_node("Conv", ["a4", "w3", "b3"], ["y"], pads=[1, 1, 1, 1], group=6),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def test_each_rewrite_keeps_the_function() -> None:
    model = _tiny_model()
    before = model.SerializeToString()
    done = simplify(model)
    onnx.checker.check_model(model)
    assert done == {"hard_swish": 1, "affine_after_conv": 2, "affine_before_conv": 1}
    ops = Counter(n.op_type for n in model.graph.node if n.op_type != "Constant")
    # Left: the affine before the padded depthwise conv, hard-sigmoid * x, three convs.
    assert ops == {"Conv": 3, "HardSigmoid": 1, "Mul": 2, "Add": 1}
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32) * 3
    np.testing.assert_allclose(
        _run(model.SerializeToString(), x), _run(before, x), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(("name", "shape"), [(REC_ONNX, (1, 3, 48, 256)),
                                              (DET_ONNX, (1, 3, 320, 320))])
def test_the_shipped_ocr_models_compute_the_same(name: str, shape: tuple[int, ...]) -> None:
    original = (rapidocr_models_dir() / name).read_bytes()
    simplified = simplified_bytes(original)
    before = Counter(n.op_type for n in onnx.load_from_string(original).graph.node)
    after = Counter(n.op_type for n in onnx.load_from_string(simplified).graph.node)
    assert after["Clip"] == 0 < before["Clip"]  # every hard-swish rewritten
    assert after["Mul"] + after["Add"] < 0.6 * (before["Mul"] + before["Add"])
    x = np.random.default_rng(2).uniform(-1, 1, size=shape).astype(np.float32)
    np.testing.assert_allclose(_run(simplified, x), _run(original, x), atol=1e-4)
    # The recogniser's alphabet travels in the metadata: it must survive the rewrite.
    keys = {p.key for p in onnx.load_from_string(simplified).metadata_props}
    assert keys == {p.key for p in onnx.load_from_string(original).metadata_props}
