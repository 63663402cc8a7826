"""The onnxruntime embedder: parity with dlib on real faces, and its on-disk model cache."""

from __future__ import annotations

import hashlib
import multiprocessing
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from facematch.engine import onnx_embedder
from facematch.engine.embed import DlibEmbedder, MirrorAveragedEmbedder, create_embedder
from facematch.engine.errors import ModelError, ModelFormatError
from facematch.engine.models import resnet_model_path, shape_predictor_5_path
from facematch.engine.onnx_embedder import OnnxEmbedder
from tests.conftest import lfw_image

PARITY_ATOL = 1e-4
MIN_PARITY_CHIPS = 50


# --------------------------------------------------------------------------- helpers


@cache
def _dlib_tools():  # type: ignore[no-untyped-def]
    import dlib

    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(shape_predictor_5_path())),
    )


def dlib_chip(path: Path) -> np.ndarray | None:
    """The 150×150 chip dlib's compute_face_descriptor would use, or None if no face is found."""
    from PIL import Image

    dlib, detector, predictor = _dlib_tools()
    pixels = np.asarray(Image.open(path).convert("RGB"))
    # Without upsampling first (fast; LFW faces are ~110 px), then with one pyramid step.
    faces = detector(pixels, 0) or detector(pixels, 1)
    if not faces:
        return None
    face = max(faces, key=lambda rect: rect.area())
    return np.asarray(dlib.get_face_chip(pixels, predictor(pixels, face), size=150, padding=0.25))


def _parse_pairs(path: Path) -> list[tuple[tuple[str, int], tuple[str, int], bool]]:
    pairs = []
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            pairs.append(((parts[0], int(parts[1])), (parts[0], int(parts[2])), True))
        elif len(parts) == 4:
            pairs.append(((parts[0], int(parts[1])), (parts[2], int(parts[3])), False))
    return pairs


def _configured_threshold() -> tuple[float, str]:
    try:
        from facematch.engine.scoring import load_calibration

        threshold = load_calibration(model_id="dlib-resnet-v1").default_threshold
        return threshold, "calibrated FMR 1e-3 threshold of the plain descriptor"
    except (ImportError, ModelFormatError):
        return 0.6, "dlib's 0.6 (no calibration shipped yet)"


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir=tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="module")
def reference() -> DlibEmbedder:
    return DlibEmbedder()


@pytest.fixture(scope="module")
def lfw_chips(lfw_root: Path) -> np.ndarray:
    """Chips of one image each of the first people in LFW View 1, alphabetically."""
    chips = []
    for person in sorted((lfw_root / "images").iterdir())[:70]:
        chip = dlib_chip(min(person.glob("*.jpg")))
        if chip is not None:
            chips.append(chip)
    assert len(chips) >= MIN_PARITY_CHIPS, f"only {len(chips)} faces found"
    return np.stack(chips)


# --------------------------------------------------------------------------- parity


@pytest.mark.lfw
def test_parity_with_dlib_on_real_chips(
    onnx: OnnxEmbedder, reference: DlibEmbedder, lfw_chips: np.ndarray
) -> None:
    expected = reference.embed(lfw_chips)
    got = onnx.embed(lfw_chips)
    assert got.shape == (len(lfw_chips), 128)
    assert got.dtype == np.float32
    worst = float(np.abs(got - expected).max())
    assert worst <= PARITY_ATOL, f"max |onnx - dlib| = {worst:.3g} over {len(lfw_chips)} chips"


@pytest.mark.lfw
def test_batches_match_single_chips(onnx: OnnxEmbedder, lfw_chips: np.ndarray) -> None:
    batch = onnx.embed(lfw_chips[:2])
    singles = np.concatenate([onnx.embed(lfw_chips[i : i + 1]) for i in range(2)])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    assert not np.allclose(batch[0], batch[1], atol=1e-3)  # two different people


@pytest.mark.lfw
@pytest.mark.slow
def test_same_decisions_as_dlib_on_every_devtest_pair(
    onnx: OnnxEmbedder, reference: DlibEmbedder, lfw_root: Path
) -> None:
    pairs = _parse_pairs(lfw_root / "pairsDevTest.txt")
    assert len(pairs) == 1000
    keys = sorted({key for first, second, _ in pairs for key in (first, second)})
    chips: dict[tuple[str, int], np.ndarray] = {}
    for key in keys:
        chip = dlib_chip(lfw_image(lfw_root, *key))
        if chip is not None:
            chips[key] = chip
    usable = [(a, b) for a, b, _ in pairs if a in chips and b in chips]
    assert len(usable) >= 990, f"faces found for only {len(usable)} of 1000 pairs"

    order = sorted(chips)
    stacked = np.stack([chips[key] for key in order])
    ours = dict(zip(order, onnx.embed(stacked), strict=True))
    theirs = dict(zip(order, reference.embed(stacked), strict=True))

    threshold, source = _configured_threshold()
    d_ours = np.array([np.linalg.norm(ours[a] - ours[b]) for a, b in usable])
    d_theirs = np.array([np.linalg.norm(theirs[a] - theirs[b]) for a, b in usable])
    differing = int(np.sum((d_ours < threshold) != (d_theirs < threshold)))
    assert differing == 0, f"{differing} decisions differ at {threshold} ({source})"
    assert float(np.abs(d_ours - d_theirs).max()) < 1e-5


def test_float_input_graph_matches_uint8_graph(onnx: OnnxEmbedder) -> None:
    import onnxruntime as ort

    from facematch.engine.dlib_format import load_network
    from facematch.engine.onnx_convert import INPUT_NAME, build_experiment

    model = build_experiment(load_network(resnet_model_path()), input_dtype="float32")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    chips = np.random.default_rng(7).integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    (from_float,) = session.run(None, {INPUT_NAME: chips.astype(np.float32)})
    np.testing.assert_allclose(from_float, onnx.embed(chips), atol=1e-6)
    with pytest.raises(ValueError, match="input_dtype"):
        build_experiment(load_network(resnet_model_path()), input_dtype="float16")


def test_rejects_bad_chip_layout(onnx: OnnxEmbedder) -> None:
    with pytest.raises(ValueError, match="chips must be"):
        onnx.embed(np.zeros((1, 150, 150), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        onnx.embed(np.zeros((1, 150, 150, 3), np.float32))


def test_empty_batch(onnx: OnnxEmbedder) -> None:
    assert onnx.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


# --------------------------------------------------------------------------- factory


def test_factory_builds_both_backends_with_one_model_id(tmp_path: Path) -> None:
    fast = create_embedder("onnx", cache_dir=tmp_path, onnx_threads=2, mirror=False)
    assert isinstance(fast, OnnxEmbedder)
    assert fast.threads == 2
    assert fast.model_path.parent == tmp_path
    slow = create_embedder("dlib", mirror=False)
    assert isinstance(slow, DlibEmbedder)
    assert fast.model_id == slow.model_id == "dlib-resnet-v1"
    mirrored = create_embedder("onnx", cache_dir=tmp_path)  # the default
    assert isinstance(mirrored, MirrorAveragedEmbedder)
    assert isinstance(mirrored.inner, OnnxEmbedder)
    assert mirrored.model_id == "dlib-resnet-v1+mirror-l2" != fast.model_id
    with pytest.raises(ValueError, match="unknown embedder"):
        create_embedder("tflite", cache_dir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.lfw
def test_mirror_average_is_the_unit_mean_of_both_views_and_ignores_a_flip(
    onnx: OnnxEmbedder, lfw_chips: np.ndarray
) -> None:
    chips = lfw_chips[:6]
    flipped = np.ascontiguousarray(chips[:, :, ::-1])
    mirrored = MirrorAveragedEmbedder(onnx)
    got = mirrored.embed(chips)
    expected = (onnx.embed(chips) + onnx.embed(flipped)) / 2
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert got.shape == (6, 128)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    # A mirrored photo gives the same descriptor: the average is symmetric.
    assert np.abs(mirrored.embed(flipped) - got).max() < 1e-5
    assert mirrored.embed(chips[:0]).shape == (0, 128)


def test_missing_source_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read dlib model"):
        OnnxEmbedder(model_path=tmp_path / "absent.dat", cache_dir=tmp_path)


def test_negative_thread_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threads"):
        OnnxEmbedder(cache_dir=tmp_path, threads=-1)


def test_default_cache_dir_follows_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facematch.settings import get_settings

    monkeypatch.setenv("FACEMATCH_CACHE_DIR", str(tmp_path / "from-env"))
    get_settings.cache_clear()
    try:
        embedder = OnnxEmbedder()
    finally:
        get_settings.cache_clear()
    assert embedder.model_path.parent == tmp_path / "from-env"
    assert embedder.model_path.is_file()


# --------------------------------------------------------------------------- cache


def _fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_second_embedder_reuses_cached_model(tmp_path: Path) -> None:
    first = OnnxEmbedder(cache_dir=tmp_path)
    assert first.built
    before = _fingerprint(first.model_path)
    second = OnnxEmbedder(cache_dir=tmp_path)
    assert not second.built
    assert second.model_path == first.model_path
    assert _fingerprint(second.model_path) == before
    assert len(list(tmp_path.glob("*.onnx"))) == 1


def test_cache_key_names_source_hash_and_converter_version(tmp_path: Path) -> None:
    embedder = OnnxEmbedder(cache_dir=tmp_path)
    source_hash = hashlib.sha256(resnet_model_path().read_bytes()).hexdigest()
    assert source_hash[:32] in embedder.model_path.name
    assert embedder.model_path.name.endswith(f"-c{onnx_embedder.CONVERTER_VERSION}.onnx")


def test_new_converter_version_triggers_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = OnnxEmbedder(cache_dir=tmp_path)
    monkeypatch.setattr(onnx_embedder, "CONVERTER_VERSION", onnx_embedder.CONVERTER_VERSION + 1)
    new = OnnxEmbedder(cache_dir=tmp_path)
    assert new.built
    assert new.model_path != old.model_path
    assert new.model_path.is_file()


def test_changed_source_model_triggers_rebuild(tmp_path: Path) -> None:
    data = bytearray(resnet_model_path().read_bytes())
    # Change one weight of the final fc layer (raw float32 data near the end): still a valid file.
    position = len(data) - 200
    data[position] ^= 0x01
    altered = tmp_path / "altered.dat"
    altered.write_bytes(bytes(data))
    cache_dir = tmp_path / "cache"
    original = OnnxEmbedder(cache_dir=cache_dir)
    changed = OnnxEmbedder(model_path=altered, cache_dir=cache_dir)
    assert changed.built
    assert changed.model_path != original.model_path


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete-digest"])
def test_corrupted_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    first = OnnxEmbedder(cache_dir=tmp_path)
    good = first.model_path.read_bytes()
    if damage == "truncate":
        first.model_path.write_bytes(good[: len(good) // 3])
    elif damage == "flip":
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0xFF
        first.model_path.write_bytes(bytes(flipped))
    else:
        first.cache.digest_path.unlink()
    again = OnnxEmbedder(cache_dir=tmp_path)
    assert again.built
    assert again.model_path.read_bytes() == good
    chip = np.full((1, 150, 150, 3), 128, np.uint8)
    np.testing.assert_array_equal(again.embed(chip), first.embed(chip))


def _build_in_child(cache_dir: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    barrier.wait(timeout=120)
    embedder = OnnxEmbedder(cache_dir=Path(cache_dir))
    chip = np.full((1, 150, 150, 3), 100, np.uint8)
    results.put((embedder.built, embedder.embed(chip)[0].tolist()))


def test_two_processes_building_at_once_both_get_a_valid_model(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(target=_build_in_child, args=(str(tmp_path), barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    built = [was_built for was_built, _ in outcomes]
    assert sorted(built) == [False, True]  # the lock lets exactly one of them convert
    np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    assert not list(tmp_path.glob("*.tmp"))
    reader = OnnxEmbedder(cache_dir=tmp_path)
    assert not reader.built
    chip = np.full((1, 150, 150, 3), 100, np.uint8)
    np.testing.assert_allclose(reader.embed(chip)[0], outcomes[0][1], atol=0)
