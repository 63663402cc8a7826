"""Build an ONNX graph equivalent to a parsed dlib network (see :mod:`.dlib_format`).

The graph takes what the engine's :class:`~facematch.engine.embed.Embedder`
receives: RGB chips ``[n, 150, 150, 3]`` uint8, with a dynamic batch dimension,
and returns the 128-d descriptors ``[n, 128]``. dlib's input normalisation,
``(pixel - avg) / 256`` per channel, is done inside the graph exactly as dlib
does it in float32.

Each ``affine_`` layer (dlib's inference form of batch norm) follows a
convolution; it is folded into that convolution's weights and bias (computed
in float64, stored as float32), which removes 29 elementwise passes.

:func:`build_model` makes the graph the embedder runs. The graphs benchmarks and
tests compare it with (float32 input, affine layers left unfolded) come from
:func:`build_experiment`, which nothing in the product calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from facematch.engine.dlib_format import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNetwork,
    FcNoBias,
    MaxPool,
    Relu,
    Skip,
    Tag,
)
from facematch.engine.onnx_graph import GraphBuilder

#: Bump whenever the graph this module produces changes: it is part of the cache key.
CONVERTER_VERSION = 1

OPSET = 17
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


@dataclass
class _Value:
    """A graph value and its static shape (channels, rows, cols) per sample."""

    name: str
    shape: tuple[int, int, int]


_Builder = GraphBuilder


def _pooled(size: int, window: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - window) // stride + 1


def _conv(b: _Builder, x: _Value, layer: Conv, affine: Affine | None) -> _Value:
    weights = layer.weights.astype(np.float64)
    bias = layer.bias.astype(np.float64)
    if affine is not None:
        gamma = affine.gamma.astype(np.float64)
        weights = weights * gamma[:, None, None, None]
        bias = bias * gamma + affine.beta.astype(np.float64)
    out_c, in_c, kh, kw = weights.shape
    if in_c != x.shape[0]:
        raise ValueError(f"conv expects {in_c} channels, input has {x.shape[0]}")
    (sy, sx), (py, px) = layer.stride, layer.padding
    name = b.node(
        "Conv",
        [x.name, b.const("W", weights.astype(np.float32)), b.const("B", bias.astype(np.float32))],
        "conv",
        kernel_shape=[kh, kw],
        strides=[sy, sx],
        pads=[py, px, py, px],
    )
    return _Value(name, (out_c, _pooled(x.shape[1], kh, sy, py), _pooled(x.shape[2], kw, sx, px)))


def _affine(b: _Builder, x: _Value, layer: Affine) -> _Value:
    gamma = b.const("gamma", layer.gamma.astype(np.float32).reshape(1, -1, 1, 1))
    beta = b.const("beta", layer.beta.astype(np.float32).reshape(1, -1, 1, 1))
    scaled = b.node("Mul", [x.name, gamma], "affine_mul")
    return _Value(b.node("Add", [scaled, beta], "affine_add"), x.shape)


def _pool(b: _Builder, x: _Value, layer: MaxPool | AvgPool) -> _Value:
    (wy, wx), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
    if isinstance(layer, AvgPool) and (wy, wx) == (0, 0):
        return _Value(b.node("GlobalAveragePool", [x.name], "gap"), (x.shape[0], 1, 1))
    op = "MaxPool" if isinstance(layer, MaxPool) else "AveragePool"
    name = b.node(op, [x.name], op.lower(), kernel_shape=[wy, wx], strides=[sy, sx],
                  pads=[py, px, py, px])  # fmt: skip
    shape = (x.shape[0], _pooled(x.shape[1], wy, sy, py), _pooled(x.shape[2], wx, sx, px))
    return _Value(name, shape)


def _pad_to(b: _Builder, x: _Value, shape: tuple[int, int, int]) -> str:
    """dlib adds tensors of different sizes as if each were zero-padded at the end."""
    extra = [t - s for t, s in zip(shape, x.shape, strict=True)]
    if not any(extra):
        return x.name
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)  # begin(n,c,h,w), end(n,c,h,w)
    return b.node("Pad", [x.name, b.const("pads", pads)], "pad", mode="constant")


def _add_prev(b: _Builder, x: _Value, other: _Value) -> _Value:
    channels, rows, cols = (max(p, q) for p, q in zip(x.shape, other.shape, strict=True))
    shape = (channels, rows, cols)
    name = b.node("Add", [_pad_to(b, x, shape), _pad_to(b, other, shape)], "add_prev")
    return _Value(name, shape)


def build_model(net: DlibNetwork) -> onnx.ModelProto:
    """The ONNX model computing ``net``'s descriptor for NHWC RGB uint8 chips."""
    return build_experiment(net)


def build_experiment(
    net: DlibNetwork, *, input_dtype: str = "uint8", fold_affine: bool = True
) -> onnx.ModelProto:
    """:func:`build_model` with the converter's choices open, for benchmarks and tests:
    ``input_dtype="float32"`` takes the same 0..255 values as float32,
    ``fold_affine=False`` keeps each affine layer as its own Mul/Add."""
    if input_dtype not in ("uint8", "float32"):
        raise ValueError("input_dtype must be 'uint8' or 'float32'")
    rows, cols = net.input.rows, net.input.cols
    b = _Builder()

    # NHWC -> NCHW, then dlib's normalisation: (pixel - avg) / 256, in float32.
    x = b.node("Transpose", [INPUT_NAME], "nchw", perm=[0, 3, 1, 2])
    if input_dtype == "uint8":
        x = b.node("Cast", [x], "float", to=TensorProto.FLOAT)
    avg = np.asarray(net.input.avg_rgb, np.float32).reshape(1, 3, 1, 1)
    x = b.node("Sub", [x, b.const("avg_rgb", avg)], "centered")
    x = b.node("Mul", [x, b.const("inv256", np.asarray(1 / 256, np.float32))], "normalized")
    current = _Value(x, (3, rows, cols))

    tags: dict[int, _Value] = {}
    layers = net.layers
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, Conv):
            affine = following if fold_affine and isinstance(following, Affine) else None
            current = _conv(b, current, layer, affine)
            index += 1 if affine is not None else 0
        elif isinstance(layer, Affine):
            current = _affine(b, current, layer)
        elif isinstance(layer, Relu):
            current = _Value(b.node("Relu", [current.name], "relu"), current.shape)
        elif isinstance(layer, MaxPool | AvgPool):
            current = _pool(b, current, layer)
        elif isinstance(layer, Tag):
            tags[layer.tag_id] = current
        elif isinstance(layer, Skip):
            current = tags[layer.tag_id]
        elif isinstance(layer, AddPrev):
            current = _add_prev(b, current, tags[layer.tag_id])
        elif isinstance(layer, FcNoBias):
            flat = b.node("Flatten", [current.name], "flatten", axis=1)
            inputs = current.shape[0] * current.shape[1] * current.shape[2]
            if inputs != layer.weights.shape[0]:
                raise ValueError(f"fc expects {layer.weights.shape[0]} inputs, got {inputs}")
            weights = b.const("fc_W", layer.weights.astype(np.float32))
            b.nodes.append(helper.make_node("MatMul", [flat, weights], [OUTPUT_NAME], name="fc"))
            current = _Value(OUTPUT_NAME, (layer.weights.shape[1], 1, 1))
        else:
            raise TypeError(f"unsupported layer {type(layer).__name__}")
        index += 1

    if current.name != OUTPUT_NAME:
        raise ValueError("the network does not end with its fc layer")
    elem = TensorProto.UINT8 if input_dtype == "uint8" else TensorProto.FLOAT
    graph = helper.make_graph(
        b.nodes,
        "dlib_resnet_v1",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", rows, cols, 3])],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["batch", current.shape[0]]
            )
        ],
        b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facematch",
        producer_version=str(CONVERTER_VERSION),
    )
    model.ir_version = 8  # readable by every onnxruntime this project supports
    onnx.checker.check_model(model)
    return model
