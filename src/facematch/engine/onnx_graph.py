"""A small ONNX graph builder shared by the in-house converters.

Both converters (dlib's ResNet in :mod:`facematch.engine.onnx_convert`,
BlazeFace in :mod:`facematch.engine.tflite_convert`) emit nodes and constant
initializers one at a time; this gives every value a unique name so the
converters only say what to compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["GraphBuilder"]


@dataclass
class GraphBuilder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _counter: int = 0

    def fresh(self, stem: str) -> str:
        """A value name not used before in this graph."""
        self._counter += 1
        return f"{stem}_{self._counter}"

    def const(self, stem: str, array: np.ndarray | np.generic) -> str:
        name = self.fresh(stem)
        # A numpy scalar (np.float32(6)) becomes a 0-d tensor, as ONNX broadcasting wants.
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        """Append one single-output node; its output's name."""
        out = self.fresh(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out
