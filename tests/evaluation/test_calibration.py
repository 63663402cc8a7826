"""Fitting a calibration: the logistic, impostor distances, FMR thresholds, the whole file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facematch.evaluation.calibration import (
    calibration_report,
    default_output_path,
    fit_calibration,
    fit_logistic,
    fmr_thresholds,
    impostor_distances,
    placeholder_calibration,
)
from facematch.evaluation.lfw import parse_pairs


def test_logistic_fit_recovers_known_parameters() -> None:
    rng = np.random.default_rng(1)
    d = rng.uniform(0.2, 1.0, 20_000)
    p = 1 / (1 + np.exp(-(8.0 - 14.0 * d)))
    y = rng.random(d.size) < p
    intercept, slope = fit_logistic(d, y)
    assert intercept == pytest.approx(8.0, rel=0.1)
    assert slope == pytest.approx(-14.0, rel=0.1)
    brier, log_loss, table = calibration_report(1 / (1 + np.exp(-(intercept + slope * d))), y)
    assert 0 < brier < 0.25
    assert 0 < log_loss < 0.7
    for row in table:
        if row.count > 500:
            assert row.observed_same == pytest.approx(row.mean_predicted, abs=0.05)


def test_impostor_distances_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    e = rng.normal(size=(37, 128)).astype(np.float32)
    ids = np.array([i // 3 for i in range(37)])
    expected = [
        np.linalg.norm(e[i] - e[j]) for i in range(37) for j in range(i + 1, 37) if ids[i] != ids[j]
    ]
    got = impostor_distances(e, ids, block=8)
    np.testing.assert_allclose(np.sort(got), np.sort(expected), rtol=1e-4)


def test_fmr_thresholds_are_quantiles() -> None:
    d = np.arange(1_000_000) / 1_000_000.0
    t = fmr_thresholds(d)
    assert t["1e-2"] == pytest.approx(0.01, abs=1e-5)
    assert t["1e-4"] == pytest.approx(1e-4, abs=1e-5)
    with pytest.raises(ValueError, match="too few"):
        fmr_thresholds(d[:1000])


def test_fit_builds_a_complete_calibration() -> None:
    # 600 synthetic "people" with 2 images each: close pairs within, far between.
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(600, 128)) * 0.06
    results = {}
    for i, centre in enumerate(centres):
        for n in (1, 2):
            results[(f"p{i}", n)] = (centre + rng.normal(size=128) * 0.02).astype(np.float32)
    text = "300\n" + "".join(f"p{i} 1 2\n" for i in range(300))
    text += "".join(f"p{i} 1 p{i + 1} 1\n" for i in range(300))
    pairs = parse_pairs(text)
    calibration, summary = fit_calibration(
        results, pairs, pairs[:10] + pairs[-10:], "dlib-resnet-v1"
    )
    t = calibration.thresholds_by_fmr
    assert t["1e-4"] < t["1e-3"] < t["1e-2"]
    assert calibration.slope < 0
    assert calibration.confidence(0.1) > 0.9 > 0.1 > calibration.confidence(1.5)
    assert calibration.metadata["impostors"]["pairs"] == 1200 * 1199 // 2 - 600
    assert calibration.metadata["check"]["pairs_used"] == 20
    assert "thresholds: FMR 1e-2" in summary


def test_placeholder_and_default_output_stay_out_of_the_package(tmp_path: Path) -> None:
    assert placeholder_calibration("dlib-resnet-v1").model_id == "dlib-resnet-v1"
    target = default_output_path(tmp_path, "dlib-resnet-v1+mirror-l2")
    assert target == tmp_path / "calibration-dlib-resnet-v1+mirror-l2.json"
