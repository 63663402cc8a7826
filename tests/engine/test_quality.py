"""Quality refusals: too dark, over-exposed, blurred, turned away, too small."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from facematch.engine.errors import (
    FaceBlurredError,
    FaceError,
    FaceOverExposedError,
    FaceTooDarkError,
    FaceTooSmallError,
    FaceTurnedError,
)
from facematch.engine.matcher import FaceMatcher
from facematch.engine.quality import FaceQuality, QualityRule, measure
from tests.conftest import lfw_image

# Ordinary LFW faces: frontal-ish, lit and sharp enough (DevTest images).
NORMAL = [
    ("Abdullah_Gul", 13),
    ("Aaron_Peirsol", 1),
    ("Tony_Blair", 6),
    ("AJ_Cook", 1),
    ("Aaron_Peirsol", 2),
]


@pytest.fixture(scope="module")
def matcher() -> FaceMatcher:
    return FaceMatcher()


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def _lfw(root: Path, key: tuple[str, int]) -> Image.Image:
    with Image.open(lfw_image(root, *key)) as image:
        return image.convert("RGB")


def test_normal_lfw_faces_pass(lfw_root: Path, matcher: FaceMatcher) -> None:
    rule = QualityRule()
    for key in NORMAL:
        found = matcher.observe(lfw_image(lfw_root, *key).read_bytes())
        assert found.quality is not None
        assert found.quality.brightness > rule.min_brightness
        assert found.quality.sharpness > rule.min_sharpness
        assert abs(found.quality.yaw) < rule.max_yaw


@pytest.mark.parametrize(
    ("degrade", "error"),
    [
        (lambda im: im.filter(ImageFilter.GaussianBlur(4)), FaceBlurredError),
        (lambda im: ImageEnhance.Brightness(im).enhance(0.12), FaceTooDarkError),
        (lambda im: ImageEnhance.Brightness(im).enhance(3.5), FaceOverExposedError),
    ],
    ids=["blurred", "dark", "over-exposed"],
)
def test_degraded_faces_are_refused_with_their_reason(
    lfw_root: Path,
    matcher: FaceMatcher,
    degrade,
    error: type[FaceError],  # type: ignore[no-untyped-def]
) -> None:
    refused = 0
    for key in NORMAL:
        with pytest.raises(FaceError) as caught:
            matcher.observe(_jpeg(degrade(_lfw(lfw_root, key))))
        refused += isinstance(caught.value, error)
    assert refused >= len(NORMAL) - 1, "at most one face may fail for another reason"


def test_a_face_turned_far_away_is_refused(lfw_root: Path, matcher: FaceMatcher) -> None:
    # A real three-quarter profile from LFW DevTest, beyond the limit with either detector.
    with pytest.raises(FaceTurnedError):
        matcher.observe(lfw_image(lfw_root, "Michael_Linscott", 1).read_bytes())
    # Another, beyond it with the HOG pipeline's box (yaw 0.77); BlazeFace's box,
    # centred on the visible half of the face, gives its landmarks 0.58.
    from facematch.engine.detect import FaceDetector

    hog = FaceMatcher(embedder=matcher.embedder, detector=FaceDetector())
    with pytest.raises(FaceTurnedError):
        hog.observe(lfw_image(lfw_root, "Abdullah_Gul", 16).read_bytes())


def test_quality_checks_can_be_turned_off(lfw_root: Path, matcher: FaceMatcher) -> None:
    dark = _jpeg(ImageEnhance.Brightness(_lfw(lfw_root, NORMAL[0])).enhance(0.12))
    with pytest.raises(FaceTooDarkError):
        matcher.observe(dark)
    lenient = FaceMatcher(embedder=matcher.embedder, check_quality=False)
    found = lenient.observe(dark)
    assert found.quality is not None
    assert found.quality.brightness < QualityRule().min_brightness


def test_a_tiny_face_is_refused_as_too_small(lfw_root: Path, matcher: FaceMatcher) -> None:
    # The LFW crop scaled so its face (~108 of 250 px) measures ~37 px: found at ×2, refused.
    canvas = Image.new("RGB", (200, 200), (120, 120, 120))
    canvas.paste(_lfw(lfw_root, NORMAL[0]).resize((86, 86), Image.Resampling.LANCZOS), (57, 57))
    with pytest.raises(FaceTooSmallError):
        matcher.observe(_jpeg(canvas))


def test_yaw_follows_the_nose_between_the_eyes() -> None:
    chip = np.full((150, 150, 3), 128, np.uint8)
    eyes = [[40, 60], [60, 60], [90, 60], [110, 60]]  # eye centres at x 50 and 100
    frontal = measure(chip, np.array([*eyes, [75, 100]], float))
    turned = measure(chip, np.array([*eyes, [115, 100]], float))
    assert frontal.yaw == pytest.approx(0.0)
    assert turned.yaw == pytest.approx(0.8)
    # Keypoints of a CNN detector (eye, eye, nose, ...) give the same measure.
    keypoints = np.array([[50, 60], [100, 60], [115, 100], [75, 120], [30, 70], [120, 70]])
    assert measure(chip, keypoints).yaw == pytest.approx(0.8)
    well_lit = FaceQuality(brightness=120, clipped=0, sharpness=0.5, yaw=turned.yaw)
    with pytest.raises(FaceTurnedError):
        QualityRule().check(well_lit)
    QualityRule().check(replace(well_lit, yaw=frontal.yaw))  # nothing to refuse


def test_a_flat_chip_is_blurred_and_lighting_is_checked_first() -> None:
    rule = QualityRule()
    flat = measure(np.full((150, 150, 3), 128, np.uint8), np.zeros((5, 2)))
    assert flat.sharpness == 0.0
    with pytest.raises(FaceBlurredError):
        rule.check(flat)
    dark_and_blurred = FaceQuality(brightness=5, clipped=0, sharpness=0, yaw=0.9)
    with pytest.raises(FaceTooDarkError):
        rule.check(dark_and_blurred)
    blown = FaceQuality(brightness=240, clipped=0.9, sharpness=0, yaw=0)
    with pytest.raises(FaceOverExposedError):
        rule.check(blown)
