"""A KYC-style verification set generated from LFW: selfies against ID cards.

Each LFW pair (``pairsDevTest.txt``, ...) becomes one selfie × ID-card pair:
the selfie is made from the pair's first image, the card from the second, so
genuine and impostor labels are LFW's own. Nothing is stored in the
repository: images are rendered at run time (Pillow only) into a cache folder
and reused while the generator version and seed are the same.

Selfies (display size; faces of varied size, soft-edged on a blurred scene):

* ``selfie-640x480`` — landscape webcam frame;
* ``selfie-480x640`` — portrait phone frame;
* ``selfie-12mp`` — a 12-megapixel phone photo whose pixels are stored
  sideways with an EXIF orientation tag (6 or 8; 1 for landscape shots).

ID cards (856×540, the ID-1 card at ~10 px/mm):

* ``card`` — a flat scan: guilloche-like background, header band, printed
  portrait of 120–175 px (face ≈ 80–120 px), a smaller faded ghost portrait,
  lines of text and an MRZ-like line, JPEG quality 55–65;
* ``card-photo`` — the same card photographed on a table (1280×960, tilted a
  few degrees, uneven light, JPEG 80–90).

A quarter of the cards are turned: 90° or 270° (sideways) or 180°.
Everything is drawn from a :class:`random.Random` seeded by (version, seed,
pair index), so the same seed renders the same bytes on the same Pillow and
font (DejaVu Sans when installed, else Pillow's bundled default font).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from facematch.evaluation.lfw import ImageKey, Pair, image_path

__all__ = [
    "CARD_SIZE_PX",
    "GENERATOR_VERSION",
    "ImageSpec",
    "Kind",
    "KycPair",
    "KycSet",
    "build_set",
    "plan_pairs",
    "render",
]

# Bump when rendering changes: cached files of another version are not reused.
GENERATOR_VERSION = 1
CARD_SIZE_PX = (856, 540)
# A 250 px LFW crop holds a face (dlib box) of about 108 px, centred.
LFW_SIDE_PX = 250
LFW_FACE_PX = 108
# The portrait cut from an LFW crop for a card: head and shoulders, 160×200.
PORTRAIT_CROP = (45, 30, 205, 230)
PORTRAIT_FACE_RATIO = LFW_FACE_PX / (PORTRAIT_CROP[2] - PORTRAIT_CROP[0])
PHOTO_SIZE_PX = (1280, 960)
MP12_SIZE_PX = (4000, 3000)
EXIF_ORIENTATION_TAG = 0x0112


class Kind(StrEnum):
    SELFIE_LANDSCAPE = "selfie-640x480"
    SELFIE_PORTRAIT = "selfie-480x640"
    SELFIE_12MP = "selfie-12mp"
    CARD = "card"
    CARD_PHOTO = "card-photo"


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to render one image (cheap; rendering is separate).

    ``rotation_deg`` is the clockwise turn given to a card's content (0, 90,
    180, 270); ``face_px`` the intended face side in the displayed image;
    ``size_px`` the (width, height) of the displayed image (EXIF applied).
    """

    name: str
    source: ImageKey
    kind: Kind
    rotation_deg: int
    exif_orientation: int | None
    face_px: int
    size_px: tuple[int, int]
    quality: int
    seed: int
    portrait_px: int = 0  # cards: width of the printed portrait on the 856×540 card

    @property
    def input_type(self) -> str:
        """The group it is timed and reported in: kind, plus how a card is turned."""
        turn = {90: " sideways", 270: " sideways", 180: " upside-down"}.get(self.rotation_deg, "")
        return f"{self.kind.value}{turn}"

    @property
    def identity(self) -> str:
        return self.source[0]


@dataclass(frozen=True)
class KycPair:
    index: int  # line of the pair in its LFW pairs file (from 0)
    selfie: ImageSpec
    card: ImageSpec
    same: bool


@dataclass(frozen=True)
class KycSet:
    folder: Path
    pairs: list[KycPair]

    def path(self, spec: ImageSpec) -> Path:
        return self.folder / f"{spec.name}.jpg"

    def images(self) -> list[ImageSpec]:
        """Every image of the set once, selfies then cards, in pair order."""
        return [p.selfie for p in self.pairs] + [p.card for p in self.pairs]


# --- planning -------------------------------------------------------------------


def _selfie_spec(rng: random.Random, index: int, key: ImageKey) -> ImageSpec:
    draw = rng.random()
    orientation = None
    if draw < 0.4:
        kind, size, share = Kind.SELFIE_LANDSCAPE, (640, 480), rng.uniform(0.22, 0.55)
    elif draw < 0.8:
        kind, size, share = Kind.SELFIE_PORTRAIT, (480, 640), rng.uniform(0.25, 0.55)
    else:
        kind, share = Kind.SELFIE_12MP, rng.uniform(0.18, 0.45)
        orientation = rng.choice((6, 6, 8, 1))  # most phone selfies are portrait
        width, height = MP12_SIZE_PX
        size = (width, height) if orientation == 1 else (height, width)
    return ImageSpec(
        name=f"{index:04d}-selfie",
        source=key,
        kind=kind,
        rotation_deg=0,
        exif_orientation=orientation,
        face_px=round(share * min(size)),
        size_px=size,
        quality=rng.randint(82, 92),
        seed=rng.getrandbits(32),
    )


def _card_spec(rng: random.Random, index: int, key: ImageKey) -> ImageSpec:
    photo = rng.random() < 0.25
    draw = rng.random()
    rotation = 0 if draw < 0.75 else 90 if draw < 0.85 else 270 if draw < 0.95 else 180
    portrait_px = rng.randint(120, 175)
    face_px = portrait_px * PORTRAIT_FACE_RATIO
    if photo:
        kind, size, quality = Kind.CARD_PHOTO, PHOTO_SIZE_PX, rng.randint(80, 90)
        face_px *= rng.uniform(0.55, 0.75) * PHOTO_SIZE_PX[0] / CARD_SIZE_PX[0]
    else:
        kind, size, quality = Kind.CARD, CARD_SIZE_PX, rng.randint(55, 65)
    if rotation in (90, 270):
        size = (size[1], size[0])
    return ImageSpec(
        name=f"{index:04d}-card",
        source=key,
        kind=kind,
        rotation_deg=rotation,
        exif_orientation=None,
        face_px=round(face_px),
        size_px=size,
        quality=quality,
        seed=rng.getrandbits(32),
        portrait_px=portrait_px,
    )


def plan_pairs(pairs: Iterable[Pair], *, seed: int = 0) -> list[KycPair]:
    """Selfie × card specs for LFW ``pairs`` (indexed by their order in the file)."""
    planned = []
    for index, pair in enumerate(pairs):
        # A reproducible benchmark, not a secret: a seeded generator is the point.
        rng = random.Random(f"kyc-v{GENERATOR_VERSION}-seed{seed}-pair{index}")  # noqa: S311
        planned.append(
            KycPair(
                index=index,
                selfie=_selfie_spec(rng, index, pair.first),
                card=_card_spec(rng, index, pair.second),
                same=pair.same,
            )
        )
    return planned


# --- rendering -------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def _oval_mask(size: tuple[int, int]) -> Image.Image:
    """A soft-edged oval: the pasted head blends into the scene without a square edge."""
    width, height = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse((0.06 * width, 0.0, 0.94 * width, 1.05 * height), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(1.0, width / 25)))


def _scene(source: Image.Image, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A blurred, upside-down version of the photo as the background (no upright face)."""
    width, height = size
    small = source.transpose(Image.Transpose.FLIP_TOP_BOTTOM).resize(
        (max(8, width // 16), max(8, height // 16)), Image.Resampling.BILINEAR
    )
    small = small.filter(ImageFilter.GaussianBlur(1.5 + rng.random()))
    return small.resize(size, Image.Resampling.BILINEAR)


def _render_selfie(source: Image.Image, spec: ImageSpec, rng: random.Random) -> Image.Image:
    width, height = spec.size_px
    canvas = _scene(source, spec.size_px, rng)
    side = round(LFW_SIDE_PX * spec.face_px / LFW_FACE_PX)
    head = source.resize((side, side), Image.Resampling.BICUBIC)
    centre_x = width / 2 + rng.uniform(-0.08, 0.08) * width
    centre_y = height * rng.uniform(0.42, 0.55)
    canvas.paste(
        head, (round(centre_x - side / 2), round(centre_y - side / 2)), _oval_mask(head.size)
    )
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.8, 1.15))
    return canvas


def _guilloche(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A security-print-like background: interfering sine waves on a pastel tint."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    p1, p2, p3 = rng.uniform(9, 15), rng.uniform(40, 90), rng.uniform(11, 19)
    wave = np.sin(2 * np.pi * x / p1 + 3 * np.sin(2 * np.pi * y / p2)) + np.sin(
        2 * np.pi * y / p3 + 2 * np.cos(2 * np.pi * x / p2)
    )
    base = np.array([rng.randint(205, 240) for _ in range(3)], np.float32)
    tint = np.array([rng.uniform(-9, 9) for _ in range(3)], np.float32)
    pixels = base[None, None, :] + wave[..., None] * tint[None, None, :]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _card_number(rng: random.Random, digits: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(digits))


def _render_card(source: Image.Image, spec: ImageSpec, rng: random.Random) -> Image.Image:
    width, height = CARD_SIZE_PX
    card = _guilloche(CARD_SIZE_PX, rng)
    draw = ImageDraw.Draw(card)
    band = tuple(rng.randint(40, 120) for _ in range(3))
    draw.rectangle((0, 0, width, 64), fill=band)
    draw.text((24, 14), "REPUBLIC OF EXAMPLE · IDENTITY CARD", font=_font(26), fill=(250, 250, 250))
    portrait_w = spec.portrait_px
    portrait_h = round(portrait_w * 1.25)
    portrait = source.crop(PORTRAIT_CROP).resize((portrait_w, portrait_h), Image.Resampling.BICUBIC)
    portrait = ImageEnhance.Color(portrait).enhance(rng.uniform(0.7, 0.95))
    portrait = ImageEnhance.Contrast(portrait).enhance(rng.uniform(0.85, 1.0))
    top = rng.randint(84, max(85, height - 60 - portrait_h))
    card.paste(portrait, (32, top))
    # The ghost: a small, faded, grey copy of the portrait (never a second person).
    ghost_w = round(portrait_w * rng.uniform(0.4, 0.5))
    ghost_h = round(ghost_w * 1.25)
    ghost_box = (width - 40 - ghost_w, height - 70 - ghost_h)
    ghost = portrait.convert("L").convert("RGB").resize((ghost_w, ghost_h))
    behind = card.crop((*ghost_box, ghost_box[0] + ghost_w, ghost_box[1] + ghost_h))
    card.paste(Image.blend(behind, ghost, rng.uniform(0.25, 0.4)), ghost_box)
    # Text fields beside the portrait, and an MRZ-like line at the bottom.
    names = spec.identity.split("_")
    left, line = 32 + portrait_w + 36, 92
    label_font, value_font = _font(15), _font(22)
    fields = [
        ("SURNAME", names[-1].upper()),
        ("GIVEN NAMES", " ".join(names[:-1] or names).upper()),
        (
            "DATE OF BIRTH",
            f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1940, 2004)}",
        ),
        ("DOCUMENT NO.", _card_number(rng, 9)),
        ("EXPIRY", f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(2027, 2036)}"),
    ]
    for label, value in fields:
        draw.text((left, line), label, font=label_font, fill=(90, 90, 110))
        draw.text((left, line + 17), value[:24], font=value_font, fill=(20, 20, 30))
        line += 52
    mrz = f"IDEXA{_card_number(rng, 9)}<<{spec.identity.upper().replace('_', '<')}"
    draw.text((24, height - 40), (mrz + "<" * 40)[:44], font=_font(22), fill=(30, 30, 30))
    return card.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7)))  # print and scan


def _photo_of(card: Image.Image, spec: ImageSpec, rng: random.Random) -> Image.Image:
    """The card photographed on a table: scaled, tilted, unevenly lit."""
    width, height = PHOTO_SIZE_PX
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    grain = 12 * np.sin(2 * np.pi * (x + 0.3 * y) / rng.uniform(25, 60))
    base = np.array([rng.randint(90, 160), rng.randint(70, 120), rng.randint(50, 90)], np.float32)
    table = Image.fromarray(np.clip(base + grain[..., None], 0, 255).astype(np.uint8))
    scale = spec.face_px / (spec.portrait_px * PORTRAIT_FACE_RATIO)
    shown = card.resize(
        (round(card.width * scale), round(card.height * scale)), Image.Resampling.BICUBIC
    ).convert("RGBA")
    tilted = shown.rotate(rng.uniform(-7, 7), Image.Resampling.BICUBIC, expand=True)
    left = (width - tilted.width) // 2 + rng.randint(-40, 40)
    top = (height - tilted.height) // 2 + rng.randint(-40, 40)
    table.paste(tilted, (left, top), tilted)
    light = 0.75 + 0.35 * (x / width) * rng.uniform(0.6, 1.0) + 0.1 * (y / height)
    lit = np.asarray(table, np.float32) * light[..., None]
    return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))


_TURN_CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,  # PIL's ROTATE_* turn counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}
# The transpose that stores a displayed image so that EXIF ``orientation`` restores it.
_STORE_FOR_ORIENTATION = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def render(spec: ImageSpec, lfw_root: Path) -> bytes:
    """The JPEG bytes of one planned image."""
    rng = random.Random(spec.seed)  # noqa: S311 (reproducible, not secret)
    with Image.open(image_path(lfw_root, spec.source)) as opened:
        source = opened.convert("RGB")
    if spec.kind in (Kind.CARD, Kind.CARD_PHOTO):
        image = _render_card(source, spec, rng)
        if spec.kind is Kind.CARD_PHOTO:
            image = _photo_of(image, spec, rng)
        if spec.rotation_deg:
            image = image.transpose(_TURN_CLOCKWISE[spec.rotation_deg])
    else:
        image = _render_selfie(source, spec, rng)
    out = io.BytesIO()
    if spec.exif_orientation is None:
        image.save(out, "JPEG", quality=spec.quality)
    else:
        stored = image
        if spec.exif_orientation in _STORE_FOR_ORIENTATION:
            stored = image.transpose(_STORE_FOR_ORIENTATION[spec.exif_orientation])
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = spec.exif_orientation
        stored.save(out, "JPEG", quality=spec.quality, exif=exif.tobytes())
    return out.getvalue()


def build_set(
    lfw_root: Path,
    pairs: list[Pair],
    out_dir: Path,
    *,
    seed: int = 0,
    only: Iterable[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> KycSet:
    """Render (or reuse from ``out_dir``) the set for LFW ``pairs``.

    ``only``: indexes of the pairs to keep (a subset renders only its images;
    each image is the same whichever subset it is rendered in).
    """
    planned = plan_pairs(pairs, seed=seed)
    if only is not None:
        keep = set(only)
        planned = [p for p in planned if p.index in keep]
    folder = Path(out_dir) / f"kyc-v{GENERATOR_VERSION}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    kyc = KycSet(folder, planned)
    for spec in kyc.images():
        target = kyc.path(spec)
        if not target.is_file():
            data = render(spec, lfw_root)
            temporary = target.with_suffix(".tmp")
            temporary.write_bytes(data)
            temporary.replace(target)  # a crash never leaves half a file under the real name
        if progress is not None:
            progress(1)
    return kyc
