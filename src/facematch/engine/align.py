"""Alignment: dlib's 5-point landmarks → the 150×150 chip dlib's ResNet expects.

The chip follows ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``,
the crop the descriptor network was trained on: eyes and nose placed at fixed
positions, 25 % padding around the face.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facematch.engine.chips import CHIP_SIZE_PX
from facematch.engine.errors import ModelError
from facematch.engine.models import shape_predictor_5_path
from facematch.engine.types import FaceBox

if TYPE_CHECKING:
    from PIL import Image

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

    def _shape(self, pixels: np.ndarray, box: FaceBox) -> Any:  # a dlib full_object_detection
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


# --- alignment from detector keypoints (BlazeFace) ------------------------------

# Where dlib's chip puts BlazeFace's right eye, left eye, nose tip and mouth
# centre (chip pixels, 150×150, padding 0.25): the median over LFW View 1
# DevTrain of BlazeFace's keypoints mapped through dlib's own chip transform
# (5-point predictor on the HOG box), so a keypoint chip frames the face as the
# descriptor network was trained to see it (docs/engine.md).
KEYPOINT_TEMPLATE_PX = np.array(
    [[45.77, 46.19], [102.07, 46.84], [73.18, 79.03], [73.09, 107.80]],
    dtype=np.float64,
)
# BlazeFace keypoint indices used (the ears are often hidden or outside the face box).
KEYPOINTS_USED = (0, 1, 2, 3)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift; no reflection)
    mapping ``source`` [k, 2] onto ``target`` [k, 2], as a [2, 3] matrix (Umeyama)."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / src.var(axis=0).sum())
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def keypoint_chip(pixels: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The uint8 [150, 150, 3] chip framed by BlazeFace ``keypoints`` [6, 2] (x, y).

    Bilinear sampling like dlib's; when the face is much larger than the chip
    the region is first shrunk with an area filter, so the chip is not aliased.
    """
    from PIL import Image

    to_chip = similarity_transform(keypoints[list(KEYPOINTS_USED)], KEYPOINT_TEMPLATE_PX)
    full = np.vstack([to_chip, [0.0, 0.0, 1.0]])
    to_image = np.linalg.inv(full)[:2]  # chip pixel → image pixel (pixel centres)
    image = Image.fromarray(pixels)
    shrink = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))  # image px per chip px
    if shrink > 1.5:
        image, to_image = _shrunk_footprint(image, to_image, shrink)
    # PIL samples output pixel i at i + 0.5 and input pixel k lies at k + 0.5;
    # the matrix maps pixel indices, so shift by half a pixel on both sides.
    a, b, c = to_image[0]
    d, e, f = to_image[1]
    data = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    chip = image.transform(
        (CHIP_SIZE_PX, CHIP_SIZE_PX), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR
    )
    return np.ascontiguousarray(np.asarray(chip), dtype=np.uint8)


def _shrunk_footprint(
    image: Image.Image, to_image: np.ndarray, shrink: float
) -> tuple[Image.Image, np.ndarray]:
    """The chip's footprint in ``image`` cropped (zeros outside, as dlib) and shrunk by
    ``shrink`` with an area filter, and the chip → footprint matrix."""
    from PIL import Image

    corners = (
        np.array(
            [
                [0, 0, 1],
                [CHIP_SIZE_PX, 0, 1],
                [0, CHIP_SIZE_PX, 1],
                [CHIP_SIZE_PX, CHIP_SIZE_PX, 1],
            ],
            dtype=np.float64,
        )
        @ to_image.T
    )
    left, top = (int(v) - 2 for v in np.floor(corners.min(axis=0)))
    right, bottom = (int(v) + 2 for v in np.ceil(corners.max(axis=0)))
    size = (max(1, round((right - left) / shrink)), max(1, round((bottom - top) / shrink)))
    footprint = image.crop((left, top, right, bottom)).resize(size, Image.Resampling.BOX)
    fx, fy = (right - left) / size[0], (bottom - top) / size[1]
    # Index x in the image ↔ (x + 0.5 - left) / fx - 0.5 in the footprint.
    row_x = to_image[0] / fx + np.array([0, 0, (0.5 - left) / fx - 0.5])
    row_y = to_image[1] / fy + np.array([0, 0, (0.5 - top) / fy - 0.5])
    return footprint, np.vstack([row_x, row_y])
