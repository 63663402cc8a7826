"""The fast embedding backend: dlib's ResNet converted to ONNX, run on onnxruntime.

The converted model is derived from the installed ``.dat`` file and cached on
disk under ``cache_dir`` (default: ``Settings.cache_dir``, i.e. the user cache
directory or ``FACEMATCH_CACHE_DIR``). The cache file name carries the SHA-256
of the source ``.dat`` and :data:`~facematch.engine.onnx_convert.CONVERTER_VERSION`,
so a new model file or a new converter never reuses a stale graph. A sidecar
file holds the SHA-256 of the ONNX bytes: a truncated or altered cache file is
detected and rebuilt. Builds happen under a cross-process file lock and are
published with ``os.replace`` of a fully written temporary file, so concurrent
processes never read a half-written model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from filelock import FileLock, Timeout

from facematch.engine.chips import DESCRIPTOR_SIZE, check_chips
from facematch.engine.dlib_format import load_network
from facematch.engine.errors import ModelError
from facematch.engine.models import resnet_model_path
from facematch.engine.onnx_convert import CONVERTER_VERSION, INPUT_NAME, build_model

log = logging.getLogger(__name__)

_LOCK_TIMEOUT_S = 600.0  # a conversion takes about a second; this only bounds a stuck peer


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, flush it to disk, then rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class ModelCache:
    """Where the ONNX model derived from one ``.dat`` file lives, and how it is (re)built."""

    def __init__(self, dat_path: Path, cache_dir: Path) -> None:
        self.dat_path = dat_path
        self.cache_dir = cache_dir
        try:
            self.source_sha256 = _sha256_file(dat_path)
        except OSError as exc:
            raise ModelError(f"cannot read dlib model {dat_path}: {exc}") from exc
        stem = f"dlib-resnet-v1-{self.source_sha256[:32]}-c{CONVERTER_VERSION}"
        self.model_path = cache_dir / f"{stem}.onnx"
        self.digest_path = cache_dir / f"{stem}.onnx.sha256"
        self.lock_path = cache_dir / f"{stem}.lock"

    def read_valid(self) -> bytes | None:
        """The cached model's bytes if present and matching its recorded digest."""
        try:
            data = self.model_path.read_bytes()
            recorded = self.digest_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if hashlib.sha256(data).hexdigest() != recorded:
            log.warning("cached ONNX model %s is corrupted; it will be rebuilt", self.model_path)
            return None
        return data

    def build(self) -> bytes:
        """Convert the ``.dat`` file and publish the result (call with the lock held)."""
        started = time.perf_counter()
        model = build_model(load_network(self.dat_path))
        data = model.SerializeToString()
        _write_atomically(self.model_path, data)
        # The digest goes last: until it matches, readers treat the model as missing.
        _write_atomically(self.digest_path, hashlib.sha256(data).hexdigest().encode("ascii"))
        log.info(
            "converted %s to ONNX in %.2f s: %s",
            self.dat_path.name,
            time.perf_counter() - started,
            self.model_path,
        )
        return data

    def load(self, *, force_rebuild: bool = False) -> tuple[bytes, bool]:
        """The model bytes, building them if needed. Returns (bytes, built_here)."""
        if not force_rebuild and (data := self.read_valid()) is not None:
            return data, False
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.lock_path), timeout=_LOCK_TIMEOUT_S):
                # Another process may have finished the build while we waited.
                if not force_rebuild and (data := self.read_valid()) is not None:
                    return data, False
                return self.build(), True
        except Timeout as exc:
            raise ModelError(
                f"timed out waiting for the model cache lock {self.lock_path}"
            ) from exc
        except OSError as exc:
            raise ModelError(f"cannot write the model cache in {self.cache_dir}: {exc}") from exc


def default_cache_dir() -> Path:
    """``Settings.cache_dir`` of this process (``FACEMATCH_CACHE_DIR`` or the user cache)."""
    from facematch.settings import get_settings

    return get_settings().cache_dir


class OnnxEmbedder:
    """dlib's ResNet descriptor computed by onnxruntime (the fast default backend).

    ``model_id`` is the same as :class:`~facematch.engine.embed.DlibEmbedder`'s on
    purpose: the two backends compute the same function (parity within 1e-4 per
    component, checked by tests), so stored embeddings from either can be compared.
    """

    model_id = "dlib-resnet-v1"

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        cache_dir: Path | None = None,
        threads: int = 1,
    ) -> None:
        if threads < 0:
            raise ValueError("threads must be >= 0 (0 = onnxruntime's default)")
        self.threads = threads
        self.cache = ModelCache(model_path or resnet_model_path(), cache_dir or default_cache_dir())
        data, self.built = self.cache.load()
        try:
            self._session = self._open(data)
        except ModelError:
            # The bytes matched their digest yet do not load: rebuild once, then give up.
            data, self.built = self.cache.load(force_rebuild=True)
            self._session = self._open(data)

    @property
    def model_path(self) -> Path:
        return self.cache.model_path

    def _open(self, data: bytes) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings from the optimiser are noise here
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime cannot load {self.cache.model_path}: {exc}") from exc

    def embed(self, chips: np.ndarray) -> np.ndarray:
        # InferenceSession.run is thread-safe: no lock, unlike dlib's network object.
        chips = check_chips(chips)
        if len(chips) == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        try:
            (out,) = self._session.run(None, {INPUT_NAME: chips})
        except Exception as exc:
            raise ModelError(f"onnxruntime failed to compute descriptors: {exc}") from exc
        return np.asarray(out, dtype=np.float32)
