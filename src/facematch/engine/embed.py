"""Face descriptors: 150×150 aligned RGB chips → float32 [n, 128].

Two backends implement :class:`Embedder`:

* ``dlib`` — dlib's own ``face_recognition_model_v1``; the reference.
* ``onnx`` — the same network converted to ONNX and run on onnxruntime
  (see :mod:`facematch.engine.onnx_embedder`); the fast default.

Both report the same ``model_id``: they compute the same function (the ONNX
graph matches dlib within 1e-4 per component, checked by the parity tests), so
embeddings stored by one backend may be compared with the other's.

:class:`MirrorAveragedEmbedder` wraps either one: the descriptor is the mean of
the chip's and its mirror image's, scaled to unit length (test-time
augmentation, same weights). It
is another descriptor function, so it has its own ``model_id``
(``dlib-resnet-v1+mirror-l2``) and calibration: references stored by the plain
pipeline are never compared with it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from facematch.engine.chips import DESCRIPTOR_SIZE, check_chips
from facematch.engine.errors import ModelError
from facematch.engine.models import resnet_model_path


@runtime_checkable
class Embedder(Protocol):
    """Turns aligned face chips into descriptors."""

    model_id: str

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """``chips``: uint8 [n, 150, 150, 3] RGB → float32 [n, 128]."""
        ...


class DlibEmbedder:
    """dlib's ResNet descriptor, computed by dlib itself (slow, reference)."""

    model_id = "dlib-resnet-v1"

    def __init__(self, model_path: Path | None = None) -> None:
        import dlib

        path = model_path or resnet_model_path()
        try:
            self._net = dlib.face_recognition_model_v1(str(path))
        except RuntimeError as exc:
            raise ModelError(f"cannot load dlib face model {path}: {exc}") from exc
        # dlib's network object keeps per-call scratch tensors: not re-entrant.
        self._lock = threading.Lock()

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = check_chips(chips)
        if len(chips) == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        with self._lock:
            out = self._net.compute_face_descriptor(list(chips))
        return np.asarray([np.asarray(d) for d in out], dtype=np.float32)


class MirrorAveragedEmbedder:
    """The mean of the descriptors of each chip and of its left-right mirror image,
    scaled to unit length.

    Both go through the wrapped backend in one batch (one network call for
    ``2n`` chips). The unit length makes distances depend on the descriptors'
    directions only, which is what pays at strict false-match rates
    (docs/accuracy.md). ``model_id`` is the backend's plus ``+mirror-l2``.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = f"{inner.model_id}{MIRROR_SUFFIX}"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = check_chips(chips)
        count = len(chips)
        if count == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        both = self.inner.embed(np.concatenate([chips, chips[:, :, ::-1]])).astype(np.float64)
        mean = (both[:count] + both[count:]) / 2
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        return (mean / np.maximum(norms, 1e-12)).astype(np.float32)


MIRROR_SUFFIX = "+mirror-l2"


def create_embedder(
    name: Literal["onnx", "dlib"],
    *,
    cache_dir: Path | None = None,
    onnx_threads: int = 1,
    mirror: bool = True,
) -> Embedder:
    """The embedding backend called ``name`` (``Settings.embedder``), mirror-averaged
    unless ``mirror`` is False (``Settings.mirror_descriptor``).

    ``cache_dir`` and ``onnx_threads`` apply to the ``onnx`` backend only
    (``None`` = ``Settings.cache_dir``; ``0`` threads = onnxruntime's default).
    """
    backend: Embedder
    if name == "dlib":
        backend = DlibEmbedder()
    elif name == "onnx":
        # Imported here so the dlib backend does not pull in onnx/onnxruntime.
        from facematch.engine.onnx_embedder import OnnxEmbedder

        backend = OnnxEmbedder(cache_dir=cache_dir, threads=onnx_threads)
    else:
        raise ValueError(f"unknown embedder {name!r}: expected 'onnx' or 'dlib'")
    return MirrorAveragedEmbedder(backend) if mirror else backend
