"""Where the time of one face goes: decode, detect, align, embed, total.

Runs the engine's stages one by one on three JPEGs, two 640×480 and one
12-megapixel (4000×3000), each holding one LFW face (scaled up) on a background of
blurred, upside-down LFW photos (real texture, so realistic decode cost, but
no second upright face). Every figure is the median of ``--repeats`` runs after
one warm-up run. ``total`` is ``FaceMatcher.observe`` (all stages in one call).
A big face (~40 % of the image height) is settled by the detector's coarse
pass; a small one (~23 %) needs the full pass too (see engine/detect.py).
``det@320`` is a variant detector measured in the same process: its coarse
pass at a 320 px smaller side, trusted from a 107 px face (margin 1.0). It is
cheaper but moves boxes and refusals (docs/engine.md), so it is not the default.

Baseline, measured in the same process on the same files: the plain pipeline
of the reference (full-size decode, HOG with one upsample on the full image,
dlib's own descriptor); its detect stage on 12 MP runs once (it takes seconds).

    python -m bench.stages [--repeats 7] [--lfw-root DIR] [--embedder onnx|dlib]
    python -m bench.stages --workload kyc [--per-type 5] [--kyc-dir DIR]

``--workload kyc`` times the KYC-style set instead (:mod:`facematch.evaluation.kyc`):
for each input type (selfies of 640×480, 480×640 and 12 MP; flat and photographed
ID cards, upright, sideways, upside down) the first ``--per-type`` images the
engine accepts, each stage the median of ``--repeats`` ``FaceMatcher.observe``
calls, then the median over the type's images. The baseline, measured in the
same process, is today's pipeline before issue 13 (HOG detector, plain
descriptor, no quality checks) on the same images: every row prints its total
and the ratio.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFilter

from facematch.engine.align import Aligner
from facematch.engine.detect import FaceDetector, rotate
from facematch.engine.embed import DlibEmbedder, create_embedder
from facematch.engine.images import ImageLimits, decode_image
from facematch.engine.matcher import DECODE_MAX_SIDE_PX, FaceMatcher
from facematch.engine.types import FaceBox
from facematch.evaluation.variants import CoarsePassVariant

DEFAULT_LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"
FACE = ("Abdullah_Gul", 13)


def _photo(root: Path, width: int, height: int, face_side: int) -> bytes:
    paths = sorted((root / "images").glob("*/*.jpg"))[::40]
    canvas = Image.new("RGB", (width, height))
    tile = max(250, width // 8)
    spots = [(x, y) for y in range(0, height, tile) for x in range(0, width, tile)]
    for (x, y), path in zip(spots, paths, strict=False):
        with Image.open(path) as image:
            canvas.paste(image.convert("RGB").rotate(180).resize((tile, tile)), (x, y))
    canvas = canvas.filter(ImageFilter.GaussianBlur(max(2, width // 400)))
    name, number = FACE
    with Image.open(root / "images" / name / f"{name}_{number:04d}.jpg") as image:
        face = image.convert("RGB").resize((face_side, face_side), Image.Resampling.BICUBIC)
    canvas.paste(face, ((width - face_side) // 2, (height - face_side) // 2))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=88)
    return out.getvalue()


def _median_ms(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up: first-call costs are not what we measure
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _stages(matcher: FaceMatcher, data: bytes, repeats: int) -> dict[str, float]:
    detector, aligner = FaceDetector(), Aligner()
    variant = CoarsePassVariant(coarse_work_side_px=320, coarse_margin=1.0, coarse_skip_levels=0)
    limits = ImageLimits(max_bytes=10 * 1024 * 1024)
    decoded = decode_image(data, limits=limits, max_side_px=DECODE_MAX_SIDE_PX)
    found = detector.detect_one(decoded.pixels, scale=decoded.scale)
    pixels = rotate(decoded.pixels, found.rotation_deg)
    chip = aligner.chip(pixels, found.box)
    embedder = matcher.embedder
    return {
        "decode": _median_ms(
            lambda: decode_image(data, limits=limits, max_side_px=DECODE_MAX_SIDE_PX), repeats
        ),
        "detect": _median_ms(
            lambda: detector.detect_one(decoded.pixels, scale=decoded.scale), repeats
        ),
        "det@320": _median_ms(
            lambda: variant.detect_one(decoded.pixels, scale=decoded.scale), repeats
        ),
        "align": _median_ms(lambda: aligner.chip(pixels, found.box), repeats),
        "embed": _median_ms(lambda: embedder.embed(chip[None]), repeats),
        "total": _median_ms(lambda: matcher.observe(data), repeats),
    }


def _baseline(data: bytes, repeats: int, dlib_embedder: DlibEmbedder) -> dict[str, float]:
    import dlib

    detector, aligner = dlib.get_frontal_face_detector(), Aligner()
    limits = ImageLimits(max_bytes=10 * 1024 * 1024)
    pixels = decode_image(data, limits=limits).pixels
    big = pixels.shape[0] * pixels.shape[1] > 2_000_000
    rect = max(detector(pixels, 1), key=lambda r: r.width() * r.height())
    box = FaceBox(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
    chip = aligner.chip(pixels, box)
    return {
        "decode": _median_ms(lambda: decode_image(data, limits=limits), repeats),
        "detect": _median_ms(lambda: detector(pixels, 1), 1 if big else repeats),
        "align": _median_ms(lambda: aligner.chip(pixels, box), repeats),
        "embed": _median_ms(lambda: dlib_embedder.embed(chip[None]), repeats),
    }


def _observe_ms(matcher: FaceMatcher, data: bytes, repeats: int) -> dict[str, float]:
    """Median ms per stage (and in all) of ``repeats`` observe calls, after one warm-up."""
    matcher.observe(data)
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        seconds: dict[str, float] = {}
        matcher.observe(data, timings=seconds)
        runs.append(seconds)
    out = {stage: statistics.median(r[stage] for r in runs) * 1000 for stage in runs[0]}
    out["total"] = statistics.median(sum(r.values()) for r in runs) * 1000
    return out


def kyc_workload(matcher: FaceMatcher, args: argparse.Namespace) -> None:
    from facematch.engine.detect import FaceDetector
    from facematch.engine.errors import InputError
    from facematch.evaluation.kyc import build_set
    from facematch.evaluation.lfw import read_pairs

    # Today's pipeline before issue 13, in the same process: HOG detector, plain
    # descriptor, no quality checks. Its images are the ones both accept.
    today = FaceMatcher(
        embedder=create_embedder(args.embedder, mirror=False),
        detector=FaceDetector(),
        limits=ImageLimits(max_bytes=10 * 1024 * 1024),
        check_quality=False,
    )
    listed = read_pairs(args.lfw_root / "pairsDevTest.txt")
    kyc = build_set(args.lfw_root, listed, args.kyc_dir, only=range(0, len(listed), 4))
    by_type: dict[str, list[bytes]] = {}
    for spec in kyc.images():
        chosen = by_type.setdefault(spec.input_type, [])
        if len(chosen) >= args.per_type:
            continue
        data = kyc.path(spec).read_bytes()
        try:
            matcher.observe(data)
            today.observe(data)
        except InputError:
            continue  # refused images are timed by `facematch eval kyc`, not here
        chosen.append(data)
    columns = ("decode", "detect", "align", "embed", "total")
    print(
        f"KYC-style set: median over up to {args.per_type} images per type (accepted by both "
        f"pipelines) of the median of {args.repeats} observe calls, ms, one thread; "
        f"this pipeline: {matcher.model_id}; 'today': HOG + plain descriptor, no quality checks"
    )
    print(
        f"{'input type':<26}{'n':>4}"
        + "".join(f"{c:>9}" for c in columns)
        + f"{'today':>9}{'today/this':>11}"
    )
    for name in sorted(by_type):
        if not by_type[name]:
            continue
        ours = [_observe_ms(matcher, data, args.repeats) for data in by_type[name]]
        base = [_observe_ms(today, data, args.repeats)["total"] for data in by_type[name]]
        med = {c: statistics.median(r.get(c, 0.0) for r in ours) for c in columns}
        before = statistics.median(base)
        print(
            f"{name:<26}{len(ours):>4}"
            + "".join(f"{med[c]:9.1f}" for c in columns)
            + f"{before:9.1f}{before / med['total']:11.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lfw-root", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--embedder", choices=["onnx", "dlib"], default="onnx")
    parser.add_argument("--workload", choices=["synthetic", "kyc"], default="synthetic")
    parser.add_argument("--per-type", type=int, default=5)
    parser.add_argument(
        "--kyc-dir", type=Path, default=Path(tempfile.gettempdir()) / "facematch-kyc"
    )
    args = parser.parse_args()
    # The synthetic table times the HOG pipeline stage by stage (its detect and
    # det@320 columns are HOG's), so its total is that pipeline's too.
    matcher = FaceMatcher(
        embedder=create_embedder(args.embedder),
        limits=ImageLimits(max_bytes=10 * 1024 * 1024),
        detector=FaceDetector(),
    )
    if args.workload == "kyc":
        from facematch.settings import Settings

        # The configured pipeline (FACEMATCH_* variables), as the service builds it.
        kyc_workload(FaceMatcher.from_settings(Settings(embedder=args.embedder)), args)
        return
    dlib_embedder = DlibEmbedder()
    # The pasted LFW crop is 2.3× the face (a 250 px crop holds a ~108 px face).
    photos = {
        "640×480 big face": _photo(args.lfw_root, 640, 480, 430),  # face ≈ 185 px
        "640×480 small face": _photo(args.lfw_root, 640, 480, 250),  # face ≈ 108 px
        "12 MP big face": _photo(args.lfw_root, 4000, 3000, 2700),  # face ≈ 1170 px
    }
    print(f"embedder: {args.embedder}; median of {args.repeats} runs, milliseconds, one thread")
    columns = ("decode", "detect", "det@320", "align", "embed", "total")
    header = f"{'image':<22}{'JPEG':>9}" + "".join(f"{s:>11}" for s in columns)
    print(header)
    rows = []
    for label, data in photos.items():
        ours = _stages(matcher, data, args.repeats)
        base = _baseline(data, args.repeats, dlib_embedder)
        base["total"] = sum(base.values())
        rows.append((label, ours, base))
        size = f"{len(data) / 1e6:.2f}MB"
        # The reference has no det@320 column; the ratio row's is detect / det@320.
        base_or_prev = {**base, "det@320": ours["detect"]}
        print(f"{label:<22}{size:>9}" + "".join(f"{ours[s]:11.1f}" for s in columns))
        print(
            f"{'  reference':<22}{'':>9}"
            + "".join(f"{base[s]:11.1f}" if s in base else f"{'':>11}" for s in columns)
        )
        print(
            f"{'  ratio ref/ours':<22}{'':>9}"
            + "".join(f"{base_or_prev[s] / ours[s]:11.1f}" for s in columns)
        )


if __name__ == "__main__":
    main()
