"""The SDK against a real `facematch serve` over TCP: installed alone in a fresh
virtual environment (no server dependency importable there), and the async client."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facematch_client import AsyncClient
from tests.clients.conftest import REPO, LiveClient, environ_without_venv

pytestmark = [pytest.mark.lfw, pytest.mark.slow]

# Run by the fresh environment's interpreter: the seed-style flow end to end.
FRESH_SCRIPT = r"""
import importlib.util, json, sys
server_side = ["facematch", "dlib", "onnxruntime", "sqlalchemy", "fastapi", "starlette",
               "numpy", "PIL"]
importable = [name for name in server_side if importlib.util.find_spec(name) is not None]
from facematch_client import Client
args = json.loads(sys.argv[1])
with Client(args["url"], username=args["username"], password=args["password"],
            client_id=args["client_id"], client_secret=args["client_secret"],
            bundle_key=args["bundle_key"], hmac_secret=args["hmac_secret"],
            private_key=open(args["key_path"], "rb").read()) as client:
    same = client.match(args["same_a"], args["same_b"])
    different = client.match(args["same_a"], args["other"])
    again = client.match_reference(args["same_b"], same.transaction_id)
    fourth = client.match(args["same_b"], args["same_a"])  # the first token is used up
    (record,) = client.inquire(transaction_id=same.transaction_id)
    images = client.fetch_images(same.transaction_id)
    print(json.dumps({
        "importable": importable,
        "similar": [same.is_similar, different.is_similar, again.is_similar, fourth.is_similar],
        "trials": [same.trials_remaining, different.trials_remaining, again.trials_remaining,
                   fourth.trials_remaining],
        "tokens_obtained": client.tokens_obtained,
        "inquired": record["transaction_id"] == same.transaction_id,
        "boxes": record["face_boxes"]["first"] is not None,
        "images_equal": images.first_img == open(args["same_a"], "rb").read(),
    }))
"""


def _fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment with only the SDK distribution and its dependencies."""
    source = tmp_path / "facematch-client"
    shutil.copytree(
        REPO / "clients" / "python",
        source,
        ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"),
    )
    venv = tmp_path / "venv"
    env = environ_without_venv()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_sdk_alone_in_a_fresh_venv_runs_the_seed_flow(
    tmp_path: Path, live: LiveClient, photos: dict[str, Path]
) -> None:
    python = _fresh_venv(tmp_path)
    key_path = tmp_path / "private.pem"
    key_path.write_text(live.private_key_pem)
    args = {
        "url": live.url,
        "username": live.username,
        "password": live.password,
        "client_id": live.client_id,
        "client_secret": live.client_secret,
        "bundle_key": live.bundle_key,
        "hmac_secret": live.hmac_secret,
        "key_path": str(key_path),
        **{name: str(path) for name, path in photos.items()},
    }
    done = subprocess.run(
        [str(python), "-c", FRESH_SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        env=environ_without_venv(),
        cwd=tmp_path,  # not the repository: nothing importable from the working tree
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["importable"] == []
    assert outcome["similar"] == [True, False, True, True]
    # 3 trials per token (the bootstrap's bundle): the fourth call ran on a new token.
    assert outcome["trials"] == [2, 1, 0, 2]
    assert outcome["tokens_obtained"] == 2
    assert outcome["inquired"] is True
    assert outcome["boxes"] is True
    assert outcome["images_equal"] is True


def test_async_client_against_the_live_server(live: LiveClient, photos: dict[str, Path]) -> None:
    async def flow() -> tuple[list[bool], int]:
        async with AsyncClient(
            live.url,
            username=live.username,
            password=live.password,
            client_id=live.client_id,
            client_secret=live.client_secret,
            bundle_key=live.bundle_key,
            hmac_secret=live.hmac_secret,
            private_key=live.private_key_pem,
        ) as client:
            results = await asyncio.gather(
                *(client.match(photos["same_a"], photos[name]) for name in ("same_b", "other"))
            )
            (record,) = await client.inquire(transaction_id=results[0].transaction_id)
            assert record["outcome"] == "success"
            images = await client.fetch_images(results[1].transaction_id)
            assert images.second_img == photos["other"].read_bytes()
            return [r.is_similar for r in results], client.tokens_obtained

    similar, tokens = asyncio.run(flow())
    assert similar == [True, False]
    assert tokens == 1
