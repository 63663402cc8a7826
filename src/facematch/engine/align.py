"""Alignment: dlib's 5-point landmarks → the 150×150 chip dlib's ResNet expects.

The chip follows ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``,
the crop the descriptor network was trained on: eyes and nose placed at fixed
positions, 25 % padding around the face.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from facematch.engine.embed import CHIP_SIZE_PX
from facematch.engine.errors import ModelError
from facematch.engine.models import shape_predictor_5_path
from facematch.engine.types import FaceBox

__all__ = ["CHIP_PADDING", "Aligner"]

CHIP_PADDING = 0.25


class Aligner:
    """Landmarks and face chips. Loads the 5-point model once; thread-safe."""

    def __init__(self, model_path: Path | None = None) -> None:
        import dlib

        path = model_path or shape_predictor_5_path()
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as exc:
            raise ModelError(f"cannot load dlib shape predictor {path}: {exc}") from exc
        self._dlib = dlib
        # The predictor call takes well under a millisecond; a lock is cheaper
        # than proving dlib's object safe for concurrent use.
        self._lock = threading.Lock()

    def _shape(self, pixels: np.ndarray, box: FaceBox):  # type: ignore[no-untyped-def]
        # dlib rectangles have inclusive right/bottom; FaceBox's are exclusive.
        rect = self._dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        with self._lock:
            return self._predictor(pixels, rect)

    def landmarks(self, pixels: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 5 landmarks (eye corners ×4, nose base) as float [5, 2] (x, y)."""
        shape = self._shape(pixels, box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def chip(self, pixels: np.ndarray, box: FaceBox) -> np.ndarray:
        """The aligned uint8 [150, 150, 3] RGB chip of the face in ``box``."""
        return self.chip_and_landmarks(pixels, box)[0]

    def chip_and_landmarks(self, pixels: np.ndarray, box: FaceBox) -> tuple[np.ndarray, np.ndarray]:
        """The chip and the 5 landmarks it was aligned on (one predictor call)."""
        shape = self._shape(pixels, box)
        chip = self._dlib.get_face_chip(pixels, shape, size=CHIP_SIZE_PX, padding=CHIP_PADDING)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        return np.ascontiguousarray(chip, dtype=np.uint8), points
