"""The canonical JSON form and the ``hmac`` header, checked against a second implementation.

The reference below is written from RFC 8785 without looking at how
``facematch.service.signing`` does it: numbers go through ``%.{p}e`` formatting
instead of ``repr``/``Decimal``, strings through the standard ``json`` module,
key order through explicit UTF-16 code units.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from facematch.service.signing import (
    HMAC_HEADER,
    CanonicalFormError,
    canonical_json,
    format_number,
    hmac_hex,
    signed_json_response,
    verify_hmac,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "transactions.md"


# --- independent reference implementation ------------------------------------


def ref_number(x: float) -> str:
    if x == 0:
        return "0"
    if x < 0:
        return "-" + ref_number(-x)
    # Shortest scientific form that reads back to the same double.
    for precision in range(17):
        text = f"{x:.{precision}e}"
        if float(text) == x:
            break
    mantissa, exp_text = text.split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    sci_exp = int(exp_text)  # x = d.ddd × 10^sci_exp
    if -7 < sci_exp < 21:
        if sci_exp >= len(digits) - 1:  # integral value
            return digits + "0" * (sci_exp - len(digits) + 1)
        if sci_exp >= 0:
            return digits[: sci_exp + 1] + "." + digits[sci_exp + 1 :]
        return "0." + "0" * (-sci_exp - 1) + digits
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return head + "e" + ("+" if sci_exp > 0 else "-") + str(abs(sci_exp))


def ref_number_or_int(value: float) -> str:
    return str(value) if isinstance(value, int) else ref_number(value)


def utf16_units(text: str) -> list[int]:
    units: list[int] = []
    for char in text:
        code = ord(char)
        if code < 0x10000:
            units.append(code)
        else:
            code -= 0x10000
            units += [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
    return units


def ref_canonical(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return ref_number(float(value)) if abs(value) >= 2**53 else ref_number_or_int(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(ref_canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=utf16_units)
        return "{" + ",".join(f"{ref_canonical(k)}:{ref_canonical(value[k])}" for k in keys) + "}"
    raise TypeError(type(value))


def ref_hmac(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha512).hexdigest()


# --- numbers -----------------------------------------------------------------

# Expected strings are what ECMAScript's Number.prototype.toString prints.
NUMBER_VECTORS = [
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (-3.0, "-3"),
    (0.9731, "0.9731"),
    (4.5, "4.5"),
    (0.002, "0.002"),
    (100.0, "100"),
    (123.456, "123.456"),
    (1e-6, "0.000001"),
    (1.5e-6, "0.0000015"),
    (1e-7, "1e-7"),
    (1.25e-7, "1.25e-7"),
    (1e20, "100000000000000000000"),
    (1e21, "1e+21"),
    (1e30, "1e+30"),
    (333333333.33333329, "333333333.3333333"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (9007199254740991.0, "9007199254740991"),
    (0.1 + 0.2, "0.30000000000000004"),
]


@pytest.mark.parametrize(("number", "expected"), NUMBER_VECTORS)
def test_numbers_follow_ecmascript(number: float, expected: str) -> None:
    assert format_number(number) == expected
    assert ref_number(number) == expected


def test_random_doubles_agree_with_the_reference() -> None:
    rng = random.Random(20261125)
    for _ in range(5000):
        x = rng.choice(
            [
                rng.random(),
                rng.uniform(-1e6, 1e6),
                math.ldexp(rng.random(), rng.randint(-1074, 1023)),
                round(rng.random(), rng.randint(0, 8)),
            ]
        )
        assert format_number(x) == ref_number(x), repr(x)
        assert float(format_number(x)) == x


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(CanonicalFormError):
        canonical_json({"x": bad})


def test_integers_beyond_double_precision_become_the_nearest_double() -> None:
    assert canonical_json([2**53, -(2**53)]) == b"[9007199254740992,-9007199254740992]"
    # What JavaScript prints for JSON.parse("1152921504606846976"):
    assert canonical_json(2**60) == b"1152921504606847000"
    assert canonical_json(2**53 + 1) == b"9007199254740992"
    with pytest.raises(CanonicalFormError):
        canonical_json(10**400)


def test_non_json_values_are_refused() -> None:
    with pytest.raises(CanonicalFormError):
        canonical_json({"raw": b"bytes"})
    with pytest.raises(CanonicalFormError):
        canonical_json({1: "int key"})
    with pytest.raises(CanonicalFormError):
        canonical_json("\ud800")  # lone surrogate


# --- whole documents -----------------------------------------------------------


def test_rfc8785_example() -> None:
    value = json.loads(
        r'{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],'
        r'"string":"\u20ac$\u000F\u000aA\u0027\u0042\u0022\u005c\\\"\/",'
        r'"literals":[null,true,false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_keys_sort_by_utf16_code_units_at_every_level() -> None:
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    value = {"outer": {k: i for i, k in enumerate(keys)}, "a": [{"z": 1, "b": 2}]}
    text = canonical_json(value).decode("utf-8")
    assert text.startswith('{"a":[{"b":2,"z":1}],"outer":{"\\r":1,"1":3,')
    # U+1F600 is a surrogate pair (0xD83D...) so it sorts before U+FB33.
    assert text.index("\U0001f600") < text.index("\ufb33")
    assert text == ref_canonical(value)


def test_face_match_body() -> None:
    body = {
        "transaction_id": "tx_Q2xpZW50",
        "trials_remaining": 2,
        "result": {"is_similar": True, "confidence": 0.9731},
    }
    assert canonical_json(body) == (
        b'{"result":{"confidence":0.9731,"is_similar":true},'
        b'"transaction_id":"tx_Q2xpZW50","trials_remaining":2}'
    )


_ALPHABET = 'ab"\\/\n\t\x00\x1f\x7fé€\u2028\U0001f600\ufb33ت'


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-(2**53), 2**53)
    if kind == "float":
        return rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-30, 30)
    if kind == "str":
        return _random_text(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_documents_agree_with_the_reference_and_round_trip() -> None:
    rng = random.Random(5)
    for _ in range(500):
        value = {"doc": _random_value(rng)}
        encoded = canonical_json(value)
        assert encoded.decode("utf-8") == ref_canonical(value)
        # The canonical form of the parsed canonical form is itself (idempotent).
        assert canonical_json(json.loads(encoded)) == encoded


# --- HMAC ----------------------------------------------------------------------


def test_hmac_matches_an_independent_computation() -> None:
    body = canonical_json({"b": [1, 2.5, None], "a": "x"})
    assert hmac_hex(body, "bundle-secret") == ref_hmac(body, "bundle-secret")
    assert len(hmac_hex(body, "bundle-secret")) == 128
    assert verify_hmac(body, "bundle-secret", ref_hmac(body, "bundle-secret").upper())


def test_tampered_body_or_wrong_secret_fails_verification() -> None:
    body = canonical_json({"result": {"is_similar": False, "confidence": 0.12}})
    signature = hmac_hex(body, "bundle-secret")
    tampered = body.replace(b"false", b"true ")
    assert verify_hmac(body, "bundle-secret", signature)
    assert not verify_hmac(tampered, "bundle-secret", signature)
    assert not verify_hmac(body, "another-secret", signature)
    assert not verify_hmac(body, "bundle-secret", signature[:-1] + "0")


def test_signed_response_sends_the_canonical_bytes_it_signs() -> None:
    content = {"trials_remaining": 1, "result": {"confidence": 1.0, "is_similar": True}}
    response = signed_json_response(content, secret="s3cret", status_code=200)
    assert response.body == ref_canonical(content).encode("utf-8")
    assert response.body == b'{"result":{"confidence":1,"is_similar":true},"trials_remaining":1}'
    assert response.headers[HMAC_HEADER] == ref_hmac(response.body, "s3cret")
    assert response.headers["content-type"] == "application/json"


# --- the worked example in docs/transactions.md -----------------------------------


def _doc_block(text: str, label: str) -> str:
    match = re.search(rf"<!-- {label} -->\s*```[a-z]*\n(.*?)\n```", text, re.DOTALL)
    assert match is not None, f"docs/transactions.md lacks the block marked {label}"
    return match.group(1)


def test_documented_worked_example_is_correct() -> None:
    text = DOCS.read_text(encoding="utf-8")
    secret = _doc_block(text, "example-secret").strip()
    pretty_body = _doc_block(text, "example-body")
    canonical = _doc_block(text, "example-canonical")
    digest = _doc_block(text, "example-hmac").strip()
    assert canonical_json(json.loads(pretty_body)).decode("utf-8") == canonical
    assert ref_canonical(json.loads(pretty_body)) == canonical
    assert ref_hmac(canonical.encode("utf-8"), secret) == digest
    assert hmac_hex(canonical.encode("utf-8"), secret) == digest
