"""Detection: scaling, rotation retry and the "exactly one visible face" rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.engine.detect import (
    SECONDARY_FACE_RATIO,
    Detection,
    FaceDetector,
    VisibilityRule,
    rotate,
    select_single_face,
    working_scale,
)
from facematch.engine.errors import (
    FaceError,
    FaceTooSmallError,
    MultipleFacesError,
    NoFaceError,
)
from facematch.engine.types import FaceBox
from facematch.evaluation.variants import CoarsePassVariant, LargestFaceDetector
from tests.conftest import lfw_image


def load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


FRAME = (1000, 600)
RULE = VisibilityRule()


def det(side: int, score: float = 1.0, x: int = 50, y: int = 50) -> Detection:
    """A face box of ``side`` px at (x, y) in a 1000×600 frame."""
    return Detection(FaceBox(x, y, x + side, y + side), score, 0, FRAME)


def on_canvas(faces: list[tuple[np.ndarray, tuple[int, int]]], size: tuple[int, int]) -> np.ndarray:
    """A white canvas of ``size`` (width, height) with each image pasted at its (x, y)."""
    canvas = Image.new("RGB", size, (255, 255, 255))
    for pixels, position in faces:
        canvas.paste(Image.fromarray(pixels), position)
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


# --- working resolution ---------------------------------------------------------


def test_lfw_sized_image_is_upsampled_once_so_40px_faces_are_found() -> None:
    plan = working_scale(250, 250, min_face_px=40, max_work_side_px=720)
    assert (plan.upsample, plan.resize) == (1, 1.0)


def test_twelve_megapixel_photo_is_shrunk_to_the_working_size() -> None:
    plan = working_scale(3000, 4000, min_face_px=40, max_work_side_px=720)
    assert plan.upsample == 0
    assert plan.resize == pytest.approx(720 / 3000)


def test_vga_photo_is_scaled_up_but_capped() -> None:
    plan = working_scale(480, 640, min_face_px=40, max_work_side_px=720)
    assert plan.upsample == 0
    assert plan.factor == pytest.approx(1.5)


# --- finding faces --------------------------------------------------------------


def test_finds_the_lfw_face_in_the_middle(lfw_root: Path, detector: FaceDetector) -> None:
    found = detector.detect_one(load(lfw_image(lfw_root, "Abdullah_Gul", 13)))
    assert found.rotation_deg == 0
    assert found.score > 0
    centre = ((found.box.left + found.box.right) / 2, (found.box.top + found.box.bottom) / 2)
    assert 100 < centre[0] < 150
    assert 100 < centre[1] < 150
    assert 80 <= found.box.width_px <= 140


def test_box_maps_back_to_a_large_image(lfw_root: Path, detector: FaceDetector) -> None:
    small = load(lfw_image(lfw_root, "Abdullah_Gul", 13))
    big = np.asarray(Image.fromarray(small).resize((2000, 2000), Image.Resampling.BICUBIC))
    a = detector.detect_one(small)
    b = detector.detect_one(big)
    # Same face, 8× the coordinates (within the HOG pyramid's granularity).
    assert b.box.left == pytest.approx(a.box.left * 8, abs=60)
    assert b.box.width_px == pytest.approx(a.box.width_px * 8, rel=0.25)


def test_rotated_photo_is_found_by_the_retry(lfw_root: Path, detector: FaceDetector) -> None:
    upright = load(lfw_image(lfw_root, "Abdullah_Gul", 13))
    sideways = np.ascontiguousarray(np.rot90(upright))  # turned 90° counter-clockwise
    assert detector.detect_upright(sideways) == []
    found = detector.detect_one(sideways)
    assert found.rotation_deg == 90  # turning it 90° clockwise makes it upright again
    assert rotate(sideways, 90).shape == upright.shape
    np.testing.assert_array_equal(rotate(sideways, 90), upright)


def test_blank_image_has_no_face(detector: FaceDetector) -> None:
    with pytest.raises(NoFaceError):
        detector.detect_one(np.full((300, 400, 3), 200, np.uint8))


def test_two_faces_side_by_side_are_refused(lfw_root: Path, detector: FaceDetector) -> None:
    # Two LFW photos pasted side by side on a canvas: both faces fully inside it.
    pixels = on_canvas(
        [
            (load(lfw_image(lfw_root, "Abdullah_Gul", 13)), (20, 20)),
            (load(lfw_image(lfw_root, "AJ_Cook", 1)), (290, 20)),
        ],
        (560, 290),
    )
    found = detector.detect(pixels)
    assert len(found) >= 2
    assert sum(RULE.in_frame(d) for d in found) >= 2
    with pytest.raises(MultipleFacesError):
        detector.detect_one(pixels)
    # Evaluation's diagnostic variant takes the largest face instead.
    largest = LargestFaceDetector().detect_one(pixels)
    assert largest.side_px == max(d.side_px for d in found)


def test_experiment_knobs_are_not_production_arguments() -> None:
    # The one-face rule and the coarse pass are fixed for verification; only
    # facematch.evaluation.variants changes them.
    for knob in ("refuse_multiple_faces", "coarse_margin", "coarse_work_side_px"):
        with pytest.raises(TypeError):
            FaceDetector(**{knob: 1})  # type: ignore[arg-type]
    assert FaceDetector().refuse_multiple_faces
    assert not LargestFaceDetector().refuse_multiple_faces


def test_a_face_cut_by_the_border_is_ignored(lfw_root: Path, detector: FaceDetector) -> None:
    # A bystander at the edge: the canvas ends just before the second face's
    # right cheek, so its box reaches the border. The same layout on a wider
    # canvas, both faces inside, is refused (test above).
    main = load(lfw_image(lfw_root, "Abdullah_Gul", 13))
    bystander = load(lfw_image(lfw_root, "AJ_Cook", 1))
    pixels = on_canvas([(main, (20, 20)), (bystander, (290, 20))], (450, 290))
    found = detector.detect(pixels)
    assert len(found) == 2
    chosen = detector.detect_one(pixels)
    assert chosen.box.right < 250  # the main face, inside the frame
    cut = [d for d in found if d != chosen]
    assert not RULE.in_frame(cut[0])
    # Big and clearly a face: only the border spared the photo.
    assert cut[0].side_px >= SECONDARY_FACE_RATIO * chosen.side_px
    assert cut[0].score >= RULE.min_score


def test_two_big_faces_are_refused_by_the_coarse_pass(
    lfw_root: Path, detector: FaceDetector
) -> None:
    # Faces of ~216 px: the cheap first pass settles this image on its own.
    double = [
        np.asarray(Image.fromarray(load(lfw_image(lfw_root, *key))).resize((500, 500)))
        for key in (("Abdullah_Gul", 13), ("AJ_Cook", 1))
    ]
    pixels = side_by_side(*double)
    found = detector.detect(pixels)
    assert len(found) == 2
    assert min(d.side_px for d in found) >= 160
    with pytest.raises(MultipleFacesError):
        detector.detect_one(pixels)


def two_faces_at_the_coarse_limit(lfw_root: Path) -> np.ndarray:
    """1140×720 with two faces, the second ~0.83 of the first (one pyramid step).

    At the coarse pass's 480 px smaller side the main face just clears the
    coarse acceptance (160 px) and the second sits near its 120 px floor:
    the case the coarse pass's soundness argument is about.
    """
    main = Image.fromarray(load(lfw_image(lfw_root, "Abdullah_Gul", 13))).resize((608, 608))
    second = Image.fromarray(load(lfw_image(lfw_root, "AJ_Cook", 1))).resize((504, 504))
    return on_canvas([(np.asarray(main), (0, 56)), (np.asarray(second), (621, 108))], (1140, 720))


def test_coarse_pass_alone_still_refuses_a_second_face_at_its_limit(
    lfw_root: Path, detector: FaceDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = two_faces_at_the_coarse_limit(lfw_root)
    passes: list[tuple[int, int]] = []
    original = FaceDetector._dlib_run

    def counting_run(self: FaceDetector, work: np.ndarray, upsample: int):  # type: ignore[no-untyped-def]
        passes.append(work.shape[:2])
        return original(self, work, upsample)

    monkeypatch.setattr(FaceDetector, "_dlib_run", counting_run)
    with pytest.raises(MultipleFacesError):
        detector.detect_one(pixels)
    # Settled by the coarse pass alone: 760×480, two pyramid levels down (5/6 each).
    assert len(passes) == 1
    assert passes[0][0] == pytest.approx(480 * (5 / 6) ** 2, abs=2)
    # The full pass alone finds the same two faces.
    plan = working_scale(720, 1140, min_face_px=40, max_work_side_px=720)
    assert plan.factor == pytest.approx(1.0)
    full = detector._run(pixels, plan, 0)
    coarse = detector.detect(pixels)
    assert len(full) == len(coarse) == 2
    with pytest.raises(MultipleFacesError):
        select_single_face(full, min_face_px=40, visibility=RULE)


def test_coarse_pass_settings_below_soundness_are_refused() -> None:
    with pytest.raises(ValueError):
        CoarsePassVariant(coarse_margin=0.9, coarse_skip_levels=0)
    # Two skipped pyramid levels hide faces under 80 × 1.2² = 115 px: the margin
    # must keep every face that could count above that.
    with pytest.raises(ValueError):
        CoarsePassVariant(coarse_margin=1.4, coarse_skip_levels=2)
    CoarsePassVariant(coarse_margin=1.44, coarse_skip_levels=2)


def selfie_640x480(path: Path) -> np.ndarray:
    """An LFW photo scaled to 480×480 on a grey 640×480 canvas (face ~180-215 px)."""
    face = Image.fromarray(load(path)).resize((480, 480))
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(face, (80, 0))
    return np.asarray(canvas)


def overlap(a: FaceBox, b: FaceBox) -> bool:
    return min(a.right, b.right) > max(a.left, b.left) and min(a.bottom, b.bottom) > max(
        a.top, b.top
    )


def test_skipping_pyramid_levels_finds_the_same_faces_with_the_same_boxes(
    lfw_root: Path, detector: FaceDetector
) -> None:
    whole = CoarsePassVariant(coarse_skip_levels=0)
    # The first 16 people of View 1 in name order, first photo each.
    people = sorted(p for p in (lfw_root / "images").iterdir() if p.is_dir())[:16]
    accepted = 0
    for person in people:
        pixels = selfie_640x480(sorted(person.glob("*.jpg"))[0])
        fast = detector.detect(pixels)
        reference = whole.detect(pixels)
        # The same faces, boxes and scores, except the small ones only the two
        # skipped levels see (boxes of ~72 and ~86 px; level 2 starts at ~104),
        # and faces the whole pass dropped for overlapping one of those small
        # ones with a higher score (dlib keeps the best of overlapping boxes).
        fast_keys = {(d.box, round(d.score, 6)) for d in fast}
        small = [d.box for d in reference if d.side_px <= 95]
        big = {(d.box, round(d.score, 6)) for d in reference if d.side_px > 95}
        assert big <= fast_keys, person.name
        assert all(any(overlap(box, s) for s in small) for box, _ in fast_keys - big), person.name
        try:
            chosen = detector.detect_one(pixels)
        except FaceError as exc:
            with pytest.raises(type(exc)):
                whole.detect_one(pixels)
            continue
        assert chosen == whole.detect_one(pixels), person.name
        accepted += 1
    assert accepted >= 12


def test_unrecognised_pyramid_level_falls_back_to_the_whole_coarse_pass(
    lfw_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import facematch.engine.detect as detect_module

    pixels = selfie_640x480(lfw_image(lfw_root, "Abdullah_Gul", 13))
    expected = CoarsePassVariant(coarse_skip_levels=0).detect(pixels)
    monkeypatch.setattr(detect_module, "_box_before_skipping", lambda *_args: None)
    assert FaceDetector().detect(pixels) == expected


def test_a_much_smaller_second_face_is_ignored(lfw_root: Path, detector: FaceDetector) -> None:
    main = load(lfw_image(lfw_root, "Abdullah_Gul", 13))
    ghost = np.asarray(Image.fromarray(load(lfw_image(lfw_root, "AJ_Cook", 1))).resize((110, 110)))
    # Ghost image bottom-right, at ~0.45 of the main face's size (an ID card's layout).
    canvas = np.full((250, 380, 3), 255, np.uint8)
    canvas[:, :250] = main
    canvas[130:240, 265:375] = ghost
    found = detector.detect(canvas)
    main_face = detector.detect_one(canvas)
    assert main_face.box.left < 250  # the big face, not the ghost
    smaller = [d for d in found if d != main_face]
    assert len(smaller) == 1  # the ghost is detected, and then ignored
    assert all(d.side_px < SECONDARY_FACE_RATIO * main_face.side_px for d in smaller)


# --- the rule itself --------------------------------------------------------------


def test_rule_ignores_faces_below_the_ratio() -> None:
    main = det(200)
    # 0.7 of the main face: two HOG pyramid steps smaller, below the 0.75 ratio.
    chosen = select_single_face([det(140, x=400), main], min_face_px=40, visibility=RULE)
    assert chosen is main


def test_rule_refuses_comparable_faces() -> None:
    # One pyramid step smaller (0.83): two people side by side.
    with pytest.raises(MultipleFacesError):
        select_single_face([det(200), det(166, x=400)], min_face_px=40, visibility=RULE)


def test_rule_ignores_weak_secondary_detections() -> None:
    main = det(200)
    weak = det(200, score=RULE.min_score - 0.01, x=400)
    assert select_single_face([main, weak], min_face_px=40, visibility=RULE) is main
    with pytest.raises(MultipleFacesError):
        select_single_face(
            [main, det(200, score=RULE.min_score, x=400)], min_face_px=40, visibility=RULE
        )


def test_rule_ignores_faces_cut_by_the_border() -> None:
    main = det(200, x=300)
    margin = int(RULE.border_margin * 200)
    for cut in (det(200, x=0), det(200, x=FRAME[0] - 200 - margin), det(200, y=0)):
        assert select_single_face([main, cut], min_face_px=40, visibility=RULE) is main
    inside = det(200, x=FRAME[0] - 200 - margin - 1)
    with pytest.raises(MultipleFacesError):
        select_single_face([main, inside], min_face_px=40, visibility=RULE)


def test_candidate_is_the_largest_face_inside_the_frame() -> None:
    # A bigger face cut by the border (a bystander at the edge of the photo)
    # does not displace the fully visible face, nor make the photo refused.
    subject = det(150, x=400)
    bystander = det(220, x=0)
    assert select_single_face([bystander, subject], min_face_px=40, visibility=RULE) is subject
    # With no face inside the frame, the largest one is used.
    assert select_single_face([bystander, det(100, y=0)], min_face_px=40, visibility=RULE) is (
        bystander
    )


def test_without_the_rule_the_largest_face_is_taken() -> None:
    largest = det(220, x=0)
    assert select_single_face([det(200, x=400), largest], min_face_px=40, visibility=None) is (
        largest
    )


def test_rule_measures_min_face_in_original_pixels() -> None:
    # A 30 px box in an image decoded at half size is a 60 px face: accepted.
    assert select_single_face([det(30)], min_face_px=40, visibility=RULE, scale=0.5)
    with pytest.raises(FaceTooSmallError):
        select_single_face([det(30)], min_face_px=40, visibility=RULE, scale=1.0)


def test_rule_with_nothing_found() -> None:
    with pytest.raises(NoFaceError):
        select_single_face([], min_face_px=40, visibility=RULE)


def test_rule_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        VisibilityRule(min_side_ratio=0)
    with pytest.raises(ValueError):
        VisibilityRule(border_margin=-0.1)


def test_rotate_rejects_odd_angles() -> None:
    with pytest.raises(ValueError, match="multiple of 90"):
        rotate(np.zeros((4, 4, 3), np.uint8), 45)
