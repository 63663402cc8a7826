"""The asynchronous :class:`AsyncClient`: :class:`Client`'s calls as coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from facematch_client import _core
from facematch_client._client import DEFAULT_TIMEOUT_S, PrivateKeyInput, _Base
from facematch_client._core import (
    ApiVersion,
    Lang,
    MatchResult,
    RetryPolicy,
    Token,
    TransactionImages,
)
from facematch_client._errors import OAuthError
from facematch_client._images import ImageInput


class AsyncClient(_Base):
    """:class:`facematch_client.Client` for asyncio; the same options, awaitable calls.

    ``transport`` is any ``httpx.AsyncBaseTransport`` (``httpx.ASGITransport(app)``
    runs an app in-process). Use ``async with``, or await :meth:`aclose`.
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
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )
        self._sleep = sleep
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def match(self, first: ImageInput, second: ImageInput) -> MatchResult:
        """Whether ``first`` (the selfie) and ``second`` (the ID photo) show one person."""
        return await self._match(self._match_fields(first, second))

    async def match_reference(self, first: ImageInput, transaction_id: str) -> MatchResult:
        """``first`` against the reference face stored with an earlier transaction."""
        return await self._match(self._reference_fields(first, transaction_id))

    async def inquire(
        self, *, transaction_id: str | None = None, access_token: str | None = None
    ) -> list[dict[str, Any]]:
        """The decrypted transactions: one by id, or all made with an access token."""
        body = self._read_body(transaction_id=transaction_id, access_token=access_token)
        response = await self._call(_core.INQUIRE_PATH, body, for_service=False)
        return list(_core.decrypt(response, self._private_key)["transactions"])

    async def fetch_images(self, transaction_id: str) -> TransactionImages:
        """The images stored with a transaction, decrypted."""
        body = self._read_body(transaction_id=transaction_id)
        response = await self._call(_core.FETCH_IMAGES_PATH, body, for_service=False)
        return _core.transaction_images(_core.decrypt(response, self._private_key))

    async def obtain_token(self) -> Token:
        """A fresh access token (refresh grant when possible, else the password grant)."""
        async with self._lock:
            return await self._obtain_locked(previous=self._token)

    async def _match(self, fields: dict[str, Any]) -> MatchResult:
        body = _core.match_body(
            fields, bundle_key=self.bundle_key, lang=self.lang, version=self.api_version
        )
        response = await self._call(_core.match_path(self.api_version), body, for_service=True)
        return _core.match_result(response)

    async def _live_token(self, *, for_service: bool) -> Token:
        async with self._lock:
            token = self._reusable(for_service=for_service)
            if token is None:
                token = await self._obtain_locked(previous=self._token)
            self._reserve(token, for_service=for_service)
            return token

    async def _obtain_locked(self, *, previous: Token | None) -> Token:
        token = None
        if previous is not None and previous.refresh_token:
            form = self._credentials.refresh_form(previous.refresh_token, self.lang)
            try:
                token = _core.parse_token(await self._send(_core.TOKEN_PATH, data=form))
            except OAuthError:
                token = None
        if token is None:
            form = self._credentials.password_form(self.lang)
            token = _core.parse_token(await self._send(_core.TOKEN_PATH, data=form))
        self._token = token
        self.tokens_obtained += 1
        return token

    async def _call(self, path: str, body: dict[str, Any], *, for_service: bool) -> httpx.Response:
        for attempt in range(_core.DEAD_TOKEN_ATTEMPTS):
            token = await self._live_token(for_service=for_service)
            headers = {"Authorization": f"Bearer {token.access_token}"}
            response = await self._send(path, json=body, headers=headers)
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

    async def _send(self, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            response = await self._http.post(path, **kwargs)
            delay = _core.retry_delay(response, attempt, self.retry)
            if delay is None:
                return response
            await self._sleep(delay)
            attempt += 1
