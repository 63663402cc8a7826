"""`facematch serve` before uvicorn starts: metrics directory and preflight checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from facematch.cli import cli
from facematch.commands import serve as serve_module
from facematch.settings import get_settings


def test_operator_metrics_dir_is_emptied_of_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "counter_1234.db"
    stale.write_bytes(b"old run")
    keep = tmp_path / "README"
    keep.write_text("not a metrics file")
    monkeypatch.setenv(serve_module.METRICS_ENV, str(tmp_path))
    assert serve_module._prepare_metrics_dir() is None  # the operator's: not removed at exit
    assert not stale.exists()
    assert keep.exists()


def test_without_a_metrics_dir_a_fresh_one_is_made_for_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setenv first so that monkeypatch restores the variable's original state at teardown,
    # which delenv alone does not record when the variable was absent.
    monkeypatch.setenv(serve_module.METRICS_ENV, "")
    monkeypatch.delenv(serve_module.METRICS_ENV)
    made = serve_module._prepare_metrics_dir()
    try:
        assert made is not None
        assert made.is_dir()
        assert list(made.iterdir()) == []
        # Set in this process's environment, so the spawned workers inherit it.
        assert os.environ[serve_module.METRICS_ENV] == str(made)
    finally:
        if made is not None:
            made.rmdir()


def test_serve_refuses_to_start_in_production_without_image_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEMATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACEMATCH_ENVIRONMENT", "production")
    monkeypatch.delenv("FACEMATCH_IMAGE_KEYS", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--port", "0", "--workers", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert "FACEMATCH_IMAGE_KEYS is not set" in result.output
    assert not (tmp_path / "facematch.sqlite3").exists()  # refused before touching the database
