"""The shape envelope (engine/envelope.py): no client image reaches dlib outside it.

Shapes outside it once made dlib's HOG detector write out of bounds and abort
the process, so those cases run in a child process under glibc's heap checker:
the suite survives code that still crashes, and the child's exit status says
which way it went.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.engine.detect import FaceDetector
from facematch.engine.envelope import (
    MAX_ASPECT_RATIO,
    MAX_IMAGE_SIDE_PX,
    MAX_NATIVE_SIDE_PX,
    check_image_shape,
    check_native_input,
)
from facematch.engine.errors import ImageError, ImageShapeError, TooManyPixelsError
from facematch.engine.images import ImageLimits, decode_image
from facematch.engine.matcher import DECODE_MAX_SIDE_PX

MALLOC_DEBUG_LIB = Path("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")
REFUSED = 3  # the child's exit status for ImageShapeError
# The issue's case: a flat 70000×64 PNG of 13 KB; tall, it reaches dlib through the
# rotation retry. Decoded by the intake, then given to the detector as the matcher does.
CHILD = f"""
import io, sys
from PIL import Image
from facematch.engine.detect import FaceDetector
from facematch.engine.images import decode_image
width, height, through_intake = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
buffer = io.BytesIO()
Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, "PNG")
try:
    if through_intake:
        decoded = decode_image(buffer.getvalue(), max_side_px=1280)
        pixels, scale = decoded.pixels, decoded.scale
    else:  # straight to the detector, as a detector of another origin would be fed
        import numpy as np
        pixels, scale = np.asarray(Image.open(buffer).convert("RGB")), 1.0
    FaceDetector().detect(pixels, scale=scale)
except Exception as exc:  # by name: the child also runs on code without the class
    sys.exit({REFUSED} if type(exc).__name__ == "ImageShapeError" else 1)
"""


def _encode(width: int, height: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("through_intake", [True, False], ids=["intake", "detector"])
@pytest.mark.parametrize("size", [(70000, 64), (64, 70000)], ids=["wide", "tall"])
def test_shapes_that_corrupted_dlib_are_refused_not_crashing(
    size: tuple[int, int], through_intake: bool
) -> None:
    env = dict(os.environ, MALLOC_CHECK_="3")
    if MALLOC_DEBUG_LIB.exists():  # glibc >= 2.34 keeps the heap checker here
        env["LD_PRELOAD"] = str(MALLOC_DEBUG_LIB)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(size[0]), str(size[1]), str(int(through_intake))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == REFUSED, (
        f"exit {done.returncode} (negative: killed by that signal)\n{done.stderr[-2000:]}"
    )


def test_issue_png_is_refused_from_its_header() -> None:
    data = _encode(70000, 64, "PNG")
    assert len(data) < 16 * 1024
    with pytest.raises(ImageShapeError, match="longer side"):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(
    ("size", "accepted"),
    [
        ((256, 64), True),
        ((257, 64), False),
        ((64, 256), True),
        ((64, 257), False),
        ((1000, 250), True),
        ((1001, 250), False),
    ],
)
def test_aspect_ratio_edge(fmt: str, size: tuple[int, int], accepted: bool) -> None:
    data = _encode(*size, fmt)
    if not accepted:
        with pytest.raises(ImageShapeError, match="factor"):
            decode_image(data, max_side_px=DECODE_MAX_SIDE_PX)
        return
    decoded = decode_image(data, max_side_px=DECODE_MAX_SIDE_PX)
    assert decoded.original_size_px == size
    # What the intake accepts, the detector takes, at every rotation (no face here).
    assert FaceDetector().detect(decoded.pixels, scale=decoded.scale) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "size", "error"),
    [
        # JPEG: the side limit is reachable inside the area limit (40 MP).
        ("JPEG", (MAX_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX // 4), None),
        ("JPEG", (MAX_IMAGE_SIDE_PX + 1, MAX_IMAGE_SIDE_PX // 4 + 1), ImageShapeError),
        ("JPEG", (MAX_IMAGE_SIDE_PX // 4 + 1, MAX_IMAGE_SIDE_PX + 1), ImageShapeError),
        # PNG and WebP: their area limit (16 MP) at the widest aspect comes first.
        ("PNG", (8000, 2000), None),
        ("PNG", (8000, 2001), TooManyPixelsError),
        ("WEBP", (2000, 8000), None),
        ("WEBP", (2001, 8000), TooManyPixelsError),
    ],
)
def test_longest_accepted_images_edge(
    fmt: str, size: tuple[int, int], error: type[ImageError] | None
) -> None:
    data = _encode(*size, fmt)
    if error is not None:
        with pytest.raises(error):
            decode_image(data, max_side_px=DECODE_MAX_SIDE_PX)
        return
    decoded = decode_image(data, max_side_px=DECODE_MAX_SIDE_PX)
    assert decoded.original_size_px == size
    assert max(decoded.pixels.shape[:2]) < 2 * DECODE_MAX_SIDE_PX  # reduced for the detector
    assert FaceDetector().detect(decoded.pixels, scale=decoded.scale) == []


def test_check_image_shape_edges() -> None:
    check_image_shape(MAX_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX)
    check_image_shape(400, 100)
    for width, height in [(MAX_IMAGE_SIDE_PX + 1, 9000), (401, 100), (100, 401), (0, 64)]:
        with pytest.raises(ImageShapeError):
            check_image_shape(width, height)


def _array(height: int, width: int) -> np.ndarray:
    return np.broadcast_to(np.uint8(0), (height, width, 3))  # no memory behind it


def test_check_native_input_edges() -> None:
    check_native_input(_array(2048, MAX_NATIVE_SIDE_PX))
    check_native_input(_array(100, 402))  # a pixel per side of rounding slack
    check_native_input(_array(64, 256), upsample=2)
    for array, upsample in [
        (_array(2048, MAX_NATIVE_SIDE_PX + 1), 0),
        (_array(MAX_NATIVE_SIDE_PX + 1, 2048), 0),
        (_array(2048 + 1, MAX_NATIVE_SIDE_PX), 0),  # area
        (_array(1024, 4097), 1),  # the size the upsampling builds
        (_array(100, 405), 0),
        (_array(64, 70000), 0),
    ]:
        with pytest.raises(ImageShapeError):
            check_native_input(array, upsample=upsample)
    assert MAX_ASPECT_RATIO * 100 + 2 < 405


def test_detector_guard_runs_before_dlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard refuses before the native call (a call would fail this test)."""
    detector = FaceDetector()

    class NoNative:
        def run(self, *_args: object) -> None:
            raise AssertionError("dlib was called with an array outside the envelope")

    monkeypatch.setattr(detector, "_dlib_detector", NoNative)
    with pytest.raises(ImageShapeError):
        detector.detect(np.full((64, 20000, 3), 128, np.uint8))


def test_limits_object_keeps_full_decode_limit_under_max_pixels() -> None:
    limits = ImageLimits(max_pixels=1_000_000, max_full_decode_pixels=16_000_000)
    assert limits.full_decode_limit == 1_000_000
    with pytest.raises(TooManyPixelsError):
        decode_image(_encode(1001, 1000, "PNG"), limits=limits)
