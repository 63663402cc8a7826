"""Reader for the TensorFlow Lite flatbuffer files of MediaPipe's BlazeFace detectors.

Parses one ``.tflite`` file (through the pure-Python ``tflite`` package, the
generated flatbuffer accessors of TFLite's own schema) into plain numpy data:
tensors (name, shape, constant value) and operators (op name, inputs, outputs,
options). Constant subgraphs are folded here, so the graph builder sees only
the layers that run on the image:

* ``DEQUANTIZE`` of an fp16 constant becomes a float32 constant;
* ``DENSIFY`` of a sparse constant (TFLite's CSR/blocked format, used by the
  full-range model) becomes a dense constant.

Only the operators BlazeFace uses are accepted (:data:`SUPPORTED_OPS`); any
other raises :class:`TFLiteFormatError`, so a new model file cannot be
converted silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SUPPORTED_OPS", "Operator", "TFLiteFormatError", "TFLiteGraph", "load_graph"]

# Ops evaluated by the builder (graph ops); the two constant-only ops are folded here.
SUPPORTED_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "RELU",
        "ADD",
        "MAX_POOL_2D",
        "PAD",
        "RESHAPE",
        "CONCATENATION",
        "RESIZE_BILINEAR",
        "DEPTH_TO_SPACE",
    }
)
_FOLDED_OPS = frozenset({"DEQUANTIZE", "DENSIFY"})
_MAX_FILE_BYTES = 16 << 20  # BlazeFace files are 0.2-0.7 MB


class TFLiteFormatError(ValueError):
    """The file is not a TFLite model this reader understands."""


@dataclass(frozen=True)
class Operator:
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    """Subgraph 0 of a model: NHWC float32 tensors, constants already folded."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    constants: dict[int, np.ndarray]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _np_dtype(tensor_type: int) -> np.dtype:
    import tflite

    types = {
        tflite.TensorType.FLOAT32: np.float32,
        tflite.TensorType.FLOAT16: np.float16,
        tflite.TensorType.INT32: np.int32,
        tflite.TensorType.INT64: np.int64,
        tflite.TensorType.UINT8: np.uint8,
        tflite.TensorType.INT8: np.int8,
    }
    if tensor_type not in types:
        raise TFLiteFormatError(f"unsupported tensor type {tensor_type}")
    return np.dtype(types[tensor_type])


def _index_vector(union_type: int, table: Any) -> np.ndarray:
    """A sparse dimension's segments/indices, stored as one of three vector tables."""
    import tflite

    classes = {
        tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
        tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
        tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
    }
    if union_type not in classes or table is None:
        raise TFLiteFormatError(f"unsupported sparse index vector type {union_type}")
    vector = classes[union_type]()
    vector.Init(table.Bytes, table.Pos)
    return np.asarray(vector.ValuesAsNumpy(), dtype=np.int64)


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Any) -> np.ndarray:
    """The dense array a TFLite ``SparsityParameters`` table describes.

    ``values`` holds the stored (non-zero) entries in traversal order. Each
    traversal level is one dimension of the blocked shape (original dimensions,
    then block dimensions); a DENSE level enumerates ``dense_size`` indices, a
    SPARSE_CSR level reads them from its segments/indices vectors.
    """
    import tflite

    rank = len(shape)
    order = [int(v) for v in sparsity.TraversalOrderAsNumpy()]
    block_map = [int(v) for v in sparsity.BlockMapAsNumpy()] if sparsity.BlockMapLength() else []
    levels = [sparsity.DimMetadata(i) for i in range(sparsity.DimMetadataLength())]
    if len(order) != len(levels) or len(order) != rank + len(block_map):
        raise TFLiteFormatError("inconsistent sparsity parameters")
    block_sizes = {
        block_map[i]: levels[order.index(rank + i)].DenseSize() for i in range(len(block_map))
    }
    dense = np.zeros(shape, dtype=values.dtype)
    index = [0] * len(order)  # by blocked dimension

    def visit(level: int, position: int) -> None:
        meta = levels[level]
        dim = order[level]
        if meta.Format() == tflite.DimensionType.DENSE:
            children = [(i, position * meta.DenseSize() + i) for i in range(meta.DenseSize())]
        else:
            segments = _index_vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _index_vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            start, stop = int(segments[position]), int(segments[position + 1])
            children = [(int(indices[i]), i) for i in range(start, stop)]
        for value, child in children:
            index[dim] = value
            if level + 1 == len(order):
                original = list(index[:rank])
                for i, d in enumerate(block_map):
                    original[d] = original[d] * block_sizes[d] + index[rank + i]
                dense[tuple(original)] = values[child]
            else:
                visit(level + 1, child)

    visit(0, 0)
    return dense


def _options(op_name: str, operator: Any) -> dict[str, Any]:
    import tflite

    table = operator.BuiltinOptions()
    readers: dict[str, tuple[Any, tuple[str, ...]]] = {
        "CONV_2D": (
            tflite.Conv2DOptions,
            (
                "Padding",
                "StrideH",
                "StrideW",
                "DilationHFactor",
                "DilationWFactor",
                "FusedActivationFunction",
            ),
        ),
        "DEPTHWISE_CONV_2D": (
            tflite.DepthwiseConv2DOptions,
            (
                "Padding",
                "StrideH",
                "StrideW",
                "DepthMultiplier",
                "DilationHFactor",
                "DilationWFactor",
                "FusedActivationFunction",
            ),
        ),
        "MAX_POOL_2D": (
            tflite.Pool2DOptions,
            (
                "Padding",
                "StrideH",
                "StrideW",
                "FilterHeight",
                "FilterWidth",
                "FusedActivationFunction",
            ),
        ),
        "ADD": (tflite.AddOptions, ("FusedActivationFunction",)),
        "CONCATENATION": (tflite.ConcatenationOptions, ("Axis", "FusedActivationFunction")),
        "RESIZE_BILINEAR": (tflite.ResizeBilinearOptions, ("AlignCorners", "HalfPixelCenters")),
        "DEPTH_TO_SPACE": (tflite.DepthToSpaceOptions, ("BlockSize",)),
    }
    if op_name not in readers or table is None:
        return {}
    cls, fields = readers[op_name]
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return {name: getattr(options, name)() for name in fields}


def load_graph(path: Path) -> TFLiteGraph:
    """Parse ``path`` (subgraph 0), folding constant DEQUANTIZE/DENSIFY."""
    import tflite

    data = path.read_bytes()
    if len(data) > _MAX_FILE_BYTES or data[4:8] != b"TFL3":
        raise TFLiteFormatError(f"{path} is not a TFLite model this reader accepts")
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise TFLiteFormatError("expected exactly one subgraph")
    graph = model.Subgraphs(0)
    names: list[str] = []
    shapes: list[tuple[int, ...]] = []
    constants: dict[int, np.ndarray] = {}
    sparse: dict[int, Any] = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        names.append(tensor.Name().decode("utf-8", "replace"))
        shape = tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        shapes.append(shape)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            continue
        raw = buffer.DataAsNumpy().tobytes()
        values = np.frombuffer(raw, dtype=_np_dtype(tensor.Type())).copy()
        if tensor.Sparsity() is not None:
            sparse[i] = tensor.Sparsity()
            constants[i] = values  # stored entries; densified by its DENSIFY op
        else:
            constants[i] = values.reshape(shape)

    operators: list[Operator] = []
    for i in range(graph.OperatorsLength()):
        operator = graph.Operators(i)
        code = model.OperatorCodes(operator.OpcodeIndex())
        op_name = tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        inputs = tuple(int(v) for v in operator.InputsAsNumpy())
        outputs = tuple(int(v) for v in operator.OutputsAsNumpy())
        if op_name in _FOLDED_OPS:
            (source,) = inputs
            if source not in constants:
                raise TFLiteFormatError(f"{op_name} of a non-constant tensor is not supported")
            value = constants[source]
            if op_name == "DENSIFY":
                if source not in sparse:
                    raise TFLiteFormatError("DENSIFY of a dense tensor")
                value = densify(value, shapes[source], sparse[source])
            else:
                value = value.astype(np.float32).reshape(shapes[outputs[0]])
            constants[outputs[0]] = value
            continue
        if op_name not in SUPPORTED_OPS:
            raise TFLiteFormatError(f"unsupported operator {op_name}")
        operators.append(Operator(op_name, inputs, outputs, _options(op_name, operator)))
    return TFLiteGraph(
        names=names,
        shapes=shapes,
        constants=constants,
        operators=operators,
        inputs=[int(v) for v in graph.InputsAsNumpy()],
        outputs=[int(v) for v in graph.OutputsAsNumpy()],
    )
