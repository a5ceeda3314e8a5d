"""Append a greedy-CTC head to a recognition model: two small outputs beside the softmax.

A PP-OCR recognition model outputs a (N, T, C) softmax with C = 18,710 classes for PP-OCRv6:
tens of MB per batch of lines, all of it crossing Triton's shared memory and the network
although greedy CTC decoding needs only the best class and its probability per step. This adds

    ctc_argmax    int64   (N, T)  ArgMax over classes (first index on ties, as numpy)
    ctc_max_prob  float32 (N, T)  ReduceMax over classes

computed from the unchanged softmax, which stays the first output. Clients request only the two
small outputs (about C/2 times less data); the network itself is untouched. The result is
deterministic, so its sha256 is pinned like the source model's.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from preprocess_service.tensors import CTC_ARGMAX as ARGMAX
from preprocess_service.tensors import CTC_MAX_PROB as MAX_PROB


def _opset(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def add_ctc_head(model_bytes: bytes) -> bytes:
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    if any(o.name in (ARGMAX, MAX_PROB) for o in graph.output):
        return model_bytes  # already has the head
    probs = graph.output[0]
    dims = probs.type.tensor_type.shape.dim
    n = dims[0].dim_param or dims[0].dim_value or "N"
    t = dims[1].dim_param or dims[1].dim_value or "T"
    graph.node.append(helper.make_node("ArgMax", [probs.name], [ARGMAX], name="ctc_head_argmax", axis=2, keepdims=0))
    if _opset(model) >= 18:  # axes became an input
        axes = helper.make_tensor("ctc_head_axes", TensorProto.INT64, [1], [2])
        graph.initializer.append(axes)
        graph.node.append(helper.make_node("ReduceMax", [probs.name, "ctc_head_axes"], [MAX_PROB], name="ctc_head_max", keepdims=0))
    else:
        graph.node.append(helper.make_node("ReduceMax", [probs.name], [MAX_PROB], name="ctc_head_max", axes=[2], keepdims=0))
    graph.output.append(helper.make_tensor_value_info(ARGMAX, TensorProto.INT64, [n, t]))
    graph.output.append(helper.make_tensor_value_info(MAX_PROB, TensorProto.FLOAT, [n, t]))
    onnx.checker.check_model(model)
    return model.SerializeToString()
