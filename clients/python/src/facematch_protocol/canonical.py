"""The canonical JSON form of signed bodies (RFC 8785, JCS), shared by server and SDK.

Every successful service response carries a header ``hmac``: the lowercase hex
HMAC-SHA512 of the response body, keyed with the bundle's HMAC secret (the
secret's UTF-8 bytes). The body is serialised in the canonical form below and
those exact bytes are sent, so "HMAC over the raw body" and "HMAC over the
canonical form of the parsed body" give the same digest: a client may verify
either way (raw bytes is simpler and needs no JSON library at all).

The canonical form is RFC 8785, the JSON Canonicalization Scheme (JCS), which
has implementations in most languages:

- no whitespace anywhere; UTF-8; no byte order mark;
- object members sorted by key, comparing keys as sequences of UTF-16 code
  units (identical to plain code point order for the ASCII keys we use), at
  every level of nesting;
- ``true``, ``false``, ``null`` as written;
- strings: ``"`` and ``\\`` are escaped as ``\\"`` and ``\\\\``; U+0008, U+0009,
  U+000A, U+000C, U+000D as ``\\b \\t \\n \\f \\r``; the other controls below
  U+0020 as ``\\u00xx`` (lowercase hex); every other character is written as
  itself (no ``\\u`` escapes for non-ASCII, ``/`` not escaped);
- numbers as ECMAScript's ``Number.prototype.toString`` writes the IEEE-754
  double: integral values without a fraction or exponent (``2``, ``1.0`` → ``1``,
  ``-0.0`` → ``0``); others with the fewest significant digits that read back
  to the same double (``0.9731``), in plain notation when 1e-6 <= |x| < 1e21
  (``0.000001``, ``100000000000000000000``) and exponent notation outside
  that range (``1e-7``, ``1.5e+21``).

Accepted values: dicts with string keys, lists/tuples, str, bool, None, ints
and finite floats. Every number is an IEEE-754 double, as in JavaScript: ints up
to 2**53 are exact, a larger int is written as the double nearest to it (so
re-canonicalising a parsed body is idempotent in any language). The service
never sends integers that large.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

MAX_SAFE_INTEGER = 2**53
"""Largest integer magnitude a double-based JSON client reads back exactly."""

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


class CanonicalFormError(ValueError):
    """A value cannot be written in the canonical form (NaN, huge int, bytes...)."""


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 bytes of ``value`` (see the module docstring)."""
    parts: list[str] = []
    _write(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be UTF-8
        raise CanonicalFormError("string is not valid Unicode (lone surrogate)") from exc


def _write(value: Any, out: list[str]) -> None:
    # bool before int: True is an int in Python.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        if abs(value) <= MAX_SAFE_INTEGER:
            out.append(str(int(value)))
        else:
            # JSON numbers are doubles (RFC 8785): a bigger int is read by every
            # double-based client as the nearest double, so it is written as that.
            try:
                out.append(format_number(float(value)))
            except OverflowError as exc:
                raise CanonicalFormError("integer too large for a double") from exc
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalFormError(f"object key {key!r} is not a string")
        out.append("{")
        # UTF-16 big-endian bytes compare like UTF-16 code units (RFC 8785 §3.2.3).
        for index, key in enumerate(sorted(value, key=_utf16_sort_key)):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalFormError(f"{type(value).__name__} has no canonical JSON form")


def _utf16_sort_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _string(text: str) -> str:
    # One regex pass, not a Python loop per character: fetch-images answers hold
    # megabytes of base64 text, which has nothing to escape.
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def format_number(number: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double."""
    if number != number or number in (float("inf"), float("-inf")):
        raise CanonicalFormError(f"{number} is not a finite number")
    if number == 0:
        return "0"  # covers -0.0 too
    if number < 0:
        return "-" + format_number(-number)
    # repr() gives the shortest digit string that reads back to the same double;
    # ECMAScript asks for exactly those digits, only laid out differently.
    _, digit_tuple, exponent = Decimal(repr(number)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + len(digit_tuple) - len(digits)
    k = len(digits)  # number of significant digits
    n = k + exponent  # position of the decimal point relative to the digits
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    sign = "+" if n - 1 >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(n - 1)}"
