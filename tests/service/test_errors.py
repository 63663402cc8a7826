"""Every entry of the error catalogue, produced through the real app, in both languages."""

from __future__ import annotations

import inspect
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import create_engine, update
from sqlalchemy.orm import sessionmaker

from facematch.engine import errors as engine_errors
from facematch.service import errors as service_errors
from facematch.service.errors import CATALOGUE, ERROR_MAP, LANGS, entry_for
from facematch.store.models import AccessToken, Transaction, utcnow
from facematch.store.security import digest_secret
from tests.service.support import bearer, issue_token, provision, script

URL = "/api/v1/face/match/"
TOKEN_URL = "/api/o/token/"
# Refused before the body is parsed, so the language cannot be known: always English.
ENGLISH_ONLY = {
    "invalid_json",
    "invalid_lang",
    "not_found",
    "method_not_allowed",
    "body_too_large",
    "unsupported_media_type",
    "bad_request",
    "database_unavailable",  # the failing lookup comes before the body's lang is at hand
}
ENGINE_CLASS_ENTRIES = {
    "image_unreadable": "ImageError",
    "invalid_base64": "InvalidBase64Error",
    "unsupported_image": "UnsupportedImageError",
    "corrupt_image": "CorruptImageError",
    "image_too_large": "ImageTooLargeError",
    "image_too_many_pixels": "TooManyPixelsError",
    "image_too_small": "ImageTooSmallError",
    "image_bad_shape": "ImageShapeError",
    "image_too_complex": "ImageTooComplexError",
    "face_unusable": "FaceError",
    "no_face": "NoFaceError",
    "multiple_faces": "MultipleFacesError",
    "face_too_small": "FaceTooSmallError",
    "face_too_dark": "FaceTooDarkError",
    "face_overexposed": "FaceOverExposedError",
    "face_blurred": "FaceBlurredError",
    "face_turned": "FaceTurnedError",
    "engine_unavailable": "ModelError",
}


class Ctx:
    def __init__(self, client: TestClient, lang: str) -> None:
        self.client = client
        self.lang = lang
        self.creds = provision(client)
        self.token = issue_token(client, self.creds)

    def match(self, token: str | None = None, **fields: object) -> Response:
        body: dict[str, object] = {
            "first_img": script("ok"),
            "second_img": script("ok"),
            "bundle_key": self.creds.bundle_key,
            "lang": self.lang,
        }
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not None}
        return self.client.post(URL, json=body, headers=bearer(token or self.token))

    def token_request(self, **form: str) -> Response:
        data = {
            "grant_type": "password",
            "username": self.creds.username,
            "password": self.creds.password,
            "client_id": self.creds.client_id,
            "client_secret": self.creds.client_secret,
            "lang": self.lang,
        }
        data.update(form)
        return self.client.post(TOKEN_URL, data={k: v for k, v in data.items() if v})

    def token_for(self, **bundle: object) -> tuple[str, str]:
        creds = provision(self.client, **bundle)  # type: ignore[arg-type]
        return issue_token(self.client, creds), creds.bundle_key


def _expired(ctx: Ctx) -> Response:
    with ctx.client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        session.execute(
            update(AccessToken)
            .where(AccessToken.token_hash == digest_secret(ctx.token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    return ctx.match()


def _used_up(ctx: Ctx) -> Response:
    token, key = ctx.token_for(token_trials=1)
    assert ctx.match(token=token, bundle_key=key).status_code == 200
    return ctx.match(token=token, bundle_key=key)


def _model_mismatch(ctx: Ctx) -> Response:
    first = ctx.match()
    assert first.status_code == 200, first.text
    transaction_id = first.json()["transaction_id"]
    with ctx.client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id)
            .values(reference_model_id="some-older-model")
        )
        session.commit()
    return ctx.match(second_img=None, transaction_id=transaction_id)


def _database_down(ctx: Ctx) -> Response:
    app = ctx.client.app
    working = app.state.session_factory  # type: ignore[attr-defined]
    # A database that cannot be reached: SQLite cannot open a file under /proc.
    unreachable = create_engine("sqlite:////proc/facematch-unreachable/db.sqlite3")
    app.state.session_factory = sessionmaker(bind=unreachable)  # type: ignore[attr-defined]
    try:
        response = ctx.match()
    finally:
        app.state.session_factory = working  # type: ignore[attr-defined]
        unreachable.dispose()
    assert response.headers["retry-after"] == "2"
    return response


def _overloaded(ctx: Ctx) -> Response:
    stub = ctx.client.app.state.stub  # type: ignore[attr-defined]
    pool = ctx.client.app.state.pool  # type: ignore[attr-defined]
    stub.release = threading.Event()
    blockers = []
    for _ in range(pool.max_pending):
        token, key = ctx.token_for()
        thread = threading.Thread(
            target=ctx.match,
            kwargs={"token": token, "bundle_key": key, "first_img": script("block")},
        )
        thread.start()
        blockers.append(thread)
    try:
        for _ in blockers:
            assert stub.entered.acquire(timeout=30), "blocking request never started"
        response = ctx.match()
    finally:
        stub.release.set()
        for thread in blockers:
            thread.join(timeout=30)
    # Refused before authentication: the token kept all its trials.
    assert "trials_remaining" not in response.json()
    assert ctx.match().json()["trials_remaining"] == 2
    return response


def _timeout(ctx: Ctx) -> Response:
    stub = ctx.client.app.state.stub  # type: ignore[attr-defined]
    stub.release = threading.Event()
    try:
        return ctx.match(first_img=script("block"))
    finally:
        stub.release.set()


def _bad_request(ctx: Ctx) -> Response:
    return ctx.client.get("/_test/bad-request")


def _engine(name: str) -> Callable[[Ctx], Response]:
    return lambda ctx: ctx.match(first_img=script(f"raise:{name}"))


TRIGGERS: dict[str, Callable[[Ctx], Response]] = {
    "invalid_json": lambda ctx: ctx.client.post(
        URL,
        content=b'{"first_img": ',
        headers={"Content-Type": "application/json", **bearer(ctx.token)},
    ),
    "invalid_lang": lambda ctx: ctx.match(lang="fr"),
    "missing_field": lambda ctx: ctx.match(first_img=None),
    "invalid_field": lambda ctx: ctx.match(first_img=12345),
    "conflicting_fields": lambda ctx: ctx.match(transaction_id="abc"),
    "not_found": lambda ctx: ctx.client.get("/api/v1/no/such/endpoint/"),
    "method_not_allowed": lambda ctx: ctx.client.get(URL),
    "body_too_large": lambda ctx: ctx.match(first_img="A" * 2_000_000),
    "unsupported_media_type": lambda ctx: ctx.client.post(
        URL, data={"first_img": "x"}, headers=bearer(ctx.token)
    ),
    "bad_request": _bad_request,
    "token_missing": lambda ctx: ctx.client.post(
        URL, json={"first_img": "x", "second_img": "y", "bundle_key": "k", "lang": ctx.lang}
    ),
    "token_invalid": lambda ctx: ctx.match(token="not-a-real-token"),
    "token_expired": _expired,
    "token_trials_exhausted": _used_up,
    "bundle_invalid": lambda ctx: ctx.match(bundle_key="0" * 48),
    "service_not_enabled": lambda ctx: ctx.match(
        *(), **dict(zip(("token", "bundle_key"), ctx.token_for(services=()), strict=True))
    ),
    "quota_exhausted": lambda ctx: ctx.match(
        **dict(zip(("token", "bundle_key"), ctx.token_for(quota=0), strict=True))
    ),
    "overloaded": _overloaded,
    "database_unavailable": _database_down,
    "internal_error": _engine("RuntimeError"),
    "request_timeout": _timeout,
    "reference_not_found": lambda ctx: ctx.match(second_img=None, transaction_id="no-such-tx"),
    "reference_model_mismatch": _model_mismatch,
    "oauth_invalid_request": lambda ctx: ctx.token_request(grant_type=""),
    "oauth_invalid_client": lambda ctx: ctx.token_request(client_secret="wrong"),
    "oauth_invalid_grant": lambda ctx: ctx.token_request(password="wrong"),
    "oauth_unsupported_grant_type": lambda ctx: ctx.token_request(grant_type="implicit"),
    **{entry: _engine(cls) for entry, cls in ENGINE_CLASS_ENTRIES.items()},
}


@pytest.fixture
def stub(stub_client: TestClient) -> TestClient:
    app = stub_client.app

    if not any(getattr(r, "path", "") == "/_test/bad-request" for r in app.routes):  # type: ignore[attr-defined]

        def raise_400() -> None:
            raise HTTPException(status_code=400, detail="framework-level bad request")

        app.add_api_route("/_test/bad-request", raise_400, methods=["GET"])  # type: ignore[attr-defined]
    return stub_client


# Entries of the transaction endpoints (issue 5) are produced by that issue's tests.
COVERED_ELSEWHERE = {
    "transaction_not_found": "tests/service/test_transactions.py",
    "access_token_not_found": "tests/service/test_transactions.py",
    "inquiry_conflicting_fields": "tests/service/test_transactions.py",
    "images_not_stored": "tests/service/test_transactions.py",
    "images_purged": "tests/service/test_transactions.py",
    "public_key_missing": "tests/service/test_transactions.py",
    "stored_data_unreadable": "tests/service/test_transactions.py",
    # Sent by the HTTP protocol before the app sees the connection.
    "too_many_connections": "tests/service/test_http_protocol.py",
    "oauth_slow_down": "tests/service/test_token_throttle.py",
}


def test_every_catalogue_entry_has_a_trigger() -> None:
    root = Path(__file__).resolve().parents[2]
    assert set(TRIGGERS) | set(COVERED_ELSEWHERE) == set(CATALOGUE)
    for name, test_file in COVERED_ELSEWHERE.items():
        assert name in (root / test_file).read_text(encoding="utf-8"), (name, test_file)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_catalogue_entry(stub: TestClient, name: str, lang: str) -> None:
    entry = CATALOGUE[name]
    response = TRIGGERS[name](Ctx(stub, lang))
    assert response.status_code == entry.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    expected_lang = "en" if name in ENGLISH_ONLY else lang
    if entry.oauth_error:
        assert body == {
            "error": entry.oauth_error,
            "error_description": entry.message(expected_lang),
        }
        return
    assert body["message"] == entry.message(expected_lang)
    assert body["error_code"] == entry.code
    if entry.status == 422 or name in ("internal_error", "engine_unavailable", "request_timeout"):
        assert isinstance(body["transaction_id"], str)
        assert isinstance(body["trials_remaining"], int)
    if entry.status == 500:
        assert body["request_id"]
    if name == "overloaded":
        assert int(response.headers["retry-after"]) >= 1


def test_every_engine_error_class_is_mapped() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(engine_errors, inspect.isclass)
        if issubclass(obj, engine_errors.EngineError)
    ]
    assert classes
    for cls in classes:
        assert cls in ERROR_MAP, f"{cls.__name__} has no catalogue entry"
        assert entry_for(cls("x")) is ERROR_MAP[cls]
    # Client mistakes are 422, server faults are 500.
    assert ERROR_MAP[engine_errors.NoFaceError].status == 422
    assert ERROR_MAP[engine_errors.ModelFormatError].status == 500


def test_every_entry_speaks_both_languages() -> None:
    for entry in CATALOGUE.values():
        assert entry.en.strip()
        assert entry.ar.strip()
        assert any("\u0600" <= ch <= "\u06ff" for ch in entry.ar), entry.name


def test_chunked_body_over_limit_is_refused_while_streaming(stub: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"first_img": "'
        for _ in range(40):
            yield b"A" * 65536
        yield b'"}'

    # A live token: a chunked body without one is refused from the headers (403), unread.
    headers = {"Content-Type": "application/json", **bearer(Ctx(stub, "en").token)}
    response = stub.post(URL, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["error_code"] == CATALOGUE["body_too_large"].code


def test_server_error_is_logged_with_request_id_and_no_image(
    stub: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = Ctx(stub, "en")
    secret_image = script("raise:RuntimeError")
    with caplog.at_level("ERROR"):
        response = ctx.match(first_img=secret_image)
    assert response.status_code == 500
    request_id = response.json()["request_id"]
    records = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert records, "the 500 was not logged with its request id"
    logged = " ".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert secret_image not in logged
    assert ctx.token not in logged
    assert ctx.creds.bundle_key not in logged


def _subclasses(root: type[Exception]) -> list[type[Exception]]:
    found, todo = [], [root]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_class_of_the_service_tree_has_its_own_row() -> None:
    classes = [
        cls
        for cls in _subclasses(service_errors.ServiceError)
        if cls.__module__ == service_errors.__name__
    ]
    assert len(classes) > 40
    for cls in classes:
        assert cls in service_errors.ERROR_MAP, f"{cls.__name__} has no catalogue entry"
    # Every entry is reachable from some class: the catalogue has no orphan.
    mapped = {entry.name for entry in service_errors.ERROR_MAP.values()}
    assert mapped == set(CATALOGUE)


def test_a_misspelt_entry_name_fails_when_the_map_is_built() -> None:
    with pytest.raises(RuntimeError, match="quota_exhausetd"):
        service_errors._build_map({service_errors.QuotaExhausted: "quota_exhausetd"})
    # An OAuth refusal must answer in the OAuth shape, and only it.
    with pytest.raises(RuntimeError, match="wrong answer shape"):
        service_errors._build_map({service_errors.OAuthInvalidGrant: "bundle_invalid"})


def test_the_map_resolves_through_the_mro() -> None:
    class NewRefusal(service_errors.AccessDenied):
        pass

    assert service_errors.entry_for(NewRefusal()) is CATALOGUE["token_invalid"]
    assert service_errors.entry_for(ValueError("not ours")) is CATALOGUE["internal_error"]


def test_the_one_writer_renders_both_shapes() -> None:
    reply = service_errors.error_reply(
        service_errors.MissingField("bundle_key"),
        lang="ar",
        trials_remaining=2,
        transaction_id="t-1",
    )
    body = json.loads(reply.body)
    assert reply.status == 400
    assert body == {
        "message": CATALOGUE["missing_field"].ar,
        "error_code": 1003,
        "field": "bundle_key",
        "transaction_id": "t-1",
        "trials_remaining": 2,
    }
    oauth = service_errors.error_reply(service_errors.OAuthSlowDown(retry_after_s=7))
    assert json.loads(oauth.body) == {
        "error": "slow_down",
        "error_description": CATALOGUE["oauth_slow_down"].en,
    }
    assert ("Retry-After", "7") in oauth.headers
    assert ("Cache-Control", "no-store") in oauth.headers


def drawn_error_tree() -> str:
    """The tree drawn in the docstring of :mod:`facematch.service.errors`, unindented."""
    lines = (service_errors.__doc__ or "").splitlines()
    start = lines.index("    ServiceError")
    end = lines.index("", start)
    return "\n".join(line[4:] for line in lines[start:end])


def _drawn_parents(tree: str) -> dict[str, str | None]:
    """``{class name: parent's name}`` as the tree draws them.

    A ``├──``/``└──`` line starts a level four columns per step in; a line without
    one continues the level above it. Notes follow two or more spaces.
    """
    parents: dict[str, str | None] = {}
    stack: list[str | None] = []  # the one class drawn at each depth so far
    depth = 0
    for line in tree.splitlines():
        match = re.match(r"^(?P<lead>[│ ]*)(?P<branch>[├└]── )?(?P<text>\S.*)$", line)
        assert match, line
        text = re.split(r"\s{2,}", match["text"])[0]
        names = re.findall(r"\b[A-Z]\w+", re.sub(r"\(.*?\)", "", text))
        if match["branch"]:
            depth = len(match["lead"]) // 4 + 1
            stack = [*stack[:depth], names[0] if len(names) == 1 else None]
        elif not stack:
            stack = [names[0]]
        for name in names:
            parents[name] = stack[depth - 1] if depth else None
    return parents


def test_the_drawn_error_tree_is_the_class_tree() -> None:
    drawn = _drawn_parents(drawn_error_tree())
    real = {
        cls.__name__: (cls.__base__.__name__ if cls is not service_errors.ServiceError else None)
        for cls in _subclasses(service_errors.ServiceError)
        if cls.__module__ == service_errors.__name__
    }
    assert drawn == real
