"""The shape envelope and the decode budget, measured (docs/images.md, docs/performance.md).

``sweep`` runs native code (dlib's HOG detector, its pyramid, the aligner, and
the product's ``FaceDetector``) on flat arrays of extreme shapes, each in a
child process under glibc's heap checker (``MALLOC_CHECK_=3``), or under
valgrind with ``--valgrind``, and reports which shapes crash or corrupt memory.
``FaceDetector`` rows must read ``refused`` outside the envelope and ``ok``
inside it.

``cost`` measures what the costliest images the intake accepts cost per call,
per format, against a normal 640×480 call in the same process: CPU ms (median
of repeated, interleaved calls of ``FaceMatcher.observe``). The peak resident
memory each call adds (MiB) is measured in a fresh child process per image
(after one normal call, so that only the image's own cost shows).

    python -m bench.envelope sweep [--valgrind] [--stages hog,detector] [--shapes 64x70000,...]
    python -m bench.envelope cost [--repeats 5] [--lfw-root DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

MALLOC_DEBUG_LIB = Path("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")
STAGES = ("hog", "hog-up1", "pyramid", "chip", "detector")
# (height, width): inside the envelope, at its edges, and out past the first
# width measured to corrupt memory (81,382-81,396 px); wide and tall.
DEFAULT_SHAPES = [
    (64, 256),
    (720, 2880),
    (2880, 720),
    (80, 8192),
    (8192, 80),
    (2048, 8192),
    (80, 16384),
    (80, 32768),
    (80, 65536),
    (64, 70000),
    (80, 81000),
    (80, 81500),
    (128, 100000),
    (100000, 128),
]
EXIT_REFUSED = 3  # the child's code for "refused by the envelope"


# --- sweep --------------------------------------------------------------------


def _child(stage: str, height: int, width: int) -> int:
    """One native call on a flat grey array; the exit status tells the parent what happened."""
    import dlib

    from facematch.engine.errors import ImageShapeError

    pixels = np.full((height, width, 3), 128, np.uint8)
    if stage in ("hog", "hog-up1"):
        dlib.get_frontal_face_detector().run(pixels, 1 if stage == "hog-up1" else 0, 0.0)
    elif stage == "pyramid":
        dlib.pyramid_down(6)(pixels)
    elif stage == "chip":
        from facematch.engine.align import Aligner
        from facematch.engine.types import FaceBox

        side = min(height, width) // 2
        left, top = (width - side) // 2, (height - side) // 2
        Aligner().chip(pixels, FaceBox(left, top, left + side, top + side))
    elif stage == "detector":
        from facematch.engine.detect import FaceDetector

        try:
            FaceDetector().detect(pixels)
        except ImageShapeError:
            return EXIT_REFUSED
    else:
        raise ValueError(stage)
    return 0


def _dlib_errors(valgrind_log: str) -> int:
    """Valgrind error records with a dlib frame (Python's own are known noise)."""
    records = re.split(r"\n==\d+== \n", valgrind_log)
    pattern = re.compile(r"Invalid (read|write|free)|uninitialised|Mismatched|overlap")
    return sum(1 for r in records if pattern.search(r) and "dlib" in r)


def _run_child(stage: str, height: int, width: int, *, valgrind: bool) -> tuple[str, float]:
    env = dict(os.environ, PYTHONFAULTHANDLER="0")
    command = [sys.executable, "-m", "bench.envelope", "_child", stage, str(height), str(width)]
    if valgrind:
        env["PYTHONMALLOC"] = "malloc"  # so valgrind sees every Python allocation
        command = ["valgrind", "-q", "--error-exitcode=99", *command]
    else:
        env["MALLOC_CHECK_"] = "3"  # abort on any heap inconsistency glibc can see
        if MALLOC_DEBUG_LIB.exists():  # glibc >= 2.34 keeps the checker in this library
            env["LD_PRELOAD"] = str(MALLOC_DEBUG_LIB)
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - start
    if valgrind:
        errors = _dlib_errors(done.stderr)
        if errors:
            return f"CORRUPTS ({errors} dlib errors)", elapsed
    if done.returncode == 0 or (valgrind and done.returncode == 99):
        return "ok", elapsed
    if done.returncode == EXIT_REFUSED:
        return "refused", elapsed
    # glibc's own words (e.g. "free(): invalid pointer"), else the last line.
    lines = done.stderr.strip().splitlines() or ["?"]
    said = next((line for line in lines if re.search(r"malloc|free\(|corrupt", line)), lines[-1])
    return f"CRASH (exit {done.returncode}: {said.split('Fatal')[0][:50]})", elapsed


def sweep(stages: list[str], shapes: list[tuple[int, int]], *, valgrind: bool) -> None:
    tool = "valgrind memcheck" if valgrind else "MALLOC_CHECK_=3"
    print(f"# native calls on flat arrays, one child process each, under {tool}")
    print("| stage | height × width | result | s |\n|---|---|---|---|")
    for stage in stages:
        for height, width in shapes:
            result, elapsed = _run_child(stage, height, width, valgrind=valgrind)
            print(f"| {stage} | {height} × {width} | {result} | {elapsed:.1f} |", flush=True)


# --- cost ---------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """Gradients plus noise: realistic entropy for JPEG's Huffman decoding."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 200, height, dtype=np.float32)[:, None, None]
    noise = rng.normal(0, 12, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(x + y / 2 + noise, 0, 255).astype(np.uint8).repeat(3, axis=2))


def _largest_jpeg(width: int, height: int, max_bytes: int, **options: object) -> bytes:
    """The best-quality JPEG of a textured image that fits in ``max_bytes``."""
    image = _textured(width, height)
    for quality in (90, 75, 60, 45, 30, 20, 10):
        data = _encode(image, "JPEG", quality=quality, **options)
        if len(data) <= max_bytes:
            return data
    raise RuntimeError("no JPEG quality fits")


def _with_refinement_scans(data: bytes, total_scans: int) -> bytes:
    """A progressive JPEG padded to ``total_scans`` with copies of its smallest
    luma AC refinement scan, the costliest kind per byte (a full pass over the
    luma blocks)."""
    starts = [m.start() for m in re.finditer(b"\xff\xda", data)]
    scans = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data) - 2], strict=True)]
    # SOS header: marker, length, Ns, (component, tables) × Ns, Ss, Se, Ah/Al.
    refinements = [s for s in scans if s[4] == 1 and s[5] == 1 and s[7] == 1 and s[9] >> 4]
    extra = min(refinements, key=len) * (total_scans - len(scans))
    return data[:-2] + extra + data[-2:]


def _face_photo(lfw_root: Path | None) -> bytes | None:
    """A 640×480 JPEG with one LFW face in it (the normal call)."""
    if lfw_root is None:
        return None
    paths = sorted((lfw_root / "images").glob("*/*.jpg"))
    if not paths:
        return None
    canvas = Image.new("RGB", (640, 480), (200, 200, 200))
    with Image.open(paths[0]) as face:
        canvas.paste(face.convert("RGB").resize((400, 400)), (120, 40))
    return _encode(canvas, "JPEG", quality=90)


def _cases(lfw_root: Path | None) -> dict[str, bytes]:
    from facematch.engine.envelope import MAX_ASPECT_RATIO
    from facematch.engine.images import ImageLimits

    limits = ImageLimits()
    most_scans = limits.max_jpeg_scan_pixels // limits.max_pixels
    # The largest accepted areas, at the widest accepted aspect that keeps them inside.
    full_w, full_h = _at_limit(limits.full_decode_limit, 2.5)
    jpeg_w, jpeg_h = _at_limit(limits.max_pixels, 2.5)
    assert max(full_w, jpeg_w) / min(full_h, jpeg_h) <= MAX_ASPECT_RATIO
    flat = Image.new("RGB", (full_w, full_h), (128, 128, 128))
    alpha = Image.new("RGBA", (full_w, full_h), (128, 128, 128, 128))
    grey16 = Image.fromarray(np.full((full_h, full_w), 30000, np.uint16))
    cases = {
        "640×480 JPEG, one face (normal call)": _face_photo(lfw_root),
        "640×480 JPEG, no face": _encode(_textured(640, 480), "JPEG", quality=90),
        f"{jpeg_w}×{jpeg_h} JPEG baseline, ≤ 5 MiB": _largest_jpeg(
            jpeg_w, jpeg_h, limits.max_bytes
        ),
        f"{jpeg_w}×{jpeg_h} JPEG progressive, {most_scans} scans, ≤ 5 MiB": _with_refinement_scans(
            _largest_jpeg(jpeg_w, jpeg_h, limits.max_bytes - (1 << 20), progressive=True),
            most_scans,
        ),
        f"{full_w}×{full_h} PNG RGB flat": _encode(flat, "PNG"),
        f"{full_w}×{full_h} PNG RGBA interlaced": _encode(alpha, "PNG", interlace=1),
        f"{full_w}×{full_h} PNG 16-bit grey": _encode(grey16, "PNG"),
        f"{full_w}×{full_h} WebP lossless flat": _encode(flat, "WEBP", lossless=True),
        f"{full_w}×{full_h} WebP lossy flat": _encode(flat, "WEBP", quality=90),
        "6000×6000 PNG flat (refused: over the PNG limit)": _encode(
            Image.new("RGB", (6000, 6000), (128, 128, 128)), "PNG"
        ),
    }
    return {name: data for name, data in cases.items() if data is not None}


def _at_limit(pixels: int, aspect: float) -> tuple[int, int]:
    height = int((pixels / aspect) ** 0.5)
    return min(int(height * aspect), pixels // height), height


def _peak_rss_delta_mib(call: Callable[[], object]) -> float:
    """Peak resident memory the call adds, from VmHWM after resetting it (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - before) / 1024


def _memory_child(path: Path, normal: Path) -> None:
    """Print the peak MiB one call on ``path`` adds in a fresh process."""
    from facematch.engine.errors import EngineError
    from facematch.engine.matcher import FaceMatcher

    matcher = FaceMatcher()

    def call(data: bytes) -> None:
        with contextlib.suppress(EngineError):
            matcher.observe(data)

    call(normal.read_bytes())  # every stage's first-call allocations, paid here
    data = path.read_bytes()
    print(f"{_peak_rss_delta_mib(lambda: call(data)):.1f}")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def cost(repeats: int, lfw_root: Path | None) -> None:
    from facematch.engine.errors import EngineError
    from facematch.engine.images import decode_image
    from facematch.engine.matcher import DECODE_MAX_SIDE_PX, FaceMatcher

    matcher = FaceMatcher()
    matcher.warm_up()
    cases = _cases(lfw_root)
    memory = _memory_per_case(cases)

    def call(data: bytes) -> str:
        try:
            matcher.observe(data)
        except EngineError as exc:
            return type(exc).__name__
        return "face"

    outcome = {name: call(data) for name, data in cases.items()}  # also a warm-up

    def decode(data: bytes) -> None:
        with contextlib.suppress(EngineError):
            decode_image(data, max_side_px=DECODE_MAX_SIDE_PX)  # the matcher's defaults

    cpu: dict[str, list[float]] = {name: [] for name in cases}
    decode_cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so drifting load hits every case alike
        for name, data in cases.items():
            for function, results in ((call, cpu), (decode, decode_cpu)):
                start = time.process_time()
                function(data)
                results[name].append((time.process_time() - start) * 1000)
    base = statistics.median(cpu[next(iter(cases))])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# FaceMatcher.observe, one process, {repeats} interleaved runs; load {load}")
    print("| image | bytes | outcome | call CPU ms | × normal | of which decode ms | peak +MiB |")
    print("|---|---|---|---|---|---|---|")
    for name, data in cases.items():
        ms = statistics.median(cpu[name])
        print(
            f"| {name} | {len(data):,} | {outcome[name]} | {ms:.0f} | {ms / base:.1f}× "
            f"| {statistics.median(decode_cpu[name]):.0f} | {memory[name]:.0f} |"
        )


def _memory_per_case(cases: dict[str, bytes]) -> dict[str, float]:
    normal = next(iter(cases.values()))
    with tempfile.TemporaryDirectory() as tmp:
        normal_path = Path(tmp, "normal")
        normal_path.write_bytes(normal)
        memory = {}
        for index, (name, data) in enumerate(cases.items()):
            path = Path(tmp, str(index))
            path.write_bytes(data)
            done = subprocess.run(
                [sys.executable, "-m", "bench.envelope", "_memory", str(path), str(normal_path)],
                capture_output=True,
                text=True,
                check=True,
            )
            memory[name] = float(done.stdout.split()[-1])
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sweep_args = sub.add_parser("sweep")
    sweep_args.add_argument("--valgrind", action="store_true")
    sweep_args.add_argument("--stages", default=",".join(STAGES))
    sweep_args.add_argument("--shapes", help="HxW,HxW,... (default: the built-in list)")
    cost_args = sub.add_parser("cost")
    cost_args.add_argument("--repeats", type=int, default=5)
    cost_args.add_argument("--lfw-root", type=Path, default=os.environ.get("FACEMATCH_LFW_ROOT"))
    memory_child = sub.add_parser("_memory")
    memory_child.add_argument("path", type=Path)
    memory_child.add_argument("normal", type=Path)
    child = sub.add_parser("_child")
    child.add_argument("stage", choices=STAGES)
    child.add_argument("height", type=int)
    child.add_argument("width", type=int)
    args = parser.parse_args()
    if args.command == "_child":
        sys.exit(_child(args.stage, args.height, args.width))
    if args.command == "_memory":
        _memory_child(args.path, args.normal)
        return
    if args.command == "sweep":
        shapes = DEFAULT_SHAPES
        if args.shapes:
            shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]  # type: ignore[misc]
        sweep(args.stages.split(","), shapes, valgrind=args.valgrind)
    else:
        cost(args.repeats, args.lfw_root)


if __name__ == "__main__":
    main()
