"""Engine variants that exist for evaluation and benchmarks, never for verification.

The production constructors take no experiment knobs: a matcher built from
settings always applies the one-face rule and the chosen coarse pass. The
variants below reach the same code through subclasses that change the class
attributes the detectors read (docs/architecture.md, "Library surface and
evaluation"):

* :func:`largest_face_detector`: the detector taking the largest face instead of
  refusing photos with several faces (``facematch eval lfw --largest-face``:
  recognition measured without the one-face policy);
* :class:`CoarsePassVariant`: the HOG detector with another coarse pass
  (bench/stages.py measures the rejected 320 px / margin 1.0 pass; tests compare
  the shipped pass with the whole pyramid).
"""

from __future__ import annotations

from facematch.engine.blazeface import BlazeFaceDetector
from facematch.engine.detect import FaceDetector, VisibilityRule

__all__ = [
    "CoarsePassVariant",
    "LargestFaceBlazeFace",
    "LargestFaceDetector",
    "largest_face_detector",
]


class LargestFaceDetector(FaceDetector):
    """The HOG detector without the one-face rule: the largest face is taken."""

    refuse_multiple_faces = False


class LargestFaceBlazeFace(BlazeFaceDetector):
    """BlazeFace without the one-face rule: the largest face is taken."""

    refuse_multiple_faces = False


def largest_face_detector(name: str, *, min_face_px: int = 40) -> FaceDetector | BlazeFaceDetector:
    """The detector ``Settings.detector`` names, taking the largest face of a photo."""
    if name == "hog":
        return LargestFaceDetector(min_face_px=min_face_px)
    if name == "blazeface":
        return LargestFaceBlazeFace(min_face_px=min_face_px)
    raise ValueError(f"unknown detector {name!r}")


class CoarsePassVariant(FaceDetector):
    """The HOG detector with its coarse pass tuned otherwise (same soundness checks)."""

    def __init__(
        self,
        *,
        coarse_work_side_px: int | None = None,
        coarse_margin: float | None = None,
        coarse_skip_levels: int | None = None,
        min_face_px: int = 40,
        visibility: VisibilityRule | None = None,
    ) -> None:
        # Instance attributes shadow the class's before FaceDetector checks them.
        if coarse_work_side_px is not None:
            self.coarse_work_side_px = coarse_work_side_px
        if coarse_margin is not None:
            self.coarse_margin = coarse_margin
        if coarse_skip_levels is not None:
            self.coarse_skip_levels = coarse_skip_levels
        super().__init__(min_face_px=min_face_px, visibility=visibility)
