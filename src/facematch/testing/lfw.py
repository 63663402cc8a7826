"""Where the LFW View 1 images are (``FACEMATCH_LFW_ROOT``), for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

LFW_ROOT_ENV = "FACEMATCH_LFW_ROOT"
# In a source checkout: the shared data folder beside the repository.
DEFAULT_LFW_ROOT = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "lfw-view1"


def lfw_root_path() -> Path:
    """``FACEMATCH_LFW_ROOT``, or the shared folder beside the checkout."""
    return Path(os.environ.get(LFW_ROOT_ENV, DEFAULT_LFW_ROOT)).resolve()


def lfw_image(root: Path, name: str, number: int) -> Path:
    """Path of image ``number`` (from 1) of person ``name``, in LFW's layout."""
    return root / "images" / name / f"{name}_{number:04d}.jpg"
