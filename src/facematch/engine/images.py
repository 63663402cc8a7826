"""Image intake: encoded bytes, a file, base64 text or pixels → an upright RGB ``uint8`` array.

Everything a client sends passes through here first, so the checks run
cheapest-first and nothing large is allocated before it has been measured:

1. size of the input (base64 text length, then decoded byte count);
2. format, from the file's own header (JPEG, PNG, WebP; nothing else);
3. width × height from the header, before any pixel is decoded: the area
   against the format's pixel limit (decompression bombs, decode cost), the
   sides against the shape envelope (:mod:`facematch.engine.envelope`);
4. decode, at reduced size for large JPEGs when the caller allows it;
5. EXIF orientation, mode conversion to RGB, and for PNG/WebP a reduction to
   the caller's working size (they have no reduced-size decoding).

:func:`load_image` is the matcher's entry: it takes every
:data:`ImageInput` (a ``str`` is always a file path; base64 text comes wrapped
in :class:`Base64Image`) and brings it to :func:`decode_image`, or checks an
already decoded array against the same limits.

Pillow's own exceptions are translated into :mod:`facematch.engine.errors`
classes. No Pillow global (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) is
read for our limits or changed: every limit is an argument, so concurrent
calls with different limits cannot interfere. See docs/images.md.
"""

from __future__ import annotations

import binascii
import errno
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TypeAlias

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from facematch.engine.envelope import check_image_shape
from facematch.engine.errors import (
    CorruptImageError,
    ImageTooComplexError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidBase64Error,
    TooManyPixelsError,
    UnsupportedImageError,
)

__all__ = [
    "Base64Image",
    "DecodedImage",
    "ImageInput",
    "ImageLimits",
    "decode_base64",
    "decode_image",
    "load_image",
    "read_image_file",
]

# Pillow format names we open; Image.open tries no other plugin.
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
# Multi-picture JPEGs (many phone cameras) open as MPO; they are JPEG files.
_REPORTED_FORMAT = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}

# ASCII whitespace, as line-wrapped base64 (MIME, PEM, JSON pretty-printers) contains.
_WHITESPACE = b" \t\n\r\v\f"
# "data:[<media type>][;param=value]*;base64," — the media type is not trusted:
# the file's own header decides the format.
_DATA_URL = re.compile(rb"data:([^,]{0,200}),", re.IGNORECASE)
# Whitespace and a data: prefix may make the text longer than its payload. The
# cheap pre-check on the raw length allows this much slack; the exact check
# follows once whitespace is gone.
_TEXT_SLACK_FACTOR = 2
_TEXT_SLACK_CHARS = 1024

# EXIF orientation → the transpose that makes the image upright (the same table
# as PIL.ImageOps.exif_transpose). 5–8 swap width and height.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})

# Leading bytes of formats we support (to tell "damaged JPEG" from "not an
# image") and of common ones we refuse (to name them in the message).
_JPEG_MAGIC = b"\xff\xd8\xff"
_JPEG_START_OF_SCAN = b"\xff\xda"
_SUPPORTED_MAGIC = (_JPEG_MAGIC, b"\x89PNG\r\n\x1a\n")
_REFUSED_MAGIC = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
}
# 16-bit greyscale PNG modes; Pillow's own conversion clips them instead of scaling.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# Modes whose reduction commutes with the conversion to RGB (no palette, no
# colour key; RGBA is averaged premultiplied).
_REDUCE_FIRST_MODES = frozenset({"L", "RGB", "RGBA"})
# Exceptions Pillow raises for damaged data while reading headers or pixels.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


@dataclass(frozen=True)
class ImageLimits:
    """What the intake accepts. Defaults and their reasons: docs/images.md."""

    max_bytes: int = 5 * 1024 * 1024  # encoded bytes (after base64 decoding)
    max_pixels: int = 40_000_000  # width*height of the full image, checked from the header
    min_side_px: int = 64  # smaller side of the image
    # width*height of formats always decoded at full size (PNG, WebP): bounds
    # their decode cost, which JPEG's reduced decoding does not need.
    max_full_decode_pixels: int = 16_000_000
    # A JPEG's scans × its pixels. Each scan is a pass over every block of its
    # component(s), however few bytes it holds, so a small file of many scans
    # costs seconds of CPU (measured in docs/images.md). Encoders write 1 scan
    # (baseline) to ~10 (progressive): this allows 12 scans at 40 MP, 40 at 12 MP.
    max_jpeg_scan_pixels: int = 12 * 40_000_000

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_pixels",
            "min_side_px",
            "max_full_decode_pixels",
            "max_jpeg_scan_pixels",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ImageLimits.{name} must be positive")

    @property
    def full_decode_limit(self) -> int:
        """The pixel limit of PNG and WebP: the stricter of the two area limits."""
        return min(self.max_pixels, self.max_full_decode_pixels)


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image and how it relates to the file it came from."""

    pixels: np.ndarray  # RGB uint8 [h, w, 3], C-contiguous, EXIF orientation applied
    original_size_px: tuple[int, int]  # (width, height) of the upright full-resolution image
    scale: float  # pixels width / original width (1.0 unless reduced decoding was used)
    format: str  # "JPEG" | "PNG" | "WEBP", or "ARRAY" for pixels given as an array


@dataclass(frozen=True)
class Base64Image:
    """Base64 text of an encoded image (optionally a ``data:...;base64,`` URL).

    A plain ``str`` given to the matcher is a file path; text to be decoded is
    wrapped in this, so that it is decoded with the matcher's byte limit, when
    the matcher reaches that image (:func:`decode_base64` has the rules).
    """

    text: str = dataclass_field(repr=False)

    def __repr__(self) -> str:
        return f"Base64Image(<{len(self.text)} characters>)"


#: What the matcher accepts as an image: the encoded file's bytes, a path to it
#: (``str`` or ``os.PathLike``), base64 text wrapped in :class:`Base64Image`, or
#: the pixels themselves (RGB ``uint8`` array ``[h, w, 3]``, upright).
ImageInput: TypeAlias = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | Base64Image | np.ndarray
)


def decode_base64(text: str | bytes, *, max_bytes: int) -> bytes:
    """Decode base64 text, optionally a ``data:...;base64,`` URL, to bytes.

    ASCII whitespace anywhere is ignored; anything else outside the base64
    alphabet, wrong padding or an empty payload raises
    :class:`InvalidBase64Error`. Padding may be left out altogether (many
    clients strip it); when present it must be complete. The URL-safe alphabet
    (``-``/``_``) is accepted when used consistently. Text that would decode to
    more than ``max_bytes`` raises :class:`ImageTooLargeError` before it is
    decoded.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    # Refuse absurd inputs on their length alone: no copy, no scan.
    if len(text) > _TEXT_SLACK_FACTOR * _encoded_length(max_bytes) + _TEXT_SLACK_CHARS:
        raise ImageTooLargeError(f"base64 text is longer than a {max_bytes}-byte image can be")
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise InvalidBase64Error("base64 text contains non-ASCII characters") from exc
    else:
        raw = bytes(text)

    raw = raw.lstrip(_WHITESPACE)
    prefix = _DATA_URL.match(raw)
    if prefix is not None:
        params = prefix.group(1).split(b";")
        if b"base64" not in (p.strip().lower() for p in params[1:]):
            raise InvalidBase64Error("data: URL is not base64-encoded (';base64' missing)")
        raw = raw[prefix.end() :]
    payload = raw.translate(None, _WHITESPACE)
    if not payload:
        raise InvalidBase64Error("base64 text is empty")

    # Exact size from the length alone (4 characters carry 3 bytes), before decoding.
    if len(payload) * 3 // 4 - payload[-2:].count(b"=") > max_bytes:
        raise ImageTooLargeError(f"image is larger than {max_bytes} bytes")

    if b"-" in payload or b"_" in payload:
        if b"+" in payload or b"/" in payload:
            raise InvalidBase64Error("base64 text mixes the standard and URL-safe alphabets")
        payload = payload.translate(bytes.maketrans(b"-_", b"+/"))
    if len(payload) % 4 in (2, 3) and b"=" not in payload:
        payload += b"=" * (-len(payload) % 4)  # unpadded: restore what was stripped
    try:
        data = binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error as exc:
        raise InvalidBase64Error(f"invalid base64 text: {exc}") from exc
    if len(data) > max_bytes:  # cannot happen after the exact check; kept as the contract
        raise ImageTooLargeError(f"image is larger than {max_bytes} bytes")
    return data


def decode_image(
    data: bytes | str,
    *,
    limits: ImageLimits = ImageLimits(),  # frozen, so one shared default is safe
    max_side_px: int | None = None,
) -> DecodedImage:
    """Decode an encoded image to an upright RGB ``uint8`` array.

    ``data`` is base64 text (``str``, see :func:`decode_base64`) or the raw
    encoded bytes. When ``max_side_px`` is given and the image's longer side
    exceeds it, a JPEG is decoded in the decoder's reduced-size mode (1/2, 1/4
    or 1/8 scale): the decoded longer side is the smallest such size still
    ``>= max_side_px``. PNG and WebP decode at full size and are then reduced
    by the largest whole factor that keeps the longer side ``>= max_side_px``.

    Raises only :class:`facematch.engine.errors.ImageError` subclasses for bad
    input; ``ValueError``/``TypeError`` for bad arguments.
    """
    if max_side_px is not None and max_side_px <= 0:
        raise ValueError("max_side_px must be positive")
    if isinstance(data, str):
        raw = decode_base64(data, max_bytes=limits.max_bytes)
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > limits.max_bytes:
            raise ImageTooLargeError(f"image is larger than {limits.max_bytes} bytes")
    else:
        raise TypeError(f"data must be bytes or base64 str, not {type(data).__name__}")
    if not raw:
        raise UnsupportedImageError("image data is empty")

    webp_size = _webp_size(raw)
    if webp_size is not None:
        # libwebp allocates its whole canvas when the file is opened, before
        # Pillow reports the size, so WebP's area is checked from the raw header.
        _check_pixels(webp_size, limits.full_decode_limit)
    image = _open(raw)
    try:
        return _decode_opened(
            image, limits=limits, max_side_px=max_side_px, jpeg_scans=_jpeg_scans(raw)
        )
    finally:
        image.close()


def load_image(
    source: ImageInput,
    *,
    limits: ImageLimits = ImageLimits(),
    max_side_px: int | None = None,
) -> DecodedImage:
    """Any :data:`ImageInput` → :class:`DecodedImage`, under ``limits``.

    Bytes go to :func:`decode_image`; a ``str`` or ``os.PathLike`` is a file
    read with :func:`read_image_file` (never base64: that is :class:`Base64Image`);
    an array is checked like a decoded file (area, sides, shape envelope) and
    reduced like a PNG (whole factor, longer side kept ``>= max_side_px``).
    """
    if isinstance(source, np.ndarray):
        return _from_pixels(source, limits=limits, max_side_px=max_side_px)
    if isinstance(source, Base64Image):
        source = decode_base64(source.text, max_bytes=limits.max_bytes)
    elif isinstance(source, str | os.PathLike):
        source = read_image_file(source, max_bytes=limits.max_bytes)
    elif not isinstance(source, bytes | bytearray | memoryview):
        raise TypeError(
            "an image is bytes, a path, Base64Image(text) or an RGB uint8 array, "
            f"not {type(source).__name__}"
        )
    return decode_image(bytes(source), limits=limits, max_side_px=max_side_px)


def read_image_file(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The bytes of the image file at ``path``; more than ``max_bytes`` is refused
    (:class:`ImageTooLargeError`) without reading the rest.

    A path that names no file raises :class:`FileNotFoundError`, also when it is
    too long to be a file name (base64 text passed where a path was expected);
    other failures to read raise :class:`OSError` as :func:`open` does.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError) and exc.errno not in (
            errno.ENAMETOOLONG,
            errno.ENOENT,
        ):
            raise
        shown = os.fsdecode(path)
        if len(shown) > 80:
            shown = f"{shown[:60]}... ({len(shown)} characters)"
        raise FileNotFoundError(
            errno.ENOENT,
            f"no image file at {shown!r} (a str is a file path; "
            "wrap base64 text in Base64Image, or pass the bytes)",
        ) from exc
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"image is larger than {max_bytes} bytes")
    return data


def _from_pixels(
    pixels: np.ndarray, *, limits: ImageLimits, max_side_px: int | None
) -> DecodedImage:
    """An upright RGB array checked like a decoded file (its area against the
    full-decode limit: there is no reduced decoding to spare) and reduced like a PNG."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be RGB uint8 [h, w, 3], got {pixels.dtype} {pixels.shape}")
    if max_side_px is not None and max_side_px <= 0:
        raise ValueError("max_side_px must be positive")
    height, width = pixels.shape[:2]
    _check_pixels((width, height), limits.full_decode_limit)
    if min(width, height) < limits.min_side_px:
        raise ImageTooSmallError(
            f"image is {width}×{height} pixels; its smaller side must be at least "
            f"{limits.min_side_px}"
        )
    check_image_shape(width, height)
    reduce_by = 1 if max_side_px is None else max(1, max(width, height) // max_side_px)
    if reduce_by > 1:
        out = np.asarray(Image.fromarray(pixels).reduce(reduce_by), dtype=np.uint8)
    else:
        out = pixels
    return DecodedImage(
        pixels=np.ascontiguousarray(out),
        original_size_px=(width, height),
        scale=out.shape[1] / width,
        format="ARRAY",
    )


def _open(raw: bytes) -> Image.Image:
    """Identify the format from the header; no pixel data is read."""
    try:
        return Image.open(io.BytesIO(raw), formats=_PILLOW_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (its global limit) fired first; same meaning as ours.
        raise TooManyPixelsError(f"image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        if _looks_supported(raw):
            raise CorruptImageError("image header is truncated or damaged") from exc
        refused = _refused_format(raw)
        if refused is not None:
            raise UnsupportedImageError(
                f"{refused} images are not accepted; send JPEG, PNG or WebP"
            ) from exc
        raise UnsupportedImageError("data is not a JPEG, PNG or WebP image") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"image header is damaged: {exc}") from exc


def _decode_opened(
    image: Image.Image, *, limits: ImageLimits, max_side_px: int | None, jpeg_scans: int
) -> DecodedImage:
    format_name = _REPORTED_FORMAT.get(image.format or "")
    if format_name is None:  # a plugin we did not ask for; never expected
        raise UnsupportedImageError(f"{image.format} images are not accepted")

    # Header-only checks. Area and sides do not depend on orientation.
    width, height = image.size
    full_decode = format_name != "JPEG"
    _check_pixels((width, height), limits.full_decode_limit if full_decode else limits.max_pixels)
    if min(width, height) < limits.min_side_px:
        raise ImageTooSmallError(
            f"image is {width}×{height} pixels; its smaller side must be at least "
            f"{limits.min_side_px}"
        )
    check_image_shape(width, height)
    if format_name == "JPEG" and jpeg_scans * width * height > limits.max_jpeg_scan_pixels:
        raise ImageTooComplexError(
            f"JPEG of {width}×{height} pixels has {jpeg_scans} scans; at this size at most "
            f"{limits.max_jpeg_scan_pixels // (width * height)} are decoded"
        )

    if max_side_px is not None and format_name == "JPEG" and max(width, height) > max_side_px:
        # The longer side is the same axis before and after an EXIF rotation, so
        # the request can be made on the stored (unrotated) size. The short-side
        # request is rounded down so that the long side decides the scale.
        if width >= height:
            request = (max_side_px, max(1, height * max_side_px // width))
        else:
            request = (max(1, width * max_side_px // height), max_side_px)
        image.draft("RGB", request)

    try:
        # LOAD_TRUNCATED_IMAGES is left at its default (False): a short file raises here.
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixelsError(f"image has too many pixels: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"image data is truncated or damaged: {exc}") from exc

    orientation = _orientation(image)
    upright = image
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        upright = image.transpose(transpose)
    if orientation in _SWAPS_AXES:
        width, height = height, width

    reduce_by = 1
    if max_side_px is not None and full_decode:
        reduce_by = max(1, max(width, height) // max_side_px)
    pixels = _to_rgb_array(upright, reduce_by)
    return DecodedImage(
        pixels=pixels,
        original_size_px=(width, height),
        scale=pixels.shape[1] / width,
        format=format_name,
    )


def _orientation(image: Image.Image) -> int:
    """EXIF (or XMP) orientation, 1 when absent, unknown or unreadable.

    Read after load(): PNG may store EXIF after the pixel data. A damaged EXIF
    block does not make the picture unusable, so it is ignored, not refused.
    """
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_TRANSPOSE else 1


def _to_rgb_array(image: Image.Image, reduce_by: int = 1) -> np.ndarray:
    """RGB uint8, C-contiguous, ``reduce_by`` times smaller (box filter).

    Transparency is composited onto white.
    """
    if reduce_by > 1 and image.mode in _REDUCE_FIRST_MODES and "transparency" not in image.info:
        # Reducing first spares full-size copies (compositing makes three).
        # Pillow averages RGBA premultiplied, so compositing after is the same.
        image, reduce_by = image.reduce(reduce_by), 1
    rgb = _to_rgb(image)
    if reduce_by > 1:
        rgb = rgb.reduce(reduce_by)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        # Scale 16-bit samples to 8 bits (Pillow's convert() would clip at 255).
        grey = (np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    # PNG can also mark one palette entry (P) or one colour (L, RGB) transparent.
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Transparent areas carry arbitrary colour values; white is the neutral
        # background of ID and passport photos and never hides anything.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr
    return image


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise TooManyPixelsError(
            f"image is {width}×{height} = {width * height} pixels; the limit is {max_pixels}"
        )


def _jpeg_scans(raw: bytes) -> int:
    """Start-of-scan markers in a JPEG file (0 for other formats).

    Counted on the bytes: inside entropy-coded data a 0xFF is always followed
    by 0x00 or a marker, so the count is exact but for the same two bytes inside
    a metadata segment or an embedded thumbnail: an upper bound, never less.
    """
    return raw.count(_JPEG_START_OF_SCAN) if raw.startswith(_JPEG_MAGIC) else 0


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    """Canvas (width, height) from a WebP file's first chunk; None if not WebP or unreadable.

    Layouts from the WebP container specification: a RIFF header, then one of
    "VP8 " (lossy: 14-bit sizes after a start code), "VP8L" (lossless: 14-bit
    sizes minus one, bit-packed) or "VP8X" (extended: 24-bit canvas sizes minus one).
    """
    if len(raw) < 30 or raw[:4] != b"RIFF" or raw[8:12] != b"WEBP":
        return None
    chunk = raw[12:16]
    if chunk == b"VP8 " and raw[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", raw[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and raw[20] == 0x2F:
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(raw[24:27], "little") + 1, int.from_bytes(raw[27:30], "little") + 1
    return None


def _encoded_length(n_bytes: int) -> int:
    """Length of the padded base64 text of ``n_bytes`` bytes."""
    return (n_bytes + 2) // 3 * 4


def _looks_supported(raw: bytes) -> bool:
    return raw.startswith(_SUPPORTED_MAGIC) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")


def _refused_format(raw: bytes) -> str | None:
    for magic, name in _REFUSED_MAGIC.items():
        if raw.startswith(magic):
            return name
    if raw[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return None
