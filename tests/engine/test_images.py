"""Image intake: formats, orientation, reduced decoding and every refusal."""

from __future__ import annotations

import base64
import io
import re
import struct
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.engine.errors import (
    CorruptImageError,
    ImageError,
    ImageTooComplexError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidBase64Error,
    TooManyPixelsError,
    UnsupportedImageError,
)
from facematch.engine.images import (
    Base64Image,
    DecodedImage,
    ImageLimits,
    decode_base64,
    decode_image,
    load_image,
    read_image_file,
)
from tests.conftest import lfw_image

MIB = 1024 * 1024


# --- builders ---------------------------------------------------------------


def gradient(width: int, height: int) -> np.ndarray:
    """A smooth RGB test card whose corners differ, so orientation is checkable."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    return rgb.astype(np.uint8)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg(width: int = 200, height: int = 100, **params: object) -> bytes:
    return encode(Image.fromarray(gradient(width, height)), "JPEG", quality=90, **params)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int) -> bytes:
    """A valid all-black 1-bit PNG of side×side, built without holding its pixels."""
    row = bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_chunk = 1000
    parts = []
    for start in range(0, side, rows_per_chunk):
        parts.append(compressor.compress(row * min(rows_per_chunk, side - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def bomb_30k() -> bytes:
    return png_bomb(30_000)


@pytest.fixture(scope="module")
def twelve_mp_jpeg() -> bytes:
    return jpeg(4000, 3000)


# --- accepted inputs --------------------------------------------------------


@pytest.mark.lfw
def test_real_face_jpeg_as_bytes_and_base64(lfw_root: Path) -> None:
    raw = lfw_image(lfw_root, "Aaron_Guiel", 1).read_bytes()
    expected = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    for data in (raw, base64.b64encode(raw).decode("ascii")):
        decoded = decode_image(data)
        assert decoded.format == "JPEG"
        assert decoded.original_size_px == (250, 250)
        assert decoded.scale == 1.0
        assert decoded.pixels.dtype == np.uint8
        assert decoded.pixels.flags.c_contiguous
        np.testing.assert_array_equal(decoded.pixels, expected)


@pytest.mark.parametrize(
    ("fmt", "params", "expected"),
    [("PNG", {}, "PNG"), ("WEBP", {"lossless": True}, "WEBP"), ("JPEG", {}, "JPEG")],
)
def test_supported_formats(fmt: str, params: dict[str, object], expected: str) -> None:
    source = gradient(120, 80)
    decoded = decode_image(encode(Image.fromarray(source), fmt, **params))
    assert decoded.format == expected
    assert decoded.pixels.shape == (80, 120, 3)
    assert decoded.original_size_px == (120, 80)
    if fmt != "JPEG":  # lossless formats round-trip exactly
        np.testing.assert_array_equal(decoded.pixels, source)


def test_multi_picture_jpeg_is_a_jpeg() -> None:
    # Phones write MPO (a JPEG followed by more JPEGs); Pillow calls it "MPO".
    first, second = Image.fromarray(gradient(160, 120)), Image.new("RGB", (80, 60))
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = decode_image(data, max_side_px=80)
    assert decoded.format == "JPEG"
    assert decoded.original_size_px == (160, 120)
    assert decoded.pixels.shape == (60, 80, 3)  # draft works on MPO too


def test_data_url_prefix_whitespace_and_newlines_are_accepted() -> None:
    raw = jpeg()
    text = base64.encodebytes(raw).decode("ascii")  # MIME style: a newline every 76 chars
    assert "\n" in text
    for wrapped in (
        f"data:image/jpeg;base64,{text}",
        f"  DATA:image/png;charset=utf-8;base64,\r\n{text.replace(chr(10), chr(13) + chr(10))}\n",
        f"\t{text} ",
        f"data:;base64,{text}",
    ):
        assert decode_base64(wrapped, max_bytes=MIB) == raw
        assert decode_base64(wrapped.encode("ascii"), max_bytes=MIB) == raw
        assert decode_image(wrapped).format == "JPEG"


def test_url_safe_alphabet_is_accepted() -> None:
    payload = bytes(range(256)) * 3  # contains bytes that encode to '+' and '/'
    standard = base64.b64encode(payload)
    assert b"+" in standard
    assert b"/" in standard
    assert decode_base64(base64.urlsafe_b64encode(payload), max_bytes=MIB) == payload


@pytest.mark.parametrize(
    ("mode", "fill"),
    [("L", 128), ("1", 1), ("P", 3), ("RGB", (10, 20, 30))],
)
def test_opaque_modes_become_rgb(mode: str, fill: object) -> None:
    image = Image.new(mode, (70, 70), fill)  # type: ignore[arg-type]
    expected = np.asarray(image.convert("RGB"))
    decoded = decode_image(encode(image, "PNG"))
    assert decoded.pixels.shape == (70, 70, 3)
    np.testing.assert_array_equal(decoded.pixels, expected)


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = Image.new("CMYK", (80, 80), (0, 255, 255, 0))  # pure red in CMYK
    pixels = decode_image(encode(image, "JPEG", quality=95)).pixels
    assert pixels.shape == (80, 80, 3)
    red, green, blue = pixels[40, 40].astype(int)
    assert red > 200
    assert max(green, blue) < 50


def test_transparency_is_composited_on_white() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (0, 0, 255, 255)  # opaque blue left half
    rgba[:, 32:] = (0, 0, 0, 0)  # fully transparent "black" right half
    for image in (Image.fromarray(rgba, "RGBA"), Image.fromarray(rgba, "RGBA").convert("LA")):
        pixels = decode_image(encode(image, "PNG")).pixels
        assert tuple(pixels[10, 50]) == (255, 255, 255)
        assert tuple(pixels[10, 10]) == tuple(np.asarray(image.convert("RGB"))[10, 10])
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0])
    palette.paste(1, (0, 0, 32, 64))
    pixels = decode_image(encode(palette, "PNG", transparency=0)).pixels
    assert tuple(pixels[10, 50]) == (255, 255, 255)
    assert tuple(pixels[10, 10]) == (200, 0, 0)


@pytest.mark.parametrize(
    ("mode", "key", "opaque"), [("L", 0, 200), ("RGB", (0, 0, 0), (200, 0, 0))]
)
def test_png_colour_key_transparency_is_composited_on_white(
    mode: str, key: object, opaque: object
) -> None:
    image = Image.new(mode, (64, 64), key)  # type: ignore[arg-type]
    image.paste(opaque, (0, 0, 32, 64))  # type: ignore[arg-type]
    pixels = decode_image(encode(image, "PNG", transparency=key)).pixels
    assert tuple(pixels[10, 50]) == (255, 255, 255)
    assert tuple(pixels[10, 10]) == tuple(np.asarray(image.convert("RGB"))[10, 10])


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = np.full((64, 64), 65535, np.uint16)
    grey[:, 32:] = 32768
    image = Image.fromarray(grey)
    assert image.mode.startswith("I;16")
    pixels = decode_image(encode(image, "PNG")).pixels
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 40]) == (128, 128, 128)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation: int, fmt: str) -> None:
    stored = Image.fromarray(gradient(300, 200))  # wide as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(stored, fmt, quality=95, exif=exif.tobytes()))
    assert decoded.format == fmt
    transposed = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270}.get(
        orientation, Image.Transpose.ROTATE_90
    )
    upright = np.asarray(stored.transpose(transposed)).astype(int)
    expected_size = (300, 200) if orientation == 3 else (200, 300)
    assert decoded.original_size_px == expected_size
    assert decoded.pixels.shape == (expected_size[1], expected_size[0], 3)
    # JPEG is lossy: compare means, not exact values.
    assert np.abs(decoded.pixels.astype(int) - upright).mean() < 3


@pytest.mark.parametrize(
    ("max_side_px", "expected_long_side"),
    [(1600, 2000), (1000, 1000), (500, 500), (400, 500), (3000, 4000), (5000, 4000)],
)
def test_large_jpeg_decodes_at_reduced_size(
    twelve_mp_jpeg: bytes, max_side_px: int, expected_long_side: int
) -> None:
    decoded = decode_image(twelve_mp_jpeg, max_side_px=max_side_px)
    height, width, _ = decoded.pixels.shape
    assert decoded.original_size_px == (4000, 3000)
    assert width == expected_long_side
    assert width >= min(max_side_px, 4000)
    assert decoded.scale == width / 4000
    assert height == round(3000 * decoded.scale)


def test_reduced_size_with_exif_rotation_is_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = jpeg(4000, 3000, exif=exif.tobytes())
    decoded = decode_image(data, max_side_px=1600)
    assert decoded.original_size_px == (3000, 4000)
    assert decoded.pixels.shape == (2000, 1500, 3)
    assert decoded.scale == 0.5


@pytest.mark.parametrize(
    ("fmt", "params"), [("PNG", {}), ("WEBP", {"lossless": True}), ("PNG", {"interlace": 1})]
)
def test_png_and_webp_are_reduced_by_a_whole_factor(fmt: str, params: dict[str, object]) -> None:
    # No reduced decoding for these formats: decoded at full size, then reduced
    # (box filter) by the largest whole factor keeping the longer side >= max_side_px.
    data = encode(Image.fromarray(gradient(800, 600)), fmt, **params)
    decoded = decode_image(data, max_side_px=250)
    assert decoded.pixels.shape == (200, 267, 3)  # 800 // 250 = 3, last box partial
    assert decoded.original_size_px == (800, 600)
    assert decoded.scale == 267 / 800
    assert decode_image(data, max_side_px=800).pixels.shape == (600, 800, 3)
    assert decode_image(data).pixels.shape == (600, 800, 3)


def test_reduction_keeps_transparency_and_sixteen_bit_rules() -> None:
    rgba = np.zeros((400, 400, 4), np.uint8)  # fully transparent black
    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"), max_side_px=100)
    assert decoded.pixels.shape == (100, 100, 3)
    assert (decoded.pixels == 255).all()  # composited onto white before reducing
    grey16 = Image.fromarray(np.full((400, 400), 0xFF00, np.uint16))
    decoded = decode_image(encode(grey16, "PNG"), max_side_px=100)
    assert decoded.pixels.shape == (100, 100, 3)
    assert (decoded.pixels == 0xFF).all()  # scaled, not clipped


def test_reducing_rgba_before_compositing_matches_compositing_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from facematch.engine import images

    rgba = np.random.default_rng(0).integers(0, 256, (600, 800, 4), dtype=np.uint8)
    data = encode(Image.fromarray(rgba, "RGBA"), "PNG")
    reduced_first = decode_image(data, max_side_px=250).pixels
    monkeypatch.setattr(images, "_REDUCE_FIRST_MODES", frozenset())
    composited_first = decode_image(data, max_side_px=250).pixels
    assert reduced_first.shape == composited_first.shape == (200, 267, 3)
    assert np.abs(reduced_first.astype(int) - composited_first).max() <= 2  # rounding only


@pytest.mark.parametrize(
    ("fmt", "params"), [("PNG", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 50})]
)
def test_png_and_webp_have_a_stricter_pixel_limit(fmt: str, params: dict[str, object]) -> None:
    # Full-size decoding costs ~20 ms of CPU per megapixel (docs/performance.md),
    # so these formats stop at 16 MP where JPEG (reduced decoding) goes to 40 MP.
    limits = ImageLimits()
    assert limits.full_decode_limit == 16_000_000 < limits.max_pixels
    flat = Image.new("L", (4000, 4001), 128)
    _refuse_without_allocating(encode(flat, fmt, **params), limits)
    decoded = decode_image(encode(flat.crop((0, 0, 4000, 4000)), fmt, **params), max_side_px=1280)
    assert decoded.original_size_px == (4000, 4000)
    assert decoded.pixels.shape == (1334, 1334, 3)


def test_issue_6000_square_png_refused_before_decoding() -> None:
    # 116 KB that cost ~4 s of CPU per call before the per-format limit.
    data = encode(Image.new("RGB", (6000, 6000), (128, 128, 128)), "PNG")
    assert len(data) < 200 * 1024
    assert _refuse_without_allocating(data, ImageLimits()) < 2 * MIB


def test_decoded_image_is_frozen() -> None:
    decoded = decode_image(jpeg())
    assert isinstance(decoded, DecodedImage)
    with pytest.raises(AttributeError):
        decoded.scale = 2.0  # type: ignore[misc]


# --- refusals ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n ",
        "not base64 at all!",
        "QUJD*RA==",  # character outside the alphabet
        "QUJDRA=",  # wrong padding
        "QUJDRA==QUJD",  # data after padding
        "QUJD-A+/",  # both alphabets at once
        "QUJDRA==é",
        "data:image/jpeg,QUJDRA==",  # data URL without ;base64
    ],
)
def test_invalid_base64(text: str) -> None:
    with pytest.raises(InvalidBase64Error):
        decode_base64(text, max_bytes=MIB)
    with pytest.raises(InvalidBase64Error):
        decode_image(text)


def test_over_byte_limit_raw_and_base64() -> None:
    raw = jpeg(300, 300)
    limits = ImageLimits(max_bytes=len(raw) - 1)
    with pytest.raises(ImageTooLargeError):
        decode_image(raw, limits=limits)
    with pytest.raises(ImageTooLargeError):
        decode_image(base64.b64encode(raw).decode("ascii"), limits=limits)
    assert decode_image(raw, limits=ImageLimits(max_bytes=len(raw))).format == "JPEG"


def test_base64_size_is_checked_before_decoding() -> None:
    # Not valid base64 either: the size refusal must come first, from the length alone.
    oversized = "!" * (8 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError):
            decode_base64(oversized, max_bytes=MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024  # nothing proportional to the input was allocated
    # Within the cheap pre-check's slack, the exact check still refuses before decoding.
    just_over = "!" * (4 * (MIB // 3 + 2))
    with pytest.raises(ImageTooLargeError):
        decode_base64(just_over, max_bytes=MIB)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.random.default_rng(0).bytes(5000), "not a JPEG, PNG or WebP"),
        (b"GIF89a" + bytes(100), "GIF"),
        (b"\x00", "not a JPEG"),
    ],
)
def test_not_an_accepted_image(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedImageError, match=message):
        decode_image(data)


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_other_formats_are_refused(fmt: str, name: str) -> None:
    data = encode(Image.fromarray(gradient(100, 100)), fmt)
    with pytest.raises(UnsupportedImageError, match=name):
        decode_image(data)


def test_empty_bytes_refused() -> None:
    with pytest.raises(UnsupportedImageError):
        decode_image(b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_corrupt(fmt: str) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(CorruptImageError):
        decode_image(data[: len(data) // 2])


def test_jpeg_cut_inside_its_header_is_corrupt() -> None:
    with pytest.raises(CorruptImageError):
        decode_image(jpeg()[:40])


def test_image_too_small() -> None:
    with pytest.raises(ImageTooSmallError):
        decode_image(encode(Image.new("RGB", (200, 63)), "PNG"))
    assert decode_image(encode(Image.new("RGB", (200, 64)), "PNG")).pixels.shape == (64, 200, 3)
    assert decode_image(
        encode(Image.new("RGB", (20, 20)), "PNG"), limits=ImageLimits(min_side_px=16)
    ).original_size_px == (20, 20)


def _refuse_without_allocating(data: bytes, limits: ImageLimits) -> int:
    """Assert TooManyPixelsError; return the traced peak and check Pillow made no image."""
    before = Image.core.get_stats()["new_count"]
    tracemalloc.start()
    try:
        with pytest.raises(TooManyPixelsError):
            decode_image(data, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Image.core.get_stats()["new_count"] == before  # Pillow allocated no pixel buffer
    return peak


def test_png_bomb_refused_before_decoding(bomb_30k: bytes) -> None:
    assert len(bomb_30k) < 200 * 1024  # 900 megapixels in ~110 KB
    peak = _refuse_without_allocating(bomb_30k, ImageLimits())
    assert peak < 4 * MIB


def test_bomb_under_pillows_own_limit_is_refused_by_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 8000×8000 = 64 MP: above our 40 MP default, below Pillow's warning threshold,
    # so only our header check can refuse it. Pillow's guard is also switched off
    # to show the engine does not depend on it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    bomb = png_bomb(8000)
    peak = _refuse_without_allocating(bomb, ImageLimits())
    assert peak < 2 * MIB
    peak = _refuse_without_allocating(jpeg(300, 200), ImageLimits(max_pixels=300 * 200 - 1))
    assert peak < 2 * MIB


def test_errors_share_the_image_error_branch() -> None:
    for data in (b"junk", "@@@", encode(Image.new("RGB", (8, 8)), "PNG")):
        with pytest.raises(ImageError):
            decode_image(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"max_pixels": -1},
        {"min_side_px": 0},
        {"max_full_decode_pixels": 0},
        {"max_jpeg_scan_pixels": 0},
    ],
)
def test_limits_must_be_positive(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ImageLimits(**kwargs)


def test_max_side_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_side_px"):
        decode_image(jpeg(), max_side_px=0)


def test_concurrent_calls_with_different_limits_do_not_interfere() -> None:
    # Limits are arguments, not globals: a strict caller and a lenient caller
    # running at the same time each get their own answer.
    data = jpeg(1200, 900)
    strict = ImageLimits(max_pixels=1200 * 900 - 1)

    def lenient() -> tuple[int, ...]:
        return decode_image(data, max_side_px=300).pixels.shape

    def refused() -> str:
        try:
            decode_image(data, limits=strict)
        except TooManyPixelsError:
            return "refused"
        return "accepted"

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(lenient if i % 2 else refused) for i in range(40)]
        results = [f.result() for f in futures]
    assert results[1::2] == [(225, 300, 3)] * 20
    assert results[0::2] == ["refused"] * 20


@pytest.mark.parametrize(
    ("params", "chunk"),
    [
        ({"lossless": True}, b"VP8L"),
        ({"quality": 80}, b"VP8 "),
        ({"lossless": True, "icc_profile": b"any profile"}, b"VP8X"),
    ],
)
def test_webp_canvas_checked_before_pillow_opens_it(
    params: dict[str, object], chunk: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libwebp allocates the canvas as soon as the file is opened, so the area
    # must be read from the raw header, before Image.open is reached.
    data = encode(Image.new("RGB", (300, 200)), "WEBP", **params)
    assert data[12:16] == chunk  # each of the three WebP layouts is covered
    assert decode_image(data).original_size_px == (300, 200)

    def must_not_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("Image.open was called for an over-limit WebP")

    monkeypatch.setattr(Image, "open", must_not_open)
    with pytest.raises(TooManyPixelsError, match="300×200"):
        decode_image(data, limits=ImageLimits(max_pixels=300 * 200 - 1))


# --- JPEG scans (decode cost) -------------------------------------------------


def _with_extra_scans(data: bytes, extra: int) -> bytes:
    """``data`` (a progressive JPEG) with its cheapest-looking scan repeated ``extra`` times.

    libjpeg decodes a repeated refinement scan as another pass over the image
    (it only warns), which is what makes a small file costly.
    """
    starts = [m.start() for m in re.finditer(b"\xff\xda", data)]
    scans = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data) - 2], strict=True)]
    return data[:-2] + min(scans[1:], key=len) * extra + data[-2:]


def test_jpeg_with_too_many_scans_is_refused_before_decoding() -> None:
    # 2000×1500 = 3 MP: 480 M scan-pixels allow 160 scans; libjpeg writes 10.
    data = jpeg(2000, 1500, progressive=True)
    assert data.count(b"\xff\xda") == 10
    decoded = decode_image(_with_extra_scans(data, 150), max_side_px=1280)
    assert decoded.original_size_px == (2000, 1500)
    crafted = _with_extra_scans(data, 151)
    before = Image.core.get_stats()["new_count"]
    with pytest.raises(ImageTooComplexError, match="161 scans"):
        decode_image(crafted, max_side_px=1280)
    assert Image.core.get_stats()["new_count"] == before  # refused before any pixel buffer


def test_scan_limit_scales_with_the_area() -> None:
    limits = ImageLimits(max_jpeg_scan_pixels=10 * 400 * 300)
    decode_image(jpeg(400, 300, progressive=True), limits=limits)  # 10 scans: at the limit
    with pytest.raises(ImageTooComplexError):
        decode_image(jpeg(401, 300, progressive=True), limits=limits)
    decode_image(jpeg(401, 300), limits=limits)  # baseline: one scan


@pytest.mark.slow
def test_standard_progressive_jpeg_at_the_pixel_limit_is_accepted() -> None:
    # 10 scans × 40 MP is within the default 12 × 40 MP.
    data = encode(Image.new("RGB", (8000, 5000), (90, 120, 150)), "JPEG", progressive=True)
    decoded = decode_image(data, max_side_px=1280)
    assert decoded.original_size_px == (8000, 5000)
    assert decoded.pixels.shape == (1250, 2000, 3)


# --- load_image: every input the matcher takes ------------------------------------


def test_load_image_reads_paths_and_wrapped_base64_like_bytes(tmp_path: Path) -> None:
    data = jpeg(160, 120)
    (tmp_path / "face.jpg").write_bytes(data)
    expected = decode_image(data).pixels
    for source in (
        data,
        str(tmp_path / "face.jpg"),
        tmp_path / "face.jpg",
        Base64Image(base64.b64encode(data).decode("ascii")),
    ):
        np.testing.assert_array_equal(load_image(source).pixels, expected)
    assert "characters" in repr(Base64Image("QUJD" * 1000))  # never the text itself


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(b"\xff\xd8\xff" + bytes(5000))
    with pytest.raises(ImageTooLargeError):
        read_image_file(tmp_path / "big.jpg", max_bytes=4096)
    with pytest.raises(FileNotFoundError, match="a str is a file path"):
        load_image("iVBORw0KGgo" * 100)  # base64 text is never decoded from a str


def test_an_array_is_checked_and_reduced_like_a_png() -> None:
    big = np.zeros((2000, 2600, 3), np.uint8)
    big[:, 1300:] = 200
    loaded = load_image(big, max_side_px=1280)
    assert loaded.pixels.shape == (1000, 1300, 3)
    assert (loaded.original_size_px, loaded.scale, loaded.format) == ((2600, 2000), 0.5, "ARRAY")
    assert loaded.pixels[500, 649, 0] == 0
    assert loaded.pixels[500, 650, 0] == 200
    small = np.zeros((100, 120, 3), np.uint8)
    assert load_image(small, max_side_px=1280).pixels is small  # nothing to do: no copy
    with pytest.raises(TooManyPixelsError):
        load_image(small, limits=ImageLimits(max_full_decode_pixels=10_000))
    with pytest.raises(ValueError, match="RGB uint8"):
        load_image(small.astype(np.float32))
