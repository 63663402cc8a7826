"""Process configuration, read from ``FACEMATCH_*`` environment variables.

One class, built through :func:`get_settings` so tests can construct their own
``Settings(...)`` and pass it explicitly. Nothing here does work at import time.
Every field is listed in docs/configuration.md (a test checks this).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EmbedderName = Literal["onnx", "dlib"]


class Settings(BaseSettings):
    """All settings of a facematch process. Units are in the field names."""

    model_config = SettingsConfigDict(env_prefix="FACEMATCH_", extra="ignore")

    # --- engine -------------------------------------------------------------
    embedder: EmbedderName = Field(
        "onnx", description="Embedding backend: 'onnx' (fast, default) or 'dlib' (reference)."
    )
    onnx_threads: int = Field(
        1, ge=0, description="onnxruntime intra-op threads per session (0 = onnxruntime default)."
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(user_cache_dir("facematch")),
        description="Where derived files (the converted ONNX model) are cached.",
    )
    max_image_bytes: int = Field(
        5 * 1024 * 1024, gt=0, description="Largest accepted encoded image, in bytes (decoded)."
    )
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="Largest accepted image area in pixels (decompression bombs)."
    )
    min_image_side_px: int = Field(64, gt=0, description="Smallest accepted image side, in pixels.")
    min_face_px: int = Field(
        40, gt=0, description="Smallest face (box side, in original pixels) the engine accepts."
    )
    match_threshold: float | None = Field(
        None,
        gt=0,
        description="Distance below which two faces are 'similar'. Default: the calibrated "
        "threshold for FMR 1e-3.",
    )
    lfw_root: Path = Field(
        Path("../shared/data/lfw-view1"),
        description="LFW View 1 folder used by calibration, evaluation and tests.",
    )

    # --- service ------------------------------------------------------------
    # (fields for the HTTP service, store and operations are added below)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
