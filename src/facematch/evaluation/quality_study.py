"""How the quality limits were chosen: measures and TAR on LFW DevTrain, degraded on purpose.

For the same-person pairs of a pairs file (default DevTrain), the second image
is degraded step by step — Gaussian blur, darkening, over-exposure — and
observed with quality checks off. Per step it prints the quality measures'
quartiles and the share of pairs still accepted at the FMR 1e-3 threshold
(refused = rejected), next to the undegraded images' distribution. A limit is
placed where the measure separates the steps that cost most of the TAR from the
ordinary photos (docs/accuracy.md, "Quality refusals").

    python -m facematch.evaluation.quality_study [--root DIR] [--pairs FILE] [--limit 300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from tqdm import tqdm

from facematch.engine.embed import create_embedder
from facematch.engine.errors import EngineError
from facematch.engine.matcher import FaceMatcher
from facematch.evaluation.lfw import image_path, read_pairs

Degrade = Callable[[Image.Image], Image.Image]


def _blur(sigma: float) -> Degrade:
    return lambda image: image.filter(ImageFilter.GaussianBlur(sigma))


def _light(factor: float) -> Degrade:
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


STEPS: dict[str, Degrade | None] = {
    "original": None,
    "blur σ1": _blur(1.0),
    "blur σ2": _blur(2.0),
    "blur σ3": _blur(3.0),
    "blur σ4": _blur(4.0),
    "light ×0.5": _light(0.5),
    "light ×0.3": _light(0.3),
    "light ×0.2": _light(0.2),
    "light ×0.12": _light(0.12),
    "light ×1.8": _light(1.8),
    "light ×2.5": _light(2.5),
    "light ×3.5": _light(3.5),
}
MEASURES = ("brightness", "clipped", "sharpness", "yaw")


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = os.environ.get("FACEMATCH_LFW_ROOT", "../shared/data/lfw-view1")
    parser.add_argument("--root", type=Path, default=Path(default_root))
    parser.add_argument("--pairs", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=300, help="same-person pairs used")
    parser.add_argument("--json", type=Path, default=None, help="write every measure here")
    parser.add_argument("--steps", default="", help="only the steps whose name starts so")
    args = parser.parse_args()
    pairs = read_pairs(args.pairs or args.root / "pairsDevTrain.txt")
    same = [p for p in pairs if p.same][: args.limit]
    # The plain descriptor and its calibration: quality does not depend on the
    # descriptor, and this is the pipeline the limits were first chosen on.
    matcher = FaceMatcher(embedder=create_embedder("onnx", mirror=False), check_quality=False)
    threshold = matcher.threshold
    anchors = {}
    for pair in tqdm(same, desc="anchors", leave=False):
        try:
            anchors[pair.first] = matcher.observe(image_path(args.root, pair.first).read_bytes())
        except EngineError:
            continue
    print(
        f"{len(same)} same-person pairs, {len(anchors)} usable first images; threshold {threshold}"
    )
    print(
        f"{'step':<13}{'accepted':>9}{'refused':>8}"
        + "".join(f"{m + ' q10/q50/q90':>28}" for m in MEASURES)
    )
    dump: dict[str, list[dict[str, float | bool]]] = {}
    for step, degrade in STEPS.items():
        if args.steps and step != "original" and not step.startswith(args.steps):
            continue
        accepted = refused = 0
        rows = dump.setdefault(step, [])
        values: dict[str, list[float]] = {m: [] for m in MEASURES}
        for pair in tqdm(same, desc=step, leave=False):
            anchor = anchors.get(pair.first)
            if anchor is None:
                continue
            with Image.open(image_path(args.root, pair.second)) as opened:
                image = opened.convert("RGB")
            data = (
                _jpeg(degrade(image))
                if degrade
                else image_path(args.root, pair.second).read_bytes()
            )
            try:
                found = matcher.observe(data)
            except EngineError:
                refused += 1
                continue
            if found.quality is None:  # always measured; checks are off, not measures
                continue
            for m in MEASURES:
                values[m].append(abs(getattr(found.quality, m)))
            distance = float(np.linalg.norm(found.embedding - anchor.embedding))
            accepted += distance < threshold
            rows.append({**found.quality.as_dict(), "accepted": distance < threshold})
        total = refused + len(values["yaw"])
        quartiles = "".join(
            "{:>28}".format("/".join(f"{np.percentile(values[m], q):.3g}" for q in (10, 50, 90)))
            if values[m]
            else f"{'-':>28}"
            for m in MEASURES
        )
        print(f"{step:<13}{accepted / max(1, total):9.3f}{refused:8d}{quartiles}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(dump))


if __name__ == "__main__":
    main()
