# ruff: noqa: N818 - the domain errors are named for the condition they report
"""The service's errors: the one catalogue, the one error tree, the one map between them.

**The catalogue.** Every error any endpoint returns is an :class:`ErrorEntry`
of :data:`CATALOGUE`: HTTP status, a stable numeric ``error_code``, and the
message in English and Arabic. Service endpoints answer ``{"message",
"error_code"}`` (plus ``field`` / ``transaction_id`` / ``trials_remaining``
when they apply); the OAuth token endpoint answers the OAuth 2.0 shape
``{"error", "error_description"}`` from the entries that carry an
``oauth_error``.

Codes by range: 1xxx request and protocol errors, 11xx access token, 12xx
bundle, 13xx capacity, 15xx server faults, 2xxx processing errors (the image
or its faces), 22xx reference transactions, 23xx transaction inquiry and
fetch-images, 3xxx OAuth token endpoint.

**The tree.** Everything the service layers raise on purpose derives from
:class:`ServiceError`; the application layer raises these domain errors and
knows nothing of HTTP::

    ServiceError
    ├── RequestRejected                 the request itself is malformed
    │   ├── InvalidJson, InvalidLang, BadRequest, UnsupportedMediaType
    │   ├── BodyTooLarge, InquiryConflictingFields
    │   └── FieldError                  names the offending ``field``
    │       └── MissingField, InvalidField, ConflictingFields
    ├── AccessDenied
    │   ├── TokenMissing, TokenInvalid, TokenExpired, TrialsExhausted
    │   └── BundleInvalid, ServiceNotEnabled, PublicKeyMissing
    ├── CapacityExceeded
    │   ├── QuotaExhausted
    │   ├── Overloaded                  ``retry_after_s``; the work pool is full
    │   ├── DeadlineExceeded            the request's deadline passed
    │   ├── TooManyConnections          ``retry_after_s``; the worker's connection limit
    │   └── DatabaseUnavailable         ``retry_after_s``
    ├── ResourceNotFound
    │   ├── RouteNotFound, MethodNotAllowed
    │   └── TransactionNotFound, AccessTokenNotFound, ImagesNotStored, ImagesPurged
    ├── ReferenceRejected
    │   └── ReferenceNotFound, ReferenceModelMismatch
    ├── ServerFault
    │   └── InternalError, StoredDataUnreadable
    └── OAuthRefusal                    answered in the OAuth 2.0 shape
        └── OAuthInvalidRequest, OAuthInvalidClient, OAuthInvalidGrant,
            OAuthUnsupportedGrantType, OAuthSlowDown (``retry_after_s``)

**The map.** :data:`ERROR_MAP` is the one declarative table from error class to
catalogue entry, for this tree and for every class of the engine's
(:mod:`facematch.engine.errors`). :func:`entry_for` resolves an exception
through its MRO, so a subclass without a row of its own gets its parent's.
The names in the table are checked when this module is imported: a typo fails
at import, never at a raise site.

**The writer.** :func:`error_reply` turns an error and the request's context
(language, trials left, transaction id) into status, JSON bytes and headers:
the app's exception handler, the pure-ASGI middleware and the transport-level
503 all write their errors through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    ErrorEntry(
        "too_many_connections",
        503,
        1304,
        "The server has too many open connections; retry later.",
        "لدى الخادم عدد كبير جدًا من الاتصالات المفتوحة؛ أعد المحاولة لاحقًا.",
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
    ErrorEntry(
        "oauth_slow_down",
        429,
        3005,
        "Too many failed attempts; retry after the number of seconds in Retry-After.",
        "محاولات فاشلة كثيرة جدًا؛ أعد المحاولة بعد عدد الثواني المذكور في Retry-After.",
        # RFC 8628's token-endpoint error for "send fewer requests".
        oauth_error="slow_down",
    ),
]

CATALOGUE: dict[str, ErrorEntry] = {entry.name: entry for entry in _ENTRIES}


def _check_catalogue() -> None:
    # Duplicate names or codes would make the docs and clients ambiguous.
    codes = [entry.code for entry in _ENTRIES]
    if len(CATALOGUE) != len(_ENTRIES) or len(set(codes)) != len(codes):
        raise RuntimeError("error catalogue has duplicate names or codes")


_check_catalogue()


# --- the tree -------------------------------------------------------------------------


class ServiceError(Exception):
    """Root of every error the service raises on purpose (see the module docstring).

    ``field`` names the request field at fault; ``close_connection`` asks the
    server to close the connection after the answer (the body was not read).
    """

    retry_after_s: int | None = None

    def __init__(
        self, detail: str = "", *, field: str | None = None, close_connection: bool = False
    ) -> None:
        super().__init__(detail or type(self).__name__)
        self.field = field
        self.close_connection = close_connection


class RequestRejected(ServiceError):
    """The request is malformed: nothing was spent on it."""


class InvalidJson(RequestRejected):
    pass


class InvalidLang(RequestRejected):
    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, field="lang")


class BadRequest(RequestRejected):
    pass


class UnsupportedMediaType(RequestRejected):
    pass


class BodyTooLarge(RequestRejected):
    def __init__(self, detail: str = "") -> None:
        # The rest of the body is not drained: the connection is closed instead.
        super().__init__(detail, close_connection=True)


class FieldError(RequestRejected):
    """A field of the request is at fault; ``field`` names it."""

    def __init__(self, field: str | None, detail: str = "") -> None:
        super().__init__(detail, field=field)


class MissingField(FieldError):
    pass


class InvalidField(FieldError):
    pass


class ConflictingFields(FieldError):
    pass


class InquiryConflictingFields(RequestRejected):
    pass


class AccessDenied(ServiceError):
    """The caller may not use this: token, bundle or registered key."""


class TokenMissing(AccessDenied):
    pass


class TokenInvalid(AccessDenied):
    pass


class TokenExpired(AccessDenied):
    pass


class TrialsExhausted(AccessDenied):
    pass


class BundleInvalid(AccessDenied):
    pass


class ServiceNotEnabled(AccessDenied):
    pass


class PublicKeyMissing(AccessDenied):
    pass


class CapacityExceeded(ServiceError):
    """Not now: quota, server capacity or time ran out."""


class QuotaExhausted(CapacityExceeded):
    pass


class Overloaded(CapacityExceeded):
    """The work pool is full; retry after ``retry_after_s`` seconds."""

    def __init__(self, *, retry_after_s: int, pending: int = 0, limit: int = 0) -> None:
        super().__init__(f"work pool full ({pending}/{limit} jobs admitted)")
        self.retry_after_s = retry_after_s
        self.pending = pending
        self.limit = limit


class DeadlineExceeded(CapacityExceeded):
    """The request's deadline passed before its work could finish."""


class TooManyConnections(CapacityExceeded):
    retry_after_s = 1


class DatabaseUnavailable(CapacityExceeded):
    """The database cannot be reached (restart, failover, network)."""

    # Long enough for a failover or restart to be noticed, short enough that
    # recovery is seen quickly.
    retry_after_s = 2


class ResourceNotFound(ServiceError):
    pass


class RouteNotFound(ResourceNotFound):
    pass


class MethodNotAllowed(ResourceNotFound):
    pass


class TransactionNotFound(ResourceNotFound):
    pass


class AccessTokenNotFound(ResourceNotFound):
    pass


class ImagesNotStored(ResourceNotFound):
    pass


class ImagesPurged(ResourceNotFound):
    pass


class ReferenceRejected(ServiceError):
    """The reference transaction named by ``transaction_id`` cannot be used."""


class ReferenceNotFound(ReferenceRejected):
    pass


class ReferenceModelMismatch(ReferenceRejected):
    pass


class ServerFault(ServiceError):
    """Our fault, not the client's: answered with a request id."""


class InternalError(ServerFault):
    pass


class StoredDataUnreadable(ServerFault):
    """Stored data cannot be decrypted with the configured keys."""


class OAuthRefusal(ServiceError):
    """A refusal of the token endpoint, answered in the OAuth 2.0 error shape."""


class OAuthInvalidRequest(OAuthRefusal):
    pass


class OAuthInvalidClient(OAuthRefusal):
    pass


class OAuthInvalidGrant(OAuthRefusal):
    pass


class OAuthUnsupportedGrantType(OAuthRefusal):
    pass


class OAuthSlowDown(OAuthRefusal):
    def __init__(self, *, retry_after_s: int) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


# --- the map --------------------------------------------------------------------------

_MAP_NAMES: dict[type[Exception], str] = {
    # The service's tree. Intermediate classes are never raised; their rows are
    # the fallback for a subclass added without one.
    ServiceError: "internal_error",
    RequestRejected: "bad_request",
    InvalidJson: "invalid_json",
    InvalidLang: "invalid_lang",
    BadRequest: "bad_request",
    UnsupportedMediaType: "unsupported_media_type",
    BodyTooLarge: "body_too_large",
    FieldError: "invalid_field",
    MissingField: "missing_field",
    InvalidField: "invalid_field",
    ConflictingFields: "conflicting_fields",
    InquiryConflictingFields: "inquiry_conflicting_fields",
    AccessDenied: "token_invalid",
    TokenMissing: "token_missing",
    TokenInvalid: "token_invalid",
    TokenExpired: "token_expired",
    TrialsExhausted: "token_trials_exhausted",
    BundleInvalid: "bundle_invalid",
    ServiceNotEnabled: "service_not_enabled",
    PublicKeyMissing: "public_key_missing",
    CapacityExceeded: "overloaded",
    QuotaExhausted: "quota_exhausted",
    Overloaded: "overloaded",
    DeadlineExceeded: "request_timeout",
    TooManyConnections: "too_many_connections",
    DatabaseUnavailable: "database_unavailable",
    ResourceNotFound: "not_found",
    RouteNotFound: "not_found",
    MethodNotAllowed: "method_not_allowed",
    TransactionNotFound: "transaction_not_found",
    AccessTokenNotFound: "access_token_not_found",
    ImagesNotStored: "images_not_stored",
    ImagesPurged: "images_purged",
    ReferenceRejected: "reference_not_found",
    ReferenceNotFound: "reference_not_found",
    ReferenceModelMismatch: "reference_model_mismatch",
    ServerFault: "internal_error",
    InternalError: "internal_error",
    StoredDataUnreadable: "stored_data_unreadable",
    OAuthRefusal: "oauth_invalid_request",
    OAuthInvalidRequest: "oauth_invalid_request",
    OAuthInvalidClient: "oauth_invalid_client",
    OAuthInvalidGrant: "oauth_invalid_grant",
    OAuthUnsupportedGrantType: "oauth_unsupported_grant_type",
    OAuthSlowDown: "oauth_slow_down",
    # The engine's tree (a test checks every class of it has a row).
    engine_errors.EngineError: "internal_error",
    engine_errors.InputError: "image_unreadable",
    engine_errors.ImageError: "image_unreadable",
    engine_errors.InvalidBase64Error: "invalid_base64",
    engine_errors.UnsupportedImageError: "unsupported_image",
    engine_errors.CorruptImageError: "corrupt_image",
    engine_errors.ImageTooLargeError: "image_too_large",
    engine_errors.TooManyPixelsError: "image_too_many_pixels",
    engine_errors.ImageTooSmallError: "image_too_small",
    engine_errors.ImageShapeError: "image_bad_shape",
    engine_errors.ImageTooComplexError: "image_too_complex",
    engine_errors.FaceError: "face_unusable",
    engine_errors.NoFaceError: "no_face",
    engine_errors.MultipleFacesError: "multiple_faces",
    engine_errors.FaceTooSmallError: "face_too_small",
    engine_errors.FaceTooDarkError: "face_too_dark",
    engine_errors.FaceOverExposedError: "face_overexposed",
    engine_errors.FaceBlurredError: "face_blurred",
    engine_errors.FaceTurnedError: "face_turned",
    engine_errors.ModelError: "engine_unavailable",
    engine_errors.ModelFormatError: "engine_unavailable",
}


def _build_map(names: Mapping[type[Exception], str]) -> dict[type[Exception], ErrorEntry]:
    unknown = sorted(set(names.values()) - set(CATALOGUE))
    if unknown:
        raise RuntimeError(f"error map names entries not in the catalogue: {unknown}")
    built = {cls: CATALOGUE[name] for cls, name in names.items()}
    for cls, entry in built.items():
        # The shape of the answer follows the class: OAuth refusals, and only they,
        # use the entries that carry an OAuth error.
        if issubclass(cls, OAuthRefusal) != (entry.oauth_error is not None):
            raise RuntimeError(f"{cls.__name__} is mapped to {entry.name}: wrong answer shape")
    return built


ERROR_MAP: Mapping[type[Exception], ErrorEntry] = _build_map(_MAP_NAMES)
"""Error class → catalogue entry, for the service's tree and the engine's."""


def entry_for(exc: BaseException) -> ErrorEntry:
    """The entry of the most specific mapped class in ``exc``'s MRO; else internal_error."""
    for cls in type(exc).__mro__:
        entry = ERROR_MAP.get(cls)
        if entry is not None:
            return entry
    return ERROR_MAP[InternalError]


# HTTP statuses raised by the framework itself (routing) → the class answering them.
_STATUS_ERRORS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    404: RouteNotFound,
    405: MethodNotAllowed,
    413: BodyTooLarge,
    415: UnsupportedMediaType,
    429: CapacityExceeded,  # answered as overloaded, with no Retry-After of our own
}


def error_for_status(status: int) -> ServiceError:
    """The error answering a bare HTTP status (framework errors); 5xx → internal_error."""
    cls = _STATUS_ERRORS.get(status)
    if cls is not None:
        return cls()
    return BadRequest() if 400 <= status < 500 else InternalError()


# --- the writer -----------------------------------------------------------------------

JSON_CONTENT_TYPE = "application/json"
OAUTH_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


@dataclass(frozen=True)
class ErrorReply:
    """An error answer ready to write: status, JSON body bytes, headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]

    def all_headers(self) -> list[tuple[str, str]]:
        """The headers with ``content-type`` and ``content-length`` first."""
        return [
            ("content-type", JSON_CONTENT_TYPE),
            ("content-length", str(len(self.body))),
            *self.headers,
        ]


def encode_json(content: Any) -> bytes:
    """The JSON encoding of every error body (compact, UTF-8, Arabic unescaped)."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_reply(
    exc: BaseException,
    *,
    lang: str = DEFAULT_LANG,
    trials_remaining: int | None = None,
    transaction_id: str | None = None,
    request_id: str | None = None,
) -> ErrorReply:
    """The one writer of error answers.

    ``exc`` picks the entry (through :func:`entry_for`), the answer's shape (OAuth
    or service) and its headers (``Retry-After``, ``Connection: close``); the
    keyword arguments are the request's context. ``request_id`` is added to
    server faults (5xx), so the administrator can find the log line.
    """
    entry = entry_for(exc)
    headers: list[tuple[str, str]] = []
    retry_after_s = getattr(exc, "retry_after_s", None)
    body: dict[str, Any]
    if entry.oauth_error is not None:
        body = {"error": entry.oauth_error, "error_description": entry.message(lang)}
        headers.extend(OAUTH_NO_STORE)
        if entry.status == 401:
            # RFC 6749 §5.2: a 401 invalid_client names the scheme the client may use.
            headers.append(("WWW-Authenticate", 'Basic realm="facematch"'))
    else:
        body = {"message": entry.message(lang), "error_code": entry.code}
        field = getattr(exc, "field", None)
        if field is not None:
            body["field"] = field
        if transaction_id is not None:
            body["transaction_id"] = transaction_id
        if trials_remaining is not None:
            body["trials_remaining"] = trials_remaining
        if entry.status >= 500 and request_id is not None:
            body["request_id"] = request_id
    if retry_after_s is not None:
        headers.append(("Retry-After", str(retry_after_s)))
    if getattr(exc, "close_connection", False):
        headers.append(("Connection", "close"))
    return ErrorReply(status=entry.status, body=encode_json(body), headers=tuple(headers))
