"""`facematch compare`, `facematch eval lfw|kyc`, `facematch calibrate`.

Thin layers over :mod:`facematch.engine` (compare) and :mod:`facematch.evaluation`
(the rest): options in, a library call, text or JSON out. Heavy imports happen
inside the commands so ``facematch --help`` stays fast. Every option can also be
set with the environment variable shown in ``--help``.

Exit status of ``compare``: 0 same person, 1 different people, 2 error (bad
image, no face, several faces, unusable option...).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from facematch.engine.blazeface import BlazeFaceDetector
    from facematch.engine.detect import FaceDetector
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.scoring import Calibration
    from facematch.engine.types import FaceObservation, MatchResult
    from facematch.settings import Settings

EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_ERROR = 2

_embedder_option = click.option(
    "--embedder",
    type=click.Choice(["onnx", "dlib"]),
    envvar="FACEMATCH_EMBEDDER",
    show_envvar=True,
    default=None,
    help="Embedding backend [default: onnx].",
)
_threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    envvar="FACEMATCH_MATCH_THRESHOLD",
    show_envvar=True,
    default=None,
    help="Distance below which faces are 'the same person' [default: calibrated FMR 1e-3].",
)
_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of text."
)


def _settings(**overrides: Any) -> Settings:
    from facematch.settings import get_settings

    given = {k: v for k, v in overrides.items() if v is not None}
    base = get_settings()
    return base.model_copy(update=given) if given else base


def _build_matcher(
    settings: Settings,
    calibration: Calibration | None = None,
    detector: FaceDetector | BlazeFaceDetector | None = None,
) -> FaceMatcher:
    from facematch.engine.errors import EngineError
    from facematch.engine.matcher import FaceMatcher

    try:
        return FaceMatcher.from_settings(settings, calibration=calibration, detector=detector)
    except EngineError as exc:
        raise click.ClickException(f"cannot load the engine: {exc}") from exc


# --- compare ----------------------------------------------------------------------


def _observation_dict(observation: FaceObservation | None) -> dict[str, Any] | None:
    if observation is None:
        return None
    return {
        "box_px": observation.box_px.as_dict(),
        "detector_score": round(observation.detector_score, 4),
        "rotation_deg": observation.rotation_deg,
        "image_size_px": list(observation.image_size_px),
    }


def _result_dict(result: MatchResult) -> dict[str, Any]:
    return {
        "is_similar": result.is_similar,
        "confidence": round(result.confidence, 6),
        "distance": round(result.distance, 6),
        "threshold": round(result.threshold, 6),
        "model_id": result.model_id,
        "first": _observation_dict(result.first),
        "second": _observation_dict(result.second),
    }


def _describe(label: str, observation: FaceObservation | None) -> str:
    if observation is None:
        return f"{label}: -"
    box = observation.box_px
    turned = (
        f", found after rotating {observation.rotation_deg}°" if observation.rotation_deg else ""
    )
    return (
        f"{label}: face {box.width_px}×{box.height_px} px at ({box.left}, {box.top}) "
        f"in {observation.image_size_px[0]}×{observation.image_size_px[1]}, "
        f"detector score {observation.detector_score:.2f}{turned}"
    )


@click.command()
@click.argument("first", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("second", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_json_option
@_threshold_option
@_embedder_option
def compare(
    first: Path, second: Path, as_json: bool, threshold: float | None, embedder: str | None
) -> None:
    """Say whether FIRST and SECOND (image files) show the same person.

    Exit status: 0 same person, 1 different people, 2 error.
    """
    from facematch.engine.errors import EngineError

    settings = _settings(embedder=embedder, match_threshold=threshold)
    try:
        matcher = _build_matcher(settings)
        result = matcher.match(first, second)
    except click.ClickException as exc:
        _fail(str(exc.message), as_json=as_json, kind="ModelError")
    except EngineError as exc:
        which = {"first": first, "second": second}.get(exc.image or "")
        where = f"{exc.image} image ({which}): " if which else ""
        _fail(f"{where}{exc}", as_json=as_json, kind=type(exc).__name__, image=exc.image)
    except OSError as exc:
        _fail(f"cannot read image file: {exc}", as_json=as_json, kind="OSError")
    if as_json:
        click.echo(json.dumps(_result_dict(result)))
    else:
        verdict = "same person" if result.is_similar else "different people"
        sign = "<" if result.is_similar else ">="
        click.echo(
            f"{verdict}: distance {result.distance:.3f} {sign} threshold {result.threshold:.3f}, "
            f"confidence {result.confidence:.3f}"
        )
        click.echo(_describe("first ", result.first))
        click.echo(_describe("second", result.second))
    sys.exit(EXIT_SAME if result.is_similar else EXIT_DIFFERENT)


def _fail(message: str, *, as_json: bool, kind: str, image: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps({"error": kind, "image": image, "message": message}), err=True)
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


# --- eval ---------------------------------------------------------------------------


@click.group("eval")
def eval_group() -> None:
    """Evaluate accuracy on a benchmark."""


# The LFW folder is the evaluation's input, not a setting of the service.
_root_option = click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="FACEMATCH_LFW_ROOT",
    show_envvar=True,
    default=Path("../shared/data/lfw-view1"),
    show_default=True,
    help="LFW folder holding images/NAME/NAME_NNNN.jpg.",
)
_cache_option = click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep per-image descriptors in this .npz file and reuse them (experiments).",
)


@contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the callback advancing it."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="img", file=sys.stderr, leave=False) as bar:

        def advance(done: int) -> None:
            bar.update(done)

        yield advance


@eval_group.command("lfw")
@_root_option
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="LFW-format pairs file [default: ROOT/pairsDevTest.txt].",
)
@click.option(
    "--reference",
    is_flag=True,
    help="Also run the plain reference pipeline (HOG upsample 1, dlib descriptor, 0.6).",
)
@click.option(
    "--largest-face",
    is_flag=True,
    help="Also run the engine taking the largest face instead of refusing photos with "
    "several faces (diagnostic: recognition without the one-face policy).",
)
@_json_option
@_threshold_option
@_embedder_option
@_cache_option
def eval_lfw(
    root: Path,
    pairs_path: Path | None,
    reference: bool,
    largest_face: bool,
    as_json: bool,
    threshold: float | None,
    embedder: str | None,
    cache: Path | None,
) -> None:
    """Verification accuracy of the engine on an LFW pairs file.

    Reports accuracy at the configured threshold, 10-fold accuracy (files with
    folds), ROC AUC, TAR at FMR 1e-3 (impostors: every cross-identity pair of
    the file's images) and how many images were refused (no face, ...).
    """
    from facematch.evaluation.lfw import (
        EnginePipeline,
        PairsFormatError,
        ReferencePipeline,
        distinct_images,
        evaluate_pipelines,
        read_pairs,
    )
    from facematch.evaluation.variants import largest_face_detector

    settings = _settings(embedder=embedder, match_threshold=threshold)
    pairs_path = pairs_path or root / "pairsDevTest.txt"
    try:
        pairs = read_pairs(pairs_path)
    except (PairsFormatError, OSError) as exc:
        raise click.ClickException(f"{pairs_path}: {exc}") from exc
    pipelines: list[Any] = [EnginePipeline(_build_matcher(settings))]
    if largest_face:
        relaxed = largest_face_detector(settings.detector, min_face_px=settings.min_face_px)
        pipelines.append(
            EnginePipeline(_build_matcher(settings, detector=relaxed), variant="largest face")
        )
    if reference:
        pipelines.append(ReferencePipeline())
    reports = evaluate_pipelines(pipelines, root, pairs, cache=cache, progress=_progress)
    if as_json:
        payload = {
            "pairs_file": str(pairs_path),
            "reports": [r.as_dict() for r in reports],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"{pairs_path}: {len(pairs)} pairs, {len(distinct_images(pairs))} images")
    for r in reports:
        click.echo(f"\n[{r.pipeline}]")
        click.echo(f"  accuracy at threshold {r.threshold:.4f}: {r.accuracy:.4f}")
        if r.ten_fold_accuracy is not None:
            click.echo(f"  10-fold accuracy: {r.ten_fold_accuracy:.4f} ± {r.ten_fold_std:.4f}")
        click.echo(f"  ROC AUC: {r.roc_auc:.4f}")
        if r.tar_at_fmr_1e3 is None:
            click.echo(f"  TAR at FMR 1e-3: n/a (only {r.impostor_pairs} impostor pairs)")
        else:
            click.echo(
                f"  TAR at FMR 1e-3: {r.tar_at_fmr_1e3:.4f} (threshold {r.fmr_1e3_threshold:.4f}, "
                f"{r.impostor_pairs} impostor pairs)"
            )
        click.echo(f"  images with no face: {r.no_face_images}")
        refused = ", ".join(f"{k} {v}" for k, v in r.images_failed.items()) or "none"
        click.echo(f"  images refused: {refused}")


@eval_group.command("kyc")
@_root_option
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="LFW pairs file the selfie × ID-card pairs come from [default: ROOT/pairsDevTest.txt].",
)
@click.option(
    "--limit",
    type=click.IntRange(min=2),
    default=None,
    help="Use about this many pairs, spread evenly over the file (same and different alike).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated set.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FACEMATCH_KYC_DIR",
    show_envvar=True,
    default=None,
    help="Where the generated images are kept and reused [default: CACHE_DIR/kyc].",
)
@_json_option
@_threshold_option
@_embedder_option
def eval_kyc(
    root: Path,
    pairs_path: Path | None,
    limit: int | None,
    seed: int,
    out_dir: Path | None,
    as_json: bool,
    threshold: float | None,
    embedder: str | None,
) -> None:
    """Verification on a KYC-style set: selfies against ID cards made from LFW.

    Generates (once, into --out-dir) a selfie from each pair's first image and
    an ID card from its second (docs/accuracy.md), then reports TAR at FMR 1e-3
    and 1e-4 (impostors: every selfie × card of different people), accuracy at
    the threshold, refusals by reason and input type, and median time per stage.
    """
    from facematch.evaluation.kyc import build_set
    from facematch.evaluation.kyc_eval import observe_set, score
    from facematch.evaluation.lfw import PairsFormatError, read_pairs

    settings = _settings(embedder=embedder, match_threshold=threshold)
    pairs_path = pairs_path or root / "pairsDevTest.txt"
    try:
        pairs = read_pairs(pairs_path)
    except (PairsFormatError, OSError) as exc:
        raise click.ClickException(f"{pairs_path}: {exc}") from exc
    only = None
    if limit is not None and limit < len(pairs):
        step = len(pairs) / limit
        only = sorted({int(i * step) for i in range(limit)})
    count = len(only) if only is not None else len(pairs)
    matcher = _build_matcher(settings)
    try:
        with _progress("rendering", 2 * count) as advance:
            kyc = build_set(
                root,
                pairs,
                out_dir or settings.cache_dir / "kyc",
                seed=seed,
                only=only,
                progress=advance,
            )
    except OSError as exc:
        raise click.ClickException(f"cannot build the KYC set: {exc}") from exc
    with _progress("observing", 2 * count) as advance:
        results = observe_set(matcher, kyc, progress=advance)
    report = score(kyc, results, matcher.threshold)
    if as_json:
        payload = {"pairs_file": str(pairs_path), "seed": seed, "report": report.as_dict()}
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(
        f"{pairs_path} → KYC set (seed {seed}): {report.pairs} pairs, {report.images} images"
    )
    click.echo(f"  accuracy at threshold {report.threshold:.4f}: {report.accuracy:.4f}")
    click.echo(
        f"  FMR at that threshold: {report.fmr_at_threshold:.2e} "
        f"({report.impostor_pairs} selfie × card impostor pairs)"
    )
    for key, tar in report.tar_at_fmr.items():
        if tar is None:
            click.echo(f"  TAR at FMR {key}: n/a (too few impostor pairs)")
        else:
            click.echo(
                f"  TAR at FMR {key}: {tar:.4f} (threshold {report.fmr_thresholds[key]:.4f})"
            )
    refused = ", ".join(f"{k} {v}" for k, v in report.refusals.items()) or "none"
    click.echo(f"  images refused: {refused}")
    click.echo(
        f"  turned cards accepted: {report.cards_turned_accepted}, "
        f"found upright: {report.cards_turned_found_upright}"
    )
    click.echo("  median ms per image (decode / detect / align / embed), refusals:")
    for name, timing in report.timing_by_type.items():
        stages = " / ".join(f"{timing.stage_ms_p50.get(s, 0):.1f}" for s in STAGE_NAMES)
        reasons = report.refusals_by_type.get(name, {})
        why = ", ".join(f"{k} {v}" for k, v in reasons.items()) or "-"
        click.echo(
            f"    {name:<28} {timing.images:4d} img  {timing.total_ms_p50:7.1f} ms  "
            f"({stages})  refused: {why}"
        )


STAGE_NAMES = ("decode", "detect", "align", "embed")


# --- calibrate ------------------------------------------------------------------------


@click.command()
@_root_option
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Pairs to fit P(same) on [default: ROOT/pairsDevTrain.txt].",
)
@click.option(
    "--check-pairs",
    "check_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Held-out pairs to check the fit on [default: ROOT/pairsDevTest.txt if present].",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the calibration JSON [default: DATA_DIR/calibration-MODEL_ID.json; "
    "the shipped file is never overwritten unless named here].",
)
@_embedder_option
@_cache_option
def calibrate(
    root: Path,
    pairs_path: Path | None,
    check_path: Path | None,
    output: Path | None,
    embedder: str | None,
    cache: Path | None,
) -> None:
    """Fit the confidence calibration and the FMR thresholds, write them as JSON.

    Embeds every image under ROOT/images once, fits P(same | distance) on the
    pairs file, and takes FMR 1e-2/1e-3/1e-4 thresholds from all
    cross-identity pairs of those images. The engine uses the file written
    when FACEMATCH_CALIBRATION_FILE names it.
    """
    from facematch.engine.embed import MIRROR_SUFFIX, DlibEmbedder
    from facematch.evaluation.calibration import default_output_path, placeholder_calibration
    from facematch.evaluation.lfw import (
        PairsFormatError,
        all_images,
        calibrate_on_lfw,
        read_pairs,
    )

    settings = _settings(embedder=embedder)
    # Both backends compute dlib's network and share its model id; the mirror
    # average is another descriptor with its own.
    model_id = DlibEmbedder.model_id + (MIRROR_SUFFIX if settings.mirror_descriptor else "")
    pairs_path = pairs_path or root / "pairsDevTrain.txt"
    if check_path is None and (root / "pairsDevTest.txt").is_file():
        check_path = root / "pairsDevTest.txt"
    try:
        pairs = read_pairs(pairs_path)
        check_pairs = read_pairs(check_path) if check_path else []
    except (PairsFormatError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not all_images(root):  # before the models load
        raise click.ClickException(f"no images under {root / 'images'}")
    matcher = _build_matcher(settings, calibration=placeholder_calibration(model_id))
    try:
        calibration, summary = calibrate_on_lfw(
            matcher, root, pairs, check_pairs, cache=cache, progress=_progress
        )
    except ValueError as exc:
        raise click.ClickException(f"cannot fit: {exc}") from exc
    calibration.metadata["fit"]["pairs_file"] = pairs_path.name
    if check_pairs:
        calibration.metadata["check"]["pairs_file"] = check_path.name if check_path else None
    target = output or default_output_path(settings.data_dir, matcher.model_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(calibration.to_json_dict(), indent=2) + "\n")
    click.echo(f"wrote {target}")
    if output is None:
        click.echo(f"use it with FACEMATCH_CALIBRATION_FILE={target}")
    click.echo(summary)
