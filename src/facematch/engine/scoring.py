"""Scoring: descriptor distance, calibrated confidence and decision thresholds.

``confidence`` is a calibrated probability that two faces show the same person,
``P(same | d) = 1 / (1 + exp(-(intercept + slope · d)))``, a logistic fit on
LFW View 1 ``pairsDevTrain.txt`` (slope < 0, so it falls as ``d`` grows).
Decision thresholds are distances at which a stated share of different-person
pairs (the false-match rate, FMR) would be accepted, estimated from every
cross-identity pair of the View 1 images. Both ship, one file per descriptor
pipeline (``model_id``), as ``facematch/engine/data/calibration-<model_id>.json``;
``facematch calibrate`` rebuilds the one of the configured pipeline (see
:mod:`facematch.engine.calibration` and docs/accuracy.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from facematch.engine.errors import ModelFormatError

__all__ = [
    "FMR_KEYS",
    "SHIPPED_MODEL_ID",
    "Calibration",
    "calibration_resource",
    "distance",
    "fmr_key",
    "load_calibration",
]

# The false-match rates a calibration file publishes thresholds for.
FMR_KEYS = ("1e-2", "1e-3", "1e-4")
DEFAULT_FMR = 1e-3
# The default descriptor pipeline (engine/embed.py: dlib's ResNet, mirror-averaged).
SHIPPED_MODEL_ID = "dlib-resnet-v1+mirror-l2"


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (smaller = more alike)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"descriptors differ in length: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b))


def fmr_key(fmr: float) -> str:
    """The calibration file's key for a false-match rate: 0.001 → "1e-3"."""
    exponent = math.log10(fmr)
    if fmr <= 0 or abs(exponent - round(exponent)) > 1e-9:
        raise ValueError(f"false-match rate must be a power of ten, got {fmr}")
    return f"1e{round(exponent)}"


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration for one descriptor model."""

    model_id: str
    thresholds_by_fmr: dict[str, float]
    intercept: float
    slope: float
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.slope >= 0:
            raise ValueError("calibration slope must be negative (confidence falls with distance)")
        missing = [key for key in FMR_KEYS if key not in self.thresholds_by_fmr]
        if missing:
            raise ValueError(f"calibration lacks thresholds for FMR {', '.join(missing)}")

    def confidence(self, distance: float) -> float:
        """Calibrated P(same identity) for a descriptor distance, in [0, 1]."""
        z = self.intercept + self.slope * float(distance)
        # Numerically stable logistic; math.exp would overflow for |z| > ~709.
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)

    def threshold_for_fmr(self, fmr: float) -> float:
        """The distance threshold estimated to give false-match rate ``fmr``."""
        key = fmr_key(fmr)
        if key not in self.thresholds_by_fmr:
            raise KeyError(f"no threshold for FMR {key}; have {sorted(self.thresholds_by_fmr)}")
        return self.thresholds_by_fmr[key]

    @property
    def default_threshold(self) -> float:
        """The FMR 1e-3 threshold: the default ``is_similar`` decision."""
        return self.threshold_for_fmr(DEFAULT_FMR)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "logistic": {"intercept": self.intercept, "slope": self.slope},
            "thresholds_by_fmr": dict(self.thresholds_by_fmr),
            **self.metadata,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            known = {"model_id", "logistic", "thresholds_by_fmr"}
            return cls(
                model_id=str(data["model_id"]),
                thresholds_by_fmr={str(k): float(v) for k, v in data["thresholds_by_fmr"].items()},
                intercept=float(data["logistic"]["intercept"]),
                slope=float(data["logistic"]["slope"]),
                metadata={k: v for k, v in data.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"calibration data is malformed: {exc}") from exc


def calibration_resource(model_id: str) -> str:
    """The packaged file (relative to ``facematch.engine``) calibrating ``model_id``."""
    if not model_id or not all(c.isalnum() or c in "+-._" for c in model_id):
        raise ValueError(f"not a model id: {model_id!r}")
    return f"data/calibration-{model_id}.json"


def load_calibration(path: Path | None = None, *, model_id: str = SHIPPED_MODEL_ID) -> Calibration:
    """The calibration shipped for ``model_id``, or the one at ``path``."""
    try:
        if path is None:
            resource = resources.files("facematch.engine").joinpath(calibration_resource(model_id))
            text = resource.read_text()
        else:
            text = Path(path).read_text()
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"cannot read calibration file: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFormatError("calibration file must hold a JSON object")
    calibration = Calibration.from_json_dict(data)
    if path is None and calibration.model_id != model_id:
        raise ModelFormatError(
            f"{calibration_resource(model_id)} is for {calibration.model_id!r}, not {model_id!r}"
        )
    return calibration
