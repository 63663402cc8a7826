"""A scripted stand-in for the face engine: no model loaded, answers in microseconds.

The service tests that are about HTTP, tokens, storage or errors use it instead
of the real :class:`~facematch.engine.matcher.FaceMatcher` (whose loading reads
the dlib and ONNX models), and script every engine error class, a server bug
or a busy engine through the image they send.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facematch.engine import errors as engine_errors
from facematch.engine.images import Base64Image
from facematch.engine.types import FaceBox, FaceObservation, MatchResult

if TYPE_CHECKING:
    from facematch.engine.protocols import Matcher

STUB_MODEL_ID = "stub-engine"
STUB_THRESHOLD = 0.5
SCRIPT_MAX_CHARS = 128  # longer than any script


def script(instruction: str) -> str:
    """A base64 image that tells :class:`StubMatcher` what to do."""
    return base64.b64encode(instruction.encode()).decode("ascii")


@dataclass
class StubMatcher:
    """A :class:`~facematch.engine.protocols.Matcher` scripted by the first image's bytes.

    ``first_img`` decodes to ``raise:<EngineErrorClass>``, ``raise:RuntimeError``,
    ``block`` (wait for :attr:`release`, after releasing :attr:`entered`) or
    anything else (a match of two faces, similar, confidence 0.9).
    """

    model_id: str = STUB_MODEL_ID
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def match(self, first: bytes | Base64Image, second: bytes | Base64Image) -> MatchResult:
        return self._run(first)

    def match_reference(
        self, image: bytes | Base64Image, reference_embedding: np.ndarray, reference_model_id: str
    ) -> MatchResult:
        return self._run(image)

    def _run(self, first: bytes | Base64Image) -> MatchResult:
        # Like FaceMatcher: bytes are the image itself (what the service passes: it
        # decodes each image once), Base64Image its base64 text. Scripts are short;
        # only the head is read, so a large real image costs nothing here.
        raw = first if isinstance(first, bytes) else base64.b64decode(first.text)
        instruction = raw[:SCRIPT_MAX_CHARS].decode(errors="replace")
        if instruction.startswith("raise:"):
            name = instruction.removeprefix("raise:")
            if name == "RuntimeError":
                raise RuntimeError("scripted server bug")
            error_class: Any = getattr(engine_errors, name)
            raise error_class(f"scripted {name}", image="first")
        if instruction == "block":
            self.entered.release()
            self.release.wait(timeout=30)
        observation = FaceObservation(
            box_px=FaceBox(1, 2, 3, 4),
            detector_score=1.0,
            rotation_deg=0,
            image_size_px=(10, 10),
            embedding=np.zeros(128, np.float32),
            model_id=self.model_id,
        )
        return MatchResult(
            is_similar=True,
            confidence=0.9,
            distance=0.3,
            threshold=STUB_THRESHOLD,
            model_id=self.model_id,
            first=observation,
            second=observation,
        )


if TYPE_CHECKING:
    # mypy holds the stub to the service's view of a matcher, as it does FaceMatcher.
    def _is_a_matcher(stub: StubMatcher) -> Matcher:
        return stub
