"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_LFW_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"


def lfw_root_path() -> Path:
    return Path(os.environ.get("FACEMATCH_LFW_ROOT", DEFAULT_LFW_ROOT)).resolve()


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The LFW View 1 folder; tests that need it skip, saying where they looked."""
    root = lfw_root_path()
    if not (root / "images").is_dir():
        pytest.skip(f"LFW View 1 not found at {root} (set FACEMATCH_LFW_ROOT)")
    return root


def lfw_image(root: Path, name: str, number: int) -> Path:
    """Path of image ``number`` (from 1) of person ``name``, in LFW's layout."""
    return root / "images" / name / f"{name}_{number:04d}.jpg"
