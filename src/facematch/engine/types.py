"""Plain result types the engine returns. No dlib or PIL types ever leak out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from facematch.engine.quality import FaceQuality


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in pixels of the upright image (EXIF orientation applied).

    ``right`` and ``bottom`` are exclusive, so ``width_px = right - left``.
    """

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width_px(self) -> int:
        return self.right - self.left

    @property
    def height_px(self) -> int:
        return self.bottom - self.top

    def as_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}


@dataclass(frozen=True)
class FaceObservation:
    """The one face found in an image, with its descriptor.

    ``embedding`` is a float32 vector of 128 values produced by ``model_id``;
    descriptors of different models must never be compared.
    ``rotation_deg`` is the clockwise rotation that had to be applied to the
    upright image (EXIF orientation applied) for the face to be found (0, 90,
    180 or 270). ``box_px`` and ``image_size_px`` are both in full-resolution
    pixels of that upright image after ``rotation_deg`` is applied (not of a
    reduced decoding), so for 90 and 270 width and height are swapped relative
    to the file.
    """

    box_px: FaceBox
    detector_score: float
    rotation_deg: int
    image_size_px: tuple[int, int]  # (width, height), full resolution, rotated by rotation_deg
    embedding: np.ndarray = field(repr=False)
    model_id: str = ""
    quality: FaceQuality | None = None  # the measures the quality rule was applied to


@dataclass(frozen=True)
class MatchResult:
    """The outcome of comparing two faces."""

    is_similar: bool
    confidence: float  # calibrated P(same identity), in [0, 1]
    distance: float  # Euclidean distance between descriptors
    threshold: float  # distance threshold that produced ``is_similar``
    model_id: str
    first: FaceObservation | None = None
    second: FaceObservation | None = None
