"""Detection on KYC-style inputs: dlib HOG against BlazeFace, in one process.

For the first ``--per-type`` images of each input type of the KYC-style set
(:mod:`facematch.evaluation.kyc`, every fourth DevTest pair) the image is
decoded once as the engine decodes it, then each detector's ``detect_one``
(orientation handling and the one-face rule included) is timed ``--repeats``
times; the figure per image is the median, and the table shows per input type
the median of those, the refusals, and the
p50 / p90 over the whole mix (as many images of each type), and the p50 over
the set as it comes (the images of the first ``--natural`` pairs: selfies and
cards in the set's own proportions, three cards in four upright). Then:

* the face-size curve: a 640×480 photo with one LFW face of 60 to 230 px
  (the benchmark face is ~185 px; 20 % smaller must not cost 3× more),
  detection time of each;
* the engine per realistic pair: ``FaceMatcher.match(selfie, card)`` (decode,
  detect, align, embed both), median over ``--pairs`` pairs of the set.

One thread for onnxruntime. Times are CPU time of the calling thread (where
onnxruntime with one intra-op thread and dlib compute), so a shared machine
slows the run but moves the figures little; still, compare the columns of one
run (same process, interleaved), not runs of different days.

    python -m bench.detect [--repeats 5] [--pairs 20] [--per-type 15] [--natural 60]
                           [--lfw-root DIR] [--kyc-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.stages import DEFAULT_LFW, _photo
from facematch.engine.blazeface import BlazeFaceDetector
from facematch.engine.detect import FaceDetector
from facematch.engine.errors import FaceError
from facematch.engine.images import ImageLimits, decode_image
from facematch.engine.matcher import DECODE_MAX_SIDE_PX, FaceMatcher
from facematch.evaluation.kyc import build_set
from facematch.evaluation.lfw import read_pairs

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024)


def _median_ms(function: Callable[[], object], repeats: int) -> float:
    """Median CPU time of the calling thread, in ms: onnxruntime (one intra-op thread)
    and dlib run in it, and on a shared machine wall time mostly measures the others."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        with contextlib.suppress(FaceError):  # a refusal costs what it costs; counted apart
            function()
        times.append(time.thread_time() - start)
    return statistics.median(times) * 1000


def _outcome(detector: FaceDetector | BlazeFaceDetector, pixels, scale: float) -> str:  # type: ignore[no-untyped-def]
    try:
        found = detector.detect_one(pixels, scale=scale)
    except FaceError as exc:
        return type(exc).__name__
    return f"ok@{found.rotation_deg}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--per-type", type=int, default=15, help="images per input type")
    parser.add_argument(
        "--natural", type=int, default=60, help="pairs whose images make the set-as-it-comes mix"
    )
    parser.add_argument("--lfw-root", type=Path, default=DEFAULT_LFW)
    parser.add_argument(
        "--kyc-dir", type=Path, default=Path(tempfile.gettempdir()) / "facematch-kyc"
    )
    args = parser.parse_args()
    detectors = {"hog": FaceDetector(), "blazeface": BlazeFaceDetector()}

    listed = read_pairs(args.lfw_root / "pairsDevTest.txt")
    kyc = build_set(args.lfw_root, listed, args.kyc_dir, only=range(0, len(listed), 4))
    per_type: dict[str, dict[str, list[float]]] = {}
    refused: dict[str, dict[str, int]] = {}
    taken: dict[str, int] = {}
    natural = {spec.name for pair in kyc.pairs[: args.natural] for spec in (pair.selfie, pair.card)}
    as_it_comes: dict[str, list[float]] = {name: [] for name in detectors}
    for spec in kyc.images():
        wanted = taken.get(spec.input_type, 0) < args.per_type
        if not wanted and spec.name not in natural:
            continue
        decoded = decode_image(
            kyc.path(spec).read_bytes(), limits=LIMITS, max_side_px=DECODE_MAX_SIDE_PX
        )
        if wanted:
            taken[spec.input_type] = taken.get(spec.input_type, 0) + 1
        for name, detector in detectors.items():
            ms = _median_ms(
                lambda d=detector, p=decoded: d.detect_one(p.pixels, scale=p.scale), args.repeats
            )
            if spec.name in natural:
                as_it_comes[name].append(ms)
            if not wanted:
                continue
            per_type.setdefault(spec.input_type, {}).setdefault(name, []).append(ms)
            outcome = _outcome(detector, decoded.pixels, decoded.scale)
            if not outcome.startswith("ok"):
                counts = refused.setdefault(spec.input_type, {})
                counts[name] = counts.get(name, 0) + 1

    print(f"detect_one per image, CPU ms (median of {args.repeats}); refusals; one thread")
    print(f"{'input type':<24}{'n':>4}{'hog':>9}{'blazeface':>11}{'ratio':>8}{'refused h/b':>13}")
    everything: dict[str, list[float]] = {name: [] for name in detectors}
    for input_type in sorted(per_type):
        row = per_type[input_type]
        for name in detectors:
            everything[name] += row[name]
        hog, cnn = statistics.median(row["hog"]), statistics.median(row["blazeface"])
        counts = refused.get(input_type, {})
        print(
            f"{input_type:<24}{len(row['hog']):>4}{hog:9.1f}{cnn:11.1f}{hog / cnn:8.1f}"
            f"{counts.get('hog', 0):>7}/{counts.get('blazeface', 0)}"
        )
    for q, label in ((50, "p50 over the mix"), (90, "p90 over the mix")):
        hog = statistics.quantiles(everything["hog"], n=100)[q - 1]
        cnn = statistics.quantiles(everything["blazeface"], n=100)[q - 1]
        print(f"{label:<28}{hog:9.1f}{cnn:11.1f}{hog / cnn:8.1f}")
    hog, cnn = (statistics.median(as_it_comes[name]) for name in ("hog", "blazeface"))
    label = f"p50 as it comes ({len(as_it_comes['hog'])})"
    print(f"{label:<28}{hog:9.1f}{cnn:11.1f}{hog / cnn:8.1f}")
    upright = {name: statistics.median(per_type["card"][name]) for name in detectors}
    for turned in ("card sideways", "card upside-down"):
        if turned in per_type:
            ratios = [statistics.median(per_type[turned][n]) / upright[n] for n in detectors]
            print(f"{turned + ' / card':<28}{ratios[0]:9.1f}{ratios[1]:11.1f}")

    print("\nface-size curve: 640×480, one face; detect_one CPU ms (median)")
    for face_px in (470, 430, 344, 280, 230, 185, 140):  # pasted crop side; face ≈ 0.43 of it
        data = _photo(args.lfw_root, 640, 480, face_px)
        decoded = decode_image(data, limits=LIMITS, max_side_px=DECODE_MAX_SIDE_PX)
        cells = [
            _median_ms(lambda d=d, p=decoded: d.detect_one(p.pixels), 4 * args.repeats)
            for d in detectors.values()
        ]
        print(f"  face ≈ {round(face_px * 0.43)} px{cells[0]:9.1f}{cells[1]:11.1f}")

    print(f"\nengine per selfie × card pair, CPU ms (median over {args.pairs} pairs)")
    matchers = {
        "hog": FaceMatcher(detector=detectors["hog"], limits=LIMITS),
        "blazeface": FaceMatcher(detector=detectors["blazeface"], limits=LIMITS),
    }
    pair_ms: dict[str, list[float]] = {name: [] for name in matchers}
    for pair in kyc.pairs[: args.pairs]:
        first, second = kyc.path(pair.selfie).read_bytes(), kyc.path(pair.card).read_bytes()
        for name, matcher in matchers.items():
            pair_ms[name].append(
                _median_ms(lambda m=matcher, a=first, b=second: m.match(a, b), args.repeats)
            )
    hog, cnn = statistics.median(pair_ms["hog"]), statistics.median(pair_ms["blazeface"])
    print(f"  p50{hog:9.1f}{cnn:11.1f}{hog / cnn:8.1f}")


if __name__ == "__main__":
    main()
