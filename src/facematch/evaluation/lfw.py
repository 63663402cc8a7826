"""LFW pairs files and verification metrics.

Pairs files (``pairsDevTrain.txt``, ``pairsDevTest.txt``, View 2 ``pairs.txt``):
the first line is either ``N`` (one set: N same-person lines, then N
different-person lines) or ``F N`` (F folds, each N same then N different).
A same-person line is ``name i j``; a different-person line is
``name1 i name2 j``; images are numbered from 1.

Evaluation embeds every distinct image once per pipeline. An image the
pipeline cannot use (no face, several faces, ...) gives every pair it is in an
infinite distance, i.e. the pair is predicted "different" — exactly what a
client would experience (a refusal is never a match). The counts of such
images are reported per reason.

:func:`evaluate_pipelines` and :func:`calibrate_on_lfw` are what ``facematch
eval lfw`` and ``facematch calibrate`` run. The folder comes from the command's
``--root`` or ``FACEMATCH_LFW_ROOT`` (:data:`LFW_ROOT_ENV`), never from the
service's settings.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from facematch.engine.align import Aligner
from facematch.engine.embed import DlibEmbedder, Embedder
from facematch.engine.errors import EngineError, NoFaceError
from facematch.engine.types import FaceBox
from facematch.evaluation.calibration import fit_calibration, impostor_distances

if TYPE_CHECKING:
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.scoring import Calibration

__all__ = [
    "DEFAULT_LFW_ROOT",
    "LFW_ROOT_ENV",
    "DescriptorCache",
    "EnginePipeline",
    "EvalReport",
    "Pair",
    "PairsFormatError",
    "Pipeline",
    "Progress",
    "ReferencePipeline",
    "all_images",
    "calibrate_on_lfw",
    "distinct_images",
    "evaluate",
    "evaluate_pipelines",
    "image_path",
    "parse_pairs",
    "read_pairs",
    "roc_auc",
    "tar_at_fmr",
    "ten_fold_accuracy",
]

ImageKey = tuple[str, int]
#: ``progress(description, total)`` opens a progress display and gives the
#: callback that advances it by a number of images.
Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]

#: The variable the evaluation commands, tests and bench/ read the LFW folder from.
LFW_ROOT_ENV = "FACEMATCH_LFW_ROOT"
#: Where the folder is looked for without it: a checkout next to the shared data.
DEFAULT_LFW_ROOT = Path("../shared/data/lfw-view1")


class PairsFormatError(ValueError):
    """A pairs file does not follow the LFW format."""


@dataclass(frozen=True)
class Pair:
    first: ImageKey
    second: ImageKey
    same: bool
    fold: int  # 0-based


def image_path(root: Path, key: ImageKey) -> Path:
    """``root/images/NAME/NAME_NNNN.jpg`` for image ``n`` (from 1) of ``name``."""
    name, number = key
    return root / "images" / name / f"{name}_{number:04d}.jpg"


def parse_pairs(text: str) -> list[Pair]:
    """Parse the text of an LFW pairs file (see module docstring)."""
    lines = [line.split() for line in text.splitlines()]
    lines = [tokens for tokens in lines if tokens]
    if not lines:
        raise PairsFormatError("empty pairs file")
    header = lines[0]
    try:
        numbers = [int(token) for token in header]
    except ValueError as exc:
        raise PairsFormatError(f"bad header line: {' '.join(header)!r}") from exc
    if len(numbers) == 1:
        folds, per_side = 1, numbers[0]
    elif len(numbers) == 2:
        folds, per_side = numbers
    else:
        raise PairsFormatError(f"header must be 'N' or 'FOLDS N', got {' '.join(header)!r}")
    body = lines[1:]
    if folds < 1 or per_side < 1 or len(body) != folds * 2 * per_side:
        raise PairsFormatError(
            f"header promises {folds} fold(s) of {per_side}+{per_side} pairs, "
            f"the file has {len(body)} pair lines"
        )
    pairs = []
    for index, tokens in enumerate(body):
        fold, position = divmod(index, 2 * per_side)
        same = position < per_side
        line_number = index + 2
        try:
            if same and len(tokens) == 3:
                pair = Pair((tokens[0], int(tokens[1])), (tokens[0], int(tokens[2])), True, fold)
            elif not same and len(tokens) == 4:
                pair = Pair((tokens[0], int(tokens[1])), (tokens[2], int(tokens[3])), False, fold)
            else:
                kind = "same-person (name i j)" if same else "different-person (n1 i n2 j)"
                raise PairsFormatError(f"line {line_number}: expected a {kind} line")
        except ValueError as exc:
            if isinstance(exc, PairsFormatError):
                raise
            raise PairsFormatError(f"line {line_number}: image numbers must be integers") from exc
        pairs.append(pair)
    return pairs


def read_pairs(path: Path) -> list[Pair]:
    return parse_pairs(Path(path).read_text())


# --- metrics ------------------------------------------------------------------


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right by ``distance < threshold`` ⇒ same."""
    return float(np.mean((distances < threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs (midpoint between distances)."""
    finite = np.unique(distances[np.isfinite(distances)])
    if len(finite) == 0:
        return 0.0
    candidates = np.concatenate(
        [[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]]
    )
    accuracies = [accuracy_at(distances, same, t) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def ten_fold_accuracy(
    distances: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[float, float] | None:
    """LFW protocol: per fold, threshold chosen on the other folds; (mean, std). None for 1 fold."""
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        return None
    scores = []
    for fold in fold_ids:
        test = folds == fold
        threshold = best_threshold(distances[~test], same[~test])
        scores.append(accuracy_at(distances[test], same[test], threshold))
    return float(np.mean(scores)), float(np.std(scores))


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve of ``-distance`` as a same-person score (ties count ½)."""
    genuine = np.sort(distances[same])
    impostor = np.sort(distances[~same])
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("ROC AUC needs both same-person and different-person pairs")
    # For each impostor: genuine pairs strictly closer, and ties (inf == inf ties too).
    below = np.searchsorted(genuine, impostor, side="left")
    at_or_below = np.searchsorted(genuine, impostor, side="right")
    wins = below + 0.5 * (at_or_below - below)
    return float(wins.sum() / (len(genuine) * len(impostor)))


def tar_at_fmr(
    genuine: np.ndarray, impostors: np.ndarray, fmr: float
) -> tuple[float, float] | None:
    """(TAR, threshold) where the threshold lets through a share ``fmr`` of impostors.

    None when there are too few impostor pairs to resolve that rate (< 10 below it).
    """
    k = int(fmr * len(impostors))
    if k < 10:
        return None
    threshold = float(np.partition(np.asarray(impostors, dtype=np.float64), k)[k])
    return float(np.mean(genuine < threshold)), threshold


# --- evaluation ---------------------------------------------------------------


class Pipeline(Protocol):
    """Something that turns an image file into one descriptor, or raises EngineError."""

    name: str
    threshold: float

    def embed_file(self, path: Path) -> np.ndarray: ...


@dataclass
class EvalReport:
    pipeline: str
    pairs: int
    same_pairs: int
    images: int
    threshold: float
    accuracy: float
    roc_auc: float
    ten_fold_accuracy: float | None
    ten_fold_std: float | None
    tar_at_fmr_1e3: float | None
    fmr_1e3_threshold: float | None
    impostor_pairs: int
    images_failed: dict[str, int] = field(default_factory=dict)

    @property
    def no_face_images(self) -> int:
        return self.images_failed.get("NoFaceError", 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["no_face_images"] = self.no_face_images
        return out


def embed_images(
    pipeline: Pipeline,
    root: Path,
    keys: Iterable[ImageKey],
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[ImageKey, np.ndarray | str]:
    """Descriptor per image, or the name of the engine error that refused it."""
    out: dict[ImageKey, np.ndarray | str] = {}
    for key in keys:
        try:
            out[key] = pipeline.embed_file(image_path(root, key))
        except EngineError as exc:
            out[key] = type(exc).__name__
        if progress is not None:
            progress(1)
    return out


def evaluate(
    pipeline: Pipeline,
    pairs: list[Pair],
    results: dict[ImageKey, np.ndarray | str],
) -> EvalReport:
    """Metrics of one pipeline on ``pairs``, from its per-image ``results``."""
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    distances = np.full(len(pairs), np.inf)
    for i, pair in enumerate(pairs):
        a, b = results[pair.first], results[pair.second]
        if not isinstance(a, str) and not isinstance(b, str):
            distances[i] = float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
    # Impostors for TAR@FMR: every cross-identity pair among the file's usable images
    # (a file lists too few different-person pairs to resolve FMR 1e-3).
    usable = sorted(k for k, v in results.items() if not isinstance(v, str))
    embeddings = np.array([results[k] for k in usable], dtype=np.float32).reshape(-1, 128)
    impostors = impostor_distances(embeddings, np.array([k[0] for k in usable]))
    # Images the pipeline refused: their same-person pairs can never be accepted.
    genuine = distances[same]
    tar = tar_at_fmr(genuine, impostors, 1e-3)
    ten_fold = ten_fold_accuracy(distances, same, folds)
    failures = Counter(v for v in results.values() if isinstance(v, str))
    return EvalReport(
        pipeline=pipeline.name,
        pairs=len(pairs),
        same_pairs=int(same.sum()),
        images=len(results),
        threshold=pipeline.threshold,
        accuracy=accuracy_at(distances, same, pipeline.threshold),
        roc_auc=roc_auc(distances, same),
        ten_fold_accuracy=None if ten_fold is None else ten_fold[0],
        ten_fold_std=None if ten_fold is None else ten_fold[1],
        tar_at_fmr_1e3=None if tar is None else tar[0],
        fmr_1e3_threshold=None if tar is None else tar[1],
        impostor_pairs=len(impostors),
        images_failed=dict(sorted(failures.items())),
    )


def distinct_images(pairs: Iterable[Pair]) -> list[ImageKey]:
    """Every image the pairs refer to, once, in a stable order."""
    return sorted({key for pair in pairs for key in (pair.first, pair.second)})


def all_images(root: Path) -> list[ImageKey]:
    """Every ``images/NAME/NAME_NNNN.jpg`` under ``root``, in a stable order."""
    keys = []
    for path in sorted((Path(root) / "images").glob("*/*.jpg")):
        name, _, number = path.stem.rpartition("_")
        if name == path.parent.name and number.isdigit():
            keys.append((name, int(number)))
    return keys


# --- pipelines ------------------------------------------------------------------


class EnginePipeline:
    """The product: :meth:`FaceMatcher.observe` on the file's bytes."""

    def __init__(self, matcher: FaceMatcher, *, variant: str = "") -> None:
        self.matcher = matcher
        self.name = f"engine ({variant})" if variant else "engine"
        self.threshold = matcher.threshold
        self.cache_id = f"engine:{matcher.model_id}:{variant or 'default'}"

    def embed_file(self, path: Path) -> np.ndarray:
        return self.matcher.observe(path.read_bytes()).embedding


class ReferencePipeline:
    """The plain baseline: HOG with one upsample on the full image, largest face,
    5-point chip, dlib's own descriptor, fixed threshold 0.6. No rotation retry,
    no one-face rule, no minimum face size."""

    name = "reference"
    cache_id = "reference:dlib-resnet-v1"
    threshold = 0.6

    def __init__(self, embedder: Embedder | None = None, aligner: Aligner | None = None) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._embedder = embedder if embedder is not None else DlibEmbedder()
        self._aligner = aligner if aligner is not None else Aligner()

    def embed_file(self, path: Path) -> np.ndarray:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        rects = self._detector(pixels, 1)
        if len(rects) == 0:
            raise NoFaceError(f"no face in {path.name}")
        rect = max(rects, key=lambda r: r.width() * r.height())
        box = FaceBox(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
        return self._embedder.embed(self._aligner.chip(pixels, box)[None])[0]


class DescriptorCache:
    """Per-image results of a pipeline kept in an ``.npz`` file between runs.

    Meant for experiments (calibrating, then evaluating, without embedding the
    same 5,000 images twice). Keys carry the pipeline's ``cache_id``; a cache
    made by another version of the detection code must be deleted by hand.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, np.ndarray | str] = {}
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                for key, embedding, error in zip(
                    data["keys"], data["embeddings"], data["errors"], strict=True
                ):
                    self.entries[str(key)] = str(error) if error else embedding.astype(np.float32)

    def save(self) -> None:
        if self.path is None or not self.entries:
            return
        keys = sorted(self.entries)
        embeddings = np.zeros((len(keys), 128), np.float32)
        errors = []
        for i, key in enumerate(keys):
            value = self.entries[key]
            if isinstance(value, str):
                errors.append(value)
            else:
                embeddings[i] = value
                errors.append("")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("wb") as handle:
            np.savez(handle, keys=np.array(keys), embeddings=embeddings, errors=np.array(errors))

    def run(
        self,
        pipeline: Pipeline,
        root: Path,
        keys: Iterable[ImageKey],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> dict[ImageKey, np.ndarray | str]:
        """Like :func:`embed_images`, reusing and extending the cache."""
        cache_id = getattr(pipeline, "cache_id", pipeline.name)
        out: dict[ImageKey, np.ndarray | str] = {}
        todo = []
        for key in keys:
            hit = self.entries.get(f"{cache_id}|{key[0]}|{key[1]}")
            if hit is None:
                todo.append(key)
            else:
                out[key] = hit
                if progress is not None:
                    progress(1)
        for start in range(0, len(todo), 250):  # save now and then: long runs survive a crash
            fresh = embed_images(pipeline, root, todo[start : start + 250], progress=progress)
            for key, value in fresh.items():
                self.entries[f"{cache_id}|{key[0]}|{key[1]}"] = value
            out.update(fresh)
            self.save()
        return out


# --- runs -------------------------------------------------------------------------


def _no_progress(_description: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return contextlib.nullcontext(lambda _done: None)


def evaluate_pipelines(
    pipelines: Sequence[Pipeline],
    root: Path,
    pairs: list[Pair],
    *,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> list[EvalReport]:
    """One report per pipeline on ``pairs`` (images under ``root``), each image
    embedded once per pipeline; ``cache`` keeps descriptors between runs."""
    progress = progress or _no_progress
    keys = distinct_images(pairs)
    store = DescriptorCache(cache)
    reports = []
    for pipeline in pipelines:
        with progress(pipeline.name, len(keys)) as advance:
            results = store.run(pipeline, root, keys, progress=advance)
        reports.append(evaluate(pipeline, pairs, results))
    return reports


def calibrate_on_lfw(
    matcher: FaceMatcher,
    root: Path,
    pairs: list[Pair],
    check_pairs: list[Pair],
    *,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> tuple[Calibration, str]:
    """Embed every image under ``root`` with ``matcher`` and fit its calibration
    (:func:`~facematch.evaluation.calibration.fit_calibration`): logistic on
    ``pairs``, thresholds on all cross-identity pairs, a check on ``check_pairs``.

    The matcher's own calibration is not used (see
    :func:`~facematch.evaluation.calibration.placeholder_calibration`). Raises
    ValueError when the images are too few to fit.
    """
    progress = progress or _no_progress
    keys = all_images(root)
    if not keys:
        raise ValueError(f"no images under {root / 'images'}")
    store = DescriptorCache(cache)
    with progress("embedding", len(keys)) as advance:
        results = store.run(EnginePipeline(matcher), root, keys, progress=advance)
    return fit_calibration(results, pairs, check_pairs, matcher.model_id)
