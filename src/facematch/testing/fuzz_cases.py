"""The fuzz campaign's vocabulary: hostile requests (hypothesis strategies), the oracle
that judges each answer against docs/api.md, and a replayable case format.

Shared by the property tests (tests/service/test_fuzz_*.py, in-process and against a
real ``facematch serve``) and by the long campaign, ``bench/fuzz.py``. Nothing here
talks to a server: a :class:`Case` is plain data (method, path, headers, body bytes),
built from a :class:`Target` (the credentials a client would hold), and
:func:`violations` says what is wrong with an answer. See docs/fuzzing.md.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st
from PIL import Image

from facematch.service.errors import CATALOGUE, ErrorEntry

# --- what the docs promise, per endpoint (docs/api.md, docs/transactions.md) ------------

TOKEN = "token"
MATCH_V1 = "match_v1"
MATCH_V11 = "match_v11"
INQUIRE = "inquire"
FETCH_IMAGES = "fetch_images"
HEALTHZ = "healthz"
READYZ = "readyz"
METRICS = "metrics"
UNKNOWN = "unknown"  # a path no route answers

PATHS: dict[str, tuple[str, ...]] = {
    TOKEN: ("/api/o/token/", "/api/o/token"),
    MATCH_V1: ("/api/v1/face/match/", "/api/v1/face/match"),
    MATCH_V11: ("/api/v1.1/face/match/", "/api/v1.1/face/match"),
    INQUIRE: ("/api/v1/transaction/inquire/", "/api/v1/transaction/inquire"),
    FETCH_IMAGES: ("/api/v1/transaction/fetch-images/", "/api/v1/transaction/fetch-images"),
    HEALTHZ: ("/healthz",),
    READYZ: ("/readyz",),
    METRICS: ("/metrics",),
}
METHODS: dict[str, frozenset[str]] = {
    TOKEN: frozenset({"POST"}),
    MATCH_V1: frozenset({"POST"}),
    MATCH_V11: frozenset({"POST"}),
    INQUIRE: frozenset({"POST"}),
    FETCH_IMAGES: frozenset({"POST"}),
    HEALTHZ: frozenset({"GET", "HEAD"}),  # HEAD: load balancers probe with it
    READYZ: frozenset({"GET", "HEAD"}),
    METRICS: frozenset({"GET"}),
}
# Statuses each endpoint may answer with its documented method. 500 is never
# acceptable: the bar is "no 5xx, 503 aside" (database or deadline).
_SERVICE = {400, 401, 403, 413, 415, 429, 503}
STATUSES: dict[str, frozenset[int]] = {
    TOKEN: frozenset({200, 400, 401, 413, 429, 503}),
    MATCH_V1: frozenset(_SERVICE | {200, 422}),
    MATCH_V11: frozenset(_SERVICE | {200, 422}),
    INQUIRE: frozenset(_SERVICE | {200, 404}),
    FETCH_IMAGES: frozenset(_SERVICE | {200, 404, 410}),
    HEALTHZ: frozenset({200}),
    READYZ: frozenset({200, 503}),
    # 404 in production unless FACEMATCH_METRICS_TOKEN is set and presented.
    METRICS: frozenset({200, 404}),
}
# Endpoints whose authenticated calls take one trial (docs/api.md "Trials").
SPENDS_TRIAL = frozenset({MATCH_V1, MATCH_V11})
SERVICE_ENDPOINTS = frozenset({MATCH_V1, MATCH_V11, INQUIRE, FETCH_IMAGES})
SERVICE_ERROR_KEYS = frozenset(
    {"message", "error_code", "field", "transaction_id", "trials_remaining", "request_id"}
)
_BY_CODE: dict[int, ErrorEntry] = {entry.code: entry for entry in CATALOGUE.values()}
_BY_OAUTH: dict[tuple[int, str], ErrorEntry] = {
    (entry.status, entry.oauth_error): entry for entry in CATALOGUE.values() if entry.oauth_error
}


# --- a case: one request, replayable ----------------------------------------------------


@dataclass(frozen=True, repr=False)
class Case:
    """One HTTP request, as bytes on the wire would carry it (minus framing)."""

    endpoint: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    kind: str  # which generator made it, for the report

    def __post_init__(self) -> None:
        # HTTP/1.1 framing drops a header value's outer whitespace (and clients refuse
        # to send it): keep the case what the server will actually see.
        stripped = tuple((name, value.strip(" \t")) for name, value in self.headers)
        object.__setattr__(self, "headers", stripped)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = [list(pair) for pair in self.headers]
        data["body"] = base64.b64encode(self.body).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(
            endpoint=data["endpoint"],
            method=data["method"],
            path=data["path"],
            headers=tuple((name, value) for name, value in data["headers"]),
            body=base64.b64decode(data["body"]),
            kind=data["kind"],
        )

    def __repr__(self) -> str:
        return f"Case({self.summary()})"

    def summary(self, limit: int = 160) -> str:
        body = self.body[:limit]
        more = f"…(+{len(self.body) - limit} bytes)" if len(self.body) > limit else ""
        headers = list(self.headers)
        return f"{self.method} {self.path} [{self.kind}] headers={headers} body={body!r}{more}"


@dataclass(frozen=True)
class Target:
    """What a real client holds: one organisation's credentials, a live token with
    (practically) unlimited trials, an earlier successful transaction, face photos."""

    token: str
    bundle_key: str
    client_id: str
    client_secret: str
    username: str
    password: str
    transaction_id: str  # a successful face match of this organisation
    faces: tuple[bytes, ...]  # encoded face photos (JPEG, PNG, WebP)
    other_bundle_key: str = ""  # a bundle of another organisation
    refresh_tokens: tuple[str, ...] = field(default=())


# No keep-alive: a connection the server drops then belongs to the case sent on it
# (a worker closing a kept-alive connection after a 500 would otherwise be blamed on
# the next case).
ONE_CONNECTION_PER_CASE = httpx.Limits(max_keepalive_connections=0)


# --- the oracle -------------------------------------------------------------------------


# Any connection may meet the per-worker connection limit (503 too_many_connections);
# any body over the small-body limit of an endpoint without images is a 413 first.
ANY_REQUEST = frozenset({503})
SMALL_BODY_BYTES = 64 * 1024


def expected_statuses(case: Case) -> frozenset[int]:
    extra = ANY_REQUEST | ({413} if len(case.body) > SMALL_BODY_BYTES else set())
    if case.endpoint == UNKNOWN:
        return frozenset({404, 405}) | extra
    if case.method.upper() not in METHODS[case.endpoint]:
        return frozenset({405}) | extra
    return STATUSES[case.endpoint] | extra


def violations(case: Case, status: int, body: bytes, trials_spent: int | None) -> list[str]:
    """Everything the answer does that the docs do not allow (empty when it is fine).

    ``trials_spent`` is how many trials the target's token lost during the case
    (``None`` when the caller could not tell).
    """
    found: list[str] = []
    allowed = expected_statuses(case)
    if status not in allowed:
        found.append(f"status {status} not in {sorted(allowed)}")
    if case.method.upper() == "HEAD":
        return found  # no body to judge
    parsed, problem = _shape(case, status, body)
    if problem:
        found.append(problem)
    if trials_spent is not None:
        consumed = isinstance(parsed, dict) and "trials_remaining" in parsed
        wanted = 1 if case.endpoint in SPENDS_TRIAL and consumed else 0
        if trials_spent != wanted:
            found.append(
                f"{trials_spent} trial(s) spent, expected {wanted} "
                f"({'answer reports trials_remaining' if consumed else 'refused before auth'})"
            )
    return found


def _shape(case: Case, status: int, body: bytes) -> tuple[Any, str | None]:
    """The parsed body and what is wrong with its shape, if anything."""
    if case.endpoint == METRICS and status == 200:
        return None, None if body.startswith(b"#") or not body else "metrics body is not text"
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, f"body is not JSON: {body[:120]!r}"
    if not isinstance(parsed, dict):
        return parsed, "body is not a JSON object"
    if case.endpoint == TOKEN and case.method.upper() == "POST" and status != 405:
        return parsed, _oauth_shape(status, parsed)
    if case.endpoint == READYZ and case.method.upper() == "GET":
        return parsed, _readiness_shape(status, parsed)
    if status == 200:
        return parsed, _success_shape(case.endpoint, parsed)
    return parsed, _error_shape(status, parsed)


def _readiness_shape(status: int, body: dict[str, Any]) -> str | None:
    """``/readyz``: ``{"status", "checks"}``, 200 when ready, 503 when not (operations.md)."""
    wanted = "ready" if status == 200 else "not_ready"
    ok = set(body) == {"status", "checks"} and body["status"] == wanted
    return None if ok and isinstance(body["checks"], dict) else f"readyz said {status} {body}"


def _error_shape(status: int, body: dict[str, Any]) -> str | None:
    extra = set(body) - SERVICE_ERROR_KEYS
    if extra:
        return f"error body has undocumented keys {sorted(extra)}"
    code = body.get("error_code")
    entry = _BY_CODE.get(code) if isinstance(code, int) else None
    if entry is None:
        return f"error_code {code!r} is not in the catalogue"
    if entry.status != status:
        return f"error_code {code} ({entry.name}) is documented as {entry.status}, got {status}"
    if body.get("message") not in (entry.en, entry.ar):
        return f"message of {entry.name} is not the catalogue's: {body.get('message')!r}"
    if "trials_remaining" in body and not isinstance(body["trials_remaining"], int):
        return "trials_remaining is not an integer"
    if status >= 500 and "request_id" not in body:
        return "a 5xx answer without request_id"
    return None


def _oauth_shape(status: int, body: dict[str, Any]) -> str | None:
    if status == 200:
        keys = {"access_token", "expires_in", "token_type", "scope", "refresh_token"}
        return None if set(body) == keys else f"token answer keys {sorted(body)}"
    if "error_code" in body:  # refused before the OAuth code ran (413, 429, 503)
        return _error_shape(status, body)
    entry = _BY_OAUTH.get((status, str(body.get("error"))))
    if entry is None or set(body) != {"error", "error_description"}:
        return f"not an RFC 6749 error of the catalogue: {status} {body}"
    if body["error_description"] not in (entry.en, entry.ar):
        return f"error_description of {entry.name} is not the catalogue's"
    return None


def _success_shape(endpoint: str, body: dict[str, Any]) -> str | None:
    if endpoint in (MATCH_V1, MATCH_V11):
        result = body.get("result")
        ok = (
            set(body) == {"result", "transaction_id", "trials_remaining"}
            and isinstance(result, dict)
            and set(result) == {"is_similar", "confidence"}
            and isinstance(result["is_similar"], bool)
            and isinstance(result["confidence"], float)
            and 0.0 < result["confidence"] < 1.0
        )
        return None if ok else f"face-match answer of the wrong shape: {body}"
    if endpoint in (INQUIRE, FETCH_IMAGES):
        ok = set(body) == {"key", "data"} and all(isinstance(v, str) for v in body.values())
        return None if ok else f"encrypted answer of the wrong shape: {sorted(body)}"
    if endpoint == HEALTHZ:
        return None if body == {"status": "alive"} else f"healthz said {body}"
    return None


# --- strings and JSON values --------------------------------------------------------------

LONE_SURROGATES = ("\ud800", "\udfff", "\udc80", "a\ud83d", "\ude00b")
_SPECIAL_TEXT = (
    "",
    " ",
    "\x00",
    "null",
    "en",
    "AR",
    " ar ",
    "fr",
    "\u202eRTL",
    "😀" * 10,
    "\ufeff",
    "../../etc/passwd",
    "%00",
    "' OR 1=1 --",
    "6f1c1d8e-1e0b-4c55-9a43-0f0c3b5d8a21",
)


def hostile_text(*, surrogates: bool = True, max_huge: int = 300_000) -> st.SearchStrategy[str]:
    """Unicode of every kind, lone surrogates (``surrogates``), and huge strings."""
    options: list[st.SearchStrategy[str]] = [
        st.text(max_size=40),
        st.sampled_from(_SPECIAL_TEXT),
        st.integers(min_value=201, max_value=max_huge).map(lambda n: "x" * n),
        st.text(st.characters(max_codepoint=0x7F), max_size=80),
    ]
    if surrogates:
        options.append(st.sampled_from(LONE_SURROGATES))
        options.append(
            st.tuples(st.text(max_size=8), st.sampled_from(LONE_SURROGATES)).map("".join)
        )
    return st.one_of(options)


def json_values(*, surrogates: bool = True) -> st.SearchStrategy[Any]:
    """Any JSON value: every type, huge integers, special floats, nesting."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**40, max_value=10**60),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_text(surrogates=surrogates, max_huge=5_000),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=10), children, max_size=4),
        ),
        max_leaves=8,
    )


def encode_json(value: Any, *, ascii_only: bool) -> bytes:
    """JSON text as a client would send it; lone surrogates either escaped (``\\ud800``,
    valid JSON naming an invalid character) or written raw (invalid UTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", errors="surrogatepass")


# Bodies a JSON parser must refuse, or that stress it. 5,000-digit integers and deep
# nesting are the two inputs of defect 2 that raise outside json.JSONDecodeError.
MALFORMED_JSON_BODIES: tuple[bytes, ...] = (
    b"",
    b" ",
    b"{",
    b"}",
    b"null",
    b"[]",
    b"[{}]",
    b'"a string"',
    b"42",
    b"NaN",
    b'{"first_img": NaN}',
    b'{"a": Infinity}',
    b"\xef\xbb\xbf{}",  # BOM
    b"\xff\xfe{\x00}\x00",  # UTF-16
    b'{"a": "\xff"}',  # invalid UTF-8
    b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8 (invalid)
    b'{"a": 1,}',
    b"{'a': 1}",
    b'{"a": 1} trailing',
    b'{"a": "\\ud800"}',
    b'{"lang": "\\udfff"}',
    b'{"bundle_key": "\\ud800"}',
    b'{"a": ' + b"9" * 5000 + b"}",
    b'{"a": -' + b"1" * 4301 + b"}",
    b'{"a": 1e999999}',
    b'{"a": 0.' + b"1" * 5000 + b"}",
    b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    b"[" * 1_000_000,
    b'{"a": "' + b"\\u0000" * 1000 + b'"}',
    b'{"a": 1, "a": 2}',
    b"\x00" * 64,
)


# --- base64 ---------------------------------------------------------------------------------


# The forms a client plausibly means as "this image": either alphabet, padded or
# not, line-wrapped, behind a data: URL. The intake must accept every one (docs/images.md;
# unpadded text is defect 13 of issue 10).
ACCEPTABLE_BASE64 = frozenset(
    {"standard", "unpadded", "urlsafe", "urlsafe-unpadded", "data-url", "wrapped"}
)


def labelled_base64(raw: bytes) -> st.SearchStrategy[tuple[str, str]]:
    """``(label, text)``: base64 of ``raw`` in the forms seen in the wild, valid and not."""
    standard = base64.b64encode(raw).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(raw).decode("ascii")

    def wrapped(width: int, sep: str) -> tuple[str, str]:
        lines = [standard[i : i + width] for i in range(0, len(standard), width)]
        return "wrapped", sep.join(lines)

    def inserted(at: int, junk: str) -> tuple[str, str]:
        at = at % (len(standard) + 1)
        return "garbage", standard[:at] + junk + standard[at:]

    prefixes = ("data:image/jpeg;base64,", "DATA:image/png;BASE64,", "data:;base64,")
    return st.one_of(
        st.sampled_from(
            (
                ("standard", standard),
                ("unpadded", standard.rstrip("=")),
                ("urlsafe", urlsafe),
                ("urlsafe-unpadded", urlsafe.rstrip("=")),
                ("garbage", "data:image/png," + standard),  # not ;base64
                ("garbage", standard + "=="),
                ("garbage", standard[: len(standard) // 2 + 1]),
                ("garbage", base64.b64encode(standard.encode()).decode("ascii")),  # twice
                ("garbage", raw[:2048].hex()),
            )
        ),
        st.sampled_from(prefixes).map(lambda prefix: ("data-url", prefix + standard)),
        st.builds(wrapped, st.sampled_from((64, 76)), st.sampled_from(("\n", "\r\n", " "))),
        st.builds(
            inserted,
            st.integers(min_value=0),
            st.sampled_from(("!", "*", "\x00", "é", "\ud800", "+-", "====", "=A")),
        ),
    )


def base64_variants(raw: bytes) -> st.SearchStrategy[str]:
    return labelled_base64(raw).map(lambda pair: pair[1])


# --- images -----------------------------------------------------------------------------------


def encode_image(pixels: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pixels.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def reencoded(jpeg: bytes) -> tuple[bytes, bytes, bytes]:
    """One face photo as JPEG (as given), PNG and WebP: every format the intake accepts."""
    with Image.open(io.BytesIO(jpeg)) as image:
        rgb = image.convert("RGB")
    return jpeg, encode_image(rgb, "PNG"), encode_image(rgb, "WEBP", quality=80)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_dimensions(raw: bytes, width: int, height: int) -> bytes:
    """The file with its header's width and height replaced (checksums kept valid),
    so only the pixel data disagrees: what a crafted file looks like."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        ihdr = raw[16:29]
        new = struct.pack(">II", width, height) + ihdr[8:]
        return raw[:8] + _png_chunk(b"IHDR", new) + raw[33:]
    if raw.startswith(b"\xff\xd8"):
        for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
            at = raw.find(marker)
            if at > 0:
                dims = struct.pack(">HH", min(height, 0xFFFF), min(width, 0xFFFF))
                return raw[: at + 5] + dims + raw[at + 9 :]
        return raw
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP" and raw[12:16] == b"VP8 ":
        dims = struct.pack("<HH", min(width, 0x3FFF), min(height, 0x3FFF))
        return raw[:26] + dims + raw[30:]
    return raw


def flat_image(width: int, height: int, fmt: str) -> bytes:
    """A flat grey image of any shape: tiny as a file, extreme as an array."""
    image = Image.new("L" if fmt == "PNG" else "RGB", (width, height), 128)
    options = {"optimize": True} if fmt == "PNG" else {"quality": 50}
    if fmt == "WEBP":
        options = {"lossless": True}
    return encode_image(image, fmt, **options)


@st.composite
def mutated_images(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A seed image, then bit flips, truncation, header edits or splices."""
    raw = bytearray(draw(st.sampled_from(list(seeds))))
    how = draw(st.sampled_from(("as is", "flip", "truncate", "dimensions", "splice", "junk")))
    if how == "flip":
        for _ in range(draw(st.integers(min_value=1, max_value=8))):
            at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
    elif how == "truncate":
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw) - 1))]
    elif how == "dimensions":
        side = st.sampled_from((0, 1, 63, 64, 65, 255, 4096, 16383, 65535, 70000, 2**31 - 1))
        raw = bytearray(with_dimensions(bytes(raw), draw(side), draw(side)))
    elif how == "splice":
        start = draw(st.integers(min_value=0, max_value=len(raw)))
        length = draw(st.integers(min_value=0, max_value=256))
        raw[start : start + length] = draw(st.binary(max_size=256))
    elif how == "junk":
        raw = bytearray(draw(st.binary(max_size=64))) + raw + draw(st.binary(max_size=64))
    return bytes(raw)


# --- whole requests -----------------------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
http_methods = st.one_of(
    st.sampled_from(("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post")),
    st.text(_TOKEN_CHARS, min_size=1, max_size=24),
)
# What a header value may carry (RFC 9110 field-vchar, obs-text and spaces).
HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
JSON_CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/vnd.valify+json",
)
OTHER_CONTENT_TYPES = (
    "",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "json",
    ";;;",
    "application/json; charset=latin-1; boundary=" + "b" * 300,
)


def _auth_headers(draw: st.DrawFn, target: Target) -> list[tuple[str, str]]:
    choice = draw(
        st.sampled_from(
            ("valid", "valid", "valid", "none", "lower", "bare", "junk", "basic", "empty", "two")
        )
    )
    junk = draw(st.text(HEADER_CHARS, max_size=80))
    headers = {
        "valid": [("Authorization", f"Bearer {target.token}")],
        "none": [],
        "lower": [("authorization", f"bearer   {target.token}")],
        "bare": [("Authentication", target.token)],
        "junk": [("Authorization", f"Bearer {junk}")],
        "basic": [("Authorization", "Basic " + base64.b64encode(b"a:b").decode())],
        "empty": [("Authorization", "")],
        "two": [("Authorization", f"Bearer {junk}"), ("Authentication", f"Bearer {target.token}")],
    }[choice]
    if draw(st.integers(0, 5)) == 0:  # the language of refusals made before the body is read
        headers.append(("Accept-Language", draw(st.sampled_from(("ar", "ar-EG,en;q=0.5", "*")))))
    return list(headers)


def _field(draw: st.DrawFn, valid: Any, *, surrogates: bool) -> Any:
    """A field: valid most of the time, else missing (``...``) or hostile."""
    kind = draw(st.sampled_from(("valid", "valid", "missing", "text", "json")))
    if kind == "valid":
        return valid
    if kind == "missing":
        return ...
    if kind == "text":
        return draw(hostile_text(surrogates=surrogates))
    return draw(json_values(surrogates=surrogates))


def _without_missing(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not ...}


@st.composite
def match_fields(
    draw: st.DrawFn,
    target: Target,
    *,
    surrogates: bool,
    images: st.SearchStrategy[str] | None = None,
) -> dict[str, Any]:
    """Face-match fields: each one valid, missing or hostile (types, unicode, size)."""
    face = st.sampled_from(target.faces).map(lambda raw: base64.b64encode(raw).decode("ascii"))
    image = images if images is not None else face
    fields = {
        "first_img": _field(draw, draw(image), surrogates=surrogates),
        "bundle_key": _field(draw, target.bundle_key, surrogates=surrogates),
        "lang": draw(st.sampled_from((..., "en", "ar", "AR", " en"))),
    }
    if draw(st.booleans()):
        fields["second_img"] = _field(draw, draw(image), surrogates=surrogates)
    if draw(st.integers(min_value=0, max_value=3)) == 0 or "second_img" not in fields:
        fields["transaction_id"] = _field(draw, target.transaction_id, surrogates=surrogates)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        fields["lang"] = draw(json_values(surrogates=surrogates))
    return _without_missing(fields)


@st.composite
def match_cases(
    draw: st.DrawFn,
    target: Target,
    *,
    surrogates: bool = True,
    malformed: bool = True,
    images: st.SearchStrategy[str] | None = None,
    headers: bool = True,
) -> Case:
    """A call to face match v1 or v1.1 (the real thing, mostly, with one thing wrong)."""
    endpoint = draw(st.sampled_from((MATCH_V1, MATCH_V11)))
    fields = draw(match_fields(target, surrogates=surrogates, images=images))
    body_value: Any = fields
    if endpoint == MATCH_V11:
        shape = draw(st.sampled_from(("data", "data", "data+lang", "flat", "data-not-object")))
        if shape == "data":
            body_value = {"data": fields}
        elif shape == "data+lang":
            body_value = {"data": fields, "lang": draw(st.sampled_from(("en", "ar", "xx")))}
        elif shape == "data-not-object":
            body_value = {"data": draw(json_values(surrogates=surrogates))}
    body = encode_json(body_value, ascii_only=draw(st.booleans()))
    kind = "match"
    if malformed and draw(st.integers(min_value=0, max_value=5)) == 0:
        body = draw(st.sampled_from(MALFORMED_JSON_BODIES))
        kind = "malformed-json"
    request_headers = (
        _auth_headers(draw, target) if headers else [("Authorization", f"Bearer {target.token}")]
    )
    content_type = "application/json"
    if headers and draw(st.integers(min_value=0, max_value=4)) == 0:
        content_type = draw(st.sampled_from(JSON_CONTENT_TYPES + OTHER_CONTENT_TYPES))
    if content_type:
        request_headers.append(("Content-Type", content_type))
    return Case(
        endpoint=endpoint,
        method="POST",
        path=draw(st.sampled_from(PATHS[endpoint])),
        headers=tuple(request_headers),
        body=body,
        kind=kind,
    )


@st.composite
def transaction_cases(
    draw: st.DrawFn, target: Target, *, surrogates: bool = True, malformed: bool = True
) -> Case:
    """Inquiry (by transaction id or access token) and fetch-images."""
    endpoint = draw(st.sampled_from((INQUIRE, FETCH_IMAGES)))
    fields: dict[str, Any] = {
        "bundle_key": _field(draw, target.bundle_key, surrogates=surrogates),
        "lang": draw(st.sampled_from((..., "en", "ar", "de"))),
    }
    which = draw(st.sampled_from(("transaction_id", "access_token", "both", "neither")))
    if which in ("transaction_id", "both"):
        fields["transaction_id"] = _field(draw, target.transaction_id, surrogates=surrogates)
    if which in ("access_token", "both"):
        fields["access_token"] = _field(draw, target.token, surrogates=surrogates)
    body = encode_json(_without_missing(fields), ascii_only=draw(st.booleans()))
    kind = "transactions"
    if malformed and draw(st.integers(min_value=0, max_value=5)) == 0:
        body, kind = draw(st.sampled_from(MALFORMED_JSON_BODIES)), "malformed-json"
    headers = _auth_headers(draw, target)
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        headers.append(("Content-Type", draw(st.sampled_from(OTHER_CONTENT_TYPES))))
    else:
        headers.append(("Content-Type", "application/json"))
    return Case(
        endpoint, "POST", draw(st.sampled_from(PATHS[endpoint])), tuple(headers), body, kind
    )


@st.composite
def surrogate_cases(draw: st.DrawFn, target: Target) -> Case:
    """An otherwise valid, authenticated call with one text field (or key) carrying a
    lone surrogate, escaped in the JSON (``\\ud800``) or written raw (invalid UTF-8)."""
    endpoint = draw(st.sampled_from((MATCH_V1, MATCH_V11, INQUIRE, FETCH_IMAGES)))
    face = base64.b64encode(draw(st.sampled_from(target.faces))).decode("ascii")
    fields: dict[str, Any] = {"bundle_key": target.bundle_key}
    if endpoint in (MATCH_V1, MATCH_V11):
        fields |= {"first_img": face, "transaction_id": target.transaction_id}
    else:
        fields["transaction_id"] = target.transaction_id
    hostile = draw(st.tuples(st.text(max_size=6), st.sampled_from(LONE_SURROGATES)).map("".join))
    where = draw(st.sampled_from((*fields, "lang", "access_token", "a key")))
    if where == "a key":
        fields[hostile] = "x"
    elif where == "access_token":
        fields.pop("transaction_id")
        fields["access_token"] = hostile
    else:
        fields[where] = hostile
    body_value = {"data": fields} if endpoint == MATCH_V11 else fields
    headers = (("Authorization", f"Bearer {target.token}"), ("Content-Type", "application/json"))
    body = encode_json(body_value, ascii_only=draw(st.booleans()))
    return Case(endpoint, "POST", PATHS[endpoint][0], headers, body, f"surrogate-in-{where}")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates as their invalid bytes


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(
        quote(_utf8(name), safe="") + "=" + quote(_utf8(value), safe="") for name, value in pairs
    ).encode("ascii")


def _multipart(pairs: list[tuple[str, str]], boundary: str) -> bytes:
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (_utf8(boundary), _utf8(name), _utf8(value))
        for name, value in pairs
    ]
    return b"".join(parts) + b"--%s--\r\n" % _utf8(boundary)


@st.composite
def token_cases(draw: st.DrawFn, target: Target, *, surrogates: bool = True) -> Case:
    """Token requests: grants, client credentials (form or Basic), encodings."""
    text = hostile_text(surrogates=surrogates, max_huge=20_000)

    def value(valid: str) -> str | None:
        kind = draw(st.sampled_from(("valid", "valid", "missing", "hostile")))
        return valid if kind == "valid" else None if kind == "missing" else draw(text)

    grant = draw(
        st.sampled_from(("password", "refresh_token", "client_credentials", "", "PASSWORD"))
    )
    fields: dict[str, str | None] = {
        "grant_type": grant if draw(st.integers(0, 5)) else draw(text),
        # The right username with a wrong password: the slow hash runs, nothing is issued.
        "username": value(target.username),
        "password": draw(text) if draw(st.booleans()) else None,
        "client_id": value(target.client_id),
        "client_secret": value(target.client_secret),
        "refresh_token": value(draw(st.sampled_from(target.refresh_tokens or ("r",)))),
        "lang": draw(st.sampled_from((None, "en", "ar", "xx", "\ud800"))),
    }
    pairs = [(name, v) for name, v in fields.items() if v is not None]
    if draw(st.integers(0, 6)) == 0:
        pairs.append(draw(st.tuples(text, text)))
    encoding = draw(st.sampled_from(("form", "form", "multipart", "json", "raw")))
    headers: list[tuple[str, str]] = []
    if encoding == "form":
        body, content_type = _form(pairs), "application/x-www-form-urlencoded"
    elif encoding == "multipart":
        boundary = draw(st.sampled_from(("b0undary", "x" * 70, "")))
        body, content_type = (
            _multipart(pairs, boundary),
            f"multipart/form-data; boundary={boundary}",
        )
    elif encoding == "json":
        body, content_type = encode_json(dict(pairs), ascii_only=True), "application/json"
    else:
        body = draw(st.one_of(st.binary(max_size=200), st.sampled_from(MALFORMED_JSON_BODIES)))
        content_type = draw(st.sampled_from(OTHER_CONTENT_TYPES))
    if content_type:
        headers.append(("Content-Type", content_type))
    if draw(st.integers(0, 3)) == 0:
        credentials = draw(
            st.one_of(
                st.just(f"{target.client_id}:{target.client_secret}".encode()),
                st.binary(max_size=40),
            )
        )
        encoded = base64.b64encode(credentials).decode()
        headers.append(
            ("Authorization", draw(st.sampled_from(("Basic ", "basic  ", "Bearer "))) + encoded)
        )
    return Case(
        TOKEN,
        "POST",
        draw(st.sampled_from(PATHS[TOKEN])),
        tuple(headers),
        body,
        f"token-{encoding}",
    )


@st.composite
def protocol_cases(draw: st.DrawFn, target: Target) -> Case:
    """Any method on any path (known or not), odd headers and queries; ops endpoints."""
    endpoint = draw(st.sampled_from((*PATHS, UNKNOWN)))
    if endpoint == UNKNOWN:
        path = "/" + "/".join(
            draw(st.lists(st.text("abcxyz019._-~%", min_size=1, max_size=12), max_size=5))
        )
        if any(
            path.rstrip("/") == known.rstrip("/") for paths in PATHS.values() for known in paths
        ):
            path += "/x"
    else:
        path = draw(st.sampled_from(PATHS[endpoint]))
    if draw(st.integers(0, 3)) == 0:
        path += "?" + draw(st.text("abc=&%;+/?019", max_size=40))
    method = draw(http_methods)
    if endpoint in METHODS and draw(st.booleans()):
        method = sorted(METHODS[endpoint])[0]
    headers = _auth_headers(draw, target)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.text(_TOKEN_CHARS, min_size=1, max_size=20))
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection", "expect"):
            continue
        headers.append((name, draw(st.text(HEADER_CHARS, max_size=60))))
    body = draw(
        st.one_of(
            st.just(b""), st.binary(max_size=100), st.sampled_from(MALFORMED_JSON_BODIES[:20])
        )
    )
    if body:
        headers.append(
            (
                "Content-Type",
                draw(st.sampled_from(JSON_CONTENT_TYPES + OTHER_CONTENT_TYPES)) or "text/plain",
            )
        )
    return Case(endpoint, method, path, tuple(headers), body, "protocol")


def any_case(
    target: Target,
    *,
    images: st.SearchStrategy[str] | None = None,
    surrogates: bool = True,
    malformed: bool = True,
) -> st.SearchStrategy[Case]:
    """The campaign's mix: every endpoint, every kind of hostile input."""
    cases = [
        match_cases(target, images=images, surrogates=surrogates, malformed=malformed),
        transaction_cases(target, surrogates=surrogates, malformed=malformed),
        token_cases(target, surrogates=surrogates),
        protocol_cases(target),
    ]
    if surrogates:
        cases.append(surrogate_cases(target))
    return st.one_of(cases)


def image_texts(target: Target, extra_seeds: Sequence[bytes] = ()) -> st.SearchStrategy[str]:
    """Image fields: mutated images of every format, base64 in its variants."""
    seeds = [*target.faces, *extra_seeds]
    return mutated_images(seeds).flatmap(lambda raw: base64_variants(raw) if raw else st.just(""))


Sender = Callable[[Case], tuple[int, bytes]]
