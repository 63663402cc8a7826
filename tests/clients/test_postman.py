"""The Postman collection: generated deterministically from the OpenAPI document, and
run green by newman against a live `facematch serve`, images through iteration data."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from facematch.commands.postman import CALLS, COLLECTION_FILE, ENVIRONMENT_FILE, generate
from facematch.testing.keys import client_private_key, public_pem
from tests.clients.conftest import REPO, LiveClient, admin, no_face_photo

POSTMAN_DIR = REPO / "clients" / "postman"
NEWMAN = POSTMAN_DIR / "node_modules" / ".bin" / "newman"


def test_committed_collection_is_what_the_generator_writes(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in (COLLECTION_FILE, ENVIRONMENT_FILE):
        assert (tmp_path / name).read_bytes() == (POSTMAN_DIR / name).read_bytes(), (
            f"{name} is stale: run `facematch postman` and commit the result"
        )


def test_collection_has_the_valify_folders_and_examples() -> None:
    collection = json.loads((POSTMAN_DIR / COLLECTION_FILE).read_text(encoding="utf-8"))
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    folders = {folder["name"]: folder["item"] for folder in collection["item"]}
    assert list(folders) == [
        "token",
        "face match v1",
        "face match v1.1",
        "by transaction id",
        "inquiry",
        "fetch-images",
    ]
    token_request = folders["token"][0]
    script = "\n".join(token_request["event"][0]["script"]["exec"])
    assert 'pm.environment.set("access_token", body.access_token)' in script
    match = folders["face match v1"][0]
    codes = {example["code"] for example in match["response"]}
    assert {200, 400, 401, 403, 422, 429} <= codes
    no_face = [e for e in match["response"] if '"error_code": 2101' in e["body"]]
    assert [example["code"] for example in no_face] == [422]


def _newman() -> Path:
    if NEWMAN.exists():
        return NEWMAN
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so newman cannot be (`.ci/run` installs both)")
    subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--no-package-lock",
            "--prefix",
            str(POSTMAN_DIR),
        ],
        check=True,
        timeout=600,
    )
    return NEWMAN


@pytest.mark.lfw
@pytest.mark.slow
def test_newman_runs_the_collection_green(
    tmp_path: Path, live: LiveClient, photos: dict[str, Path]
) -> None:
    newman = _newman()
    admin_env = live.env
    values = json.loads(
        admin(
            admin_env,
            "bootstrap",
            "--organisation",
            "Postman",
            "--username",
            "postman",
            "--token-trials",
            "10",
            "--json",
        )
    )
    admin(
        admin_env,
        "register-key",
        "--organisation",
        "Postman",
        "-",
        stdin=public_pem(client_private_key()),
    )
    secret = admin(admin_env, "hmac-secret", "--bundle-id", str(values["bundle_id"])).strip()

    environment = json.loads((POSTMAN_DIR / ENVIRONMENT_FILE).read_text(encoding="utf-8"))
    filled = {
        "base_url": live.url,
        "username": values["username"],
        "password": values["password"],
        "client_id": values["client_id"],
        "client_secret": values["client_secret"],
        "bundle_key": values["bundle_key"],
        "hmac_secret": secret,
    }
    for variable in environment["values"]:
        variable["value"] = filled.get(variable["key"], variable["value"])
    env_path = tmp_path / "environment.json"
    env_path.write_text(json.dumps(environment), encoding="utf-8")

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode("ascii")

    data_path = tmp_path / "images.json"
    data_path.write_text(
        json.dumps(
            [
                {
                    "first_img": b64(photos["same_a"]),
                    "second_img": b64(photos["same_b"]),
                    "no_face_img": b64(no_face_photo(tmp_path)),
                }
            ]
        ),
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            str(newman),
            "run",
            str(POSTMAN_DIR / COLLECTION_FILE),
            "--environment",
            str(env_path),
            "--iteration-data",
            str(data_path),
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--timeout-request",
            "120000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    run = json.loads(report.read_text(encoding="utf-8"))["run"]
    assert run["stats"]["requests"]["total"] == len(CALLS)
    assert run["stats"]["assertions"]["failed"] == 0
    # Every request checks its status; every signed answer its hmac, every refusal its
    # error_code (the token answer alone is not signed).
    assert run["stats"]["assertions"]["total"] == 2 * len(CALLS) - 1
    answered = [execution["response"]["code"] for execution in run["executions"]]
    assert answered == [call.status for call in CALLS]


def test_postman_command_writes_both_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from facematch.cli import cli

    result = CliRunner().invoke(cli, ["postman", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for name in (COLLECTION_FILE, ENVIRONMENT_FILE):
        assert f"wrote {tmp_path / 'out' / name}" in result.output
        written = json.loads((tmp_path / "out" / name).read_text(encoding="utf-8"))
        assert written == json.loads((POSTMAN_DIR / name).read_text(encoding="utf-8"))
