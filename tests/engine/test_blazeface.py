"""BlazeFace: TFLite reader, ONNX conversion parity, decoding, orientation, one-face rule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facematch.engine.align import KEYPOINT_TEMPLATE_PX, keypoint_chip, similarity_transform
from facematch.engine.blazeface import (
    MODEL_PATH,
    BlazeFaceDetector,
    RawFace,
    anchors,
    weighted_nms,
)
from facematch.engine.detect import rotate
from facematch.engine.errors import MultipleFacesError, NoFaceError
from facematch.engine.tflite_format import TFLiteFormatError, densify, load_graph
from tests.conftest import lfw_image

PARITY = Path(__file__).parent / "data" / "blazeface_parity.npz"


def load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


# --- reader ----------------------------------------------------------------------


def test_reader_folds_constants_and_keeps_only_graph_ops() -> None:
    graph = load_graph(MODEL_PATH)
    assert graph.shapes[graph.inputs[0]] == (1, 128, 128, 3)
    assert [graph.shapes[o] for o in graph.outputs] == [(1, 896, 16), (1, 896, 1)]
    ops = {op.op for op in graph.operators}
    assert "DEQUANTIZE" not in ops
    assert ops <= {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "RELU",
        "ADD",
        "MAX_POOL_2D",
        "PAD",
        "RESHAPE",
        "CONCATENATION",
    }
    # Every convolution's weights are float32 constants (fp16 dequantized at read time).
    for op in graph.operators:
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert graph.constants[op.inputs[1]].dtype == np.float32


def test_reader_refuses_a_file_that_is_not_tflite(tmp_path: Path) -> None:
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(TFLiteFormatError):
        load_graph(bogus)


def _dim(dense_size: int = 0, segments: list[int] | None = None, indices: list[int] | None = None):
    """A stand-in for a TFLite DimensionMetadata table (DENSE, or SPARSE_CSR with vectors)."""
    import tflite

    if segments is None:
        return SimpleNamespace(
            Format=lambda: tflite.DimensionType.DENSE, DenseSize=lambda: dense_size
        )
    return SimpleNamespace(
        Format=lambda: tflite.DimensionType.SPARSE_CSR,
        DenseSize=lambda: 0,
        ArraySegmentsType=lambda: "seg",
        ArraySegments=lambda: segments,
        ArrayIndicesType=lambda: "idx",
        ArrayIndices=lambda: indices,
    )


def test_densify_rebuilds_a_csr_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import facematch.engine.tflite_format as fmt

    monkeypatch.setattr(fmt, "_index_vector", lambda kind, table: np.asarray(table))
    dense = np.array([[0, 2, 0, 3], [0, 0, 0, 0], [5, 0, 0, 7]], dtype=np.float32)
    levels = [_dim(3), _dim(segments=[0, 2, 2, 4], indices=[1, 3, 0, 3])]
    sparsity = SimpleNamespace(
        TraversalOrderAsNumpy=lambda: np.array([0, 1]),
        BlockMapLength=lambda: 0,
        DimMetadataLength=lambda: 2,
        DimMetadata=lambda i: levels[i],
    )
    values = np.array([2, 3, 5, 7], dtype=np.float32)
    np.testing.assert_array_equal(densify(values, dense.shape, sparsity), dense)


# --- conversion parity ------------------------------------------------------------


def parity_squares(lfw_root: Path) -> np.ndarray:
    """The four squares the reference outputs were recorded on (see the fixture's notes
    in docs/engine.md): two LFW crops, one of them turned 90°, and seeded noise."""
    squares = [
        load(lfw_image(lfw_root, "Clara_Harris", 2))[61:189, 61:189],
        load(lfw_image(lfw_root, "Hamid_Karzai", 2))[61:189, 61:189],
    ]
    squares.append(np.rot90(squares[1], k=-1))
    squares.append(np.random.default_rng(13).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    return np.ascontiguousarray(np.stack(squares))


def test_onnx_graph_matches_the_tflite_interpreter(
    detector: BlazeFaceDetector, lfw_root: Path
) -> None:
    reference = np.load(PARITY)
    regressors, logits = detector.run_squares(parity_squares(lfw_root))
    # Reference: ai-edge-litert's interpreter (XNNPACK, float32). Measured gap:
    # 5e-4 on logits, 3e-4 px on regressors of up to 230 px.
    np.testing.assert_allclose(logits, reference["logits"], atol=5e-3)
    top = reference["top_anchors"]
    np.testing.assert_allclose(
        np.take_along_axis(regressors, top[:, :, None], axis=1),
        reference["top_regressors"],
        atol=2e-2,
    )
    # The faces score high, the noise does not.
    assert (reference["logits"][:3].max(axis=(1, 2)) > 0).all()
    assert reference["logits"][3].max() < 0


# --- decoding ---------------------------------------------------------------------


def test_anchors_follow_mediapipes_grid() -> None:
    centres = anchors()
    assert centres.shape == (896, 2)
    np.testing.assert_allclose(centres[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(centres[1], centres[0])  # two anchors per stride-8 cell
    np.testing.assert_allclose(centres[512], [0.5 / 8, 0.5 / 8])  # first stride-16 cell
    np.testing.assert_allclose(centres[512:518], np.repeat(centres[512:513], 6, axis=0))


def _face(box: list[float], score: float, shift: float = 0.0) -> RawFace:
    return RawFace(np.array(box, float), np.full((6, 2), shift), score)


def test_weighted_nms_averages_overlaps_and_keeps_separate_faces() -> None:
    faces = [
        _face([0, 0, 10, 10], 0.9, shift=1.0),
        _face([1, 1, 11, 11], 0.6, shift=2.0),
        _face([50, 50, 60, 60], 0.7),
    ]
    kept = weighted_nms(faces)
    assert len(kept) == 2
    merged = kept[0]
    assert merged.score == 0.9
    np.testing.assert_allclose(merged.box, [0.4, 0.4, 10.4, 10.4])
    np.testing.assert_allclose(merged.keypoints, 1.4)
    np.testing.assert_allclose(kept[1].box, [50, 50, 60, 60])


# --- keypoint alignment ----------------------------------------------------------


def test_similarity_transform_recovers_a_known_one() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.array([[0, 0], [10, 0], [5, 8], [5, 14]], float)
    target = source @ (scale * rotation).T + shift
    np.testing.assert_allclose(
        similarity_transform(source, target),
        np.hstack([scale * rotation, shift[:, None]]),
        atol=1e-9,
    )


def test_keypoint_chip_is_the_identity_when_keypoints_sit_on_the_template() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    keypoints = np.vstack([KEYPOINT_TEMPLATE_PX, [[10, 60], [140, 60]]])
    # Noise: a shift of half a pixel would move values by tens; rounding moves them by 1.
    difference = np.abs(keypoint_chip(pixels, keypoints).astype(int) - pixels.astype(int))
    assert difference.max() <= 1


def test_keypoint_chip_of_a_large_face_shrinks_it_without_shifting() -> None:
    small = np.random.default_rng(2).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    small = np.asarray(Image.fromarray(small).filter(ImageFilter.GaussianBlur(3)))
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)  # pixel i ↔ 4i + 1.5
    keypoints = np.vstack([KEYPOINT_TEMPLATE_PX, [[10, 60], [140, 60]]]) * 4 + 1.5
    chip = keypoint_chip(big, keypoints).astype(int)
    assert np.abs(chip[5:-5, 5:-5] - small[5:-5, 5:-5].astype(int)).mean() < 2


# --- the detector on real photos -------------------------------------------------


PEOPLE = [("Clara_Harris", 2), ("Hamid_Karzai", 2), ("Janet_Napolitano", 1)]


@pytest.mark.parametrize(("name", "number"), PEOPLE)
def test_finds_the_face_of_lfw_photos_with_sane_keypoints(
    detector: BlazeFaceDetector, lfw_root: Path, name: str, number: int
) -> None:
    found = detector.detect_one(load(lfw_image(lfw_root, name, number)))
    box = found.box
    assert found.rotation_deg == 0
    assert found.score > 0.86
    assert 70 <= box.width_px <= 160  # LFW's main face: ~100-130 px of a 250 px frame
    assert 60 <= (box.left + box.right) / 2 <= 190
    keypoints = np.array(found.keypoints)
    right_eye, left_eye, nose, mouth = keypoints[:4]
    assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    for x, y in keypoints[:4]:
        assert box.left <= x <= box.right
        assert box.top <= y <= box.bottom


@pytest.mark.parametrize("turned_deg", [90, 180, 270])
def test_turned_photos_are_found_and_turned_back(
    detector: BlazeFaceDetector, lfw_root: Path, turned_deg: int
) -> None:
    upright = load(lfw_image(lfw_root, "Hamid_Karzai", 2))
    reference = detector.detect_one(upright)
    found = detector.detect_one(rotate(upright, turned_deg))
    assert found.rotation_deg == (360 - turned_deg) % 360
    # In the frame turned back upright, the box is where the upright photo's is.
    for got, want in zip(
        (found.box.left, found.box.top, found.box.right, found.box.bottom),
        (reference.box.left, reference.box.top, reference.box.right, reference.box.bottom),
        strict=True,
    ):
        assert abs(got - want) <= 12


def test_no_face_in_noise(detector: BlazeFaceDetector) -> None:
    noise = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError):
        detector.detect_one(noise)


def id_card(face: np.ndarray, *, portrait_px: int, ghost: bool) -> np.ndarray:
    """An 856×540 card: pattern, text bars, a portrait_px portrait, optionally a ghost."""
    card = Image.new("RGB", (856, 540), (225, 232, 240))
    pattern = np.asarray(card).copy()
    pattern[::12, :] = (200, 210, 225)
    card = Image.fromarray(pattern)
    for row in range(6):
        card.paste((40, 40, 60), (380, 120 + 45 * row, 380 + 300 - 30 * row, 140 + 45 * row))
    portrait = Image.fromarray(face).resize((portrait_px, portrait_px))
    card.paste(portrait, (60, 150))
    if ghost:
        faint = Image.blend(portrait, Image.new("RGB", portrait.size, (225, 232, 240)), 0.55)
        side = int(portrait_px * 0.45)
        card.paste(faint.resize((side, side)), (720, 330))
    return np.asarray(card)


def test_a_card_portrait_is_found_and_its_ghost_does_not_count(
    detector: BlazeFaceDetector, lfw_root: Path
) -> None:
    face = load(lfw_image(lfw_root, "Hamid_Karzai", 2))
    card = id_card(face, portrait_px=260, ghost=True)
    found = detector.detect_one(card)
    assert 60 <= (found.box.left + found.box.right) / 2 <= 320


@pytest.mark.parametrize("turned_deg", [90, 180, 270])
def test_a_turned_card_is_turned_back(
    detector: BlazeFaceDetector, lfw_root: Path, turned_deg: int
) -> None:
    face = load(lfw_image(lfw_root, "Hamid_Karzai", 2))
    card = id_card(face, portrait_px=260, ghost=True)
    found = detector.detect_one(rotate(card, turned_deg))
    assert found.rotation_deg == (360 - turned_deg) % 360
    assert found.frame_px == (856, 540)
    assert found.box.right < 400  # the portrait, not the ghost


def test_a_second_person_of_similar_size_refuses(
    detector: BlazeFaceDetector, lfw_root: Path
) -> None:
    left = load(lfw_image(lfw_root, "Hamid_Karzai", 2))
    right = load(lfw_image(lfw_root, "Clara_Harris", 2))
    both = np.ascontiguousarray(np.concatenate([left, right], axis=1))
    with pytest.raises(MultipleFacesError):
        detector.detect_one(both)


# --- through the matcher ---------------------------------------------------------


def test_matcher_on_blazeface_matches_and_keeps_its_descriptors_apart(lfw_root: Path) -> None:
    from facematch.engine.matcher import FaceMatcher

    matcher = FaceMatcher(detector=BlazeFaceDetector())
    assert matcher.model_id == "dlib-resnet-v1+mirror-l2+blazeface-sr-v1-dlib5"
    first = lfw_image(lfw_root, "Hamid_Karzai", 1).read_bytes()
    second = lfw_image(lfw_root, "Hamid_Karzai", 2).read_bytes()
    other = lfw_image(lfw_root, "Clara_Harris", 2).read_bytes()
    assert matcher.match(first, second).is_similar
    assert not matcher.match(first, other).is_similar
    # A reference stored by the HOG pipeline is not silently compared.
    observed = matcher.observe(first)
    with pytest.raises(ValueError, match="reference descriptor is from model"):
        matcher.match_reference(second, observed.embedding, "dlib-resnet-v1+mirror-l2")


@pytest.mark.parametrize("shape", [(64, 400, 3), (9000, 2500, 3)])
def test_arrays_outside_the_envelope_are_refused_before_native_code(
    detector: BlazeFaceDetector, shape: tuple[int, int, int]
) -> None:
    from facematch.engine.errors import ImageShapeError

    with pytest.raises(ImageShapeError):
        detector.detect_one(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("turned_deg", [90, 180, 270])
def test_a_turned_card_costs_at_most_four_upright_searches(
    lfw_root: Path, monkeypatch: pytest.MonkeyPatch, turned_deg: int
) -> None:
    """Counted in network calls (the cost unit), not wall time: bench/detect.py times it."""
    counting = BlazeFaceDetector()
    calls = []
    original = counting.run_squares
    monkeypatch.setattr(counting, "run_squares", lambda s: calls.append(len(s)) or original(s))
    card = id_card(load(lfw_image(lfw_root, "Hamid_Karzai", 2)), portrait_px=260, ghost=True)
    counting.detect_one(card)
    upright = len(calls)
    calls.clear()
    counting.detect_one(rotate(card, turned_deg))
    assert 1 <= len(calls) <= 4 * upright


@pytest.mark.parametrize(("kind", "most_calls"), [("photo", 2), ("card", 4)])
def test_an_upright_image_costs_a_few_network_calls(
    lfw_root: Path, monkeypatch: pytest.MonkeyPatch, kind: str, most_calls: int
) -> None:
    """The cost unit of the search (bench/detect.py times it): a big upright face is
    seen once whole and once closer; a card's portrait in the tiles, then closer."""
    counting = BlazeFaceDetector()
    calls = []
    original = counting.run_squares
    monkeypatch.setattr(counting, "run_squares", lambda s: calls.append(len(s)) or original(s))
    face = load(lfw_image(lfw_root, "Hamid_Karzai", 2))
    pixels = face if kind == "photo" else id_card(face, portrait_px=260, ghost=True)
    found = counting.detect_one(pixels)
    assert found.rotation_deg == 0
    assert 1 <= len(calls) <= most_calls


def test_a_pattern_the_closer_look_does_not_confirm_is_not_the_face(
    detector: BlazeFaceDetector, lfw_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A strong find bigger than the portrait that a look at twice its side does not
    find again (a card's guilloche) gives way to the next face of the rule."""
    card = id_card(load(lfw_image(lfw_root, "Hamid_Karzai", 2)), portrait_px=260, ghost=False)
    real = detector.raw_faces(card)
    eyes_level = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.5, 0.8], [0.1, 0.5], [0.9, 0.5]])
    # Plain background: the look around it finds nothing.
    pattern = RawFace(np.array([430.0, 70, 800, 440]), [430, 70] + 370 * eyes_level, 0.7)
    monkeypatch.setattr(
        detector, "raw_faces", lambda pixels, image=None, looks=None: [pattern, *real]
    )
    found = detector.detect_one(card)
    assert found.box.right < 430


def test_a_weak_pattern_bigger_than_the_face_is_not_the_candidate(
    detector: BlazeFaceDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card's guilloche found at ~0.5 with a box bigger than the portrait must not be
    embedded instead of the portrait (KYC-style set, docs/engine.md)."""
    eyes_level = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.5, 0.8], [0.1, 0.5], [0.9, 0.5]])
    pattern = RawFace(np.array([300.0, 100, 700, 500]), 300 + 400 * eyes_level, 0.52)
    portrait = RawFace(np.array([60.0, 200, 160, 300]), [60, 200] + 100 * eyes_level, 0.8)
    monkeypatch.setattr(
        detector, "raw_faces", lambda pixels, image=None, looks=None: [pattern, portrait]
    )
    found = detector.detect_one(np.zeros((540, 856, 3), np.uint8))
    assert found.box.right < 300
