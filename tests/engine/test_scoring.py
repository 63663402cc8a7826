"""Scoring: the shipped calibrations, confidence, distance (fitting: tests/evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facematch.engine.embed import DlibEmbedder, MirrorAveragedEmbedder
from facematch.engine.errors import ModelFormatError
from facematch.engine.scoring import Calibration, distance, fmr_key, load_calibration


@pytest.mark.parametrize("model_id", ["dlib-resnet-v1+mirror-l2", "dlib-resnet-v1"])
def test_shipped_calibrations_load_and_thresholds_are_ordered(model_id: str) -> None:
    calibration = load_calibration(model_id=model_id)
    assert calibration.model_id == model_id
    t = calibration.thresholds_by_fmr
    # A stricter false-match rate needs a smaller distance.
    assert 0 < t["1e-4"] < t["1e-3"] < t["1e-2"] < 1.5
    assert calibration.default_threshold == t["1e-3"]
    assert calibration.threshold_for_fmr(1e-4) == t["1e-4"]
    assert calibration.metadata["impostors"]["pairs"] > 1_000_000
    assert calibration.metadata["created"]


def test_the_default_calibration_is_the_default_pipeline_s() -> None:
    assert load_calibration().model_id == MirrorAveragedEmbedder(DlibEmbedder()).model_id
    with pytest.raises(ModelFormatError):
        load_calibration(model_id="no-such-model")
    with pytest.raises(ValueError, match="model id"):
        load_calibration(model_id="../etc/passwd")


def test_confidence_is_a_probability_falling_with_distance() -> None:
    calibration = load_calibration()
    distances = np.linspace(0.0, 2.0, 401)
    values = np.array([calibration.confidence(d) for d in distances])
    assert np.all((values >= 0) & (values <= 1))
    assert np.all(np.diff(values) <= 0)
    assert values[0] > 0.99
    assert values[-1] < 0.01
    # Extreme inputs do not overflow.
    assert calibration.confidence(1e6) == 0.0
    assert calibration.confidence(-1e6) == 1.0


def test_every_accepted_pair_has_confidence_above_one_half() -> None:
    # The FMR 1e-3 threshold is stricter than the 50 % point of P(same), so no
    # pair is "similar" with a confidence below 0.5.
    calibration = load_calibration()
    assert calibration.confidence(calibration.default_threshold) > 0.5
    assert calibration.confidence(calibration.thresholds_by_fmr["1e-2"] + 0.1) < 0.5


def test_distance_is_euclidean() -> None:
    assert distance(np.zeros(128), np.full(128, 0.5)) == pytest.approx(np.sqrt(128) / 2)
    with pytest.raises(ValueError, match="differ"):
        distance(np.zeros(128), np.zeros(64))


def test_fmr_keys() -> None:
    assert fmr_key(1e-3) == "1e-3"
    assert fmr_key(0.01) == "1e-2"
    with pytest.raises(ValueError, match="power of ten"):
        fmr_key(0.002)


def test_malformed_file_is_a_model_format_error(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"model_id": "x", "thresholds_by_fmr": {}}))
    with pytest.raises(ModelFormatError):
        load_calibration(path)
    path.write_text("{not json")
    with pytest.raises(ModelFormatError):
        load_calibration(path)


def test_round_trip_through_json(tmp_path: Path) -> None:
    original = Calibration("m", {"1e-2": 0.6, "1e-3": 0.5, "1e-4": 0.4}, 9.0, -17.0, {"k": 1})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(original.to_json_dict()))
    loaded = load_calibration(path)
    assert loaded == original
    assert loaded.metadata == {"k": 1}


def test_positive_slope_is_refused() -> None:
    with pytest.raises(ValueError, match="slope"):
        Calibration("m", {"1e-2": 0.6, "1e-3": 0.5, "1e-4": 0.4}, 0.0, 1.0)
