"""Alignment: 5-point landmarks and dlib's 150×150 chip."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image

from facematch.engine.align import CHIP_PADDING, Aligner
from facematch.engine.detect import FaceDetector
from facematch.engine.models import shape_predictor_5_path
from tests.conftest import lfw_image


@pytest.fixture(scope="module")
def face(lfw_root: Path) -> tuple[np.ndarray, object]:
    with Image.open(lfw_image(lfw_root, "Abdullah_Gul", 13)) as image:
        pixels = np.asarray(image.convert("RGB"))
    return pixels, FaceDetector().detect_one(pixels).box


def test_chip_is_150_square_rgb(face: tuple[np.ndarray, object]) -> None:
    pixels, box = face
    chip = Aligner().chip(pixels, box)
    assert chip.shape == (150, 150, 3)
    assert chip.dtype == np.uint8
    assert chip.std() > 20  # a face, not a flat fill


def test_chip_matches_dlibs_own_call(face: tuple[np.ndarray, object]) -> None:
    pixels, box = face
    predictor = dlib.shape_predictor(str(shape_predictor_5_path()))
    rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
    expected = dlib.get_face_chip(pixels, predictor(pixels, rect), size=150, padding=CHIP_PADDING)
    np.testing.assert_array_equal(Aligner().chip(pixels, box), expected)


def test_landmarks_lie_inside_the_face_box(face: tuple[np.ndarray, object]) -> None:
    pixels, box = face
    points = Aligner().landmarks(pixels, box)
    assert points.shape == (5, 2)
    assert np.all(points[:, 0] > box.left - 5)
    assert np.all(points[:, 0] < box.right + 5)
    assert np.all(points[:, 1] > box.top - 5)
    assert np.all(points[:, 1] < box.bottom + 5)
    # Eye corners (points 0-3) sit above the nose base (point 4) in an upright face.
    assert points[:4, 1].max() < points[4, 1]
