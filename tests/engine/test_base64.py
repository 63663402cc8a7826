"""Base64 intake: padding left out by clients is accepted, garbage still is not."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from facematch.engine.errors import InvalidBase64Error
from facematch.engine.images import decode_base64, decode_image

MIB = 1024 * 1024


def _unpadded(raw: bytes, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(raw).decode("ascii").rstrip("=")


@pytest.mark.lfw
@pytest.mark.parametrize("cut", [1, 2], ids=["one-pad-char", "two-pad-chars"])
def test_real_photo_without_padding_decodes_like_the_padded_text(lfw_root: Path, cut: int) -> None:
    # A real photo whose base64 ends in ``cut`` '=' characters.
    photos = sorted((lfw_root / "images").glob("*/*.jpg"))[:50]
    raw = next((p.read_bytes() for p in photos if -p.stat().st_size % 3 == cut), None)
    if raw is None:
        pytest.skip(f"none of the first 50 LFW images needs {cut} padding character(s)")
    padded = base64.b64encode(raw).decode("ascii")
    assert padded.endswith("=" * cut)
    for text in (
        _unpadded(raw),
        _unpadded(raw, urlsafe=True),
        "data:image/jpeg;base64," + _unpadded(raw),
    ):
        assert decode_base64(text, max_bytes=MIB) == raw
        decoded = decode_image(text)
        assert decoded.format == "JPEG"
        assert decoded.original_size_px == decode_image(padded).original_size_px


@pytest.mark.parametrize(
    "text",
    [
        "Q",  # one character past a multiple of four carries no whole byte
        "QUJDR",
        "QQ=",  # padding present but incomplete
        "QUJDRA=",
        "QQ=Q",  # padding in the middle
        "=QUJD",
        "QUJ*",  # outside the alphabet, unpadded
        "QUJDR!A",
    ],
)
def test_garbage_is_still_refused(text: str) -> None:
    with pytest.raises(InvalidBase64Error):
        decode_base64(text, max_bytes=MIB)


def test_unpadded_size_is_exact_before_decoding() -> None:
    raw = b"\xff" * 100  # 134 characters unpadded (136 padded)
    text = _unpadded(raw)
    assert len(text) % 4 == 2
    assert decode_base64(text, max_bytes=100) == raw
    from facematch.engine.errors import ImageTooLargeError

    with pytest.raises(ImageTooLargeError):
        decode_base64(text, max_bytes=99)
