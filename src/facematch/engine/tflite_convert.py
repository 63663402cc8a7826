"""Build an ONNX graph equivalent to a parsed BlazeFace TFLite model (:mod:`.tflite_format`).

The graph takes uint8 RGB squares ``[n, side, side, 3]`` (NHWC, dynamic batch),
maps them to [-1, 1] as MediaPipe's ``ImageToTensorCalculator`` does for its
face detectors, and returns the model's two raw outputs: ``regressors``
``[n, anchors, 16]`` (box and 6 keypoints, in input pixels relative to each
anchor) and ``logits`` ``[n, anchors, 1]`` (scores before the sigmoid).

TFLite computes in NHWC; ONNX convolutions are NCHW. The input is transposed
once, every 4-D tensor is kept NCHW, and a tensor goes back to NHWC only where
the model reshapes it (its flattening order is NHWC's), so the reshaped
outputs match TFLite element for element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from facematch.engine.onnx_graph import GraphBuilder
from facematch.engine.tflite_format import TFLiteFormatError, TFLiteGraph

__all__ = ["CONVERTER_VERSION", "INPUT_NAME", "OUTPUT_NAMES", "build_model"]

#: Bump whenever the graph this module produces changes.
CONVERTER_VERSION = 1
OPSET = 17
INPUT_NAME = "squares"
OUTPUT_NAMES = ("regressors", "logits")
# TFLite's fused activation codes (schema ActivationFunctionType).
_ACTIVATION_NONE, _ACTIVATION_RELU, _ACTIVATION_RELU6 = 0, 1, 3
_PADDING_SAME = 0
# NHWC axis → NCHW axis for 4-D tensors.
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


@dataclass(kw_only=True)
class _Builder(GraphBuilder):
    graph: TFLiteGraph
    values: dict[int, str] = field(default_factory=dict)  # TFLite tensor → ONNX value

    def value(self, tensor: int) -> str:
        if tensor not in self.values:
            raise TFLiteFormatError(f"tensor {self.graph.names[tensor]} used before it is computed")
        return self.values[tensor]

    def constant(self, tensor: int) -> np.ndarray:
        if tensor not in self.graph.constants:
            raise TFLiteFormatError(f"tensor {self.graph.names[tensor]} must be constant")
        return self.graph.constants[tensor]


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding: output ceil(size / stride), the odd pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(
    b: _Builder, x: int, options: dict, kernel: tuple[int, int], dilation: tuple[int, int]
) -> list[int]:
    if options["Padding"] != _PADDING_SAME:
        return [0, 0, 0, 0]
    _, height, width, _ = b.graph.shapes[x]
    top, bottom = _same_pads(height, kernel[0], options["StrideH"], dilation[0])
    left, right = _same_pads(width, kernel[1], options["StrideW"], dilation[1])
    return [top, left, bottom, right]


def _activate(b: _Builder, value: str, code: int) -> str:
    if code == _ACTIVATION_NONE:
        return value
    if code == _ACTIVATION_RELU:
        return b.node("Relu", [value], "relu")
    if code == _ACTIVATION_RELU6:
        return b.node(
            "Clip", [value, b.const("zero", np.float32(0)), b.const("six", np.float32(6))], "relu6"
        )
    raise TFLiteFormatError(f"unsupported fused activation {code}")


def _conv(b: _Builder, inputs: tuple[int, ...], options: dict, depthwise: bool) -> str:
    x, w, bias = inputs
    weights = b.constant(w).astype(np.float32)
    if depthwise:
        # [1, kh, kw, channels × multiplier] → [channels × multiplier, 1, kh, kw]
        kernel = np.ascontiguousarray(weights.transpose(3, 0, 1, 2))
        group = b.graph.shapes[x][3]
    else:
        # [out, kh, kw, in] → [out, in, kh, kw]
        kernel = np.ascontiguousarray(weights.transpose(0, 3, 1, 2))
        group = 1
    dilation = (options["DilationHFactor"], options["DilationWFactor"])
    pads = _spatial_pads(b, x, options, kernel.shape[2:], dilation)
    out = b.node(
        "Conv",
        [b.value(x), b.const("w", kernel), b.const("b", b.constant(bias).astype(np.float32))],
        "conv",
        strides=[options["StrideH"], options["StrideW"]],
        pads=pads,
        dilations=list(dilation),
        group=group,
    )
    return _activate(b, out, options["FusedActivationFunction"])


def _op(b: _Builder, op: str, inputs: tuple[int, ...], output: int, options: dict) -> str:
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _conv(b, inputs, options, depthwise=op == "DEPTHWISE_CONV_2D")
    if op == "RELU":
        return b.node("Relu", [b.value(inputs[0])], "relu")
    if op == "ADD":
        out = b.node("Add", [b.value(inputs[0]), b.value(inputs[1])], "add")
        return _activate(b, out, options["FusedActivationFunction"])
    if op == "MAX_POOL_2D":
        kernel = (options["FilterHeight"], options["FilterWidth"])
        out = b.node(
            "MaxPool",
            [b.value(inputs[0])],
            "pool",
            kernel_shape=list(kernel),
            strides=[options["StrideH"], options["StrideW"]],
            pads=_spatial_pads(b, inputs[0], options, kernel, (1, 1)),
        )
        return _activate(b, out, options["FusedActivationFunction"])
    if op == "PAD":
        paddings = b.constant(inputs[1]).astype(np.int64)  # [4, 2] in NHWC order
        order = [0, 3, 1, 2]
        pads = np.concatenate([paddings[order, 0], paddings[order, 1]])
        return b.node("Pad", [b.value(inputs[0]), b.const("pads", pads)], "pad")
    if op == "RESHAPE":
        nhwc = b.node("Transpose", [b.value(inputs[0])], "nhwc", perm=[0, 2, 3, 1])
        target = np.array(b.graph.shapes[output], dtype=np.int64)
        target[0] = 0  # keep the (dynamic) batch dimension
        return b.node("Reshape", [nhwc, b.const("shape", target)], "reshape")
    if op == "CONCATENATION":
        rank = len(b.graph.shapes[output])
        axis = options["Axis"] % rank
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        out = b.node("Concat", [b.value(i) for i in inputs], "concat", axis=axis)
        return _activate(b, out, options["FusedActivationFunction"])
    if op == "RESIZE_BILINEAR":
        _, in_h, in_w, _ = b.graph.shapes[inputs[0]]
        _, out_h, out_w, _ = b.graph.shapes[output]
        scales = np.array([1.0, 1.0, out_h / in_h, out_w / in_w], dtype=np.float32)
        if options["AlignCorners"]:
            mode = "align_corners"
        elif options["HalfPixelCenters"]:
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        return b.node(
            "Resize",
            [b.value(inputs[0]), "", b.const("scales", scales)],
            "resize",
            mode="linear",
            coordinate_transformation_mode=mode,
        )
    if op == "DEPTH_TO_SPACE":
        # TFLite's channel order (block row, block column, channel) is ONNX's DCR.
        return b.node(
            "DepthToSpace", [b.value(inputs[0])], "d2s", blocksize=options["BlockSize"], mode="DCR"
        )
    raise TFLiteFormatError(f"unsupported operator {op}")


def build_model(graph: TFLiteGraph) -> onnx.ModelProto:
    """The ONNX model for ``graph`` (one NHWC image input, two outputs)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 2:
        raise TFLiteFormatError("expected one input and two outputs (regressors, scores)")
    (source,) = graph.inputs
    _, side, side_w, channels = graph.shapes[source]
    if side != side_w or channels != 3:
        raise TFLiteFormatError(f"expected a square RGB input, got {graph.shapes[source]}")
    b = _Builder(graph=graph)
    pixels = b.node("Cast", [INPUT_NAME], "float", to=TensorProto.FLOAT)
    # MediaPipe feeds its face detectors pixels in [-1, 1]: x / 127.5 - 1.
    scaled = b.node("Mul", [pixels, b.const("scale", np.float32(1 / 127.5))], "scaled")
    centred = b.node("Sub", [scaled, b.const("one", np.float32(1.0))], "centred")
    b.values[source] = b.node("Transpose", [centred], "nchw", perm=[0, 3, 1, 2])
    for operator in graph.operators:
        (output,) = operator.outputs
        b.values[output] = _op(b, operator.op, operator.inputs, output, operator.options)

    nodes = list(b.nodes)
    outputs = []
    for name, tensor in zip(OUTPUT_NAMES, graph.outputs, strict=True):
        if len(graph.shapes[tensor]) != 3:
            raise TFLiteFormatError("expected [1, anchors, k] outputs")
        nodes.append(helper.make_node("Identity", [b.value(tensor)], [name], name=name))
        _, anchors, width = graph.shapes[tensor]
        outputs.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", anchors, width])
        )
    onnx_graph = helper.make_graph(
        nodes,
        "blazeface",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["n", side, side, 3])],
        outputs,
        initializer=b.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facematch",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
