"""Face descriptor speed: dlib's own CPU path vs the ONNX graph on onnxruntime.

Measured in one process on real LFW chips (dlib detector + 5-point landmarks +
``get_face_chip``, as ``compute_face_descriptor`` would crop them):

* time per face at batch 1 and batch 2, dlib vs onnxruntime (1 and 2 intra-op
  threads), median of ``--repeats`` runs, cases interleaved round-robin so
  machine-load drift hits them alike; the ratio is dlib / onnxruntime;
* a tuning table: graph optimisation level × affine folding, batch 2;
* conversion time (.dat → ONNX bytes) and cached start-up time;
* end-to-end ``FaceMatcher.match`` on two 640×480 JPEGs (LFW faces upscaled),
  with ``DlibEmbedder`` vs the ONNX embedder;
* peak RSS of a fresh process that has loaded the engine and run one match
  (``VmHWM`` from /proc: on Linux ``getrusage``'s ``ru_maxrss`` survives
  fork+exec, so a child started by this big process would report the parent's
  peak; ``getrusage`` is the fallback elsewhere).

    python -m bench.embed [--repeats 21] [--lfw-root DIR]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from facematch.engine.dlib_format import load_network
from facematch.engine.embed import DlibEmbedder
from facematch.engine.models import resnet_model_path, shape_predictor_5_path
from facematch.engine.onnx_convert import INPUT_NAME, build_experiment, build_model
from facematch.engine.onnx_embedder import OnnxEmbedder

DEFAULT_LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"
PAIR = (("Abdullah_Gul", 13), ("Abdullah_Gul", 14))


def _lfw(root: Path, name: str, number: int) -> Path:
    return root / "images" / name / f"{name}_{number:04d}.jpg"


def _chips(root: Path) -> np.ndarray:
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(shape_predictor_5_path()))
    chips = []
    for name, number in PAIR:
        pixels = np.asarray(Image.open(_lfw(root, name, number)).convert("RGB"))
        face = detector(pixels, 1)[0]
        shape = predictor(pixels, face)
        chips.append(np.asarray(dlib.get_face_chip(pixels, shape, size=150, padding=0.25)))
    return np.stack(chips)


def _jpeg_640x480(path: Path) -> bytes:
    """An LFW photo upscaled to 480×480 on a plain 640×480 canvas, re-encoded."""
    face = Image.open(path).convert("RGB").resize((480, 480), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (640, 480), (118, 118, 118))
    canvas.paste(face, (80, 0))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def _medians(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per case; one warm-up each, then round-robin repeats."""
    for run in cases.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _session(data: bytes, threads: int, level: ort.GraphOptimizationLevel) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _macs_per_face(net) -> int:  # type: ignore[no-untyped-def]
    """Multiply-accumulates of one forward pass (convolutions + fc), from the layer list."""
    from facematch.engine import dlib_format as f

    shape, tags, macs = (3, net.input.rows, net.input.cols), {}, 0
    for layer in net.layers:
        c, h, w = shape
        if isinstance(layer, f.Conv):
            out, inp, kh, kw = layer.weights.shape
            (sy, sx), (py, px) = layer.stride, layer.padding
            shape = (out, (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1)
            macs += out * inp * kh * kw * shape[1] * shape[2]
        elif isinstance(layer, f.MaxPool | f.AvgPool):
            (wy, wx), (sy, sx) = layer.window, layer.stride
            shape = (c, 1, 1) if wy == 0 else (c, (h - wy) // sy + 1, (w - wx) // sx + 1)
        elif isinstance(layer, f.Tag):
            tags[layer.tag_id] = shape
        elif isinstance(layer, f.Skip):
            shape = tags[layer.tag_id]
        elif isinstance(layer, f.AddPrev):
            shape = tuple(max(a, b) for a, b in zip(shape, tags[layer.tag_id], strict=True))
        elif isinstance(layer, f.FcNoBias):
            macs += layer.weights.size
    return macs


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), "?"
    )
    flags = set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split())
    isa = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni") if f in flags]
    return f"{model}; {', '.join(isa)}"


_RSS_SCRIPT = """
import re, resource, sys
from pathlib import Path
from facematch.engine.embed import create_embedder
from facematch.engine.matcher import FaceMatcher
from bench.embed import _jpeg_640x480, _lfw, _calibration, PAIR
root = Path(sys.argv[2])
matcher = FaceMatcher(embedder=create_embedder(sys.argv[1], cache_dir=Path(sys.argv[3])),
                      calibration=_calibration())
images = [_jpeg_640x480(_lfw(root, *key)) for key in PAIR]
matcher.match(*images)
status = Path("/proc/self/status")
if status.exists():  # VmHWM: peak RSS of this program (ru_maxrss would include the forked parent)
    print(re.search(r"VmHWM:\\s+(\\d+)", status.read_text()).group(1))
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _calibration():  # type: ignore[no-untyped-def]
    """The shipped calibration, or a placeholder (only thresholds matter for timing)."""
    from facematch.engine.errors import ModelFormatError
    from facematch.engine.scoring import Calibration, load_calibration

    try:
        return load_calibration(model_id="dlib-resnet-v1")  # the plain embedders timed here
    except ModelFormatError:
        return Calibration(
            model_id="dlib-resnet-v1",
            thresholds_by_fmr={"1e-2": 0.6, "1e-3": 0.55, "1e-4": 0.5},
            intercept=10.0,
            slope=-20.0,
        )


def _peak_rss_mib(embedder: str, root: Path, cache_dir: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, embedder, str(root), str(cache_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # both figures are KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--lfw-root", type=Path, default=DEFAULT_LFW)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facematch-bench-") as cache_dir:
        _run(args.lfw_root.resolve(), args.repeats, Path(cache_dir))


def _run(root: Path, repeats: int, cache_dir: Path) -> None:
    print(f"CPU: {_cpu_flags()}; {platform.python_version()}; onnxruntime {ort.__version__}")
    chips = _chips(root)
    one, two = chips[:1], chips

    # --- conversion ---------------------------------------------------------
    dat = resnet_model_path()
    convert_s = []
    for _ in range(3):
        started = time.perf_counter()
        data = build_model(load_network(dat)).SerializeToString()
        convert_s.append(time.perf_counter() - started)
    started = time.perf_counter()
    OnnxEmbedder(cache_dir=cache_dir)
    first_start = time.perf_counter() - started
    started = time.perf_counter()
    OnnxEmbedder(cache_dir=cache_dir)
    cached_start = time.perf_counter() - started
    print(f"conversion .dat -> ONNX: median {statistics.median(convert_s):.2f} s")
    print(f"OnnxEmbedder start: {first_start:.2f} s converting, {cached_start:.2f} s from cache")

    # --- per-face time ------------------------------------------------------
    dlib_emb = DlibEmbedder()
    onnx1 = OnnxEmbedder(cache_dir=cache_dir, threads=1)
    onnx2 = OnnxEmbedder(cache_dir=cache_dir, threads=2)
    cases: dict[str, Callable[[], object]] = {
        "dlib b1": lambda: dlib_emb.embed(one),
        "dlib b2": lambda: dlib_emb.embed(two),
        "onnx t1 b1": lambda: onnx1.embed(one),
        "onnx t1 b2": lambda: onnx1.embed(two),
        "onnx t2 b1": lambda: onnx2.embed(one),
        "onnx t2 b2": lambda: onnx2.embed(two),
    }
    med = _medians(cases, repeats)
    diff = float(np.abs(onnx1.embed(two) - dlib_emb.embed(two)).max())
    print(f"\nmax |onnx - dlib| on these chips: {diff:.2e}")
    print("| backend | threads | batch | ms per face | dlib / this |")
    print("|---|---:|---:|---:|---:|")
    for batch in (1, 2):
        base = med[f"dlib b{batch}"] / batch
        print(f"| dlib | 1 | {batch} | {base * 1e3:.1f} | 1.0 |")
        for threads in (1, 2):
            per = med[f"onnx t{threads} b{batch}"] / batch
            print(f"| onnxruntime | {threads} | {batch} | {per * 1e3:.1f} | {base / per:.1f} |")

    net = load_network(dat)
    gflop = 2 * _macs_per_face(net) / 1e9
    best = med["onnx t1 b2"] / 2
    print(
        f"{gflop:.2f} GFLOP per face; onnxruntime 1 thread sustains {gflop / best:.0f} GFLOP/s "
        "(a core's peak: 16 FLOP/cycle with SSE kernels, 32 with AVX2+FMA)"
    )

    # --- tuning -------------------------------------------------------------
    unfolded = build_experiment(net, fold_affine=False).SerializeToString()
    levels = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    tuning: dict[str, Callable[[], object]] = {}
    for level_name, level in levels.items():
        for fold_name, blob in (("folded", data), ("unfolded", unfolded)):
            session = _session(blob, 1, level)
            tuning[f"{level_name}/{fold_name}"] = lambda s=session: s.run(None, {INPUT_NAME: two})
    tuned = _medians(tuning, max(5, repeats // 3))
    print("\n| graph optimisation | affine | ms per face (batch 2, 1 thread) |")
    print("|---|---|---:|")
    for name, seconds in tuned.items():
        level_name, fold_name = name.split("/")
        print(f"| {level_name} | {fold_name} | {seconds / 2 * 1e3:.1f} |")

    # --- end to end ---------------------------------------------------------
    try:
        from facematch.engine.matcher import FaceMatcher
    except ImportError:
        print("\nFaceMatcher not available: end-to-end figures skipped")
        return
    images = [_jpeg_640x480(_lfw(root, *key)) for key in PAIR]
    matchers = {
        "dlib": FaceMatcher(embedder=dlib_emb, calibration=_calibration()),
        "onnx": FaceMatcher(embedder=onnx1, calibration=_calibration()),
    }
    results = {name: m.match(*images) for name, m in matchers.items()}
    e2e = _medians({name: lambda m=m: m.match(*images) for name, m in matchers.items()}, repeats)
    print("\n| FaceMatcher.match, two 640×480 JPEGs | median ms | dlib / this |")
    print("|---|---:|---:|")
    for name in matchers:
        print(f"| {name} embedder | {e2e[name] * 1e3:.1f} | {e2e['dlib'] / e2e[name]:.1f} |")
    print(f"distances: dlib {results['dlib'].distance:.6f}, onnx {results['onnx'].distance:.6f}")
    rest = e2e["onnx"] - med["onnx t1 b2"]
    print(f"of which outside the descriptor (decode, detect, align): about {rest * 1e3:.0f} ms")

    # --- memory -------------------------------------------------------------
    print("\n| process that loaded the engine and ran one match | peak RSS MiB |")
    print("|---|---:|")
    for name in ("onnx", "dlib"):
        print(f"| FaceMatcher, {name} embedder | {_peak_rss_mib(name, root, cache_dir):.0f} |")


if __name__ == "__main__":
    main()
