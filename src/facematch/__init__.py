"""facematch: self-hosted face verification speaking the Valify Face Match API.

The public names are re-exported here; everything else may change. Imports are
lazy so that ``import facematch`` does not load dlib or onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FaceBox", "FaceMatcher", "FaceObservation", "MatchResult", "errors"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from facematch.engine import errors
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.types import FaceBox, FaceObservation, MatchResult

_LAZY = {
    "FaceMatcher": ("facematch.engine.matcher", "FaceMatcher"),
    "FaceBox": ("facematch.engine.types", "FaceBox"),
    "FaceObservation": ("facematch.engine.types", "FaceObservation"),
    "MatchResult": ("facematch.engine.types", "MatchResult"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "errors":
        return importlib.import_module("facematch.engine.errors")
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'facematch' has no attribute {name!r}")
