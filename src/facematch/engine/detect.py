"""Face detection: dlib's HOG frontal detector, run at a working resolution.

dlib's HOG detector slides an 80×80 window over an image pyramid, so at its
native scale it finds faces whose side is about 80 px or more. The detector is
run on a copy scaled so that:

* a face of ``min_face_px`` (original pixels) becomes ~80 px, so the smallest
  face the product accepts is found (scale up small images), but
* the working copy's smaller side never exceeds ``max_work_side_px``, so large
  photos cost a bounded, small amount (scale down large images).

A cheap coarse pass (smaller side <= 480 px, started two levels down dlib's
own pyramid) runs first; when it finds a face big enough that no face that
could count beside it can have been missed, its result stands (most selfies
and ID photos). Scaling up by exactly 2 or 4 uses
dlib's own ``upsample`` (its pyramid-up, the way the detector was meant to be
used); other factors use a bilinear resize.
Boxes are mapped back to the coordinates of the array that was passed in.

When no face is found the image is rotated by 90, 270 and 180 degrees
(clockwise), in that order, and detection is tried again; the first rotation
with a face wins. See docs/engine.md for the "exactly one visible face" rule
(:class:`VisibilityRule`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from facematch.engine.envelope import check_native_input
from facematch.engine.errors import FaceTooSmallError, MultipleFacesError, NoFaceError
from facematch.engine.types import FaceBox

__all__ = [
    "HOG_WINDOW_PX",
    "Detection",
    "FaceDetector",
    "VisibilityRule",
    "rotate",
    "select_single_face",
]

# Side of dlib's HOG detection window: the smallest face found without upsampling.
HOG_WINDOW_PX = 80
# Clockwise rotations tried, in order. 90 and 270 first: phones store sideways
# photos far more often than upside-down ones.
ROTATIONS_DEG = (0, 90, 270, 180)
# The "exactly one visible face" rule (docs/engine.md has the measurements).
# A face other than the candidate is visible only when it is all three:
# * at least this fraction of the candidate's box side. HOG boxes of one image
#   come in pyramid steps of 5/6: one step smaller is 0.83, two steps 0.69.
#   Two people side by side measure 0.83-1.0 of each other and must count;
#   an ID card's ghost image (0.3-0.5) must not. 0.75 sits midway between one
#   and two steps, so box rounding cannot flip a face across it (0.7 would
#   split two-step faces measured as 0.69 and 0.70);
SECONDARY_FACE_RATIO = 0.75
# * scored at least this by the HOG detector (its margin; nearly every main
#   face of LFW View 1 scores higher, docs/engine.md). Weaker detections are
#   turned, blurred or false faces;
SECONDARY_MIN_SCORE = 0.5
# * inside the frame: each side of its box at more than this fraction of the
#   box side from the image border. dlib's boxes are tight (brows to chin), so
#   a box that close to the edge belongs to a head the frame cuts through:
#   a bystander at the edge of a selfie, a neighbour in a cropped press photo.
BORDER_MARGIN = 0.1
# Upper bound on the working copy's smaller side (720 → 960×720 for a 4:3
# photo: a bounded HOG cost, docs/performance.md; faces from 11 % of the
# smaller side up).
MAX_WORK_SIDE_PX = 720
# A cheap first pass at this smaller side (never upscaled; 640×480 for a 4:3
# photo, well under half the full pass's HOG time) settles the common case
# of one big face. It is trusted only when its candidate face is inside the
# frame and at least COARSE_MARGIN × HOG_WINDOW_PX / secondary ratio there:
# then a face of that ratio is still >= 1.5 × the HOG window and would have
# been found too. Otherwise the full pass runs. A smaller side of 320 with a
# margin of 1.0 (still >= 1 × the window) is cheaper but moves boxes and
# refusals and loses accuracy on 640×480 photos (docs/engine.md; its cost and
# the others of these constants: docs/performance.md, "Figures behind the
# engine's constants").
COARSE_WORK_SIDE_PX = 480
COARSE_MARGIN = 1.5  # COARSE_ACCEPT_PX = 1.5 × 80 / 0.75 = 160 px by default
# The coarse pass only needs faces that could count beside a trusted candidate
# (>= 0.75 × 160 = 120 px), yet dlib spends two thirds of its HOG time on the
# two largest levels of its pyramid, which find faces of 80-115 px. So the
# coarse pass starts this many levels down the detector's own pyramid
# (dlib.pyramid_down(6) applied to the image: the very images the detector
# would build) and maps each box back as the detector would have: same
# features, scores and boxes as the whole coarse pass for every face it finds,
# for much less work. Sound while COARSE_MARGIN >= (6/5) ** levels (1.44 here).
COARSE_SKIP_LEVELS = 2
# dlib's frontal detector scans a pyramid_down<6> pyramid: each level 5/6 of the last.
PYRAMID_RATE = 6
# Side (right - left) of the detector's box in the pyramid level that found it;
# how a box tells its level, to be mapped back exactly (docs/engine.md).
LEVEL_BOX_PX = 72.0
LEVEL_BOX_TOLERANCE_PX = 3.0


@dataclass(frozen=True)
class Detection:
    """One face found by the detector.

    ``box`` is in pixels of the array given to the detector, after rotating it
    clockwise by ``rotation_deg``; ``frame_px`` is that rotated array's
    ``(width, height)``; ``score`` is the detector's confidence (HOG: its
    margin, > 0; BlazeFace: a probability); higher means more face-like.
    ``keypoints`` (BlazeFace only) are the eyes, nose tip, mouth and ears as
    ``(x, y)`` in the same frame as ``box``; None from the HOG detector.
    """

    box: FaceBox
    score: float
    rotation_deg: int
    frame_px: tuple[int, int]
    keypoints: tuple[tuple[float, float], ...] | None = None

    @property
    def side_px(self) -> int:
        return max(self.box.width_px, self.box.height_px)


def rotate(pixels: np.ndarray, rotation_deg: int) -> np.ndarray:
    """The image rotated clockwise by ``rotation_deg`` (a multiple of 90)."""
    if rotation_deg % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation_deg}")
    quarter_turns = (rotation_deg // 90) % 4
    if quarter_turns == 0:
        return pixels
    # np.rot90 turns counter-clockwise for positive k.
    return np.ascontiguousarray(np.rot90(pixels, k=-quarter_turns))


@dataclass(frozen=True)
class VisibilityRule:
    """When a face other than the candidate counts as visible (see the constants above)."""

    min_side_ratio: float = SECONDARY_FACE_RATIO
    min_score: float = SECONDARY_MIN_SCORE
    border_margin: float = BORDER_MARGIN

    def __post_init__(self) -> None:
        if not 0 < self.min_side_ratio <= 1:
            raise ValueError("min_side_ratio must be in (0, 1]")
        if self.border_margin < 0:
            raise ValueError("border_margin must be >= 0")

    def in_frame(self, face: Detection) -> bool:
        """The box keeps more than ``border_margin`` × its side from every image border."""
        margin = self.border_margin * face.side_px
        width, height = face.frame_px
        box = face.box
        return min(box.left, box.top, width - box.right, height - box.bottom) > margin

    def candidate(self, faces: list[Detection]) -> Detection:
        """The largest face inside the frame; the largest of all if none is inside."""
        ordered = sorted(faces, key=lambda d: (d.side_px, d.score), reverse=True)
        return next((d for d in ordered if self.in_frame(d)), ordered[0])

    def visible_besides(self, candidate: Detection, faces: list[Detection]) -> list[Detection]:
        """The other faces that count as visible next to ``candidate``."""
        return [
            d
            for d in faces
            if d is not candidate
            and d.side_px >= self.min_side_ratio * candidate.side_px
            and d.score >= self.min_score
            and self.in_frame(d)
        ]


@dataclass(frozen=True)
class _WorkingScale:
    upsample: int  # dlib pyramid-up steps (each ×2)
    resize: float  # bilinear resize factor applied before, 1.0 for none

    @property
    def factor(self) -> float:
        return self.resize * (2**self.upsample)


def working_scale(
    height: int, width: int, *, min_face_px: float, max_work_side_px: int
) -> _WorkingScale:
    """How to scale an image of this size for detection (see module docstring)."""
    wanted = min(HOG_WINDOW_PX / min_face_px, max_work_side_px / min(height, width))
    if wanted >= 2:
        # Powers of two via dlib's pyramid; at most ×4 (a 40 px face needs ×2).
        steps = min(int(math.log2(wanted)), 2)
        return _WorkingScale(upsample=steps, resize=1.0)
    if 0.95 <= wanted <= 1.05:
        return _WorkingScale(upsample=0, resize=1.0)  # not worth a resize
    return _WorkingScale(upsample=0, resize=wanted)


def _resize(pixels: np.ndarray, factor: float) -> np.ndarray:
    height, width = pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = Image.fromarray(pixels)
    # reducing_gap: box-reduce first when shrinking a lot (fast, alias-free).
    resized = image.resize(
        size, Image.Resampling.BILINEAR, reducing_gap=2.0 if factor < 1 else None
    )
    return np.asarray(resized)


class FaceDetector:
    """dlib's HOG frontal face detector with scaling, rotation retry and the one-face rule.

    Thread-safe: each thread gets its own dlib detector object (cheap to build;
    dlib does not document its detector as safe for concurrent calls).
    """

    #: Appended to the embedder's model id by the matcher: descriptors of another
    #: detection/alignment pipeline differ and must not be compared. Empty for
    #: this, the pipeline the shipped calibration and stored references came from.
    pipeline_id = ""
    #: How the matcher aligns this detector's faces: dlib's 5-point predictor on the box.
    alignment = "dlib5"

    #: The "exactly one visible face" rule is applied. Evaluation's largest-face
    #: diagnostic (facematch.evaluation.variants) subclasses with False; verification
    #: never turns it off, so it is no constructor argument.
    refuse_multiple_faces = True
    #: The coarse pass (see the constants). Class attributes, not arguments: other
    #: values are rejected experiments, reproduced by facematch.evaluation.variants.
    coarse_work_side_px = COARSE_WORK_SIDE_PX
    coarse_margin = COARSE_MARGIN
    coarse_skip_levels = COARSE_SKIP_LEVELS

    def __init__(
        self,
        *,
        min_face_px: int = 40,
        max_work_side_px: int = MAX_WORK_SIDE_PX,
        visibility: VisibilityRule | None = None,
    ) -> None:
        """A ``coarse_margin`` below ``(6/5) ** coarse_skip_levels`` (1 without skipped
        levels) would make the coarse pass unsound and is refused."""
        if min_face_px <= 0 or max_work_side_px < HOG_WINDOW_PX:
            raise ValueError("min_face_px must be > 0 and max_work_side_px >= 80")
        if self.coarse_skip_levels < 0 or self.coarse_work_side_px < HOG_WINDOW_PX:
            raise ValueError("coarse_skip_levels must be >= 0 and coarse_work_side_px >= 80")
        if self.coarse_margin < (PYRAMID_RATE / (PYRAMID_RATE - 1)) ** self.coarse_skip_levels:
            raise ValueError(
                "coarse_margin must be >= (6/5) ** coarse_skip_levels: the faces the coarse "
                "pass cannot see must be too small to count"
            )
        self.min_face_px = min_face_px
        self.max_work_side_px = max_work_side_px
        self.visibility = visibility if visibility is not None else VisibilityRule()
        self._coarse_accept_px = self.coarse_margin * HOG_WINDOW_PX / self.visibility.min_side_ratio
        self._local = threading.local()

    def _dlib_detector(self) -> Any:  # dlib ships no type stubs
        detector = getattr(self._local, "detector", None)
        if detector is None:
            import dlib

            detector = dlib.get_frontal_face_detector()
            self._local.detector = detector
        return detector

    def detect_upright(self, pixels: np.ndarray, *, scale: float = 1.0) -> list[Detection]:
        """Every face in ``pixels`` as given (no rotation), largest first.

        ``scale`` is pixels per original pixel (``DecodedImage.scale``), so that
        ``min_face_px`` is honoured in original pixels.
        """
        return self._detect(pixels, scale=scale, rotation_deg=0)

    def detect(self, pixels: np.ndarray, *, scale: float = 1.0) -> list[Detection]:
        """Faces at the first rotation (0, 90, 270, 180) that has any; [] if none has."""
        for rotation_deg in ROTATIONS_DEG:
            found = self._detect(
                rotate(pixels, rotation_deg), scale=scale, rotation_deg=rotation_deg
            )
            if found:
                return found
        return []

    def detect_one(self, pixels: np.ndarray, *, scale: float = 1.0) -> Detection:
        """The single visible face, or a :class:`FaceError` saying why there is none."""
        return select_single_face(
            self.detect(pixels, scale=scale),
            min_face_px=self.min_face_px,
            scale=scale,
            visibility=self.visibility if self.refuse_multiple_faces else None,
        )

    def _detect(self, pixels: np.ndarray, *, scale: float, rotation_deg: int) -> list[Detection]:
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"pixels must be uint8 [h, w, 3], got {pixels.dtype} {pixels.shape}")
        height, width = pixels.shape[:2]
        fine = working_scale(
            height,
            width,
            min_face_px=self.min_face_px * scale,
            max_work_side_px=self.max_work_side_px,
        )
        coarse = _WorkingScale(
            upsample=0, resize=min(1.0, self.coarse_work_side_px / min(height, width))
        )
        if coarse.factor < 0.8 * fine.factor:
            found = self._run_coarse(pixels, coarse, rotation_deg)
            # Complete when the candidate is inside the frame and so big that
            # any face that could count next to it (>= secondary ratio) is also
            # well above the HOG window at this scale, so the coarse pass cannot
            # have missed it (nor a bigger in-frame face that would be the
            # candidate instead).
            if found:
                candidate = self.visibility.candidate(found)
                if (
                    self.visibility.in_frame(candidate)
                    and candidate.side_px * coarse.factor >= self._coarse_accept_px
                ):
                    return found
        return self._run(pixels, fine, rotation_deg)

    def _run_coarse(
        self, pixels: np.ndarray, plan: _WorkingScale, rotation_deg: int
    ) -> list[Detection]:
        """The coarse pass, started ``coarse_skip_levels`` down dlib's pyramid; the
        whole pass when a box's level cannot be recognised (never seen on LFW)."""
        if self.coarse_skip_levels == 0:
            return self._run(pixels, plan, rotation_deg)
        import dlib

        pyramid = dlib.pyramid_down(PYRAMID_RATE)
        work = _resize(pixels, plan.resize) if plan.resize != 1.0 else pixels
        check_native_input(work)
        for _ in range(self.coarse_skip_levels):
            work = pyramid(work)
        rects, scores = self._dlib_run(work, 0)
        lifted = [_box_before_skipping(pyramid, rect, self.coarse_skip_levels) for rect in rects]
        if any(rect is None for rect in lifted):
            return self._run(pixels, plan, rotation_deg)
        return self._detections(pixels, lifted, scores, plan.resize, rotation_deg)

    def _dlib_run(self, work: np.ndarray, upsample: int) -> tuple[list[Any], list[float]]:
        check_native_input(work, upsample=upsample)
        try:
            rects, scores, _ = self._dlib_detector().run(work, upsample, 0.0)
        except RuntimeError as exc:  # dlib reports image-format problems this way
            raise ValueError(f"dlib could not run the detector: {exc}") from exc
        return list(rects), list(scores)

    def _run(self, pixels: np.ndarray, plan: _WorkingScale, rotation_deg: int) -> list[Detection]:
        work = _resize(pixels, plan.resize) if plan.resize != 1.0 else pixels
        rects, scores = self._dlib_run(work, plan.upsample)
        # dlib maps upsampled boxes back itself; only the resize is ours to undo.
        return self._detections(pixels, rects, scores, plan.resize, rotation_deg)

    def _detections(
        self,
        pixels: np.ndarray,
        rects: list[Any],  # dlib.rectangle
        scores: list[float],
        resize: float,
        rotation_deg: int,
    ) -> list[Detection]:
        height, width = pixels.shape[:2]
        back = 1.0 / resize
        found = []
        for rect, score in zip(rects, scores, strict=True):
            box = FaceBox(
                left=max(0, round(rect.left() * back)),
                top=max(0, round(rect.top() * back)),
                right=min(width, round((rect.right() + 1) * back)),  # dlib's right is inclusive
                bottom=min(height, round((rect.bottom() + 1) * back)),
            )
            if box.width_px > 0 and box.height_px > 0:
                found.append(
                    Detection(
                        box=box,
                        score=float(score),
                        rotation_deg=rotation_deg,
                        frame_px=(width, height),
                    )
                )
        found.sort(key=lambda d: (d.side_px, d.score), reverse=True)
        return found


def _corners(rect: Any) -> tuple[int, int, int, int]:
    return rect.left(), rect.top(), rect.right(), rect.bottom()


def _box_before_skipping(pyramid: Any, rect: Any, levels: int) -> Any | None:
    """The box dlib's detector reports for ``rect`` when run on the image ``levels``
    pyramid steps up, or None when the level ``rect`` was found at is not recognised.

    dlib maps a window found at pyramid level L back with one ``rect_up(r, L)``,
    rounding once; mapping the already-rounded box up ``levels`` more would
    round twice and move edges by a pixel. So the window ``r`` is recovered
    first: L is the level where the box measures the detector's window, and
    ``r`` must map exactly onto ``rect``.
    """
    import dlib

    as_float = dlib.drectangle(rect.left(), rect.top(), rect.right(), rect.bottom())
    for level in range(32):
        at_level = pyramid.rect_down(as_float, level)
        side = at_level.right() - at_level.left()
        if side < LEVEL_BOX_PX - LEVEL_BOX_TOLERANCE_PX:
            return None
        if side > LEVEL_BOX_PX + LEVEL_BOX_TOLERANCE_PX:
            continue
        # dlib rounds half up (floor(x + 0.5)) when it makes integer points.
        left, top, right, bottom = (
            math.floor(v + 0.5)
            for v in (at_level.left(), at_level.top(), at_level.right(), at_level.bottom())
        )
        window = dlib.rectangle(left, top, right, bottom)
        if _corners(pyramid.rect_up(window, level)) != _corners(rect):
            return None
        return pyramid.rect_up(window, level + levels)
    return None


def select_single_face(
    detections: list[Detection],
    *,
    min_face_px: float,
    visibility: VisibilityRule | None,
    scale: float = 1.0,
) -> Detection:
    """Apply the "exactly one visible face" rule to detections of one image.

    The candidate is the largest face inside the frame (the largest face of
    all when none is inside). Another face is visible when ``visibility`` says
    so: inside the frame, scored at least its minimum and at least its ratio
    × the candidate's side. Any visible face besides the candidate refuses the
    image (:class:`MultipleFacesError`); other faces are ignored. The
    candidate must measure at least ``min_face_px`` original pixels (boxes are
    in pixels of an image decoded at ``scale``) or :class:`FaceTooSmallError`
    is raised. ``visibility=None`` takes the largest face and skips the
    multiple-face check (diagnostics only).
    """
    if not detections:
        raise NoFaceError("no face found in the image (rotations by 90, 180, 270 degrees tried)")
    if visibility is None:
        candidate = max(detections, key=lambda d: (d.side_px, d.score))
    else:
        candidate = visibility.candidate(detections)
        others = visibility.visible_besides(candidate, detections)
        if others:
            raise MultipleFacesError(
                f"{len(others) + 1} faces of similar size found; "
                "the photo must show exactly one face"
            )
    side_original_px = candidate.side_px / scale
    if side_original_px < min_face_px:
        raise FaceTooSmallError(
            f"the face is {side_original_px:.0f} px wide; at least {min_face_px:.0f} px needed"
        )
    return candidate
