"""Face detection with MediaPipe's BlazeFace short-range CNN on onnxruntime.

The model (``data/blazeface/``, Apache-2.0, see PROVENANCE.md there) is read
by :mod:`.tflite_format` and rebuilt as ONNX by :mod:`.tflite_convert` when
the detector is built (in memory, quickly: nothing is cached or downloaded).
It looks at a 128×128 square and returns 896 anchor boxes with a score and
six keypoints (eyes, nose tip, mouth, ears) each; decoding and MediaPipe's
weighted non-maximum suppression are done here in numpy.

Views of the image, cheapest first (docs/engine.md has the measurements):

1. the whole image, letterboxed into the square (large faces: selfies);
2. when the image is elongated: squares of the shorter side along the longer
   one (a 120 px portrait on an 856×540 card becomes a 28 px face instead of
   18 px);
3. the same, turned clockwise by 90, then 270, then 180 degrees;
4. a grid of squares of half the shorter side, at each turn in the same order
   (faces of 7.5-15 % of the shorter side, e.g. the portrait of a card
   photographed on a table).

The search stops at the first step that finds a face scoring ``STOP_SCORE``
(weaker finds, often patterns, are kept only if nothing better turns up).
Unless its best face scores ``ACCEPT_SCORE``, is upright in the view that
found it and measures at least 30 % of the shorter side, a square of twice
its side around it is seen at all four turns (an upside-down face is often
also "seen" upright, weaker, with keypoints pointing the wrong way; a small
sideways one sometimes too). The best look decides: at the view's turn the
step's faces stand; at another turn the step's views are looked at again at
that turn. Within that turn, orientation is read from the keypoints:
BlazeFace finds faces rolled well past 45 degrees, and its eye line tells
which quarter turn makes the face upright. Each detection carries that turn as
``rotation_deg`` with its box and keypoints expressed in the turned image, so
the rest of the engine (alignment, the one-face rule) sees an upright face.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from facematch.engine.detect import Detection, VisibilityRule, select_single_face
from facematch.engine.envelope import check_native_input
from facematch.engine.errors import ModelError
from facematch.engine.types import FaceBox

__all__ = [
    "MODEL_PATH",
    "BlazeFaceDetector",
    "RawFace",
    "anchors",
    "decode",
    "weighted_nms",
]

MODEL_PATH = Path(__file__).parent / "data" / "blazeface" / "face_detection_short_range.tflite"
MODEL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
INPUT_PX = 128
# MediaPipe's face_detection_short_range graph: score threshold and NMS overlap.
MIN_SCORE = 0.5
NMS_IOU = 0.3
# Tiles are tried only when the longer side exceeds the shorter by this factor;
# below it the letterboxed whole image already shows faces at >= 80 % of a tile's scale.
TILE_ASPECT = 1.25
# Keypoint order in the model's output.
RIGHT_EYE, LEFT_EYE, NOSE, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)
# A best face scored at least this is taken the way its keypoints say is up; a
# weaker one is first checked against being upside down (two calls on a crop). On LFW
# View 1 DevTrain 3.4 % of upright photos score less (they cost more turns) and
# 0.12 % of the same photos upside down score this much upright (docs/engine.md).
ACCEPT_SCORE = 0.86
# How the matcher aligns faces: dlib's 5-point predictor on the box (default:
# TAR at FMR 1e-3 on LFW View 1 DevTest 91.0 % against 87.6 % for a similarity
# transform from the keypoints; docs/engine.md), or the keypoints.
ALIGNMENT: Literal["keypoints", "dlib5"] = "dlib5"
# BlazeFace's box → the box dlib's HOG detector draws on the same face (its
# centre shifted by these fractions of BlazeFace's side, its side scaled by
# HOG_SIDE_RATIO): fitted on LFW View 1 DevTrain, so dlib's 5-point predictor
# (trained on HOG boxes) and the one-face rule's border margin keep their meaning.
HOG_SHIFT_X, HOG_SHIFT_Y, HOG_SIDE_RATIO = -0.034, -0.053, 1.0
# ... and only when the face is at least this fraction of the shorter side: the
# keypoints of small faces (a card's portrait, ~20 %) misread sideways and
# upside-down faces as upright at 0.86-0.88 on the KYC-style cards; a selfie's
# face (LFW: ~44 %) is trusted.
TRUSTED_FACE_FRACTION = 0.3
# A step whose best face scores less does not end the search (on the KYC-style
# cards such faces were mostly guilloche patterns, 0.51-0.57); it is used only
# when no step finds better.
STOP_SCORE = 0.6
# The one-face rule's score floor for a second face (BlazeFace's probability;
# ratio and border margin are the HOG rule's). Fitted on LFW View 1 DevTrain:
# 2 of 861 photos refused, a second person and a large poster face (docs/engine.md).
SECONDARY_MIN_SCORE = 0.6
# The fine grid (last resort for small faces): squares of half the shorter
# side, overlapping by this fraction, never smaller than FINE_MIN_SIDE_PX
# (below it the view would upscale the image).
FINE_OVERLAP = 0.3
FINE_MIN_SIDE_PX = 128
# Clockwise quarter turns of the views, in order: sideways before upside down
# (phones store sideways photos far more often than upside-down ones).
TURNS = (0, 1, 3, 2)


def anchors() -> np.ndarray:
    """The 896 anchor centres [896, 2] (x, y in [0, 1]) of the short-range model.

    MediaPipe's SsdAnchorsCalculator with its face_detection_short_range options:
    strides 8, 16, 16, 16 (the three stride-16 layers share one grid), two
    anchors per layer and cell, fixed anchor size 1.
    """
    centres = []
    for grid, per_cell in ((INPUT_PX // 8, 2), (INPUT_PX // 16, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = anchors()


@dataclass(frozen=True)
class RawFace:
    """A detection in some frame's pixels: box (x0, y0, x1, y1), keypoints [6, 2], score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    def mapped(self, matrix: np.ndarray) -> RawFace:
        """The same face under an affine ``matrix`` [2, 3] made of axis swaps/flips and scaling."""
        corners = _apply(matrix, self.box.reshape(2, 2))
        box = np.concatenate([corners.min(axis=0), corners.max(axis=0)])
        return RawFace(box, _apply(matrix, self.keypoints), self.score)

    @property
    def upright_turn(self) -> int:
        """Clockwise quarter turns of the frame that make this face upright."""
        return round(-self.roll_deg / 90) % 4

    @property
    def roll_deg(self) -> float:
        """Clockwise angle of the line from the right eye to the left eye (image left → right)."""
        dx, dy = self.keypoints[LEFT_EYE] - self.keypoints[RIGHT_EYE]
        return math.degrees(math.atan2(dy, dx))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def decode(regressors: np.ndarray, logits: np.ndarray, *, min_score: float) -> list[RawFace]:
    """Faces of one square (raw outputs [896, 16] and [896, 1]) in input pixels, unsuppressed."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0].astype(np.float64), -100.0, 100.0)))
    keep = np.flatnonzero(scores >= min_score)
    faces = []
    for i in keep:
        raw = regressors[i]
        centre = _ANCHORS[i] * INPUT_PX + raw[0:2]
        half = raw[2:4] / 2
        keypoints = raw[4:16].reshape(6, 2) + _ANCHORS[i] * INPUT_PX
        faces.append(
            RawFace(
                np.concatenate([centre - half, centre + half]).astype(np.float64),
                keypoints.astype(np.float64),
                float(scores[i]),
            )
        )
    return faces


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(faces: list[RawFace], *, iou: float = NMS_IOU) -> list[RawFace]:
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of the
    boxes and keypoints overlapping the best remaining one by more than ``iou``."""
    remaining = sorted(faces, key=lambda f: f.score, reverse=True)
    kept = []
    while remaining:
        best = remaining[0]
        group = [f for f in remaining if _iou(best.box, f.box) > iou]
        remaining = [f for f in remaining if _iou(best.box, f.box) <= iou]
        weights = np.array([f.score for f in group])
        total = weights.sum()
        box = sum(w * f.box for w, f in zip(weights, group, strict=True)) / total
        keypoints = sum(w * f.keypoints for w, f in zip(weights, group, strict=True)) / total
        kept.append(RawFace(np.asarray(box), np.asarray(keypoints), best.score))
    return kept


def _quarter_turn(quarter_turns: int, width: float, height: float) -> np.ndarray:
    """Affine map of pixel coordinates of a width×height frame turned clockwise
    ``quarter_turns`` times (np.rot90 with k=-quarter_turns)."""
    q = quarter_turns % 4
    if q == 0:
        return np.array([[1.0, 0, 0], [0, 1.0, 0]])
    if q == 1:  # (x, y) → (height - y, x)
        return np.array([[0, -1.0, height], [1.0, 0, 0]])
    if q == 2:
        return np.array([[-1.0, 0, width], [0, -1.0, height]])
    return np.array([[0, 1.0, 0], [-1.0, 0, width]])  # (x, y) → (y, width - x)


@dataclass(frozen=True)
class _View:
    """A square region of the image (left, top, side in image pixels) seen at 128 px."""

    left: float
    top: float
    side: float

    def to_image(self) -> np.ndarray:
        scale = self.side / INPUT_PX
        return np.array([[scale, 0, self.left], [0, scale, self.top]])


def _views(width: int, height: int, *, tiles: bool) -> list[_View]:
    if not tiles:
        side = max(width, height)
        return [_View((width - side) / 2, (height - side) / 2, side)]
    short, long = min(width, height), max(width, height)
    count = math.ceil(long / short)
    offsets = np.linspace(0, long - short, count)
    if width >= height:
        return [_View(float(o), 0, short) for o in offsets]
    return [_View(0, float(o), short) for o in offsets]


def _grid(width: int, height: int) -> list[_View]:
    """Squares of half the shorter side, overlapping by at least 30 % of their side
    (a face up to 0.3 × the square, the size found here and not by the larger views,
    lies whole in one of them); none when they would be smaller than FINE_MIN_SIDE_PX."""
    side = min(width, height) / 2
    if side < FINE_MIN_SIDE_PX:
        return []

    def offsets(length: int) -> np.ndarray:
        count = math.ceil((length - side) / ((1 - FINE_OVERLAP) * side)) + 1
        return np.linspace(0, length - side, count)

    return [_View(float(x), float(y), side) for y in offsets(height) for x in offsets(width)]


class _Pyramid:
    """The image and its box-filtered reductions by whole factors, made on demand.

    A view is cut from the reduction that leaves it 128-255 px, then resized
    bilinearly by less than 2: a bilinear resize straight from a large view
    widens its filter with the factor and costs several times more (bench/detect.py;
    docs/performance.md)."""

    def __init__(self, image: Image.Image) -> None:
        self._levels = {1: image}
        self.shorter_side = min(image.size)

    def square(self, view: _View) -> np.ndarray:
        factor = max(1, int(view.side // INPUT_PX))
        if factor not in self._levels:
            self._levels[factor] = self._levels[1].reduce(factor)
        image = self._levels[factor]
        left, top, right, bottom = (
            v / factor for v in (view.left, view.top, view.left + view.side, view.top + view.side)
        )
        box: tuple[float, float, float, float] = (left, top, right, bottom)
        if left < 0 or top < 0 or right > image.width or bottom > image.height:
            # Letterbox: Pillow fills outside the image with zeros when cropping.
            image = image.crop((round(left), round(top), round(right), round(bottom)))
            box = (0, 0, image.width, image.height)
        resized = image.resize((INPUT_PX, INPUT_PX), Image.Resampling.BILINEAR, box=box)
        return np.asarray(resized)


class BlazeFaceDetector:
    """BlazeFace short-range with views, orientation from keypoints and the one-face rule.

    Same interface as :class:`~facematch.engine.detect.FaceDetector`. Thread-safe:
    onnxruntime sessions may be run from several threads.
    """

    #: The "exactly one visible face" rule is applied; only evaluation's largest-face
    #: diagnostic (facematch.evaluation.variants) subclasses with False.
    refuse_multiple_faces = True

    def __init__(
        self,
        *,
        alignment: Literal["keypoints", "dlib5"] = ALIGNMENT,
        min_face_px: int = 40,
        visibility: VisibilityRule | None = None,
        min_score: float = MIN_SCORE,
        accept_score: float = ACCEPT_SCORE,
        stop_score: float = STOP_SCORE,
        fine_grid: bool = True,
        threads: int = 1,
        model_path: Path = MODEL_PATH,
    ) -> None:
        import onnxruntime as ort

        from facematch.engine.tflite_convert import build_model
        from facematch.engine.tflite_format import TFLiteFormatError, load_graph

        if min_face_px <= 0 or not 0 < min_score < 1:
            raise ValueError("min_face_px must be > 0 and min_score in (0, 1)")
        if alignment not in ("keypoints", "dlib5"):
            raise ValueError(f"unknown alignment {alignment!r}")
        self.alignment = alignment
        #: Part of the matcher's model id: these descriptors differ from the HOG pipeline's.
        self.pipeline_id = f"blazeface-sr-v1-{alignment}"
        self.min_face_px = min_face_px
        self.visibility = (
            visibility if visibility is not None else VisibilityRule(min_score=SECONDARY_MIN_SCORE)
        )
        self.min_score = min_score
        self.accept_score = accept_score
        self.stop_score = stop_score
        self.fine_grid = fine_grid
        try:
            digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
            if model_path == MODEL_PATH and digest != MODEL_SHA256:
                raise TFLiteFormatError(f"SHA-256 {digest} is not the vendored model's")
            model = build_model(load_graph(model_path))
        except (OSError, TFLiteFormatError) as exc:
            raise ModelError(f"cannot convert the face detector {model_path}: {exc}") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    # --- raw faces in upright image pixels ------------------------------------

    def run_squares(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's raw outputs for uint8 squares [n, 128, 128, 3]."""
        regressors, logits = self._session.run(None, {"squares": squares})
        return regressors, logits

    def _faces(
        self, image: _Pyramid, views: list[_View], turn: int, cache: dict[_View, np.ndarray]
    ) -> list[RawFace]:
        """Faces seen in ``views`` turned clockwise by ``turn`` quarter turns, in upright
        image pixels. One network call per square: on one core a batch of n costs
        more than n calls (docs/engine.md). ``cache`` keeps each view's square, so
        a view looked at in several turns is resized once."""
        back = _quarter_turn(-turn, INPUT_PX, INPUT_PX)
        found = []
        for view in views:
            if view not in cache:
                cache[view] = image.square(view)
            square = np.ascontiguousarray(np.rot90(cache[view], k=-turn))
            check_native_input(square)
            regressors, logits = self.run_squares(square[None])
            # Square pixels (turned) → square pixels (upright) → image pixels.
            to_image = _compose(view.to_image(), back)
            faces = decode(regressors[0], logits[0], min_score=self.min_score)
            found += [f.mapped(to_image) for f in faces]
        return found

    def raw_faces(self, pixels: np.ndarray, image: _Pyramid | None = None) -> list[RawFace]:
        """Every face of ``pixels`` (upright image coordinates), after NMS, seen at the
        first view turn that finds one, checked against upside down (module docstring)."""
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"pixels must be uint8 [h, w, 3], got {pixels.dtype} {pixels.shape}")
        check_native_input(pixels)  # before Pillow resizes it and onnxruntime sees it
        height, width = pixels.shape[:2]
        image = image if image is not None else _Pyramid(Image.fromarray(pixels))
        cache: dict[_View, np.ndarray] = {}
        whole = _views(width, height, tiles=False)
        tiles = (
            _views(width, height, tiles=True)
            if max(width, height) > TILE_ASPECT * min(width, height)
            else []
        )
        grid = _grid(width, height) if self.fine_grid else []
        # Every turn of the cheap views before any fine grid: a big sideways face
        # must not pay for an upright search of small faces.
        steps = [(whole + tiles, turn) for turn in TURNS] + [(grid, turn) for turn in TURNS]
        weak: tuple[list[RawFace], list[_View], int] | None = None
        for views, turn in steps:
            if not views:
                continue
            found = weighted_nms(self._faces(image, views, turn, cache))
            if not found:
                continue
            if max(f.score for f in found) < self.stop_score:
                # Weak: often a pattern (a card's guilloche). Keep looking; fall back on it.
                if weak is None or max(f.score for f in found) > max(f.score for f in weak[0]):
                    weak = (found, views, turn)
                continue
            return self._settled(image, found, views, turn, cache)
        return self._settled(image, *weak, cache) if weak is not None else []

    def _settled(
        self,
        image: _Pyramid,
        found: list[RawFace],
        views: list[_View],
        turn: int,
        cache: dict[_View, np.ndarray],
    ) -> list[RawFace]:
        """``found`` (seen in ``views`` turned by ``turn``) with its best face's turn settled:
        kept when it scores ``accept_score`` upright in that view; otherwise a square of
        twice its side around it is seen at all four turns (four calls) and the best
        look decides: the same turn keeps ``found``; at another the views are looked
        at again at that turn."""
        best = max(found, key=lambda f: f.score)
        side = float(max(best.box[2] - best.box[0], best.box[3] - best.box[1]))
        if (
            best.score >= self.accept_score
            and best.upright_turn == turn
            and side >= TRUSTED_FACE_FRACTION * image.shorter_side
        ):
            return found
        centre = (best.box[:2] + best.box[2:]) / 2
        crop = _View(float(centre[0] - side), float(centre[1] - side), 2 * side)
        looks = {t: self._faces(image, [crop], t, cache) for t in TURNS}
        upright = max(TURNS, key=lambda t: max((f.score for f in looks[t]), default=0.0))
        if not looks[upright]:
            return found
        if upright == turn:
            # Keep the views' own boxes: the one-face rule compares box sides, and
            # a face looked at closer gets a tighter box than its neighbours.
            return found
        again = weighted_nms(self._faces(image, views, upright, cache))
        return again or [max(looks[upright], key=lambda f: f.score)]

    # --- the detector interface -----------------------------------------------

    def detect(self, pixels: np.ndarray, *, scale: float = 1.0) -> list[Detection]:
        """Faces, each in the frame turned so that it is upright (``rotation_deg``)."""
        height, width = pixels.shape[:2]
        return [_detection(face, width, height) for face in self.raw_faces(pixels)]

    def detect_one(self, pixels: np.ndarray, *, scale: float = 1.0) -> Detection:
        """The single visible face, or a :class:`FaceError` saying why there is none.

        The one-face rule compares the boxes of the views (faces seen at one scale);
        the face it keeps is then looked at closer (one call, a square of twice its
        side, at its upright turn) and returned with that look's box and keypoints,
        which frame a small face (a card's portrait, 20-30 px in a tile) better for
        alignment."""
        height, width = pixels.shape[:2]
        image = _Pyramid(Image.fromarray(pixels)) if pixels.ndim == 3 else None
        raw = self.raw_faces(pixels, image)
        found = [_detection(face, width, height) for face in raw]
        # Faces below the rule's score floor never count as a second face; nor may
        # they be the candidate while a stronger face exists (a card's guilloche
        # found at 0.5 with a box bigger than the portrait).
        strong = [d for d in found if d.score >= self.visibility.min_score]
        candidates = strong or found
        if found and self.refuse_multiple_faces:
            # The one-face rule compares faces within one frame: keep those upright
            # in the candidate's frame (a face turned another way is a picture on
            # the wall or a printed card, not a second person beside the user).
            main = max(candidates, key=lambda d: (d.side_px, d.score))
            candidates = [d for d in candidates if d.rotation_deg == main.rotation_deg]
        chosen = select_single_face(
            candidates,
            min_face_px=self.min_face_px,
            scale=scale,
            visibility=self.visibility if self.refuse_multiple_faces else None,
        )
        face = raw[next(i for i, d in enumerate(found) if d is chosen)]
        closer = self._closer_look(image, face) if image is not None else None
        if closer is None:
            return chosen
        refined = _detection(closer, width, height)
        return refined if refined.rotation_deg == chosen.rotation_deg else chosen

    def _closer_look(self, image: _Pyramid, face: RawFace) -> RawFace | None:
        """``face`` seen in a square of twice its side at its upright turn: the look's
        face overlapping it, or None."""
        side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
        centre = (face.box[:2] + face.box[2:]) / 2
        crop = _View(float(centre[0] - side), float(centre[1] - side), 2 * side)
        seen = [
            f
            for f in self._faces(image, [crop], face.upright_turn, {})
            if _iou(f.box, face.box) > NMS_IOU
        ]
        return max(seen, key=lambda f: f.score, default=None)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine map ``outer ∘ inner`` ([2, 3] matrices)."""
    full = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return full[:2]


def _detection(face: RawFace, width: int, height: int) -> Detection:
    """``face`` (upright image pixels) expressed in the image turned to make it upright."""
    quarter_turns = face.upright_turn
    turned = face.mapped(_quarter_turn(quarter_turns, width, height))
    frame = (width, height) if quarter_turns % 2 == 0 else (height, width)
    x0, y0, x1, y1 = turned.box
    side = max(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2 + HOG_SHIFT_X * side
    cy = (y0 + y1) / 2 + HOG_SHIFT_Y * side
    half = HOG_SIDE_RATIO * side / 2
    x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
    box = FaceBox(
        left=max(0, math.floor(x0)),
        top=max(0, math.floor(y0)),
        right=min(frame[0], math.ceil(x1)),
        bottom=min(frame[1], math.ceil(y1)),
    )
    return Detection(
        box=box,
        score=face.score,
        rotation_deg=90 * quarter_turns,
        frame_px=frame,
        keypoints=tuple((float(x), float(y)) for x, y in turned.keypoints),
    )
