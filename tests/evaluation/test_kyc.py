"""The KYC-style set: deterministic, the requested shapes, and usable by the engine."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from facematch.engine.images import ImageLimits, decode_image
from facematch.engine.matcher import FaceMatcher
from facematch.evaluation.kyc import (
    CARD_SIZE_PX,
    EXIF_ORIENTATION_TAG,
    Kind,
    build_set,
    plan_pairs,
    render,
)
from facematch.evaluation.lfw import read_pairs


@pytest.fixture(scope="module")
def dev_test(lfw_root: Path):  # type: ignore[no-untyped-def]
    return read_pairs(lfw_root / "pairsDevTest.txt")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(lfw_root: Path, dev_test) -> None:  # type: ignore[no-untyped-def]
    first = plan_pairs(dev_test[:3], seed=7)
    again = plan_pairs(dev_test[:3], seed=7)
    other = plan_pairs(dev_test[:3], seed=8)
    assert first == again
    for a, b, c in zip(first, again, other, strict=True):
        for spec_a, spec_b, spec_c in ((a.selfie, b.selfie, c.selfie), (a.card, b.card, c.card)):
            assert _sha(render(spec_a, lfw_root)) == _sha(render(spec_b, lfw_root))
            assert _sha(render(spec_a, lfw_root)) != _sha(render(spec_c, lfw_root))


def test_a_subset_renders_the_same_images_as_the_whole(
    lfw_root: Path,
    dev_test,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    whole = {p.index: p for p in plan_pairs(dev_test)}
    subset = build_set(lfw_root, dev_test, tmp_path, only=[5, 600])
    assert [p.index for p in subset.pairs] == [5, 600]
    for pair in subset.pairs:
        assert pair == whole[pair.index]
        assert subset.path(pair.card).read_bytes() == render(whole[pair.index].card, lfw_root)


def test_the_mix_has_the_requested_proportions(dev_test) -> None:  # type: ignore[no-untyped-def]
    planned = plan_pairs(dev_test)
    selfies = Counter(p.selfie.kind for p in planned)
    cards = [p.card for p in planned]
    assert set(selfies) == {Kind.SELFIE_LANDSCAPE, Kind.SELFIE_PORTRAIT, Kind.SELFIE_12MP}
    assert 0.12 < selfies[Kind.SELFIE_12MP] / len(planned) < 0.28
    turned = Counter(c.rotation_deg for c in cards)
    assert set(turned) == {0, 90, 180, 270}
    assert 0.2 < 1 - turned[0] / len(cards) < 0.3  # a quarter sideways or upside down
    assert 0.18 < sum(c.kind is Kind.CARD_PHOTO for c in cards) / len(cards) < 0.32
    flat = [c for c in cards if c.kind is Kind.CARD]
    assert all(120 <= c.portrait_px <= 175 and 75 <= c.face_px <= 125 for c in flat)
    assert [p.same for p in planned] == [p.same for p in dev_test]


def test_cards_have_the_planned_size_rotation_and_jpeg_quality(
    lfw_root: Path,
    dev_test,  # type: ignore[no-untyped-def]
) -> None:
    planned = plan_pairs(dev_test)
    wanted = {
        (Kind.CARD, 0): None,
        (Kind.CARD, 90): None,
        (Kind.CARD, 180): None,
        (Kind.CARD_PHOTO, 270): None,
    }
    for pair in planned:
        key = (pair.card.kind, pair.card.rotation_deg)
        if key in wanted and wanted[key] is None:
            wanted[key] = pair.card
    for (kind, rotation), spec in wanted.items():
        assert spec is not None
        with Image.open(io.BytesIO(render(spec, lfw_root))) as image:
            assert image.format == "JPEG"
            assert image.size == spec.size_px
            if kind is Kind.CARD:
                flat = CARD_SIZE_PX if rotation in (0, 180) else CARD_SIZE_PX[::-1]
                assert image.size == flat
                # libjpeg's luminance table at quality 55-65 starts with 10-14 (16 at q50).
                assert 9 <= image.quantization[0][0] <= 15


def test_12mp_selfies_are_stored_sideways_with_an_exif_orientation(
    lfw_root: Path,
    dev_test,  # type: ignore[no-untyped-def]
) -> None:
    spec = next(
        p.selfie
        for p in plan_pairs(dev_test)
        if p.selfie.kind is Kind.SELFIE_12MP and p.selfie.exif_orientation in (6, 8)
    )
    data = render(spec, lfw_root)
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif()[EXIF_ORIENTATION_TAG] == spec.exif_orientation
        assert image.size == spec.size_px[::-1]  # stored sideways
    decoded = decode_image(data, limits=ImageLimits(max_bytes=10 * 1024 * 1024))
    assert decoded.original_size_px == spec.size_px  # upright once EXIF is applied


def test_the_engine_finds_the_face_upright_and_ignores_the_ghost(
    lfw_root: Path,
    dev_test,  # type: ignore[no-untyped-def]
) -> None:
    # Detection only: the second card prints Abdullah_Gul_0016, a three-quarter
    # profile the quality rule may refuse as turned away (tests/engine/test_quality.py).
    matcher = FaceMatcher(check_quality=False)
    planned = plan_pairs(dev_test[:40])
    cards = [p.card for p in planned if p.card.kind is Kind.CARD][:3]
    sideways = next(p.card for p in planned if p.card.rotation_deg == 90)
    for spec in [*cards, sideways]:
        found = matcher.observe(render(spec, lfw_root))
        assert (found.rotation_deg + spec.rotation_deg) % 360 == 0
        # The printed portrait, not the ghost (less than half its size).
        assert found.box_px.width_px > 0.6 * spec.face_px
    selfie = planned[0].selfie
    found = matcher.observe(render(selfie, lfw_root))
    assert 0.6 * selfie.face_px < found.box_px.width_px < 1.4 * selfie.face_px
