"""What a caller has (a path, bytes, a file, a PIL image) → the base64 the API takes."""

from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path
from typing import IO, Any, Union

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Any]
"""A path (``str`` or ``PathLike``), the encoded bytes, a binary file object, or a
``PIL.Image.Image`` (sent as JPEG, quality 95). A ``str`` is always a path, never
base64: pass ``bytes`` to send bytes you already hold."""

PIL_JPEG_QUALITY = 95


def _pil_image_bytes(image: Any) -> bytes | None:
    # Pillow is optional: only look for it when the caller could have passed one.
    pil = sys.modules.get("PIL.Image")
    if pil is None or not isinstance(image, pil.Image):
        return None
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=PIL_JPEG_QUALITY)
    return buffer.getvalue()


def image_bytes(image: ImageInput) -> bytes:
    """The encoded image bytes of ``image`` (see :data:`ImageInput`)."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    pil_bytes = _pil_image_bytes(image)
    if pil_bytes is not None:
        return pil_bytes
    read = getattr(image, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, bytes | bytearray):
            raise TypeError("file objects must be opened in binary mode ('rb')")
        return bytes(data)
    raise TypeError(
        f"cannot send {type(image).__name__} as an image: pass a path, bytes, "
        "a binary file object or a PIL image"
    )


def image_base64(image: ImageInput) -> str:
    """:func:`image_bytes`, base64-encoded as the API expects."""
    return base64.b64encode(image_bytes(image)).decode("ascii")
