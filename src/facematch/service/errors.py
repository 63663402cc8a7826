"""The one error catalogue of the HTTP service.

Every error any endpoint returns is an :class:`ErrorEntry` of :data:`CATALOGUE`:
HTTP status, a stable numeric ``error_code``, and the message in English and
Arabic. Service endpoints answer ``{"message", "error_code"}`` (plus
``transaction_id`` / ``trials_remaining`` / ``field`` when they apply); the
OAuth token endpoint answers the OAuth 2.0 shape ``{"error",
"error_description"}`` from the entries that carry an ``oauth_error``.

Codes by range: 1xxx request and protocol errors, 11xx access token, 12xx
bundle, 13xx capacity, 15xx server faults, 2xxx processing errors (the image
or its faces), 22xx reference transactions, 23xx transaction inquiry and
fetch-images, 3xxx OAuth token endpoint.

:data:`ENGINE_ERRORS` maps every class of :mod:`facematch.engine.errors` to an
entry; :func:`entry_for_engine_error` resolves the most specific one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from facematch.engine import errors as engine_errors
from facematch.engine.envelope import MAX_ASPECT_RATIO, MAX_IMAGE_SIDE_PX

Lang = Literal["en", "ar"]
LANGS: tuple[Lang, ...] = ("en", "ar")
DEFAULT_LANG: Lang = "en"


@dataclass(frozen=True)
class ErrorEntry:
    """One documented error."""

    name: str
    status: int
    code: int
    en: str
    ar: str
    oauth_error: str | None = None  # set for the token endpoint's OAuth errors

    def message(self, lang: str) -> str:
        return self.ar if lang == "ar" else self.en


# The shape envelope's limits, as the image_bad_shape message states them.
_MAX_SIDE, _MAX_RATIO = MAX_IMAGE_SIDE_PX, f"{MAX_ASPECT_RATIO:g}"

_ENTRIES = [
    # --- request and protocol (1xxx) -----------------------------------------
    ErrorEntry(
        "invalid_json",
        400,
        1001,
        "The request body is not valid JSON.",
        "محتوى الطلب ليس بصيغة JSON صحيحة.",
    ),
    ErrorEntry(
        "invalid_lang",
        400,
        1002,
        "Unsupported value for lang; use 'en' or 'ar'.",
        "قيمة lang غير مدعومة؛ استخدم 'en' أو 'ar'.",
    ),
    ErrorEntry(
        "missing_field",
        400,
        1003,
        "A required field is missing.",
        "حقل مطلوب غير موجود.",
    ),
    ErrorEntry(
        "invalid_field",
        400,
        1004,
        "A field has an invalid value or type.",
        "أحد الحقول يحتوي على قيمة أو نوع غير صالح.",
    ),
    ErrorEntry(
        "conflicting_fields",
        400,
        1005,
        "Send either second_img or transaction_id, not both.",
        "أرسل second_img أو transaction_id، وليس كليهما.",
    ),
    ErrorEntry(
        "not_found",
        404,
        1006,
        "The requested resource was not found.",
        "المورد المطلوب غير موجود.",
    ),
    ErrorEntry(
        "method_not_allowed",
        405,
        1007,
        "This HTTP method is not allowed for this endpoint.",
        "طريقة HTTP هذه غير مسموح بها لهذه الواجهة.",
    ),
    ErrorEntry(
        "body_too_large",
        413,
        1008,
        "The request body is larger than the server accepts.",
        "حجم محتوى الطلب أكبر مما يقبله الخادم.",
    ),
    ErrorEntry(
        "unsupported_media_type",
        415,
        1009,
        "The request body must be JSON (Content-Type: application/json).",
        "يجب أن يكون محتوى الطلب بصيغة JSON (Content-Type: application/json).",
    ),
    ErrorEntry(
        "bad_request",
        400,
        1010,
        "The request is malformed.",
        "الطلب غير صحيح الصياغة.",
    ),
    # --- access token (11xx) -------------------------------------------------
    ErrorEntry(
        "token_missing",
        403,
        1101,
        "Authentication credentials were not provided.",
        "لم يتم تقديم بيانات المصادقة.",
    ),
    ErrorEntry(
        "token_invalid",
        403,
        1102,
        "The access token is invalid or has been revoked.",
        "رمز الوصول غير صالح أو تم إلغاؤه.",
    ),
    ErrorEntry(
        "token_expired",
        403,
        1103,
        "The access token has expired.",
        "انتهت صلاحية رمز الوصول.",
    ),
    ErrorEntry(
        "token_trials_exhausted",
        403,
        1104,
        "The access token has no trials left; request a new token.",
        "لم يتبقَّ لرمز الوصول أي محاولات؛ اطلب رمزًا جديدًا.",
    ),
    # --- bundle (12xx) -------------------------------------------------------
    ErrorEntry(
        "bundle_invalid",
        401,
        1201,
        "Invalid bundle key.",
        "مفتاح الباقة غير صالح.",
    ),
    ErrorEntry(
        "service_not_enabled",
        401,
        1202,
        "This bundle is not enabled for this service.",
        "هذه الباقة غير مفعّلة لهذه الخدمة.",
    ),
    # --- capacity (13xx) -----------------------------------------------------
    ErrorEntry(
        "quota_exhausted",
        429,
        1301,
        "The bundle has no transactions left; contact your administrator to recharge it.",
        "لم يتبقَّ في الباقة أي معاملات؛ تواصل مع المسؤول لإعادة شحنها.",
    ),
    ErrorEntry(
        "overloaded",
        429,
        1302,
        "The server is busy; retry after the number of seconds in Retry-After.",
        "الخادم مشغول؛ أعد المحاولة بعد عدد الثواني المذكور في Retry-After.",
    ),
    ErrorEntry(
        "request_timeout",
        503,
        1303,
        "The server could not finish the request in time; retry later.",
        "تعذّر على الخادم إنهاء الطلب في الوقت المحدد؛ أعد المحاولة لاحقًا.",
    ),
    # --- server faults (15xx) ------------------------------------------------
    ErrorEntry(
        "internal_error",
        500,
        1500,
        "Internal server error. Quote the request id to your administrator.",
        "خطأ داخلي في الخادم. أبلغ المسؤول برقم الطلب.",
    ),
    ErrorEntry(
        "engine_unavailable",
        500,
        1501,
        "The face engine is not available. Quote the request id to your administrator.",
        "محرك التعرف على الوجوه غير متاح. أبلغ المسؤول برقم الطلب.",
    ),
    ErrorEntry(
        "database_unavailable",
        503,
        1502,
        "The service is temporarily unavailable; retry after Retry-After seconds.",
        "الخدمة غير متاحة مؤقتًا؛ أعد المحاولة بعد عدد الثواني المذكور في Retry-After.",
    ),
    # --- processing: the image (20xx) ----------------------------------------
    ErrorEntry(
        "image_unreadable",
        422,
        2000,
        "The image cannot be read.",
        "تعذّرت قراءة الصورة.",
    ),
    ErrorEntry(
        "invalid_base64",
        422,
        2001,
        "The image is not valid base64.",
        "الصورة ليست بترميز base64 صالح.",
    ),
    ErrorEntry(
        "unsupported_image",
        422,
        2002,
        "The file is not a supported image; send JPEG, PNG or WebP.",
        "الملف ليس صورة مدعومة؛ أرسل JPEG أو PNG أو WebP.",
    ),
    ErrorEntry(
        "corrupt_image",
        422,
        2003,
        "The image is damaged or truncated.",
        "الصورة تالفة أو غير مكتملة.",
    ),
    ErrorEntry(
        "image_too_large",
        422,
        2004,
        "The image file is larger than the allowed size.",
        "حجم ملف الصورة أكبر من المسموح به.",
    ),
    ErrorEntry(
        "image_too_many_pixels",
        422,
        2005,
        "The image has more pixels than allowed.",
        "عدد بكسلات الصورة أكبر من المسموح به.",
    ),
    ErrorEntry(
        "image_too_small",
        422,
        2006,
        "The image is too small to verify a face.",
        "الصورة أصغر من أن يُتحقق فيها من الوجه.",
    ),
    ErrorEntry(
        "image_bad_shape",
        422,
        2007,
        f"The image is too long or too narrow; its longer side may be at most "
        f"{_MAX_SIDE} pixels and at most {_MAX_RATIO} times its shorter side.",
        f"الصورة طويلة أو ضيقة أكثر من اللازم؛ يجب ألا يتجاوز ضلعها الأطول {_MAX_SIDE} بكسل "
        f"ولا {_MAX_RATIO} أضعاف ضلعها الأقصر.",
    ),
    ErrorEntry(
        "image_too_complex",
        422,
        2008,
        "The image is encoded in too many passes to decode; send it as a baseline JPEG, "
        "PNG or WebP.",
        "الصورة مرمّزة على عدد كبير جدًا من المراحل بحيث يتعذّر فك ترميزها؛ أرسلها بصيغة JPEG "
        "عادية (baseline) أو PNG أو WebP.",
    ),
    # --- processing: the faces (21xx) ----------------------------------------
    ErrorEntry(
        "face_unusable",
        422,
        2100,
        "The face in the image cannot be used for verification.",
        "لا يمكن استخدام الوجه في الصورة للتحقق.",
    ),
    ErrorEntry(
        "no_face",
        422,
        2101,
        "No face was found in the image.",
        "لم يتم العثور على وجه في الصورة.",
    ),
    ErrorEntry(
        "multiple_faces",
        422,
        2102,
        "More than one face was found in the image; send a photo of one person.",
        "تم العثور على أكثر من وجه في الصورة؛ أرسل صورة لشخص واحد.",
    ),
    ErrorEntry(
        "face_too_small",
        422,
        2103,
        "The face in the image is too small; send a closer or larger photo.",
        "الوجه في الصورة صغير جدًا؛ أرسل صورة أقرب أو أكبر.",
    ),
    ErrorEntry(
        "face_too_dark",
        422,
        2104,
        "The face in the image is too dark; retake the photo in better light.",
        "الوجه في الصورة مظلم جدًا؛ أعد التقاط الصورة في إضاءة أفضل.",
    ),
    ErrorEntry(
        "face_overexposed",
        422,
        2105,
        "The face in the image is washed out by light or glare; retake the photo "
        "without direct light or flash on the face.",
        "الوجه في الصورة باهت بسبب الضوء أو الوهج؛ أعد التقاط الصورة دون ضوء مباشر "
        "أو فلاش على الوجه.",
    ),
    ErrorEntry(
        "face_blurred",
        422,
        2106,
        "The face in the image is blurred; hold the camera still and retake a sharp photo.",
        "الوجه في الصورة غير واضح؛ ثبّت الكاميرا وأعد التقاط صورة واضحة.",
    ),
    ErrorEntry(
        "face_turned",
        422,
        2107,
        "The face is turned away from the camera; retake the photo looking straight at it.",
        "الوجه غير مواجه للكاميرا؛ أعد التقاط الصورة وأنت تنظر مباشرة إليها.",
    ),
    # --- processing: reference transactions (22xx) --------------------------
    ErrorEntry(
        "reference_not_found",
        422,
        2201,
        "No successful face-match transaction with this transaction_id exists for "
        "your organisation.",
        "لا توجد معاملة مطابقة وجه ناجحة بهذا الرقم transaction_id لمؤسستك.",
    ),
    ErrorEntry(
        "reference_model_mismatch",
        422,
        2202,
        "The reference face was stored by a different face model; send both images again.",
        "تم حفظ الوجه المرجعي بنموذج وجوه مختلف؛ أرسل الصورتين مرة أخرى.",
    ),
    # --- transaction inquiry and fetch-images (23xx) -------------------------
    ErrorEntry(
        "transaction_not_found",
        404,
        2301,
        "No transaction with this transaction_id exists for your organisation.",
        "لا توجد معاملة بهذا الرقم transaction_id لمؤسستك.",
    ),
    ErrorEntry(
        "access_token_not_found",
        404,
        2302,
        "No access token of your organisation matches this access_token.",
        "لا يوجد رمز وصول لمؤسستك يطابق قيمة access_token هذه.",
    ),
    ErrorEntry(
        "inquiry_conflicting_fields",
        400,
        2303,
        "Send either transaction_id or access_token, not both.",
        "أرسل transaction_id أو access_token، وليس كليهما.",
    ),
    ErrorEntry(
        "images_not_stored",
        404,
        2304,
        "No images are stored for this transaction: image storage is off for its bundle, "
        "or the images could not be read when the transaction was made.",
        "لا توجد صور محفوظة لهذه المعاملة: حفظ الصور متوقف لهذه الباقة، "
        "أو تعذّرت قراءة الصور عند إجراء المعاملة.",
    ),
    ErrorEntry(
        "images_purged",
        410,
        2305,
        "The images of this transaction were deleted at the end of the retention period.",
        "تم حذف صور هذه المعاملة بانتهاء مدة الاحتفاظ بها.",
    ),
    ErrorEntry(
        "public_key_missing",
        403,
        2306,
        "Your organisation has no RSA public key registered; ask your administrator to "
        "register one before using this endpoint.",
        "لم تسجّل مؤسستك مفتاح RSA عامًا؛ اطلب من المسؤول تسجيله قبل استخدام هذه الواجهة.",
    ),
    ErrorEntry(
        "stored_data_unreadable",
        500,
        2307,
        "Stored data cannot be decrypted with the server's keys. Quote the request id to "
        "your administrator.",
        "تعذّر فك تشفير البيانات المحفوظة بمفاتيح الخادم. أبلغ المسؤول برقم الطلب.",
    ),
    # --- OAuth token endpoint (3xxx) -----------------------------------------
    ErrorEntry(
        "oauth_invalid_request",
        400,
        3001,
        "The token request is missing a parameter or is malformed.",
        "طلب الرمز ينقصه معامل أو غير صحيح الصياغة.",
        oauth_error="invalid_request",
    ),
    ErrorEntry(
        "oauth_invalid_client",
        401,
        3002,
        "Client authentication failed.",
        "فشلت مصادقة العميل.",
        oauth_error="invalid_client",
    ),
    ErrorEntry(
        "oauth_invalid_grant",
        400,
        3003,
        "Invalid credentials given.",
        "بيانات الاعتماد المقدمة غير صحيحة.",
        oauth_error="invalid_grant",
    ),
    ErrorEntry(
        "oauth_unsupported_grant_type",
        400,
        3004,
        "The grant type is not supported; use 'password' or 'refresh_token'.",
        "نوع المنح غير مدعوم؛ استخدم 'password' أو 'refresh_token'.",
        oauth_error="unsupported_grant_type",
    ),
]

CATALOGUE: dict[str, ErrorEntry] = {entry.name: entry for entry in _ENTRIES}


def _check_catalogue() -> None:
    # Duplicate names or codes would make the docs and clients ambiguous.
    codes = [entry.code for entry in _ENTRIES]
    if len(CATALOGUE) != len(_ENTRIES) or len(set(codes)) != len(codes):
        raise RuntimeError("error catalogue has duplicate names or codes")


_check_catalogue()

# Every class of the engine's error tree → its entry (a test checks completeness).
ENGINE_ERRORS: dict[type[engine_errors.EngineError], ErrorEntry] = {
    engine_errors.EngineError: CATALOGUE["internal_error"],
    engine_errors.InputError: CATALOGUE["image_unreadable"],
    engine_errors.ImageError: CATALOGUE["image_unreadable"],
    engine_errors.InvalidBase64Error: CATALOGUE["invalid_base64"],
    engine_errors.UnsupportedImageError: CATALOGUE["unsupported_image"],
    engine_errors.CorruptImageError: CATALOGUE["corrupt_image"],
    engine_errors.ImageTooLargeError: CATALOGUE["image_too_large"],
    engine_errors.TooManyPixelsError: CATALOGUE["image_too_many_pixels"],
    engine_errors.ImageTooSmallError: CATALOGUE["image_too_small"],
    engine_errors.ImageShapeError: CATALOGUE["image_bad_shape"],
    engine_errors.ImageTooComplexError: CATALOGUE["image_too_complex"],
    engine_errors.FaceError: CATALOGUE["face_unusable"],
    engine_errors.NoFaceError: CATALOGUE["no_face"],
    engine_errors.MultipleFacesError: CATALOGUE["multiple_faces"],
    engine_errors.FaceTooSmallError: CATALOGUE["face_too_small"],
    engine_errors.FaceTooDarkError: CATALOGUE["face_too_dark"],
    engine_errors.FaceOverExposedError: CATALOGUE["face_overexposed"],
    engine_errors.FaceBlurredError: CATALOGUE["face_blurred"],
    engine_errors.FaceTurnedError: CATALOGUE["face_turned"],
    engine_errors.ModelError: CATALOGUE["engine_unavailable"],
    engine_errors.ModelFormatError: CATALOGUE["engine_unavailable"],
}

# HTTP statuses raised by the framework itself (routing) → entry.
STATUS_ERRORS: dict[int, ErrorEntry] = {
    400: CATALOGUE["bad_request"],
    404: CATALOGUE["not_found"],
    405: CATALOGUE["method_not_allowed"],
    413: CATALOGUE["body_too_large"],
    415: CATALOGUE["unsupported_media_type"],
    429: CATALOGUE["overloaded"],
}


def entry_for_engine_error(exc: engine_errors.EngineError) -> ErrorEntry:
    """The entry of the most specific mapped class in ``exc``'s hierarchy."""
    for cls in type(exc).__mro__:
        if cls in ENGINE_ERRORS:
            return ENGINE_ERRORS[cls]  # type: ignore[index]
    return CATALOGUE["internal_error"]


def entry_for_status(status: int) -> ErrorEntry:
    """The entry for a bare HTTP status (framework errors); 5xx → internal_error."""
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    return CATALOGUE["bad_request"] if 400 <= status < 500 else CATALOGUE["internal_error"]


class ApiError(Exception):
    """Raised anywhere in the service to answer with one catalogue entry."""

    def __init__(
        self,
        entry: ErrorEntry | str,
        *,
        lang: str = DEFAULT_LANG,
        transaction_id: str | None = None,
        trials_remaining: int | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.entry = CATALOGUE[entry] if isinstance(entry, str) else entry
        super().__init__(self.entry.name)
        self.lang = lang
        self.transaction_id = transaction_id
        self.trials_remaining = trials_remaining
        self.field = field
        self.headers = headers

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.entry.message(self.lang),
            "error_code": self.entry.code,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.transaction_id is not None:
            body["transaction_id"] = self.transaction_id
        if self.trials_remaining is not None:
            body["trials_remaining"] = self.trials_remaining
        return body


class OAuthError(Exception):
    """Raised by the token endpoint; rendered in the OAuth 2.0 error shape."""

    def __init__(self, entry: ErrorEntry | str, *, lang: str = DEFAULT_LANG) -> None:
        self.entry = CATALOGUE[entry] if isinstance(entry, str) else entry
        if self.entry.oauth_error is None:
            raise ValueError(f"{self.entry.name} is not an OAuth error")
        super().__init__(self.entry.name)
        self.lang = lang

    def body(self) -> dict[str, str]:
        return {
            "error": self.entry.oauth_error or "invalid_request",
            "error_description": self.entry.message(self.lang),
        }

    @property
    def headers(self) -> dict[str, str] | None:
        # RFC 6749 §5.2: a 401 invalid_client names the scheme the client may use.
        if self.entry.status == 401:
            return {"WWW-Authenticate": 'Basic realm="facematch"'}
        return None
