"""Fitting a :class:`~facematch.engine.scoring.Calibration` from labelled distances.

* ``fit_logistic``: P(same | d) by maximum likelihood (Newton / IRLS on two
  parameters; numpy only).
* ``impostor_distances``: every cross-identity distance among a set of
  descriptors, computed in blocks so memory stays bounded.
* ``fmr_thresholds``: the distance below which a given share of impostor pairs
  fall.
* ``calibration_report``: Brier score, log loss and a reliability table, to
  check a fit on held-out pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facematch.engine.scoring import FMR_KEYS

__all__ = [
    "ReliabilityBin",
    "calibration_report",
    "fit_logistic",
    "fmr_thresholds",
    "impostor_distances",
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
