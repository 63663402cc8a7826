"""The synchronous :class:`Client`; :mod:`facematch_client._async` mirrors it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from facematch_client import _core
from facematch_client._core import (
    ApiVersion,
    Credentials,
    Lang,
    MatchResult,
    RetryPolicy,
    Token,
    TransactionImages,
)
from facematch_client._errors import OAuthError
from facematch_client._images import ImageInput, image_base64

DEFAULT_TIMEOUT_S = 30.0

PrivateKeyInput = rsa.RSAPrivateKey | bytes | str | os.PathLike[str]
PEM_START = "-----BEGIN"


def load_private_key(key: PrivateKeyInput | None) -> rsa.RSAPrivateKey | None:
    """An RSA private key from itself, its unencrypted PEM (bytes or text) or a PEM file."""
    if key is None or isinstance(key, rsa.RSAPrivateKey):
        return key
    if isinstance(key, os.PathLike) or (isinstance(key, str) and PEM_START not in key):
        data = Path(key).read_bytes()
    else:
        data = key.encode("ascii") if isinstance(key, str) else key
    loaded = serialization.load_pem_private_key(data, password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise TypeError("private_key must be an RSA private key")
    return loaded


class _Base:
    """Options and token bookkeeping shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        client_id: str,
        client_secret: str,
        bundle_key: str,
        hmac_secret: str | bytes | None = None,
        private_key: PrivateKeyInput | None = None,
        lang: Lang = "en",
        api_version: ApiVersion = "v1",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = Credentials(username, password, client_id, client_secret)
        self.bundle_key = bundle_key
        self.hmac_secret = hmac_secret
        self._private_key = load_private_key(private_key)
        self.lang: Lang = lang
        self.api_version: ApiVersion = api_version
        self.retry = retry or RetryPolicy()
        self._token: Token | None = None
        self.tokens_obtained = 0
        """How many access tokens this client has obtained (password or refresh grant)."""

    @property
    def token(self) -> Token | None:
        """The current access token and its known trials (None before the first call)."""
        return self._token

    def _reusable(self, *, for_service: bool) -> Token | None:
        token, now = self._token, time.monotonic()
        if token is None:
            return None
        if for_service and not token.usable_for_service(now):
            return None
        return token if token.alive(now) else None

    def _reserve(self, token: Token, *, for_service: bool) -> None:
        # Count the trial before sending, so concurrent calls never overspend a token.
        if for_service and token.trials_remaining is not None:
            token.trials_remaining -= 1

    def _after_call(self, token: Token, response: httpx.Response, *, for_service: bool) -> None:
        # Only service answers report trials (read answers can be megabytes: not parsed).
        trials = _core.reported_trials(response) if for_service else None
        if trials is not None:
            token.trials_remaining = trials
        if response.status_code == 403:
            error = _core.api_error(response)
            if isinstance(error, _core.DEAD_TOKEN_ERRORS) and self._token is token:
                self._token = None

    def _match_fields(self, first: ImageInput, second: ImageInput) -> dict[str, Any]:
        return {"first_img": image_base64(first), "second_img": image_base64(second)}

    def _reference_fields(self, first: ImageInput, transaction_id: str) -> dict[str, Any]:
        return {"first_img": image_base64(first), "transaction_id": transaction_id}

    def _read_body(self, **fields: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"bundle_key": self.bundle_key, "lang": self.lang}
        body.update({name: value for name, value in fields.items() if value is not None})
        return body


class Client(_Base):
    """A facematch client: tokens, retries, signatures and decryption handled.

    ``Client("http://127.0.0.1:8000", username=..., password=..., client_id=...,
    client_secret=..., bundle_key=...)``; every option is keyword-only. Pass
    ``hmac_secret`` to verify every signed answer, ``private_key`` (the
    organisation's RSA key, object or PEM) to read inquiry and fetch-images
    answers, ``transport`` (any ``httpx.BaseTransport``) to talk to an app
    in-process. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        client_id: str,
        client_secret: str,
        bundle_key: str,
        hmac_secret: str | bytes | None = None,
        private_key: PrivateKeyInput | None = None,
        lang: Lang = "en",
        api_version: ApiVersion = "v1",
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            base_url,
            username=username,
            password=password,
            client_id=client_id,
            client_secret=client_secret,
            bundle_key=bundle_key,
            hmac_secret=hmac_secret,
            private_key=private_key,
            lang=lang,
            api_version=api_version,
            retry=retry,
        )
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )
        self._sleep = sleep
        self._lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- public calls -------------------------------------------------------

    def match(self, first: ImageInput, second: ImageInput) -> MatchResult:
        """Whether ``first`` (the selfie) and ``second`` (the ID photo) show one person."""
        return self._match(self._match_fields(first, second))

    def match_reference(self, first: ImageInput, transaction_id: str) -> MatchResult:
        """``first`` against the reference face stored with an earlier transaction."""
        return self._match(self._reference_fields(first, transaction_id))

    def inquire(
        self, *, transaction_id: str | None = None, access_token: str | None = None
    ) -> list[dict[str, Any]]:
        """The decrypted transactions: one by id, or all made with an access token."""
        body = self._read_body(transaction_id=transaction_id, access_token=access_token)
        response = self._call(_core.INQUIRE_PATH, body, for_service=False)
        return list(_core.decrypt(response, self._private_key)["transactions"])

    def fetch_images(self, transaction_id: str) -> TransactionImages:
        """The images stored with a transaction, decrypted."""
        body = self._read_body(transaction_id=transaction_id)
        response = self._call(_core.FETCH_IMAGES_PATH, body, for_service=False)
        return _core.transaction_images(_core.decrypt(response, self._private_key))

    def obtain_token(self) -> Token:
        """A fresh access token (refresh grant when possible, else the password grant)."""
        with self._lock:
            return self._obtain_locked(previous=self._token)

    # --- machinery ----------------------------------------------------------

    def _match(self, fields: dict[str, Any]) -> MatchResult:
        body = _core.match_body(
            fields, bundle_key=self.bundle_key, lang=self.lang, version=self.api_version
        )
        response = self._call(_core.match_path(self.api_version), body, for_service=True)
        return _core.match_result(response)

    def _live_token(self, *, for_service: bool) -> Token:
        with self._lock:
            token = self._reusable(for_service=for_service)
            if token is None:
                token = self._obtain_locked(previous=self._token)
            self._reserve(token, for_service=for_service)
            return token

    def _obtain_locked(self, *, previous: Token | None) -> Token:
        token = None
        if previous is not None and previous.refresh_token:
            form = self._credentials.refresh_form(previous.refresh_token, self.lang)
            try:
                token = _core.parse_token(self._send(_core.TOKEN_PATH, data=form))
            except OAuthError:
                token = None  # refresh token spent or expired: fall back to the password
        if token is None:
            form = self._credentials.password_form(self.lang)
            token = _core.parse_token(self._send(_core.TOKEN_PATH, data=form))
        self._token = token
        self.tokens_obtained += 1
        return token

    def _call(self, path: str, body: dict[str, Any], *, for_service: bool) -> httpx.Response:
        for attempt in range(_core.DEAD_TOKEN_ATTEMPTS):
            token = self._live_token(for_service=for_service)
            headers = {"Authorization": f"Bearer {token.access_token}"}
            response = self._send(path, json=body, headers=headers)
            with self._lock:
                self._after_call(token, response, for_service=for_service)
            if (
                response.status_code == 403
                and attempt < _core.DEAD_TOKEN_ATTEMPTS - 1
                and isinstance(_core.api_error(response), _core.DEAD_TOKEN_ERRORS)
            ):
                # Refused before any trial was taken: again, with a new token.
                continue
            break
        if response.status_code != 200:
            raise _core.api_error(response)
        _core.check_signature(response, self.hmac_secret)
        return response

    def _send(self, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            response = self._http.post(path, **kwargs)
            delay = _core.retry_delay(response, attempt, self.retry)
            if delay is None:
                return response
            self._sleep(delay)
            attempt += 1
