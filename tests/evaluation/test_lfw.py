"""LFW pairs files and the verification metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facematch.evaluation.lfw import (
    PairsFormatError,
    image_path,
    parse_pairs,
    read_pairs,
    roc_auc,
    tar_at_fmr,
    ten_fold_accuracy,
)

FOLDED = """2\t2
Ann\t1\t2
Bob\t3\t4
Ann\t1\tBob\t2
Cid\t5\tDee\t1
Eve\t1\t3
Fay\t2\t4
Eve\t2\tFay\t1
Gus\t1\tHal\t2
"""


def test_parses_folds() -> None:
    pairs = parse_pairs(FOLDED)
    assert len(pairs) == 8
    assert [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[0].first == ("Ann", 1)
    assert pairs[0].second == ("Ann", 2)
    assert pairs[3].first == ("Cid", 5)
    assert pairs[3].second == ("Dee", 1)


def test_parses_single_set_header() -> None:
    pairs = parse_pairs("1\nAnn 1 2\nAnn 1 Bob 1\n")
    assert [p.same for p in pairs] == [True, False]
    assert {p.fold for p in pairs} == {0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("x\n", "header"),
        ("2\nAnn 1 2\nAnn 1 Bob 1\n", "promises"),
        ("1\nAnn 1 Bob 2\nAnn 1 Bob 1\n", "line 2"),
        ("1\nAnn 1 x\nAnn 1 Bob 1\n", "integers"),
    ],
)
def test_rejects_malformed_files(text: str, message: str) -> None:
    with pytest.raises(PairsFormatError, match=message):
        parse_pairs(text)


def test_reads_the_real_dev_files(lfw_root: Path) -> None:
    train = read_pairs(lfw_root / "pairsDevTrain.txt")
    test = read_pairs(lfw_root / "pairsDevTest.txt")
    assert (len(train), sum(p.same for p in train)) == (2200, 1100)
    assert (len(test), sum(p.same for p in test)) == (1000, 500)
    for pair in test[:5] + test[-5:]:
        assert image_path(lfw_root, pair.first).is_file()
        assert image_path(lfw_root, pair.second).is_file()


def test_roc_auc() -> None:
    same = np.array([True, True, False, False])
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), same) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), same) == 0.0
    # Refused images (infinite distance) rank last; ties count half.
    assert roc_auc(np.array([0.1, np.inf, 0.8, np.inf]), same) == pytest.approx(0.625)


def test_ten_fold_picks_thresholds_on_the_other_folds() -> None:
    same = np.array([True, False] * 10)
    folds = np.repeat(np.arange(10), 2)
    separable = np.where(same, 0.3, 0.9)
    assert ten_fold_accuracy(separable, same, folds) == (1.0, 0.0)
    assert ten_fold_accuracy(separable, same, np.zeros(20, int)) is None


def test_tar_at_fmr() -> None:
    impostors = np.linspace(0.5, 1.5, 100_000)
    genuine = np.array([0.2, 0.4, 0.6, 0.8])
    tar, threshold = tar_at_fmr(genuine, impostors, 1e-3)
    assert threshold == pytest.approx(0.501, abs=1e-3)
    assert tar == 0.5
    assert tar_at_fmr(genuine, impostors[:500], 1e-3) is None
