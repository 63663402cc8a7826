"""Scoring the engine on the KYC-style set (:mod:`facematch.evaluation.kyc`).

Every image goes through :meth:`FaceMatcher.observe` once, timed per stage.
A refused image makes each of its pairs a "different" answer (what a client
experiences). Impostors for TAR at FMR are every selfie × card combination of
different identities among the accepted images (~1 M for the 1,000 DevTest
pairs, enough to resolve FMR 1e-4); genuine pairs are the listed same pairs,
refused ones counting as rejected.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facematch.engine.errors import EngineError
from facematch.evaluation.kyc import ImageSpec, KycSet
from facematch.evaluation.lfw import tar_at_fmr

if TYPE_CHECKING:
    from facematch.engine.matcher import FaceMatcher

__all__ = ["ImageResult", "KycReport", "observe_set", "score"]

FMRS = (1e-3, 1e-4)
STAGES = ("decode", "detect", "align", "embed")


@dataclass
class ImageResult:
    spec: ImageSpec
    embedding: np.ndarray | None
    error: str | None  # the engine error's class name when refused
    seconds: dict[str, float]  # per stage that ran
    rotation_deg: int | None = None  # the rotation the engine found the face at

    @property
    def total_ms(self) -> float:
        return 1000 * sum(self.seconds.values())


def observe_set(
    matcher: FaceMatcher, kyc: KycSet, *, progress: Callable[[int], None] | None = None
) -> dict[str, ImageResult]:
    """Observe every image of the set once: name → result."""
    out = {}
    for spec in kyc.images():
        data = kyc.path(spec).read_bytes()
        seconds: dict[str, float] = {}
        try:
            found = matcher.observe(data, timings=seconds)
            result = ImageResult(spec, found.embedding, None, seconds, found.rotation_deg)
        except EngineError as exc:
            result = ImageResult(spec, None, type(exc).__name__, seconds)
        out[spec.name] = result
        if progress is not None:
            progress(1)
    return out


@dataclass
class TypeTiming:
    images: int
    refused: int
    total_ms_p50: float
    stage_ms_p50: dict[str, float]


@dataclass
class KycReport:
    pairs: int
    same_pairs: int
    images: int
    threshold: float
    accuracy: float
    impostor_pairs: int
    fmr_at_threshold: float
    tar_at_fmr: dict[str, float | None]
    fmr_thresholds: dict[str, float | None]
    refusals: dict[str, int]
    refusals_by_type: dict[str, dict[str, int]]
    timing_by_type: dict[str, TypeTiming]
    images_by_type: dict[str, int] = field(default_factory=dict)
    cards_turned_found_upright: int = 0
    cards_turned_accepted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def _impostors(kyc: KycSet, results: dict[str, ImageResult]) -> np.ndarray:
    selfies = [results[p.selfie.name] for p in kyc.pairs]
    cards = [results[p.card.name] for p in kyc.pairs]
    selfies = [r for r in selfies if r.embedding is not None]
    cards = [r for r in cards if r.embedding is not None]
    if not selfies or not cards:
        return np.zeros(0, np.float32)
    s = np.stack([r.embedding for r in selfies if r.embedding is not None]).astype(np.float64)
    c = np.stack([r.embedding for r in cards if r.embedding is not None]).astype(np.float64)
    sq = (s * s).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * s @ c.T
    different = (
        np.array([r.spec.identity for r in selfies])[:, None]
        != np.array([r.spec.identity for r in cards])[None, :]
    )
    return np.sqrt(np.maximum(sq[different], 0.0)).astype(np.float32)


def _timing(group: list[ImageResult]) -> TypeTiming:
    stage_ms = {}
    for stage in STAGES:
        values = [1000 * r.seconds[stage] for r in group if stage in r.seconds]
        if values:
            stage_ms[stage] = round(statistics.median(values), 2)
    return TypeTiming(
        images=len(group),
        refused=sum(r.error is not None for r in group),
        total_ms_p50=round(statistics.median(r.total_ms for r in group), 2),
        stage_ms_p50=stage_ms,
    )


def score(kyc: KycSet, results: dict[str, ImageResult], threshold: float) -> KycReport:
    """Accuracy at ``threshold``, TAR at FMR 1e-3 / 1e-4, refusals and timings."""
    distances, same = [], []
    for pair in kyc.pairs:
        a, b = results[pair.selfie.name], results[pair.card.name]
        if a.embedding is not None and b.embedding is not None:
            distances.append(_distance(a.embedding, b.embedding))
        else:
            distances.append(np.inf)  # a refused image: the pair is never accepted
        same.append(pair.same)
    d, y = np.array(distances), np.array(same, dtype=bool)
    impostors = _impostors(kyc, results)
    tars: dict[str, float | None] = {}
    thresholds: dict[str, float | None] = {}
    for fmr in FMRS:
        key = f"{fmr:.0e}".replace("e-0", "e-")
        found = tar_at_fmr(d[y], impostors, fmr)
        tars[key] = None if found is None else found[0]
        thresholds[key] = None if found is None else found[1]
    groups: dict[str, list[ImageResult]] = defaultdict(list)
    for result in results.values():
        groups[result.spec.input_type].append(result)
    by_type = {
        name: dict(Counter(r.error for r in group if r.error is not None))
        for name, group in sorted(groups.items())
    }
    turned = [r for r in results.values() if r.spec.rotation_deg and r.embedding is not None]
    return KycReport(
        pairs=len(kyc.pairs),
        same_pairs=int(y.sum()),
        images=len(results),
        threshold=threshold,
        accuracy=float(np.mean((d < threshold) == y)),
        impostor_pairs=len(impostors),
        fmr_at_threshold=float(np.mean(impostors < threshold)) if len(impostors) else 0.0,
        tar_at_fmr=tars,
        fmr_thresholds=thresholds,
        refusals=dict(sorted(Counter(r.error for r in results.values() if r.error).items())),
        refusals_by_type={k: v for k, v in by_type.items() if v},
        timing_by_type={name: _timing(group) for name, group in sorted(groups.items())},
        images_by_type={name: len(group) for name, group in sorted(groups.items())},
        # The engine turns the image clockwise by rotation_deg; the card was turned by
        # rotation_deg clockwise, so upright means the two add up to a full turn.
        cards_turned_found_upright=sum(
            ((r.rotation_deg or 0) + r.spec.rotation_deg) % 360 == 0 for r in turned
        ),
        cards_turned_accepted=len(turned),
    )
