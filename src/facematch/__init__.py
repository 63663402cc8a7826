"""facematch: self-hosted face verification speaking the Valify Face Match API.

This module is the library's documented entry (docs/engine.md, "Library use"):
:class:`FaceMatcher`, the types its constructor and methods take and return,
and the engine's error tree (its module also as ``facematch.errors``). Everything else
(``facematch.engine.*``, ``facematch.evaluation``, the service) may change
between versions. Imports are lazy so that ``import facematch`` does not load
dlib or onnxruntime.

    >>> from facematch import FaceMatcher
    >>> result = FaceMatcher().match("selfie.jpg", id_card_bytes)  # doctest: +SKIP

An image is bytes, a path (a ``str`` is always a path), ``Base64Image(text)``
or an RGB ``uint8`` array.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Aligner",
    "Base64Image",
    "BlazeFaceDetector",
    "Calibration",
    "CorruptImageError",
    "Embedder",
    "EngineError",
    "FaceBlurredError",
    "FaceBox",
    "FaceDetector",
    "FaceError",
    "FaceMatcher",
    "FaceObservation",
    "FaceOverExposedError",
    "FaceQuality",
    "FaceTooDarkError",
    "FaceTooSmallError",
    "FaceTurnedError",
    "ImageError",
    "ImageInput",
    "ImageLimits",
    "ImageShapeError",
    "ImageTooComplexError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InputError",
    "InvalidBase64Error",
    "MatchResult",
    "ModelError",
    "ModelFormatError",
    "MultipleFacesError",
    "NoFaceError",
    "QualityRule",
    "TooManyPixelsError",
    "UnsupportedImageError",
    "create_embedder",
    "errors",
    "load_calibration",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from facematch.engine import errors
    from facematch.engine.align import Aligner
    from facematch.engine.blazeface import BlazeFaceDetector
    from facematch.engine.detect import FaceDetector
    from facematch.engine.embed import Embedder, create_embedder
    from facematch.engine.errors import (
        CorruptImageError,
        EngineError,
        FaceBlurredError,
        FaceError,
        FaceOverExposedError,
        FaceTooDarkError,
        FaceTooSmallError,
        FaceTurnedError,
        ImageError,
        ImageShapeError,
        ImageTooComplexError,
        ImageTooLargeError,
        ImageTooSmallError,
        InputError,
        InvalidBase64Error,
        ModelError,
        ModelFormatError,
        MultipleFacesError,
        NoFaceError,
        TooManyPixelsError,
        UnsupportedImageError,
    )
    from facematch.engine.images import Base64Image, ImageInput, ImageLimits
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.quality import FaceQuality, QualityRule
    from facematch.engine.scoring import Calibration, load_calibration
    from facematch.engine.types import FaceBox, FaceObservation, MatchResult

# Where each public name lives; the error classes are all in facematch.engine.errors.
_LAZY = {
    "Aligner": "facematch.engine.align",
    "Base64Image": "facematch.engine.images",
    "BlazeFaceDetector": "facematch.engine.blazeface",
    "Calibration": "facematch.engine.scoring",
    "Embedder": "facematch.engine.embed",
    "FaceBox": "facematch.engine.types",
    "FaceDetector": "facematch.engine.detect",
    "FaceMatcher": "facematch.engine.matcher",
    "FaceObservation": "facematch.engine.types",
    "FaceQuality": "facematch.engine.quality",
    "ImageInput": "facematch.engine.images",
    "ImageLimits": "facematch.engine.images",
    "MatchResult": "facematch.engine.types",
    "QualityRule": "facematch.engine.quality",
    "create_embedder": "facematch.engine.embed",
    "load_calibration": "facematch.engine.scoring",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("facematch.engine.errors")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in __all__:  # the error tree
        return getattr(importlib.import_module("facematch.engine.errors"), name)
    raise AttributeError(f"module 'facematch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
