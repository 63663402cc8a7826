"""JSON logs, request ids, and redaction of image data, tokens and keys."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from facematch.service.runtime.logging import (
    ACCESS_LOGGER,
    JsonFormatter,
    RedactionFilter,
    RequestIdFilter,
    RequestIdMiddleware,
    configure_logging,
    redact,
)
from tests.conftest import lfw_image

TOKEN = "q3Zx9vN0c8mPpL2sT7wYbR4uE1aKdHfJgXiOoWlMnBv"  # 43 url-safe chars, like token_urlsafe(32)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of the ``facematch`` loggers, formatted as the service does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("facematch")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_are_json_with_extras(captured: io.StringIO) -> None:
    logging.getLogger("facematch.test").info("match done in %d ms", 42, extra={"faces": 2})
    (entry,) = _lines(captured)
    assert entry["message"] == "match done in 42 ms"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "facematch.test"
    assert entry["faces"] == 2
    assert entry["ts"].endswith("+00:00")
    assert "request_id" not in entry


def test_real_image_base64_never_reaches_the_log(captured: io.StringIO, lfw_root: Path) -> None:
    encoded = base64.b64encode(lfw_image(lfw_root, "Abdullah_Gul", 13).read_bytes()).decode()
    log = logging.getLogger("facematch.test")
    log.warning("bad body %s", {"first_img": encoded, "bundle_key": "bk-1"})
    log.warning("data url data:image/jpeg;base64,%s end", encoded[:5000])
    log.info("payload", extra={"first_img": encoded, "note": f"raw {encoded}"})
    text = captured.getvalue()
    assert encoded[:120] not in text
    assert encoded[-120:] not in text
    assert "bk-1" not in text
    entries = _lines(captured)
    assert entries[1]["message"] == "data url [REDACTED image] end"
    assert entries[2]["first_img"] == "[REDACTED]"


def test_tokens_and_secret_fields_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("facematch.test")
    log.info("header Authorization: Bearer %s", TOKEN)
    log.info("form access_token=%s&grant_type=password&password=hunter2", TOKEN)
    log.info('json {"client_secret": "s3cr3t", "username": "alice"}')
    log.info("opaque %s kept id 0123456789abcdef0123456789abcdef", TOKEN)
    log.info("extras", extra={"bundle_key": "bk-secret", "headers": {"authorization": "x"}})
    text = captured.getvalue()
    for secret in (TOKEN, "hunter2", "s3cr3t", "bk-secret"):
        assert secret not in text
    entries = _lines(captured)
    assert "grant_type=password" in entries[1]["message"]
    assert "alice" in entries[2]["message"]
    # 32-hex ids (request and transaction ids) stay readable.
    assert "0123456789abcdef0123456789abcdef" in entries[3]["message"]
    assert entries[4]["headers"] == {"authorization": "[REDACTED]"}


def test_exception_text_is_redacted(captured: io.StringIO) -> None:
    try:
        raise ValueError(f"cannot parse token {TOKEN}")
    except ValueError:
        logging.getLogger("facematch.test").exception("failed")
    (entry,) = _lines(captured)
    assert "ValueError" in entry["exc"]
    assert TOKEN not in entry["exc"]


def test_prose_about_images_is_not_redacted() -> None:
    assert redact("image: truncated JPEG") == "image: truncated JPEG"
    assert redact("first image has no face") == "first image has no face"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("facematch.test").info("inside the request")
        return {"ok": "yes"}

    app.add_middleware(RequestIdMiddleware)
    return app


def test_request_id_is_echoed_and_stamped_on_records(captured: io.StringIO) -> None:
    client = TestClient(_app())
    response = client.get("/work", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    inner, access = _lines(captured)
    assert inner["message"] == "inside the request"
    assert inner["request_id"] == "abc-123"
    assert access["logger"] == ACCESS_LOGGER
    assert access["request_id"] == "abc-123"
    assert access["route"] == "/work"
    assert access["status"] == 200
    assert access["duration_ms"] >= 0


def test_missing_or_malformed_request_id_is_replaced(captured: io.StringIO) -> None:
    client = TestClient(_app())
    fresh = client.get("/work").headers["x-request-id"]
    forged = client.get("/work", headers={"X-Request-ID": "bad id\r\nx: y"}).headers["x-request-id"]
    assert len(fresh) == 32
    assert len(forged) == 32
    assert fresh != forged
    ids = {entry.get("request_id") for entry in _lines(captured)}
    assert ids == {fresh, forged}


def test_access_log_never_contains_the_query_string(captured: io.StringIO) -> None:
    TestClient(_app()).get(f"/work?access_token={TOKEN}")
    text = captured.getvalue()
    assert TOKEN not in text
    assert "access_token" not in text


def test_malformed_forms_do_not_log_a_warning_each(capsys: pytest.CaptureFixture[str]) -> None:
    # python-multipart warns about each broken multipart body a client sends.
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser

    configure_logging("INFO")
    try:
        parser = MultipartParser(b"boundary")
        with contextlib.suppress(MultipartParseError):  # the 400 the route answers
            parser.write(b"--bXundary\r\n")  # wrong boundary: warned, then raised
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_facematch", False)]:
            root.removeHandler(handler)
    assert "WARNING" not in capsys.readouterr().err
