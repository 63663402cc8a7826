"""The OpenAPI document is complete (security, examples, every error status with its
catalogue shape) and /docs, /redoc load nothing from another host."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facematch.service.api.docs_pages import REDOC_REMOTE_LOGO
from facematch.service.app import create_app
from facematch.service.errors import CATALOGUE
from facematch.settings import Settings


@pytest.fixture(scope="module")
def schema() -> dict:
    return create_app(Settings()).openapi()


def test_every_operation_has_examples_and_error_shapes(schema: dict) -> None:
    for path, methods in schema["paths"].items():
        operation = methods["post"]
        content = operation["requestBody"]["content"]
        assert any(media.get("examples") for media in content.values()), path
        assert operation["responses"]["200"]["content"]["application/json"].get("example"), path
        for status, response in operation["responses"].items():
            if status == "200" or (status == "422" and "examples" not in response["content"]):
                continue
            media = response["content"]["application/json"]
            assert media["examples"], (path, status)
            for example in media["examples"].values():
                value = example["value"]
                if path == "/api/o/token/":
                    assert set(value) == {"error", "error_description"}
                else:
                    assert {"message", "error_code"} <= set(value)
                    entry = next(e for e in CATALOGUE.values() if e.code == value["error_code"])
                    assert str(entry.status) == status
                    assert value["message"] == entry.en


def test_every_catalogue_entry_is_documented_somewhere(schema: dict) -> None:
    shown = set()
    for methods in schema["paths"].values():
        for response in methods["post"]["responses"].values():
            media = response.get("content", {}).get("application/json", {})
            for example in media.get("examples", {}).values():
                shown.add(example["value"].get("error_code") or example["value"].get("error"))
    for entry in CATALOGUE.values():
        if entry.name in ("not_found", "method_not_allowed"):
            continue  # routing errors, no endpoint's outcome
        assert (entry.oauth_error or entry.code) in shown, entry.name


def test_service_endpoints_declare_the_bearer_scheme(schema: dict) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["BearerToken"]["description"],
    }
    for path, methods in schema["paths"].items():
        if path != "/api/o/token/":
            assert {"BearerToken": []} in methods["post"]["security"], path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_the_server(page: str, tmp_path: Path) -> None:
    # No lifespan (no database, no engine): the pages and assets need neither.
    client = TestClient(create_app(Settings(data_dir=tmp_path, environment="development")))
    html = client.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html.text)
    assert urls, html.text
    assert "default-src 'self'" in html.headers["content-security-policy"]
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url}"
        if url.startswith("/static/"):
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert REDOC_REMOTE_LOGO not in asset.content, url
