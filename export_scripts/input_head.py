"""Lean tensors: a uint8 input head on every served model, and a uint8 detection map.

Between the service and a Triton pod every tensor crosses the network. A float32 CHW input is
four times the bytes of the uint8 image it was made from, and so is a float32 probability map
against a uint8 one. This adds, in front of the unchanged network:

    x            uint8  (N, H, W, 3)  the image (BGR) as decoded and resized, channels last
    valid_width  int64  (N, 1)        recognition and orientation batches only: each row's
                                      width before right-padding

    -> Cast float32 -> x * mul[c] + add[c] per channel (the model's normalisation, the same
       float32 arithmetic as the service's numpy code) -> NHWC to NCHW
       -> [padded columns set to exactly 0.0, as PaddleOCR pads after normalising]
       -> the original network

and, after a detection network, a second output beside the float map:

    prob_u8      uint8  (N, 1, H, W)  round(clip(p, 0, 1) * 255)

The service sends uint8 and asks for ``prob_u8`` (and the CTC head's outputs for recognition)
whether it runs the model in-process or through Triton, so both paths see the same numbers. The
result is deterministic: its sha256 is pinned like the source model's.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from preprocess_service.tensors import PROB_U8, VALID_WIDTH

INPUT = "x"


def serve_ready(model_bytes: bytes, kind: str, spec) -> bytes:
    """A published model as this project serves it: the greedy-CTC head on recognition models,
    then the uint8 input head on every model (normalisation from its spec). ``kind``: det, rec or
    cls; ``spec``: its preprocess_service.model_spec spec."""
    from preprocess_service.stages import detection, recognition

    from . import ctc_head

    if kind == "rec":
        model_bytes = ctc_head.add_ctc_head(model_bytes)
    mul, add = detection.norm_coeffs(recognition.REC_NORM if kind == "rec" else spec.norm)
    return add_input_head(model_bytes, (float(mul[0]), float(mul[1]), float(mul[2])),
                          (float(add[0]), float(add[1]), float(add[2])), masked=kind in ("rec", "cls"),
                          det_output=kind == "det")


def _dim(d) -> str | int:
    return d.dim_param or d.dim_value or "?"


def add_input_head(model_bytes: bytes, mul: tuple[float, float, float], add: tuple[float, float, float],
                   masked: bool, det_output: bool) -> bytes:
    """The model with the uint8 head (``masked``: with ``valid_width``) and, for detection
    (``det_output``), the ``prob_u8`` output."""
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    if any(i.name == INPUT and i.type.tensor_type.elem_type == TensorProto.UINT8 for i in graph.input):
        return model_bytes  # already has the head
    old = graph.input[0]
    inner = "head_x_nchw"
    for node in graph.node:  # the network now reads the head's output
        for k, name in enumerate(node.input):
            if name == old.name:
                node.input[k] = inner
    dims = [_dim(d) for d in old.type.tensor_type.shape.dim]  # N, 3, H, W
    n, h, w = dims[0], dims[2], dims[3]
    graph.input.remove(old)
    graph.input.insert(0, helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [n, h, w, 3]))
    init = graph.initializer
    init.append(helper.make_tensor("head_mul", TensorProto.FLOAT, [3], list(mul)))
    init.append(helper.make_tensor("head_add", TensorProto.FLOAT, [3], list(add)))
    nodes = [
        helper.make_node("Cast", [INPUT], ["head_xf"], name="head_cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["head_xf", "head_mul"], ["head_scaled"], name="head_mul"),
        helper.make_node("Add", ["head_scaled", "head_add"], ["head_norm"], name="head_add"),
        helper.make_node("Transpose", ["head_norm"], [inner if not masked else "head_unmasked"], name="head_nchw",
                         perm=[0, 3, 1, 2]),
    ]
    if masked:
        # (N, 1), not (N,): a batched Triton input needs at least one dimension past the batch
        graph.input.insert(1, helper.make_tensor_value_info(VALID_WIDTH, TensorProto.INT64, [n, 1]))
        init.append(helper.make_tensor("head_zero_i", TensorProto.INT64, [], [0]))
        init.append(helper.make_tensor("head_one_i", TensorProto.INT64, [], [1]))
        init.append(helper.make_tensor("head_idx_w", TensorProto.INT64, [1], [2]))
        init.append(helper.make_tensor("head_cols_shape", TensorProto.INT64, [4], [1, 1, 1, -1]))
        init.append(helper.make_tensor("head_rows_shape", TensorProto.INT64, [4], [-1, 1, 1, 1]))
        init.append(helper.make_tensor("head_zero_f", TensorProto.FLOAT, [], [0.0]))
        nodes += [
            helper.make_node("Shape", [INPUT], ["head_shape"], name="head_shape"),
            helper.make_node("Gather", ["head_shape", "head_idx_w"], ["head_w1"], name="head_w1", axis=0),
            helper.make_node("Reshape", ["head_w1", "head_scalar_shape"], ["head_w"], name="head_w"),
            helper.make_node("Range", ["head_zero_i", "head_w", "head_one_i"], ["head_cols"], name="head_range"),
            helper.make_node("Reshape", ["head_cols", "head_cols_shape"], ["head_cols4"], name="head_cols4"),
            helper.make_node("Reshape", [VALID_WIDTH, "head_rows_shape"], ["head_valid4"], name="head_valid4"),
            helper.make_node("Less", ["head_cols4", "head_valid4"], ["head_keep"], name="head_keep"),
            helper.make_node("Where", ["head_keep", "head_unmasked", "head_zero_f"], [inner], name="head_mask"),
        ]
        init.append(helper.make_tensor("head_scalar_shape", TensorProto.INT64, [0], []))
    for k, node in enumerate(nodes):
        graph.node.insert(k, node)
    if det_output:
        prob = graph.output[0]
        pdims = [_dim(d) for d in prob.type.tensor_type.shape.dim]
        init.append(helper.make_tensor("head_p0", TensorProto.FLOAT, [], [0.0]))
        init.append(helper.make_tensor("head_p1", TensorProto.FLOAT, [], [1.0]))
        init.append(helper.make_tensor("head_255", TensorProto.FLOAT, [], [255.0]))
        graph.node.extend([
            helper.make_node("Clip", [prob.name, "head_p0", "head_p1"], ["head_pc"], name="head_clip"),
            helper.make_node("Mul", ["head_pc", "head_255"], ["head_p255"], name="head_p255"),
            helper.make_node("Round", ["head_p255"], ["head_pr"], name="head_round"),
            helper.make_node("Cast", ["head_pr"], [PROB_U8], name="head_u8", to=TensorProto.UINT8),
        ])
        graph.output.append(helper.make_tensor_value_info(PROB_U8, TensorProto.UINT8, pdims))
    onnx.checker.check_model(model)
    return model.SerializeToString()
