"""Do the engine's native calls release the GIL? Measured, not assumed.

The service runs CPU work on a thread pool (``facematch.service.runtime.workpool``).
That only uses more than one core if the heavy native calls (Pillow decode,
dlib HOG detection, dlib landmarks/descriptor, onnxruntime) release the GIL
while they run. For each call this script runs the same fixed amount of work
on 1 thread, split across N threads, and split across N processes (forked,
so each has its own GIL), and prints both speed-ups (ideal: N):

* threads ≈ processes ≈ N: the call releases the GIL; threads are enough;
* threads ≈ 1, processes ≈ N: the call holds the GIL; only processes help;
* threads ≈ processes ≈ 1: neither helps: the machine (shared vCPUs, memory
  bandwidth) is the limit, not the GIL.

Run it on an otherwise idle machine: other load makes every ratio meaningless.

    python -m bench.gil_release [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1" / "images"


def _jpeg_640x480() -> bytes:
    face = Image.open(LFW / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg").convert("RGB")
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(face.resize((360, 360)), (140, 60))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def _workloads() -> dict[str, Callable[[], object]]:
    import dlib

    from facematch.engine.embed import create_embedder
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.models import resnet_model_path, shape_predictor_5_path
    from facematch.settings import Settings

    jpeg = _jpeg_640x480()
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(shape_predictor_5_path()))
    box = detector(pixels, 0)[0]
    shape = predictor(pixels, box)
    chip = dlib.get_face_chip(pixels, shape, size=150)
    embedder = create_embedder("onnx", onnx_threads=1)
    chips = np.ascontiguousarray(np.asarray(chip)[None])
    matcher = FaceMatcher.from_settings(Settings())
    local = threading.local()

    def descriptor() -> object:
        # dlib's network keeps scratch tensors: one network object per thread.
        if not hasattr(local, "net"):
            local.net = dlib.face_recognition_model_v1(str(resnet_model_path()))
        return local.net.compute_face_descriptor(chip)

    return {
        "pillow decode 640x480 JPEG": lambda: np.asarray(
            Image.open(io.BytesIO(jpeg)).convert("RGB")
        ),
        "dlib HOG detect 640x480": lambda: detector(pixels, 0),
        "dlib 5-point landmarks": lambda: predictor(pixels, box),
        "onnxruntime ResNet descriptor": lambda: embedder.embed(chips),
        # One network object per thread: dlib's net is not re-entrant.
        "dlib descriptor (per-thread net)": descriptor,
        "FaceMatcher.match 640x480 pair": lambda: matcher.match(jpeg, jpeg),
    }


_WORK: dict[str, Callable[[], object]] = {}


def _loop(name: str, calls: int) -> None:
    fn = _WORK[name]
    for _ in range(calls):
        fn()


def _seconds(name: str, calls: int, workers: int, kind: str) -> float:
    per_worker = calls // workers
    if kind == "threads":
        pool: Executor = ThreadPoolExecutor(workers)
    else:
        # fork: children inherit the loaded models; the GIL is per process.
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    with pool:
        # Start the workers first so process start-up is not timed.
        for f in [pool.submit(_loop, name, 1) for _ in range(workers)]:
            f.result()
        start = time.perf_counter()
        for f in [pool.submit(_loop, name, per_worker) for _ in range(workers)]:
            f.result()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="target time per run")
    args = parser.parse_args()

    for name, fn in _workloads().items():
        _WORK[name] = fn
        start = time.perf_counter()
        fn()
        one = max(time.perf_counter() - start, 1e-4)
        n = args.threads
        calls = max(n * 2, int(args.seconds / one) // n * n)
        serial = statistics.median(_seconds(name, calls, 1, "threads") for _ in range(args.repeats))
        threads = statistics.median(
            _seconds(name, calls, n, "threads") for _ in range(args.repeats)
        )
        procs = statistics.median(
            _seconds(name, calls, n, "processes") for _ in range(args.repeats)
        )
        print(
            f"{name:34s} {1000 * serial / calls:7.2f} ms/call  speed-up with {n} threads "
            f"{serial / threads:4.2f}x, with {n} processes {serial / procs:4.2f}x"
        )


if __name__ == "__main__":
    main()
