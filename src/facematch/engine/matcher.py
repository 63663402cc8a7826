"""FaceMatcher: two photos in, "same person?" out.

A photo is any :data:`~facematch.engine.images.ImageInput`: the encoded file's
bytes, a path (a ``str`` is always a path, never base64 text: that comes wrapped
in :class:`~facematch.engine.images.Base64Image`), or an RGB ``uint8`` array.

decode (images) → detect (+rotation retry, one-face rule) → align (5-point
chip) → quality (too dark, over-exposed, blurred, turned away) → embed (one
batch for both faces) → distance → decision + calibrated confidence. Models
load once, in ``__init__``; every method is thread-safe.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image

from facematch.engine.align import Aligner, keypoint_chip
from facematch.engine.blazeface import BlazeFaceDetector
from facematch.engine.detect import Detection, FaceDetector, rotate
from facematch.engine.embed import Embedder, create_embedder
from facematch.engine.errors import EngineError, ModelError, NoFaceError
from facematch.engine.images import DecodedImage, ImageInput, ImageLimits, load_image
from facematch.engine.quality import QualityRule, measure
from facematch.engine.scoring import (
    Calibration,
    calibration_resource,
    distance,
    load_calibration,
)
from facematch.engine.types import FaceBox, FaceObservation, MatchResult

if TYPE_CHECKING:
    from facematch.settings import Settings

_In = TypeVar("_In")
_Out = TypeVar("_Out")

__all__ = ["DECODE_MAX_SIDE_PX", "FaceMatcher", "create_detector"]

# Large JPEGs are decoded at reduced size (1/2, 1/4, 1/8) with the longer side
# at least this long: more than the detector's working copy (<= 960×720 for a
# 4:3 photo) and enough for the smallest face it finds (11 % of the smaller
# side) to fill a 150 px chip without upsampling.
DECODE_MAX_SIDE_PX = 1280


class FaceMatcher:
    """Face verification engine. Build once, share between threads."""

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        threshold: float | None = None,
        limits: ImageLimits | None = None,
        min_face_px: int = 40,
        calibration: Calibration | None = None,
        detector: FaceDetector | BlazeFaceDetector | None = None,
        aligner: Aligner | None = None,
        decode_max_side_px: int = DECODE_MAX_SIDE_PX,
        quality: QualityRule | None = None,
        check_quality: bool = True,
    ) -> None:
        """``quality`` replaces the default :class:`QualityRule`; ``check_quality=False``
        measures quality (``FaceObservation.quality``) without refusing on it."""
        self._embedder = embedder if embedder is not None else create_embedder("onnx")
        self._detector = (
            detector if detector is not None else BlazeFaceDetector(min_face_px=min_face_px)
        )
        self._calibration = (
            calibration
            if calibration is not None
            else _shipped_calibration(self.model_id, self._embedder.model_id)
        )
        if self._calibration.model_id not in (self.model_id, self._embedder.model_id):
            raise ModelError(
                f"calibration is for model {self._calibration.model_id!r}, "
                f"the pipeline is {self.model_id!r}"
            )
        if threshold is not None and threshold <= 0:
            raise ValueError("threshold must be positive")
        self._threshold = (
            threshold if threshold is not None else self._calibration.default_threshold
        )
        self._limits = limits if limits is not None else ImageLimits()
        self._aligner = aligner if aligner is not None else Aligner()
        self._decode_max_side_px = decode_max_side_px
        self._quality = (quality or QualityRule()) if check_quality else None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        calibration: Calibration | None = None,
        detector: FaceDetector | BlazeFaceDetector | None = None,
    ) -> FaceMatcher:
        """The matcher ``settings`` describe; ``calibration`` and ``detector``
        replace the calibration (``settings.calibration_file``, else the shipped one)
        and the detector ``settings.detector`` names."""
        embedder = create_embedder(
            settings.embedder,
            cache_dir=settings.cache_dir,
            onnx_threads=settings.onnx_threads,
            mirror=settings.mirror_descriptor,
        )
        limits = ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            min_side_px=settings.min_image_side_px,
            max_full_decode_pixels=settings.max_full_decode_pixels,
        )
        if detector is None:
            detector = create_detector(settings.detector, min_face_px=settings.min_face_px)
        if calibration is None and settings.calibration_file is not None:
            calibration = load_calibration(settings.calibration_file)
        return cls(
            embedder=embedder,
            threshold=settings.match_threshold,
            limits=limits,
            min_face_px=settings.min_face_px,
            calibration=calibration,
            detector=detector,
            check_quality=settings.quality_checks,
        )

    @property
    def model_id(self) -> str:
        """The embedder's model id, plus the detection/alignment pipeline when it is
        not the one stored references were first made with (HOG + 5-point)."""
        suffix = self._detector.pipeline_id
        return f"{self._embedder.model_id}+{suffix}" if suffix else self._embedder.model_id

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def calibration(self) -> Calibration:
        return self._calibration

    # --- the stages -----------------------------------------------------------

    def _decode(self, image: ImageInput) -> DecodedImage:
        return load_image(image, limits=self._limits, max_side_px=self._decode_max_side_px)

    def _locate(
        self, image: ImageInput, timings: dict[str, float] | None = None
    ) -> tuple[np.ndarray, FaceObservation]:
        """Decode, detect and align one image: (chip, observation without embedding)."""
        lap = _Laps(timings)
        decoded = self._decode(image)
        lap("decode")
        found = self._detector.detect_one(decoded.pixels, scale=decoded.scale)
        lap("detect")
        pixels = rotate(decoded.pixels, found.rotation_deg)
        chip, landmarks = self._chip(pixels, found)
        lap("align")
        quality = measure(chip, landmarks)
        if self._quality is not None:
            self._quality.check(quality)
        width, height = decoded.original_size_px
        if found.rotation_deg in (90, 270):
            width, height = height, width
        observation = FaceObservation(
            box_px=_to_original(found.box, decoded.scale, width, height),
            detector_score=found.score,
            rotation_deg=found.rotation_deg,
            image_size_px=(width, height),
            embedding=np.zeros(0, np.float32),
            model_id=self.model_id,
            quality=quality,
        )
        return chip, observation

    def _chip(self, pixels: np.ndarray, found: Detection) -> tuple[np.ndarray, np.ndarray]:
        """The chip and the landmarks it was aligned on (for the quality measures):
        the detector's keypoints (eye, eye, nose, ...) or dlib's 5 points."""
        if self._detector.alignment == "keypoints" and found.keypoints is not None:
            keypoints = np.asarray(found.keypoints, dtype=np.float64)
            return keypoint_chip(pixels, keypoints), keypoints
        return self._aligner.chip_and_landmarks(pixels, found.box)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        return self._embedder.embed(np.stack(chips))

    # --- public API -----------------------------------------------------------

    def observe(
        self, image: ImageInput, *, timings: dict[str, float] | None = None
    ) -> FaceObservation:
        """The one face of ``image`` with its descriptor (raises a FaceError/ImageError).

        ``timings``, when given, receives the seconds spent in each stage
        (decode, detect, align, embed) that ran (evaluations and benchmarks).
        """
        chip, observation = self._locate(image, timings)
        lap = _Laps(timings)
        embedding = self._embed([chip])[0]
        lap("embed")
        return _with_embedding(observation, embedding)

    def match(self, first: ImageInput, second: ImageInput) -> MatchResult:
        """Compare the faces of two images; errors say which image failed (``.image``).

        Each image is bytes, a path (``str`` or ``os.PathLike``), ``Base64Image(text)``
        or an RGB ``uint8`` array ``[h, w, 3]``. A path naming no file raises
        :class:`FileNotFoundError`; what is wrong with an image or its faces raises
        an :class:`~facematch.engine.errors.InputError`.
        """
        chip_a, obs_a = _tagged(self._locate, first, "first")
        chip_b, obs_b = _tagged(self._locate, second, "second")
        embeddings = self._embed([chip_a, chip_b])  # one batch: one network call
        return self.compare(
            _with_embedding(obs_a, embeddings[0]), _with_embedding(obs_b, embeddings[1])
        )

    def compare(self, first: FaceObservation, second: FaceObservation) -> MatchResult:
        """Decide on two observations made by this matcher's model."""
        for observation in (first, second):
            if observation.model_id != self.model_id:
                raise ValueError(
                    f"observation from model {observation.model_id!r} cannot be compared with "
                    f"{self.model_id!r}"
                )
        return self._decide(first.embedding, second.embedding, first, second)

    def match_reference(
        self, image: ImageInput, reference_embedding: np.ndarray, reference_model_id: str
    ) -> MatchResult:
        """Compare the face of ``image`` with a stored descriptor of the same model."""
        if reference_model_id != self.model_id:
            raise ValueError(
                f"reference descriptor is from model {reference_model_id!r}, "
                f"this matcher uses {self.model_id!r}"
            )
        observation = _tagged(self.observe, image, "first")
        return self._decide(observation.embedding, reference_embedding, observation, None)

    def warm_up(self) -> None:
        """Run every stage once on a synthetic image (first-call costs paid up front)."""
        buffer = io.BytesIO()
        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[:, ::8] = 30  # some edges, so HOG has gradients to look at
        Image.fromarray(canvas).save(buffer, "JPEG", quality=90)
        decoded = self._decode(buffer.getvalue())
        with contextlib.suppress(NoFaceError):  # expected: no face; the detector has run
            self._detector.detect_one(decoded.pixels, scale=decoded.scale)
        chip = self._aligner.chip(decoded.pixels, FaceBox(240, 160, 400, 320))
        self._embed([chip])

    def _decide(
        self,
        a: np.ndarray,
        b: np.ndarray,
        first: FaceObservation | None,
        second: FaceObservation | None,
    ) -> MatchResult:
        d = distance(a, b)
        return MatchResult(
            is_similar=d < self._threshold,
            confidence=self._calibration.confidence(d),
            distance=d,
            threshold=self._threshold,
            model_id=self.model_id,
            first=first,
            second=second,
        )


def _shipped_calibration(pipeline_model_id: str, embedder_model_id: str) -> Calibration:
    """The calibration fitted on this very pipeline when one is shipped, else the
    embedder's (fitted with the HOG detector: a detector variant without its own,
    e.g. BlazeFace with the plain descriptor, shares its thresholds)."""
    from importlib import resources

    own = resources.files("facematch.engine").joinpath(calibration_resource(pipeline_model_id))
    if own.is_file():
        return load_calibration(model_id=pipeline_model_id)
    return load_calibration(model_id=embedder_model_id)


def create_detector(name: str, *, min_face_px: int = 40) -> FaceDetector | BlazeFaceDetector:
    """The detector ``Settings.detector`` names: "hog" (dlib) or "blazeface" (CNN)."""
    if name == "hog":
        return FaceDetector(min_face_px=min_face_px)
    if name == "blazeface":
        from facematch.engine.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(min_face_px=min_face_px)
    raise ValueError(f"unknown detector {name!r}")


class _Laps:
    """Records the time since the previous lap under a stage name (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self._timings = timings
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self._timings is not None:
            now = time.perf_counter()
            self._timings[stage] = now - self._last
            self._last = now


def _tagged(function: Callable[[_In], _Out], image: _In, which: str) -> _Out:
    """Call ``function(image)``; an EngineError gets ``.image = which``."""
    try:
        return function(image)
    except EngineError as exc:
        exc.image = which
        raise


def _with_embedding(observation: FaceObservation, embedding: np.ndarray) -> FaceObservation:
    return replace(observation, embedding=np.asarray(embedding, dtype=np.float32))


def _to_original(box: FaceBox, scale: float, width: int, height: int) -> FaceBox:
    """A box in decoded pixels → pixels of the full-resolution image (clipped)."""
    return FaceBox(
        left=max(0, round(box.left / scale)),
        top=max(0, round(box.top / scale)),
        right=min(width, round(box.right / scale)),
        bottom=min(height, round(box.bottom / scale)),
    )
