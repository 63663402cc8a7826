"""What the service needs of a face matcher, as a protocol.

:class:`~facematch.engine.matcher.FaceMatcher` satisfies it; so do the
service's instrumented wrapper and the tests' scripted stand-in, which is how
the app can be built around any of them without importing the real engine.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facematch.engine.types import MatchResult


class Matcher(Protocol):
    """Compare two images, or one image with a stored reference descriptor."""

    @property
    def model_id(self) -> str:
        """The descriptor model; stored beside every reference so models never mix."""
        ...

    def match(self, first: bytes, second: bytes, /) -> MatchResult:
        """Raises an :class:`~facematch.engine.errors.EngineError` naming the image."""
        ...

    def match_reference(
        self, image: bytes, reference_embedding: np.ndarray, reference_model_id: str, /
    ) -> MatchResult: ...
