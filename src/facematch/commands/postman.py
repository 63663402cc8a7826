"""`facematch postman`: the Postman v2.1 collection and environment, generated from the
app's OpenAPI document (no hand-kept JSON; the output is deterministic, a test
regenerates it and compares).

Valify's integration steps work as they are: import both files, run "Get an access
token" (its test script stores ``access_token`` in the environment), fill
``first_img`` / ``second_img`` / ``bundle_key``, Send. Every request carries the
documented success and error answers as saved examples and a test script that
checks the status, the catalogue ``error_code`` and, when the environment has
``hmac_secret``, the ``hmac`` header.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

COLLECTION_FILE = "facematch.postman_collection.json"
ENVIRONMENT_FILE = "facematch.postman_environment.json"
SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
NAMESPACE = uuid.UUID("6a7c3f0e-5d0b-4c8e-9a51-3f2f6f1c2b10")  # fixed: stable ids

ENVIRONMENT = {
    "base_url": "http://127.0.0.1:8000",
    "username": "",
    "password": "",
    "client_id": "",
    "client_secret": "",
    "bundle_key": "",
    "hmac_secret": "",
    "access_token": "",
    "refresh_token": "",
    "transaction_id": "",
    "first_img": "",
    "second_img": "",
    "no_face_img": "",
}
SECRET_VARIABLES = {"password", "client_secret", "hmac_secret", "access_token", "refresh_token"}


@dataclass(frozen=True)
class Call:
    """One request of the collection: which operation, which example body, what answer."""

    folder: str
    name: str
    path: str
    example: str
    status: int
    error_code: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    saves: dict[str, str] = field(default_factory=dict)  # environment variable → body field


CALLS = (
    Call(
        "token",
        "Get an access token",
        "/api/o/token/",
        "password",
        200,
        saves={"access_token": "access_token", "refresh_token": "refresh_token"},
    ),
    Call(
        "face match v1",
        "Face match",
        "/api/v1/face/match/",
        "two_images",
        200,
        saves={"transaction_id": "transaction_id"},
    ),
    Call(
        "face match v1",
        "Face match: no face in first_img (refused)",
        "/api/v1/face/match/",
        "two_images",
        422,
        error_code=2101,
        overrides={"first_img": "{{no_face_img}}"},
    ),
    Call("face match v1.1", "Face match (v1.1)", "/api/v1.1/face/match/", "two_images", 200),
    Call(
        "by transaction id",
        "Face match against an earlier transaction",
        "/api/v1/face/match/",
        "by_transaction_id",
        200,
    ),
    Call(
        "inquiry",
        "Inquire by transaction id",
        "/api/v1/transaction/inquire/",
        "by_transaction_id",
        200,
    ),
    Call(
        "inquiry",
        "Inquire by access token",
        "/api/v1/transaction/inquire/",
        "by_access_token",
        200,
    ),
    Call(
        "inquiry",
        "Inquire: unknown transaction (refused)",
        "/api/v1/transaction/inquire/",
        "by_transaction_id",
        404,
        error_code=2301,
        overrides={"transaction_id": "tx_does_not_exist"},
    ),
    Call(
        "fetch-images",
        "Fetch the images of a transaction",
        "/api/v1/transaction/fetch-images/",
        "by_transaction_id",
        200,
    ),
)


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _templated(value: Any, overrides: dict[str, str]) -> Any:
    """The OpenAPI example with every field the environment knows as ``{{field}}``."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in overrides:
                out[key] = overrides[key]
            elif key in ENVIRONMENT and not isinstance(item, dict):
                out[key] = "{{" + key + "}}"
            else:
                out[key] = _templated(item, overrides)
        return out
    return value


def _test_script(call: Call, signed: bool) -> list[str]:
    lines = [
        f'pm.test("answers {call.status}", function () {{',
        f"    pm.response.to.have.status({call.status});",
        "});",
        "const body = pm.response.json();",
    ]
    if call.error_code is not None:
        lines += [
            'pm.test("catalogue error", function () {',
            f"    pm.expect(body.error_code).to.eql({call.error_code});",
            '    pm.expect(body.message).to.be.a("string");',
            "});",
        ]
    if call.status == 200 and signed:
        lines += [
            'const secret = pm.environment.get("hmac_secret");',
            "if (secret) {",
            '    pm.test("hmac header verifies", function () {',
            "        const expected = CryptoJS.HmacSHA512(pm.response.text(), secret).toString();",
            '        pm.expect(pm.response.headers.get("hmac")).to.eql(expected);',
            "    });",
            "}",
        ]
    for variable, source in call.saves.items():
        lines.append(f'pm.environment.set("{variable}", body.{source});')
    return lines


def _response_examples(operation: dict[str, Any], call: Call) -> list[dict[str, Any]]:
    examples = []
    for status, response in sorted(operation["responses"].items()):
        content = response.get("content", {}).get("application/json", {})
        named = content.get("examples") or (
            {"success": {"value": content["example"]}} if "example" in content else {}
        )
        for name, example in named.items():
            examples.append(
                {
                    "id": _id(call.folder, call.name, status, name),
                    "name": f"{status} {example.get('summary', name)}",
                    "status": response.get("description", "").split(";")[0][:60] or status,
                    "code": int(status),
                    "_postman_previewlanguage": "json",
                    "header": [{"key": "Content-Type", "value": "application/json"}],
                    "cookie": [],
                    "body": json.dumps(example["value"], indent=2, ensure_ascii=False),
                }
            )
    return examples


def _request(operation: dict[str, Any], call: Call) -> dict[str, Any]:
    content = operation["requestBody"]["content"]
    url = {
        "raw": "{{base_url}}" + call.path,
        "host": ["{{base_url}}"],
        "path": [part for part in call.path.split("/") if part] + [""],
    }
    if "application/x-www-form-urlencoded" in content:
        example = content["application/x-www-form-urlencoded"]["examples"][call.example]
        form = _templated(example["value"], call.overrides)
        return {
            "auth": {"type": "noauth"},
            "method": "POST",
            "header": [],
            "body": {
                "mode": "urlencoded",
                "urlencoded": [
                    {"key": key, "value": value, "type": "text"} for key, value in form.items()
                ],
            },
            "url": url,
            "description": operation.get("description", ""),
        }
    example = content["application/json"]["examples"][call.example]
    body = _templated(example["value"], call.overrides)
    return {
        "method": "POST",
        "header": [{"key": "Content-Type", "value": "application/json"}],
        "body": {
            "mode": "raw",
            "raw": json.dumps(body, indent=2, ensure_ascii=False),
            "options": {"raw": {"language": "json"}},
        },
        "url": url,
        "description": operation.get("description", ""),
    }


def build_collection(openapi: dict[str, Any]) -> dict[str, Any]:
    """The Postman v2.1 collection for ``openapi`` (the app's completed document)."""
    folders: dict[str, list[dict[str, Any]]] = {}
    for call in CALLS:
        operation = openapi["paths"][call.path]["post"]
        request = _request(operation, call)
        signed = "hmac" in operation["responses"]["200"].get("headers", {})
        folders.setdefault(call.folder, []).append(
            {
                "id": _id(call.folder, call.name),
                "name": call.name,
                "event": [
                    {
                        "listen": "test",
                        "script": {
                            "id": _id(call.folder, call.name, "test"),
                            "type": "text/javascript",
                            "exec": _test_script(call, signed),
                        },
                    }
                ],
                "request": request,
                "response": _response_examples(operation, call),
            }
        )
    return {
        "info": {
            "_postman_id": _id("collection"),
            "name": f"{openapi['info']['title']} (Valify Face Match API)",
            "description": openapi["info"].get("description", ""),
            "schema": SCHEMA_URL,
        },
        "auth": {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{access_token}}", "type": "string"}],
        },
        "item": [{"id": _id(name), "name": name, "item": items} for name, items in folders.items()],
    }


def build_environment() -> dict[str, Any]:
    return {
        "id": _id("environment"),
        "name": "facematch (local)",
        "values": [
            {
                "key": key,
                "value": value,
                "type": "secret" if key in SECRET_VARIABLES else "default",
                "enabled": True,
            }
            for key, value in ENVIRONMENT.items()
        ],
        "_postman_variable_scope": "environment",
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate(output: Path) -> list[Path]:
    """Write the collection and environment into ``output``; the paths written."""
    from facematch.service.app import create_app
    from facematch.settings import Settings

    openapi = create_app(Settings(demo=False)).openapi()
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in (
        (COLLECTION_FILE, build_collection(openapi)),
        (ENVIRONMENT_FILE, build_environment()),
    ):
        path = output / name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


@click.command("postman")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("clients/postman"),
    show_default=True,
    envvar="FACEMATCH_POSTMAN_OUTPUT",
    help="Directory to write the collection and environment into.",
)
def postman(output: Path) -> None:
    """Generate the Postman collection and environment from the OpenAPI document."""
    for path in generate(output):
        click.echo(f"wrote {path}")
