"""The load harness's in-process parts, so that a change of the engine's API cannot
leave `bench/load.py` broken until someone next runs a benchmark."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bench import load
from tests.conftest import lfw_image

pytestmark = pytest.mark.lfw


def test_engine_baseline_runs_the_engine_on_the_requests_own_pairs(lfw_root: Path) -> None:
    # The harness keeps pairs as the base64 text it sends; the engine takes bytes
    # (a str is a path), so the baseline must decode them first.
    jpeg = load.reencode_640x480(lfw_image(lfw_root, "Aaron_Peirsol", 1))
    text = base64.b64encode(jpeg).decode()
    ms = load.engine_baseline_ms([(text, text)], count=1, repeats=1)
    assert ms > 0
