"""The OpenAPI document, completed: security schemes, request bodies and examples of
every endpoint, and every error status each endpoint can answer with its catalogue
entries as examples. ``/docs``, ``/redoc`` and the generated Postman collection
(:mod:`facematch.commands.postman`) read nothing else, so they are complete without
hand edits. Built once per app, from the routes and :data:`CATALOGUE`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from facematch.service.errors import CATALOGUE, ErrorEntry

TOKEN = "/api/o/token/"  # noqa: S105 - a path, not a secret
MATCH_V1 = "/api/v1/face/match/"
MATCH_V11 = "/api/v1.1/face/match/"
INQUIRE = "/api/v1/transaction/inquire/"
FETCH_IMAGES = "/api/v1/transaction/fetch-images/"

BEARER_SCHEME = "BearerToken"
OAUTH_SCHEME = "OAuth2Password"

# Short placeholders: real images are megabytes of base64.
EXAMPLE_IMG = "/9j/4AAQSkZJRgABAQAAAQABAAD...(base64 of a JPEG, PNG or WebP)"
EXAMPLE_BUNDLE_KEY = "bk_4f1c9e2a7d3b46c0a8e5f9b1"
EXAMPLE_TRANSACTION_ID = "tx_3f9c2a7be14d4c0e9d5b8a61"
EXAMPLE_TOKEN = "Xq3Lr0cY1bM8vG2sN6tPwA"  # noqa: S105 - an example in the docs

# Which catalogue families each endpoint can answer (code // 100, see errors.py).
_MATCH_FAMILIES = (10, 11, 12, 13, 15, 20, 21, 22)
_READ_FAMILIES = (10, 11, 12, 15, 23)
_NOT_FROM_READS = {"conflicting_fields", "quota_exhausted", "overloaded", "service_not_enabled"}
_NEVER_ANSWERED = {"not_found", "method_not_allowed"}  # routing errors: not a documented outcome


def _entries(families: Iterable[int], *, skip: Iterable[str] = ()) -> list[ErrorEntry]:
    wanted, skipped = set(families), set(skip) | _NEVER_ANSWERED
    return [
        entry
        for entry in sorted(CATALOGUE.values(), key=lambda e: e.code)
        if entry.code // 100 in wanted and entry.name not in skipped
    ]


def _error_example(entry: ErrorEntry, *, with_transaction: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"message": entry.en, "error_code": entry.code}
    if entry.name in ("missing_field", "invalid_field"):
        body["field"] = "first_img"
    if with_transaction and (entry.code // 100 in (20, 21, 22) or entry.name == "request_timeout"):
        body["transaction_id"] = EXAMPLE_TRANSACTION_ID
    if with_transaction and entry.code // 100 not in (10, 11):
        body["trials_remaining"] = 2
    if entry.status >= 500 and entry.status != 503:
        body["request_id"] = "6f1d2c9a8b7e4f3a9c0d1e2f3a4b5c6d"
    return {"summary": f"{entry.name} ({entry.code})", "value": body}


def _oauth_example(entry: ErrorEntry) -> dict[str, Any]:
    return {
        "summary": f"{entry.oauth_error} ({entry.code})",
        "value": {"error": entry.oauth_error, "error_description": entry.en},
    }


def _error_responses(
    entries: list[ErrorEntry], *, schema_ref: str, example: Callable[[ErrorEntry], dict[str, Any]]
) -> dict[str, Any]:
    by_status: dict[int, list[ErrorEntry]] = {}
    for entry in entries:
        by_status.setdefault(entry.status, []).append(entry)
    responses = {}
    for status, group in sorted(by_status.items()):
        responses[str(status)] = {
            "description": "; ".join(f"{e.name} ({e.code})" for e in group),
            "content": {
                "application/json": {
                    "schema": {"$ref": schema_ref},
                    "examples": {e.name: example(e) for e in group},
                }
            },
        }
    return responses


def _json_body(schema: dict[str, Any], examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "examples": examples}},
    }


_MATCH_FIELDS = {
    "first_img": EXAMPLE_IMG,
    "second_img": EXAMPLE_IMG,
    "bundle_key": EXAMPLE_BUNDLE_KEY,
}
_REFERENCE_FIELDS = {
    "first_img": EXAMPLE_IMG,
    "transaction_id": EXAMPLE_TRANSACTION_ID,
    "bundle_key": EXAMPLE_BUNDLE_KEY,
}
_MATCH_SUCCESS = {
    "result": {"is_similar": True, "confidence": 0.9731},
    "transaction_id": EXAMPLE_TRANSACTION_ID,
    "trials_remaining": 2,
}
_ENVELOPE = {
    "key": "kV2l...(base64 of the RSA-OAEP-wrapped AES-256 key)",
    "data": "q1Zp...(base64 of nonce, AES-256-GCM ciphertext and tag)",
}


def _read_body(*, with_access_token: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "bundle_key": {"type": "string", "description": "A bundle key of your organisation."},
        "transaction_id": {"type": "string", "maxLength": 200},
        "lang": {"type": "string", "enum": ["en", "ar"], "default": "en"},
    }
    if with_access_token:
        properties["access_token"] = {
            "type": "string",
            "maxLength": 200,
            "description": "Instead of transaction_id: every transaction made with this token.",
        }
    return {"type": "object", "required": ["bundle_key"], "properties": properties}


_INQUIRE_FIELDS = {"bundle_key": EXAMPLE_BUNDLE_KEY, "transaction_id": EXAMPLE_TRANSACTION_ID}


def _signed_success(description: str, example: dict[str, Any], schema: dict[str, Any]) -> Any:
    return {
        "description": description,
        "headers": {
            "hmac": {
                "description": "Lowercase hex HMAC-SHA512 of the body, keyed with the "
                "bundle's HMAC secret (docs/transactions.md).",
                "schema": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
            }
        },
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add what FastAPI cannot infer from the routes; returns ``schema``, changed."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(
        {
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "The access_token of POST /api/o/token/ (also accepted in "
                "an 'Authentication' header).",
            },
            OAUTH_SCHEME: {
                "type": "oauth2",
                "flows": {"password": {"tokenUrl": TOKEN, "scopes": {}}},
            },
        }
    )
    schemas = components.setdefault("schemas", {})
    schemas["Envelope"] = {
        "title": "Envelope",
        "type": "object",
        "required": ["key", "data"],
        "properties": {
            "key": {"type": "string", "description": "base64(RSA-OAEP(SHA-256) of the AES key)"},
            "data": {
                "type": "string",
                "description": "base64(nonce ‖ AES-256-GCM ciphertext ‖ tag)",
            },
        },
    }
    paths = schema.get("paths", {})
    security: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}, {OAUTH_SCHEME: []}]
    error_ref = "#/components/schemas/ErrorResponse"

    if TOKEN in paths:
        operation = paths[TOKEN]["post"]
        form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
        form["examples"] = {
            "password": {
                "summary": "password grant",
                "value": {
                    "grant_type": "password",
                    "username": "alice",
                    "password": "********",
                    "client_id": "cl_8d1f0a3c5e7b",
                    "client_secret": "********",
                },
            },
            "refresh_token": {
                "summary": "refresh_token grant",
                "value": {
                    "grant_type": "refresh_token",
                    "refresh_token": "Rf7kP0qW2xZ9sL4mN1bV3c",
                    "client_id": "cl_8d1f0a3c5e7b",
                    "client_secret": "********",
                },
            },
        }
        operation["responses"]["200"]["content"]["application/json"]["example"] = {
            "access_token": EXAMPLE_TOKEN,
            "expires_in": 600,
            "token_type": "Bearer",
            "scope": "face_match",
            "refresh_token": "Rf7kP0qW2xZ9sL4mN1bV3c",
        }
        oauth = [entry for entry in CATALOGUE.values() if entry.oauth_error is not None]
        operation["responses"].update(
            _error_responses(
                oauth, schema_ref="#/components/schemas/OAuthErrorResponse", example=_oauth_example
            )
        )

    for path, wrapped in ((MATCH_V1, False), (MATCH_V11, True)):
        if path not in paths:
            continue
        operation = paths[path]["post"]
        operation["security"] = security

        def wrap(fields: dict[str, Any], *, wrapped: bool = wrapped) -> dict[str, Any]:
            return {"data": fields} if wrapped else fields

        content = operation["requestBody"]["content"]["application/json"]
        content["examples"] = {
            "two_images": {"summary": "selfie and ID photo", "value": wrap(_MATCH_FIELDS)},
            "by_transaction_id": {
                "summary": "selfie against an earlier transaction's reference face",
                "value": wrap(_REFERENCE_FIELDS),
            },
            "arabic_errors": {
                "summary": "errors in Arabic",
                "value": wrap({**_MATCH_FIELDS, "lang": "ar"}),
            },
        }
        success = operation["responses"]["200"]
        success.update(
            _signed_success(
                "Signed answer", _MATCH_SUCCESS, {"$ref": "#/components/schemas/FaceMatchResponse"}
            )
        )
        errors = _entries(_MATCH_FAMILIES)
        operation["responses"].update(
            _error_responses(
                errors,
                schema_ref=error_ref,
                example=lambda e: _error_example(e, with_transaction=True),
            )
        )

    for path, examples, answer in (
        (
            INQUIRE,
            {
                "by_transaction_id": {"summary": "one transaction", "value": _INQUIRE_FIELDS},
                "by_access_token": {
                    "summary": "every transaction made with a token",
                    "value": {"bundle_key": EXAMPLE_BUNDLE_KEY, "access_token": EXAMPLE_TOKEN},
                },
            },
            'Signed envelope; decrypted: {"transactions": [...]} (docs/transactions.md)',
        ),
        (
            FETCH_IMAGES,
            {"by_transaction_id": {"summary": "one transaction", "value": _INQUIRE_FIELDS}},
            'Signed envelope; decrypted: {"transaction_id", "first_img", "second_img"}',
        ),
    ):
        if path not in paths:
            continue
        operation = paths[path]["post"]
        operation["security"] = security
        body = _read_body(with_access_token=path == INQUIRE)
        operation["requestBody"] = _json_body(body, examples)
        operation["responses"]["200"] = _signed_success(
            answer, _ENVELOPE, {"$ref": "#/components/schemas/Envelope"}
        )
        errors = _entries(_READ_FAMILIES, skip=_NOT_FROM_READS)
        operation["responses"].update(
            _error_responses(
                errors,
                schema_ref=error_ref,
                example=lambda e: _error_example(e, with_transaction=False),
            )
        )
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``app.openapi_url`` (built on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
