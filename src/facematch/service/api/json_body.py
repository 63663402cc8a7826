"""Parse a request body as one JSON object, refusing what the service must never hold.

Python's ``json`` accepts more than the service can safely pass on. Each of
these would otherwise escape as an unexpected exception (a 500 and a traceback
in the log); here they are all :class:`InvalidJsonError`, an error of the service's tree
that the one handler answers with the catalogue's ``invalid_json``:

* integers longer than Python's digit limit (``ValueError``, not a
  ``JSONDecodeError``);
* nesting deep enough to exhaust the parser's recursion (``RecursionError``),
  and anything nested deeper than :data:`MAX_DEPTH` (no request field is more
  than two levels down, and later code must never walk a deep tree);
* ``NaN`` / ``Infinity`` literals, which are not JSON;
* lone UTF-16 surrogates (``"\\ud800"``): legal escapes in JSON's grammar but
  not Unicode text (I-JSON, RFC 7493 §2.1, forbids them); they make every
  later ``str.encode`` fail (token digests, database parameters, logs);
* NUL characters (``"\\u0000"``): valid Unicode, but no field of the API
  carries one and PostgreSQL cannot store one in text (a query parameter
  with NUL is a driver error, not a "not found").
"""

from __future__ import annotations

import json
import re
from typing import Any

from facematch.service.errors import InvalidJson

__all__ = ["MAX_DEPTH", "InvalidJsonError", "parse_json", "parse_json_object", "unstorable_text"]

MAX_DEPTH = 16

_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJsonError(InvalidJson, ValueError):
    """The body is not one well-formed JSON object the service accepts."""


def _reject_constant(name: str) -> Any:
    raise InvalidJsonError(f"{name} is not JSON")


def unstorable_text(text: str) -> bool:
    """Whether ``text`` holds a NUL or an unpaired surrogate (see the module docstring)."""
    # isascii() reads a flag of the string object: the surrogate search is free
    # for base64 images; the NUL search is a memchr.
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


def _check_tree(root: Any) -> None:
    """Depth and text checks, iteratively (a recursive walk is what we guard against)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if unstorable_text(value):
                raise InvalidJsonError("NUL or unpaired surrogate in a string")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidJsonError(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    if unstorable_text(key):
                        raise InvalidJsonError("NUL or unpaired surrogate in a key")
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def parse_json(raw: bytes) -> Any:
    """The body as any JSON value, with every check above, or :class:`InvalidJsonError`.
    For callers that answer a body of the wrong shape themselves (the demo)."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError included
        raise InvalidJsonError(str(exc)[:200]) from exc
    _check_tree(data)
    return data


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a dict, or :class:`InvalidJsonError`. Pure and thread-safe: callers
    run it off the event loop for big bodies."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidJsonError("the body is not a JSON object")
    return data
