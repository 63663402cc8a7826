"""Fitting a :class:`~facematch.engine.scoring.Calibration` from labelled distances.

The engine only reads calibrations (:mod:`facematch.engine.scoring`); making
one is evaluation work, done by ``facematch calibrate`` through
:func:`fit_calibration`:

* ``fit_logistic``: P(same | d) by maximum likelihood (Newton / IRLS on two
  parameters; numpy only).
* ``impostor_distances``: every cross-identity distance among a set of
  descriptors, computed in blocks so memory stays bounded.
* ``fmr_thresholds``: the distance below which a given share of impostor pairs
  fall.
* ``calibration_report``: Brier score, log loss and a reliability table, to
  check a fit on held-out pairs;
* ``fit_calibration``: all of the above on per-image descriptors and LFW pairs,
  giving the :class:`Calibration` and a summary for people.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facematch.engine.scoring import FMR_KEYS, Calibration

__all__ = [
    "LabelledPair",
    "ReliabilityBin",
    "calibration_report",
    "default_output_path",
    "fit_calibration",
    "fit_logistic",
    "fmr_thresholds",
    "impostor_distances",
    "placeholder_calibration",
]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def fit_logistic(
    distances: np.ndarray, same: np.ndarray, *, max_iter: int = 100
) -> tuple[float, float]:
    """Maximum-likelihood ``(intercept, slope)`` of P(same) = σ(intercept + slope·d).

    A tiny ridge penalty keeps the fit finite when the classes separate perfectly.
    """
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    if d.shape != y.shape or d.ndim != 1 or len(d) < 2:
        raise ValueError("distances and labels must be 1-d arrays of the same length >= 2")
    if y.min() == y.max():
        raise ValueError("need both same-person and different-person pairs to fit")
    x = np.stack([np.ones_like(d), d], axis=1)
    beta = np.zeros(2)
    ridge = 1e-6 * len(d)
    for _ in range(max_iter):
        p = _sigmoid(x @ beta)
        gradient = x.T @ (y - p) - ridge * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def impostor_distances(
    embeddings: np.ndarray,
    identities: np.ndarray,
    *,
    block: int = 512,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Distances of all pairs (i < j) with different identities, as float32.

    ``progress`` is called with the number of rows finished after each block.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    ids = np.asarray(identities)
    n = len(e)
    norms = np.einsum("ij,ij->i", e, e)
    chunks = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        # |a-b|² = |a|² + |b|² - 2ab, only against later rows (each pair once).
        sq = norms[start:stop, None] + norms[None, start:] - 2.0 * (e[start:stop] @ e[start:].T)
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, n)[None, :]
        mask = (cols > rows) & (ids[start:stop, None] != ids[None, start:])
        chunks.append(np.sqrt(np.maximum(sq[mask], 0.0)).astype(np.float32))
        if progress is not None:
            progress(stop - start)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def fmr_thresholds(impostors: np.ndarray, fmr_keys: tuple[str, ...] = FMR_KEYS) -> dict[str, float]:
    """For each FMR, the distance threshold t with share(impostor distance < t) = FMR.

    t is the k-th smallest impostor distance, k = floor(FMR · n): at most
    ``k`` impostor pairs (an FMR of at most the target) fall strictly below it.
    """
    d = np.asarray(impostors, dtype=np.float64)
    out = {}
    for key in fmr_keys:
        k = int(float(key) * len(d))
        if k < 10:
            raise ValueError(f"too few impostor pairs ({len(d)}) to estimate FMR {key}")
        out[key] = float(np.partition(d, k)[k])
    return out


@dataclass(frozen=True)
class ReliabilityBin:
    """Pairs whose predicted P(same) fell in [low, high)."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed_same: float


def calibration_report(
    probabilities: np.ndarray, same: np.ndarray, *, bins: int = 10
) -> tuple[float, float, list[ReliabilityBin]]:
    """Brier score, log loss and a reliability table (equal-width bins)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(same, dtype=np.float64)
    brier = float(np.mean((p - y) ** 2))
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    edges = np.linspace(0.0, 1.0, bins + 1)
    table = []
    for low, high in itertools.pairwise(edges):
        inside = (p >= low) & ((p < high) if high < 1 else (p <= high))
        if inside.any():
            table.append(
                ReliabilityBin(
                    float(low),
                    float(high),
                    int(inside.sum()),
                    float(p[inside].mean()),
                    float(y[inside].mean()),
                )
            )
    return brier, log_loss, table


# --- a whole calibration ------------------------------------------------------------


class LabelledPair(Protocol):
    """Two images and whether they show the same person (an LFW ``Pair``)."""

    @property
    def first(self) -> tuple[str, int]: ...
    @property
    def second(self) -> tuple[str, int]: ...
    @property
    def same(self) -> bool: ...


def placeholder_calibration(model_id: str) -> Calibration:
    """A valid but meaningless calibration for ``model_id``.

    A matcher needs one to be built; while a calibration is being (re)made the
    real one may be missing or stale, and only the descriptors are used.
    """
    return Calibration(model_id, {"1e-2": 1.0, "1e-3": 1.0, "1e-4": 1.0}, 0.0, -1.0)


def default_output_path(data_dir: Path, model_id: str) -> Path:
    """Where ``facematch calibrate`` writes without ``--output``: the data directory.

    Never the package: an installed package is not the place for a user's files,
    and the shipped calibration must not change because a command ran. The
    engine reads a calibration from elsewhere only when told to
    (``FACEMATCH_CALIBRATION_FILE``).
    """
    return Path(data_dir) / f"calibration-{model_id}.json"


def fit_calibration(
    results: Mapping[tuple[str, int], np.ndarray | str],
    pairs: Sequence[LabelledPair],
    check_pairs: Sequence[LabelledPair],
    model_id: str,
) -> tuple[Calibration, str]:
    """Fit P(same | distance) on ``pairs`` and the FMR thresholds on every
    cross-identity pair of ``results``; check the fit on ``check_pairs``.

    ``results`` holds a descriptor per image, or the name of the error that
    refused it (:func:`facematch.evaluation.lfw.embed_images`); pairs with a
    refused image are skipped and counted. Returns the calibration (with its
    provenance in ``metadata``) and a summary for people.
    """

    def pair_distances(selected: Sequence[LabelledPair]) -> tuple[np.ndarray, np.ndarray, int]:
        d, y, skipped = [], [], 0
        for pair in selected:
            a, b = results.get(pair.first), results.get(pair.second)
            if a is None or b is None or isinstance(a, str) or isinstance(b, str):
                skipped += 1
                continue
            d.append(float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64))))
            y.append(pair.same)
        return np.array(d), np.array(y, dtype=bool), skipped

    d_fit, y_fit, skipped_fit = pair_distances(pairs)
    intercept, slope = fit_logistic(d_fit, y_fit)
    usable = sorted(k for k, v in results.items() if not isinstance(v, str))
    embeddings = np.array([results[k] for k in usable], dtype=np.float32)
    identities = np.array([k[0] for k in usable])
    impostors = impostor_distances(embeddings, identities)
    thresholds = fmr_thresholds(impostors)

    def probabilities(d: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(intercept + slope * d)))

    brier, log_loss, _ = calibration_report(probabilities(d_fit), y_fit)
    metadata: dict[str, Any] = {
        "created": datetime.now(UTC).date().isoformat(),
        "fit": {
            "method": "logistic regression of same-identity on distance (maximum likelihood)",
            "pairs_used": len(d_fit),
            "pairs_skipped": skipped_fit,
            "brier": round(brier, 6),
            "log_loss": round(log_loss, 6),
        },
        "impostors": {
            "images": len(results),
            "images_used": len(usable),
            "images_refused": dict(Counter(v for v in results.values() if isinstance(v, str))),
            "identities": len(set(identities.tolist())),
            "pairs": len(impostors),
        },
    }
    lines = [
        f"model {model_id}: P(same) = 1/(1+exp(-({intercept:.4f} {slope:+.4f}·d)))",
        "thresholds: " + ", ".join(f"FMR {k} → {v:.4f}" for k, v in thresholds.items()),
        f"fit on {len(d_fit)} pairs ({skipped_fit} skipped): "
        f"Brier {brier:.4f}, log loss {log_loss:.4f}",
        f"impostor pairs: {len(impostors)} from {len(usable)} images",
    ]
    if check_pairs:
        d_chk, y_chk, skipped_chk = pair_distances(check_pairs)
        brier_c, log_loss_c, table = calibration_report(probabilities(d_chk), y_chk)
        metadata["check"] = {
            "pairs_used": len(d_chk),
            "pairs_skipped": skipped_chk,
            "brier": round(brier_c, 6),
            "log_loss": round(log_loss_c, 6),
            "reliability": [
                {
                    "bin": [round(b.low, 2), round(b.high, 2)],
                    "count": b.count,
                    "mean_predicted": round(b.mean_predicted, 4),
                    "observed_same": round(b.observed_same, 4),
                }
                for b in table
            ],
        }
        lines.append(
            f"check on {len(d_chk)} pairs ({skipped_chk} skipped): "
            f"Brier {brier_c:.4f}, log loss {log_loss_c:.4f}"
        )
        lines.extend(
            f"  P in [{b.low:.1f}, {b.high:.1f}): {b.count:4d} pairs, "
            f"mean P {b.mean_predicted:.3f}, observed same {b.observed_same:.3f}"
            for b in table
        )
    calibration = Calibration(model_id, thresholds, intercept, slope, metadata)
    return calibration, "\n".join(lines)
