"""How much reduced-size JPEG decoding (Pillow ``draft``) saves in image intake.

Times ``facematch.engine.images.decode_image`` on a 640×480 and a 12-megapixel
(4000×3000) JPEG, at full size and with ``max_side_px`` (which enables
``draft``), as the median of repeated runs; every ratio is against the
full-size decode of the same file, measured in the same process. The JPEGs are
mosaics of real LFW photographs (realistic entropy, so realistic Huffman
decoding cost); without LFW a textured synthetic image is used and the output
says so.

    python -m bench.decode [--repeats 15] [--lfw-root DIR]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from facematch.engine.images import decode_image

DEFAULT_LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"


def _mosaic(root: Path, width: int, height: int) -> Image.Image | None:
    """Real photos tiled edge to edge (LFW images are 250×250)."""
    paths = sorted((root / "images").glob("*/*.jpg"))
    if not paths:
        return None
    canvas = Image.new("RGB", (width, height))
    tiles = ((x, y) for y in range(0, height, 250) for x in range(0, width, 250))
    for (x, y), path in zip(tiles, paths[:: max(1, len(paths) // 300)], strict=False):
        with Image.open(path) as tile:
            canvas.paste(tile.convert("RGB"), (x, y))
    return canvas


def _synthetic(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    x = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 200, height, dtype=np.float32)[:, None, None]
    noise = rng.normal(0, 20, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(x + y / 2 + noise, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _pillow_only(data: bytes) -> np.ndarray:
    """The bare minimum any decoder must do: open, decode, convert; no checks."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _median_ms(cases: dict[str, Callable[[], np.ndarray]], repeats: int) -> dict[str, float]:
    """Median time per case; cases run round-robin so drift (other load, CPU
    clock changes) affects all of them alike instead of biasing whichever ran first."""
    for fn in cases.values():
        fn()  # warm-up: plugin import, first allocations
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--lfw-root", type=Path, default=Path(os.environ.get("FACEMATCH_LFW_ROOT", DEFAULT_LFW))
    )
    args = parser.parse_args()

    print("image                    bytes  decode                      output  median ms   ratio")
    for width, height in ((640, 480), (4000, 3000)):
        picture = _mosaic(args.lfw_root, width, height)
        source = "LFW mosaic"
        if picture is None:
            picture, source = _synthetic(width, height), "synthetic"
        data = _jpeg(picture)
        text = base64.b64encode(data).decode("ascii")
        cases: dict[str, Callable[[], np.ndarray]] = {
            "full size": lambda d=data: decode_image(d).pixels,
            "max_side_px=1600": lambda d=data: decode_image(d, max_side_px=1600).pixels,
            "max_side_px=800": lambda d=data: decode_image(d, max_side_px=800).pixels,
            "full size, base64 str": lambda t=text: decode_image(t).pixels,
            "Pillow only, full": lambda d=data: _pillow_only(d),
        }
        medians = _median_ms(cases, args.repeats)
        baseline = medians["full size"]
        for name, fn in cases.items():
            pixels = fn()
            ms = medians[name]
            label = f"{width}x{height} {source}"
            output = f"{pixels.shape[1]}x{pixels.shape[0]}"
            print(
                f"{label:22s} {len(data):8d}  {name:24s} {output:>9s} "
                f"{ms:10.2f} {ms / baseline:7.2f}"
            )


if __name__ == "__main__":
    main()
