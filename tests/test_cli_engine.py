"""`facematch compare`, `eval lfw` and `calibrate` through click's test runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facematch.cli import cli
from facematch.commands.engine import EXIT_DIFFERENT, EXIT_ERROR, EXIT_SAME
from facematch.settings import get_settings
from tests.conftest import lfw_image


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    # The dlib backend needs no converted-model cache; settings are re-read per test.
    monkeypatch.setenv("FACEMATCH_EMBEDDER", "dlib")
    monkeypatch.setenv("FACEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEMATCH_MATCH_THRESHOLD", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_compare_same_person_exits_0(lfw_root: Path, runner: CliRunner) -> None:
    a, b = lfw_image(lfw_root, "Abdullah_Gul", 13), lfw_image(lfw_root, "Abdullah_Gul", 14)
    result = runner.invoke(cli, ["compare", str(a), str(b)])
    assert result.exit_code == EXIT_SAME, result.output
    assert result.stdout.startswith("same person: distance 0.")
    assert "first : face" in result.stdout
    assert "second: face" in result.stdout


def test_compare_different_people_exits_1_with_json(lfw_root: Path, runner: CliRunner) -> None:
    a, b = lfw_image(lfw_root, "Abdullah_Gul", 13), lfw_image(lfw_root, "AJ_Cook", 1)
    result = runner.invoke(cli, ["compare", "--json", str(a), str(b)])
    assert result.exit_code == EXIT_DIFFERENT, result.output
    payload = json.loads(result.stdout)
    assert payload["is_similar"] is False
    assert payload["distance"] > payload["threshold"]
    assert 0 <= payload["confidence"] < 0.5
    assert payload["model_id"] == DEFAULT_MODEL_ID
    assert payload["first"]["rotation_deg"] == 0
    assert set(payload["first"]["box_px"]) == {"left", "top", "right", "bottom"}


def test_compare_threshold_option_changes_the_decision(lfw_root: Path, runner: CliRunner) -> None:
    a, b = lfw_image(lfw_root, "Abdullah_Gul", 13), lfw_image(lfw_root, "Abdullah_Gul", 14)
    result = runner.invoke(cli, ["compare", "--json", "--threshold", "0.01", str(a), str(b)])
    assert result.exit_code == EXIT_DIFFERENT
    assert json.loads(result.stdout)["threshold"] == 0.01


def test_compare_error_exits_2_on_stderr(lfw_root: Path, runner: CliRunner, tmp_path: Path) -> None:
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (300, 300), (200, 200, 200)).save(blank)
    face = lfw_image(lfw_root, "Abdullah_Gul", 13)
    result = runner.invoke(cli, ["compare", str(face), str(blank)])
    assert result.exit_code == EXIT_ERROR
    assert result.stdout == ""
    assert "error: second image" in result.stderr
    assert "no face" in result.stderr
    result = runner.invoke(cli, ["compare", "--json", str(blank), str(face)])
    assert result.exit_code == EXIT_ERROR
    error = json.loads(result.stderr)
    assert (error["error"], error["image"]) == ("NoFaceError", "first")


def test_compare_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["compare", str(tmp_path / "nope.jpg"), str(tmp_path / "x.jpg")])
    assert result.exit_code == EXIT_ERROR
    assert "does not exist" in result.stderr


SMALL_PAIRS = """2\t2
Abdullah_Gul\t13\t14
Al_Pacino\t1\t2
AJ_Lamas\t1\tZach_Safrin\t1
Aaron_Guiel\t1\tReese_Witherspoon\t3
Alan_Greenspan\t1\t5
Adel_Al-Jubeir\t1\t3
Aaron_Tippin\t1\tJose_Luis_Rodriguez_Zapatero\t1
Abdullah_Gul\t16\tSteve_Cox\t1
"""


def test_eval_lfw_on_a_small_folded_file(lfw_root: Path, runner: CliRunner, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(SMALL_PAIRS)
    cache = tmp_path / "descriptors.npz"
    args = ["eval", "lfw", "--root", str(lfw_root), "--pairs", str(pairs), "--json"]
    result = runner.invoke(cli, [*args, "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["reports"]
    assert report["pipeline"] == "engine"
    assert (report["pairs"], report["same_pairs"], report["images"]) == (8, 4, 16)
    assert report["accuracy"] == 1.0
    assert report["ten_fold_accuracy"] == 1.0
    assert report["roc_auc"] == 1.0
    assert report["no_face_images"] == 0
    assert report["tar_at_fmr_1e3"] is None  # 16 images: far too few impostors for 1e-3
    assert cache.is_file()
    # Text output, answered from the cache.
    text = runner.invoke(cli, [*args[:-1], "--cache", str(cache)])
    assert text.exit_code == 0
    assert "10-fold accuracy: 1.0000" in text.stdout
    assert "images with no face: 0" in text.stdout


def test_eval_lfw_runs_the_largest_face_diagnostic_as_a_variant(
    lfw_root: Path, runner: CliRunner, tmp_path: Path
) -> None:
    # The detector without the one-face rule comes from facematch.evaluation.variants.
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nAbdullah_Gul 13 14\nAbdullah_Gul 13 AJ_Cook 1\n")
    args = ["eval", "lfw", "--root", str(lfw_root), "--pairs", str(pairs), "--json"]
    result = runner.invoke(cli, [*args, "--largest-face"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)["reports"]
    assert [r["pipeline"] for r in reports] == ["engine", "engine (largest face)"]
    assert all(r["images"] == 3 for r in reports)


def test_eval_lfw_refuses_a_bad_pairs_file(
    lfw_root: Path, runner: CliRunner, tmp_path: Path
) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("3\nAbdullah_Gul 13 14\n")
    result = runner.invoke(cli, ["eval", "lfw", "--root", str(lfw_root), "--pairs", str(pairs)])
    assert result.exit_code == 1
    assert "promises" in result.stderr


def test_calibrate_needs_enough_impostors(runner: CliRunner, tmp_path: Path) -> None:
    root = tmp_path / "lfw"
    (root / "images").mkdir(parents=True)
    pairs = root / "pairs.txt"
    pairs.write_text("1\nA 1 2\nA 1 B 1\n")
    result = runner.invoke(cli, ["calibrate", "--root", str(root), "--pairs", str(pairs)])
    assert result.exit_code == 1
    assert "no images" in result.stderr


# The default pipeline: BlazeFace, 5-point alignment, mirror-averaged descriptor.
DEFAULT_MODEL_ID = "dlib-resnet-v1+mirror-l2+blazeface-sr-v1-dlib5"


def test_calibrate_writes_to_the_data_dir_and_the_engine_reads_it_when_told(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facematch.engine.matcher import FaceMatcher
    from facematch.engine.scoring import calibration_resource, load_calibration
    from facematch.evaluation.lfw import DescriptorCache

    # 600 synthetic people of 2 images: descriptors come from the cache, so the
    # image files are only listed, never read.
    root, rng = tmp_path / "lfw", np.random.default_rng(5)
    store = DescriptorCache(tmp_path / "descriptors.npz")
    for i, centre in enumerate(rng.normal(size=(600, 128)) * 0.06):
        (root / "images" / f"p{i}").mkdir(parents=True)
        for n in (1, 2):
            (root / "images" / f"p{i}" / f"p{i}_{n:04d}.jpg").touch()
            descriptor = (centre + rng.normal(size=128) * 0.02).astype(np.float32)
            store.entries[f"engine:{DEFAULT_MODEL_ID}:default|p{i}|{n}"] = descriptor
    store.save()
    pairs = root / "pairs.txt"
    pairs.write_text(
        "300\n"
        + "".join(f"p{i} 1 2\n" for i in range(300))
        + "".join(f"p{i} 1 p{i + 1} 1\n" for i in range(300))
    )
    shipped = resources.files("facematch.engine").joinpath(calibration_resource(DEFAULT_MODEL_ID))
    before = shipped.read_bytes()
    monkeypatch.setenv("FACEMATCH_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    args = ["calibrate", "--root", str(root), "--pairs", str(pairs)]
    result = runner.invoke(cli, [*args, "--cache", str(tmp_path / "descriptors.npz")])
    assert result.exit_code == 0, result.output
    target = tmp_path / "data" / f"calibration-{DEFAULT_MODEL_ID}.json"
    assert f"FACEMATCH_CALIBRATION_FILE={target}" in result.stdout
    assert shipped.read_bytes() == before  # the package is never written by default
    written = load_calibration(target)
    assert written.metadata["fit"]["pairs_used"] == 600
    assert written != load_calibration(model_id=DEFAULT_MODEL_ID)
    # The engine keeps the shipped calibration until the setting names the file.
    monkeypatch.setenv("FACEMATCH_CALIBRATION_FILE", str(target))
    get_settings.cache_clear()
    assert FaceMatcher.from_settings(get_settings()).calibration == written


def test_eval_kyc_on_a_small_subset(lfw_root: Path, runner: CliRunner, tmp_path: Path) -> None:
    args = ["eval", "kyc", "--root", str(lfw_root), "--limit", "6", "--out-dir", str(tmp_path)]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report"]
    assert (report["pairs"], report["images"]) == (6, 12)
    assert report["same_pairs"] == 3
    assert sum(report["images_by_type"].values()) == 12
    assert set(report["tar_at_fmr"]) == {"1e-3", "1e-4"}  # too few impostors here: None
    assert all(t["total_ms_p50"] > 0 for t in report["timing_by_type"].values())
    assert 0.5 <= report["accuracy"] <= 1.0
    assert len(list((tmp_path / "kyc-v1-seed0").glob("*.jpg"))) == 12
    text = runner.invoke(cli, args)  # reuses the rendered images
    assert text.exit_code == 0, text.output
    assert "TAR at FMR 1e-3: n/a" in text.stdout
    assert "median ms per image" in text.stdout


def test_the_lfw_folder_is_an_evaluation_option_not_a_setting() -> None:
    from facematch.commands.engine import calibrate, eval_group
    from facematch.evaluation.lfw import DEFAULT_LFW_ROOT, LFW_ROOT_ENV
    from facematch.settings import Settings

    assert "lfw_root" not in Settings.model_fields
    commands = [calibrate, *eval_group.commands.values()]
    for command in commands:
        (root,) = [p for p in command.params if p.name == "root"]
        assert (root.envvar, root.default) == (LFW_ROOT_ENV, DEFAULT_LFW_ROOT), command.name
