"""The batch every embedding backend takes and gives: aligned 150×150 RGB chips in,
128-d descriptors out.

A module of its own so that the backends (:mod:`facematch.engine.embed`'s dlib
one, :mod:`facematch.engine.onnx_embedder`) and the factory that chooses between
them (``embed.create_embedder``) share it without importing each other.
"""

from __future__ import annotations

import numpy as np

CHIP_SIZE_PX = 150
DESCRIPTOR_SIZE = 128


def check_chips(chips: np.ndarray) -> np.ndarray:
    """Validate the chip batch layout every backend expects."""
    if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE_PX, CHIP_SIZE_PX, 3):
        raise ValueError(f"chips must be [n, {CHIP_SIZE_PX}, {CHIP_SIZE_PX}, 3], got {chips.shape}")
    if chips.dtype != np.uint8:
        raise ValueError(f"chips must be uint8, got {chips.dtype}")
    return np.ascontiguousarray(chips)
