"""The shape envelope: which images the intake accepts and which arrays may reach native code.

dlib's image pyramid, which its HOG detector builds on every call, writes out
of bounds on arrays wider than some 80,000 pixels (the width was measured with
``bench/envelope.py``; tall arrays become wide through the rotation retry, and
small ones through dlib's own upsampling) and the process aborts. Nothing a
client sends may therefore reach dlib (or onnxruntime) unless its shape is
inside this envelope, which holds two checks:

* :func:`check_image_shape`, at intake, from the image header (before any
  pixel is decoded): the longer side and the aspect ratio of the client's image;
* :func:`check_native_input`, called by every detector right before each call
  into native code, on the array it passes (its working copy, at each rotation
  and after the native upsampling the call will do).

Both raise :class:`ImageShapeError`. Every detector must call
:func:`check_native_input`; the limits are here and nowhere else. The figures
behind them and how they were measured: docs/images.md, "Shape envelope".
"""

from __future__ import annotations

import numpy as np

from facematch.engine.errors import ImageShapeError

__all__ = [
    "MAX_ASPECT_RATIO",
    "MAX_IMAGE_SIDE_PX",
    "MAX_NATIVE_PIXELS",
    "MAX_NATIVE_SIDE_PX",
    "check_image_shape",
    "check_native_input",
]

# Longer side of a client's image: a 40 MP photo up to 2.5:1 (20:9 phones
# included), 2.5× Azure Face's 4,096 px.
MAX_IMAGE_SIDE_PX = 10_000
# Longer / shorter side: ID cards are 1.59, phone photos and screenshots up to
# 2.33 (21:9). Beyond 4 no face photo is plausible, and the detector's working
# copy (shorter side <= 720) stays <= 2,880 px long.
MAX_ASPECT_RATIO = 4.0
# Any array handed to native code: ten times under the first width measured to
# corrupt memory (docs/images.md), and above every working copy the intake's
# limits allow (about 3,000 px with the default detector; room for custom ones).
MAX_NATIVE_SIDE_PX = 8192
MAX_NATIVE_PIXELS = 8192 * 2048
# Resizing rounds each side to whole pixels, so a copy of an image at the
# aspect limit may exceed it by up to a pixel per side.
_ROUNDING_SLACK_PX = 2


def check_image_shape(width: int, height: int) -> None:
    """Refuse a client's image whose longer side or aspect ratio is outside the envelope."""
    longer, shorter = max(width, height), min(width, height)
    if longer > MAX_IMAGE_SIDE_PX:
        raise ImageShapeError(
            f"image is {width}×{height} pixels; its longer side may be at most {MAX_IMAGE_SIDE_PX}"
        )
    if shorter <= 0 or longer > MAX_ASPECT_RATIO * shorter:
        raise ImageShapeError(
            f"image is {width}×{height} pixels; its sides may differ by a factor of at most "
            f"{MAX_ASPECT_RATIO:g}"
        )


def check_native_input(array: np.ndarray, *, upsample: int = 0) -> None:
    """Refuse ``array`` (image rows first) before native code works on it.

    ``upsample`` is the number of ×2 steps the native call itself applies
    (dlib's ``upsample_num_times``): the size checked is the one it will build.
    """
    if array.ndim < 2 or upsample < 0:
        raise ValueError(f"expected an image array and upsample >= 0, got {array.shape}")
    height, width = (side * 2**upsample for side in array.shape[:2])
    longer, shorter = max(width, height), min(width, height)
    if (
        shorter <= 0
        or longer > MAX_NATIVE_SIDE_PX
        or width * height > MAX_NATIVE_PIXELS
        or longer > MAX_ASPECT_RATIO * shorter + _ROUNDING_SLACK_PX * 2**upsample
    ):
        raise ImageShapeError(
            f"a {width}×{height} working copy is outside the detector's envelope "
            f"(sides <= {MAX_NATIVE_SIDE_PX}, ratio <= {MAX_ASPECT_RATIO:g})"
        )
