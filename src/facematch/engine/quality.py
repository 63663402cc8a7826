"""Face quality: refuse faces a KYC user should simply photograph again.

Measured on the aligned 150×150 chip (so every face is judged at the same
scale) and the 5 landmarks, after detection found exactly one face:

* ``brightness`` — mean luma (0–255) of the chip's inner face square;
* ``clipped`` — share of that square's pixels at luma >= 250 (blown highlights);
* ``sharpness`` — standard deviation of the Laplacian of the luma (averaged
  over 2×2 blocks first, so JPEG and 8-bit rounding noise do not pass for
  detail) divided by that luma's own standard deviation: detail relative to
  contrast, so a dim but sharp face is not called blurred;
* ``yaw`` — where the nose sits between the eyes: the offset of the nose tip
  from the eyes' midpoint along the eye axis, in inter-eye distances (0 facing
  the camera, about ±0.5 in profile).

A :class:`QualityRule` turns them into typed refusals (too dark, over-exposed,
blurred, turned away). Its defaults were chosen on LFW View 1 DevTrain and
checked on the KYC-style set (docs/accuracy.md has the figures and the method).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facematch.engine.errors import (
    FaceBlurredError,
    FaceOverExposedError,
    FaceTooDarkError,
    FaceTurnedError,
)

__all__ = ["FaceQuality", "QualityRule", "measure"]

# The chip is the face square plus 25 % padding on each side: 100 px of face
# starting 25 px in (dlib's get_face_chip with padding 0.25, engine/align.py).
_INNER = slice(25, 125)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# Defaults (docs/accuracy.md, "Quality refusals").
MIN_BRIGHTNESS = 18.0
MAX_CLIPPED = 0.25
MIN_SHARPNESS = 0.15
MAX_YAW = 0.6


@dataclass(frozen=True)
class FaceQuality:
    brightness: float
    clipped: float
    sharpness: float
    yaw: float

    def as_dict(self) -> dict[str, float]:
        return {
            "brightness": round(self.brightness, 2),
            "clipped": round(self.clipped, 4),
            "sharpness": round(self.sharpness, 4),
            "yaw": round(self.yaw, 4),
        }


def measure(chip: np.ndarray, landmarks: np.ndarray) -> FaceQuality:
    """Quality measures of an aligned uint8 [150, 150, 3] chip and the landmarks it was
    aligned on ([5, 2] dlib points, or [k >= 3, 2] keypoints: eye, eye, nose first)."""
    luma = chip[_INNER, _INNER].astype(np.float32) @ _LUMA
    side = luma.shape[0] // 2
    coarse = luma.reshape(side, 2, side, 2).mean(axis=(1, 3))
    laplacian = (
        coarse[:-2, 1:-1]
        + coarse[2:, 1:-1]
        + coarse[1:-1, :-2]
        + coarse[1:-1, 2:]
        - 4 * coarse[1:-1, 1:-1]
    )
    contrast = float(coarse.std())
    sharpness = float(laplacian.std()) / contrast if contrast > 1.0 else 0.0
    return FaceQuality(
        brightness=float(luma.mean()),
        clipped=float(np.mean(luma >= 250)),
        sharpness=sharpness,
        yaw=_yaw(landmarks),
    )


def _yaw(landmarks: np.ndarray) -> float:
    """Nose offset from the eyes' midpoint along the eye axis, in eye distances (signed).

    Five points are dlib's 5-point model (0-1 and 2-3 the corners of each eye,
    4 the base of the nose); otherwise the first three are one eye's centre,
    the other's and the nose (a CNN detector's keypoints).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if len(points) == 5:
        eye_a, eye_b, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    else:
        eye_a, eye_b, nose = points[0], points[1], points[2]
    axis = eye_b - eye_a
    span = float(axis @ axis)
    if span < 1e-6:
        return 0.0
    return float((nose - (eye_a + eye_b) / 2) @ axis / span)


@dataclass(frozen=True)
class QualityRule:
    """Limits a face must meet; each breach is its own typed refusal."""

    min_brightness: float = MIN_BRIGHTNESS
    max_clipped: float = MAX_CLIPPED
    min_sharpness: float = MIN_SHARPNESS
    max_yaw: float = MAX_YAW

    def check(self, quality: FaceQuality) -> None:
        """Raise the refusal for the first limit ``quality`` breaks (lighting first:
        a badly lit face also looks blurred and its landmarks are unreliable)."""
        if quality.brightness < self.min_brightness:
            raise FaceTooDarkError(
                f"the face is too dark (brightness {quality.brightness:.0f} < "
                f"{self.min_brightness:.0f})"
            )
        if quality.clipped > self.max_clipped:
            raise FaceOverExposedError(
                f"the face is over-exposed ({quality.clipped:.0%} of it blown out)"
            )
        if quality.sharpness < self.min_sharpness:
            raise FaceBlurredError(
                f"the face is blurred (sharpness {quality.sharpness:.2f} < "
                f"{self.min_sharpness:.2f})"
            )
        if abs(quality.yaw) > self.max_yaw:
            raise FaceTurnedError(
                f"the face is turned away from the camera (yaw {quality.yaw:+.2f})"
            )
