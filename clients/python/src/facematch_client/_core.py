"""What :class:`Client` and :class:`AsyncClient` share: no I/O here, only requests
built and responses read, so the sync and async clients cannot behave differently."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from facematch_client._errors import (
    OAUTH_ERRORS,
    ApiError,
    DecryptionError,
    SignatureError,
    TokenExpiredError,
    TokenInvalidError,
    TokenTrialsExhaustedError,
    error_class,
)
from facematch_protocol.envelope import EnvelopeError, decrypt_json_envelope
from facematch_protocol.signing import HMAC_HEADER, verify_hmac

ApiVersion = Literal["v1", "v1.1"]
Lang = Literal["en", "ar"]

TOKEN_PATH = "/api/o/token/"  # noqa: S105 - a path, not a secret
INQUIRE_PATH = "/api/v1/transaction/inquire/"
FETCH_IMAGES_PATH = "/api/v1/transaction/fetch-images/"

EXPIRY_MARGIN_S = 5.0
"""A token this close to its expiry is treated as expired: the call could arrive late."""

DEAD_TOKEN_ERRORS = (TokenExpiredError, TokenInvalidError, TokenTrialsExhaustedError)
"""403s that say the token is dead. The server refuses these before taking a trial or
creating a transaction, so the call is repeated with a new token."""

DEAD_TOKEN_ATTEMPTS = 3
"""Sends of one call at most when its token keeps turning out dead. A new token's
trials are unknown until its first answer, so concurrent first calls can overrun it."""

MAX_ERROR_BODY_BYTES = 64 * 1024
"""Longest error body parsed; a larger one (not from facematch) is reported by status."""


def match_path(version: ApiVersion) -> str:
    return f"/api/{version}/face/match/"


@dataclass(frozen=True)
class MatchResult:
    """The answer of a face match."""

    is_similar: bool
    confidence: float
    transaction_id: str
    trials_remaining: int


@dataclass(frozen=True)
class TransactionImages:
    """The images stored with a transaction, as the bytes that were sent."""

    transaction_id: str
    first_img: bytes | None
    second_img: bytes | None


@dataclass(frozen=True)
class RetryPolicy:
    """How 429 (server busy) and 503 answers are retried.

    ``max_retries`` further attempts at most; each waits the answer's
    ``Retry-After`` seconds, else ``backoff_s * 2**attempt``; never longer than
    ``max_wait_s`` (a longer Retry-After gives up at once and raises).
    """

    max_retries: int = 2
    backoff_s: float = 0.5
    max_wait_s: float = 30.0


@dataclass
class Token:
    """An access token and what the client knows about it."""

    access_token: str
    refresh_token: str | None
    expires_at: float  # time.monotonic() seconds
    trials_remaining: int | None = None  # unknown until the first call reports it

    def alive(self, now: float) -> bool:
        return now < self.expires_at - EXPIRY_MARGIN_S

    def usable_for_service(self, now: float) -> bool:
        return self.alive(now) and self.trials_remaining != 0


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    client_id: str
    client_secret: str

    def password_form(self, lang: str) -> dict[str, str]:
        return {
            "grant_type": "password",
            "username": self.username,
            "password": self.password,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "lang": lang,
        }

    def refresh_form(self, refresh_token: str, lang: str) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "lang": lang,
        }


def _json_body(response: httpx.Response) -> Any:
    if len(response.content) > MAX_ERROR_BODY_BYTES and response.status_code >= 400:
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form facematch sends)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def api_error(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (catalogue or OAuth shape)."""
    body = _json_body(response)
    status = response.status_code
    retry_after = retry_after_s(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str) and "error_code" not in body:
        cls = OAUTH_ERRORS.get(body["error"], error_class(None, status))
        message = body.get("error_description")
        return cls(
            message if isinstance(message, str) else body["error"],
            status=status,
            error_code=cls.code,
            retry_after=retry_after,
            body=body,
        )
    if not isinstance(body, dict):
        cls = error_class(None, status)
        return cls(f"HTTP {status}", status=status, error_code=None, retry_after=retry_after)
    code = body.get("error_code") if isinstance(body.get("error_code"), int) else None
    message = body.get("message") if isinstance(body.get("message"), str) else f"HTTP {status}"
    trials = body.get("trials_remaining")
    return error_class(code, status)(
        message,
        status=status,
        error_code=code,
        retry_after=retry_after,
        transaction_id=body.get("transaction_id")
        if isinstance(body.get("transaction_id"), str)
        else None,
        trials_remaining=trials if isinstance(trials, int) else None,
        field=body.get("field") if isinstance(body.get("field"), str) else None,
        body=body,
    )


def retry_delay(response: httpx.Response, attempt: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before retrying ``response``, or None when it is final."""
    if attempt >= policy.max_retries or response.status_code not in (429, 503):
        return None
    body = _json_body(response)
    if isinstance(body, dict) and body.get("error_code") == 1301:
        return None  # the bundle's quota: waiting does not bring it back
    delay = retry_after_s(response)
    if delay is None:
        delay = policy.backoff_s * 2**attempt
    return delay if delay <= policy.max_wait_s else None


def parse_token(response: httpx.Response, *, now: float | None = None) -> Token:
    if response.status_code != 200:
        raise api_error(response)
    body = response.json()
    return Token(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        expires_at=(time.monotonic() if now is None else now) + float(body["expires_in"]),
    )


def check_signature(response: httpx.Response, secret: str | bytes | None) -> None:
    """Raise :class:`SignatureError` unless the body carries its bundle's ``hmac``."""
    if secret is None:
        return
    signature = response.headers.get(HMAC_HEADER)
    if signature is None:
        raise SignatureError("the response carries no hmac header")
    if not verify_hmac(response.content, secret, signature):
        raise SignatureError("the response's hmac does not match its body")


def match_body(
    fields: dict[str, Any], *, bundle_key: str, lang: str, version: ApiVersion
) -> dict[str, Any]:
    body = {**fields, "bundle_key": bundle_key, "lang": lang}
    return {"data": body} if version == "v1.1" else body


def match_result(response: httpx.Response) -> MatchResult:
    body = response.json()
    return MatchResult(
        is_similar=bool(body["result"]["is_similar"]),
        confidence=float(body["result"]["confidence"]),
        transaction_id=str(body["transaction_id"]),
        trials_remaining=int(body["trials_remaining"]),
    )


def reported_trials(response: httpx.Response) -> int | None:
    """``trials_remaining`` of a service answer (success or error), when it says."""
    body = _json_body(response)
    if isinstance(body, dict) and isinstance(body.get("trials_remaining"), int):
        return body["trials_remaining"]
    return None


def decrypt(response: httpx.Response, private_key: rsa.RSAPrivateKey | None) -> Any:
    if private_key is None:
        raise DecryptionError("pass private_key= to the client to read inquiry answers")
    try:
        return decrypt_json_envelope(response.json(), private_key)
    except (EnvelopeError, ValueError, TypeError) as exc:
        raise DecryptionError(str(exc)) from exc


def transaction_images(answer: Mapping[str, Any]) -> TransactionImages:
    def decoded(name: str) -> bytes | None:
        value = answer.get(name)
        if value is None:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError) as exc:
            raise DecryptionError(f"{name} is not base64") from exc

    return TransactionImages(
        transaction_id=str(answer["transaction_id"]),
        first_img=decoded("first_img"),
        second_img=decoded("second_img"),
    )
