"""Typed errors of the SDK: one class per entry of the server's error catalogue.

Hierarchy::

    FacematchError                 every error this package raises
    ├── SignatureError             a signed response whose ``hmac`` does not verify
    ├── DecryptionError            an inquiry / fetch-images envelope that cannot be opened
    └── ApiError                   the server answered with a catalogue error
        ├── RequestError           1001-1010  malformed request, 404, 405, 413, 415
        ├── TokenError             11xx       access token missing, invalid, expired, used up
        ├── BundleError            12xx       bundle key invalid, service not enabled
        ├── CapacityError          13xx       quota exhausted, server busy, timeout (429/503)
        ├── ServerError            15xx       server faults (500/503)
        ├── ImageError             20xx       the image cannot be used
        ├── FaceError              21xx       no face, several faces, face too small
        ├── ReferenceTransactionError 22xx    the reference transaction of match_reference
        ├── TransactionError       23xx       inquiry and fetch-images
        └── OAuthError             3xxx       the token endpoint (OAuth 2.0 error shape)

Each leaf class carries the catalogue ``code``; :func:`error_class` resolves a
code, falling back to the family of its range (so an entry added to the server
later is still raised as, say, a :class:`FaceError`). A test in the server's
suite checks every catalogue entry against this module.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ERRORS_BY_CODE",
    "OAUTH_ERRORS",
    "AccessTokenNotFoundError",
    "ApiError",
    "BadRequestError",
    "BodyTooLargeError",
    "BundleError",
    "BundleInvalidError",
    "CapacityError",
    "ConflictingFieldsError",
    "CorruptImageError",
    "DatabaseUnavailableError",
    "DecryptionError",
    "EngineUnavailableError",
    "FaceBlurredError",
    "FaceError",
    "FaceOverexposedError",
    "FaceTooDarkError",
    "FaceTooSmallError",
    "FaceTurnedError",
    "FaceUnusableError",
    "FacematchError",
    "ImageBadShapeError",
    "ImageError",
    "ImageTooComplexError",
    "ImageTooLargeError",
    "ImageTooManyPixelsError",
    "ImageTooSmallError",
    "ImageUnreadableError",
    "ImagesNotStoredError",
    "ImagesPurgedError",
    "InquiryConflictingFieldsError",
    "InternalServerError",
    "InvalidBase64Error",
    "InvalidFieldError",
    "InvalidJSONError",
    "InvalidLangError",
    "MethodNotAllowedError",
    "MissingFieldError",
    "MultipleFacesError",
    "NoFaceError",
    "NotFoundError",
    "OAuthError",
    "OAuthInvalidClientError",
    "OAuthInvalidGrantError",
    "OAuthInvalidRequestError",
    "OAuthSlowDownError",
    "OAuthUnsupportedGrantTypeError",
    "OverloadedError",
    "PublicKeyMissingError",
    "QuotaExhaustedError",
    "ReferenceModelMismatchError",
    "ReferenceNotFoundError",
    "ReferenceTransactionError",
    "RequestError",
    "RequestTimeoutError",
    "ServerError",
    "ServiceNotEnabledError",
    "SignatureError",
    "StoredDataUnreadableError",
    "TokenError",
    "TokenExpiredError",
    "TokenInvalidError",
    "TokenMissingError",
    "TokenTrialsExhaustedError",
    "TooManyConnectionsError",
    "TransactionError",
    "TransactionNotFoundError",
    "UnsupportedImageError",
    "UnsupportedMediaTypeError",
    "error_class",
]


class FacematchError(Exception):
    """Root of every error raised by facematch_client."""


class SignatureError(FacematchError):
    """A response that should be signed has a missing or wrong ``hmac`` header."""


class DecryptionError(FacematchError):
    """An inquiry / fetch-images envelope could not be opened with the private key."""


class ApiError(FacematchError):
    """The server refused the call with an entry of its error catalogue."""

    code: int | None = None
    """The catalogue code this class stands for (None on family classes)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_code: int | None,
        retry_after: float | None = None,
        transaction_id: str | None = None,
        trials_remaining: int | None = None,
        field: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.retry_after = retry_after
        self.transaction_id = transaction_id
        self.trials_remaining = trials_remaining
        self.field = field
        self.body = body

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, error_code={self.error_code}, "
            f"message={self.message!r})"
        )


class RequestError(ApiError):
    """The request was malformed (1001-1010)."""


class TokenError(ApiError):
    """The access token was missing, unknown, expired or used up (11xx)."""


class BundleError(ApiError):
    """The bundle key is invalid or not enabled for the service (12xx)."""


class CapacityError(ApiError):
    """Quota exhausted, server busy or out of time (13xx)."""


class ServerError(ApiError):
    """A fault on the server; quote ``body['request_id']`` to its administrator (15xx)."""


class ImageError(ApiError):
    """An image could not be used (20xx)."""


class FaceError(ApiError):
    """The faces in an image could not be used (21xx)."""


class ReferenceTransactionError(ApiError):
    """The reference transaction of :meth:`match_reference` cannot be used (22xx)."""


class TransactionError(ApiError):
    """Inquiry and fetch-images errors (23xx)."""


class OAuthError(ApiError):
    """The token endpoint refused the credentials or the grant (3xxx)."""


# --- one class per catalogue entry ------------------------------------------


class InvalidJSONError(RequestError):
    """``invalid_json``: 1001, HTTP 400."""

    code = 1001


class InvalidLangError(RequestError):
    """``invalid_lang``: 1002, HTTP 400."""

    code = 1002


class MissingFieldError(RequestError):
    """``missing_field``: 1003, HTTP 400."""

    code = 1003


class InvalidFieldError(RequestError):
    """``invalid_field``: 1004, HTTP 400."""

    code = 1004


class ConflictingFieldsError(RequestError):
    """``conflicting_fields``: 1005, HTTP 400."""

    code = 1005


class NotFoundError(RequestError):
    """``not_found``: 1006, HTTP 404."""

    code = 1006


class MethodNotAllowedError(RequestError):
    """``method_not_allowed``: 1007, HTTP 405."""

    code = 1007


class BodyTooLargeError(RequestError):
    """``body_too_large``: 1008, HTTP 413."""

    code = 1008


class UnsupportedMediaTypeError(RequestError):
    """``unsupported_media_type``: 1009, HTTP 415."""

    code = 1009


class BadRequestError(RequestError):
    """``bad_request``: 1010, HTTP 400."""

    code = 1010


class TokenMissingError(TokenError):
    """``token_missing``: 1101, HTTP 403."""

    code = 1101


class TokenInvalidError(TokenError):
    """``token_invalid``: 1102, HTTP 403."""

    code = 1102


class TokenExpiredError(TokenError):
    """``token_expired``: 1103, HTTP 403."""

    code = 1103


class TokenTrialsExhaustedError(TokenError):
    """``token_trials_exhausted``: 1104, HTTP 403."""

    code = 1104


class BundleInvalidError(BundleError):
    """``bundle_invalid``: 1201, HTTP 401."""

    code = 1201


class ServiceNotEnabledError(BundleError):
    """``service_not_enabled``: 1202, HTTP 401."""

    code = 1202


class QuotaExhaustedError(CapacityError):
    """``quota_exhausted``: 1301, HTTP 429."""

    code = 1301


class OverloadedError(CapacityError):
    """``overloaded``: 1302, HTTP 429."""

    code = 1302


class RequestTimeoutError(CapacityError):
    """``request_timeout``: 1303, HTTP 503."""

    code = 1303


class TooManyConnectionsError(CapacityError):
    """``too_many_connections``: 1304, HTTP 503."""

    code = 1304


class InternalServerError(ServerError):
    """``internal_error``: 1500, HTTP 500."""

    code = 1500


class EngineUnavailableError(ServerError):
    """``engine_unavailable``: 1501, HTTP 500."""

    code = 1501


class DatabaseUnavailableError(ServerError):
    """``database_unavailable``: 1502, HTTP 503."""

    code = 1502


class ImageUnreadableError(ImageError):
    """``image_unreadable``: 2000, HTTP 422."""

    code = 2000


class InvalidBase64Error(ImageError):
    """``invalid_base64``: 2001, HTTP 422."""

    code = 2001


class UnsupportedImageError(ImageError):
    """``unsupported_image``: 2002, HTTP 422."""

    code = 2002


class CorruptImageError(ImageError):
    """``corrupt_image``: 2003, HTTP 422."""

    code = 2003


class ImageTooLargeError(ImageError):
    """``image_too_large``: 2004, HTTP 422."""

    code = 2004


class ImageTooManyPixelsError(ImageError):
    """``image_too_many_pixels``: 2005, HTTP 422."""

    code = 2005


class ImageTooSmallError(ImageError):
    """``image_too_small``: 2006, HTTP 422."""

    code = 2006


class ImageBadShapeError(ImageError):
    """``image_bad_shape``: 2007, HTTP 422."""

    code = 2007


class ImageTooComplexError(ImageError):
    """``image_too_complex``: 2008, HTTP 422."""

    code = 2008


class FaceUnusableError(FaceError):
    """``face_unusable``: 2100, HTTP 422."""

    code = 2100


class NoFaceError(FaceError):
    """``no_face``: 2101, HTTP 422."""

    code = 2101


class MultipleFacesError(FaceError):
    """``multiple_faces``: 2102, HTTP 422."""

    code = 2102


class FaceTooSmallError(FaceError):
    """``face_too_small``: 2103, HTTP 422."""

    code = 2103


class FaceTooDarkError(FaceError):
    """``face_too_dark``: 2104, HTTP 422."""

    code = 2104


class FaceOverexposedError(FaceError):
    """``face_overexposed``: 2105, HTTP 422."""

    code = 2105


class FaceBlurredError(FaceError):
    """``face_blurred``: 2106, HTTP 422."""

    code = 2106


class FaceTurnedError(FaceError):
    """``face_turned``: 2107, HTTP 422."""

    code = 2107


class ReferenceNotFoundError(ReferenceTransactionError):
    """``reference_not_found``: 2201, HTTP 422."""

    code = 2201


class ReferenceModelMismatchError(ReferenceTransactionError):
    """``reference_model_mismatch``: 2202, HTTP 422."""

    code = 2202


class TransactionNotFoundError(TransactionError):
    """``transaction_not_found``: 2301, HTTP 404."""

    code = 2301


class AccessTokenNotFoundError(TransactionError):
    """``access_token_not_found``: 2302, HTTP 404."""

    code = 2302


class InquiryConflictingFieldsError(TransactionError):
    """``inquiry_conflicting_fields``: 2303, HTTP 400."""

    code = 2303


class ImagesNotStoredError(TransactionError):
    """``images_not_stored``: 2304, HTTP 404."""

    code = 2304


class ImagesPurgedError(TransactionError):
    """``images_purged``: 2305, HTTP 410."""

    code = 2305


class PublicKeyMissingError(TransactionError):
    """``public_key_missing``: 2306, HTTP 403."""

    code = 2306


class StoredDataUnreadableError(TransactionError):
    """``stored_data_unreadable``: 2307, HTTP 500."""

    code = 2307


class OAuthInvalidRequestError(OAuthError):
    """``oauth_invalid_request``: 3001, HTTP 400."""

    code = 3001


class OAuthInvalidClientError(OAuthError):
    """``oauth_invalid_client``: 3002, HTTP 401."""

    code = 3002


class OAuthInvalidGrantError(OAuthError):
    """``oauth_invalid_grant``: 3003, HTTP 400."""

    code = 3003


class OAuthUnsupportedGrantTypeError(OAuthError):
    """``oauth_unsupported_grant_type``: 3004, HTTP 400."""

    code = 3004


class OAuthSlowDownError(OAuthError):
    """``oauth_slow_down``: 3005, HTTP 429 (too many failed logins; see ``retry_after``)."""

    code = 3005


_FAMILIES: dict[int, type[ApiError]] = {
    10: RequestError,
    11: TokenError,
    12: BundleError,
    13: CapacityError,
    15: ServerError,
    20: ImageError,
    21: FaceError,
    22: ReferenceTransactionError,
    23: TransactionError,
    30: OAuthError,
}

ERRORS_BY_CODE: dict[int, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidJSONError,
        InvalidLangError,
        MissingFieldError,
        InvalidFieldError,
        ConflictingFieldsError,
        NotFoundError,
        MethodNotAllowedError,
        BodyTooLargeError,
        UnsupportedMediaTypeError,
        BadRequestError,
        TokenMissingError,
        TokenInvalidError,
        TokenExpiredError,
        TokenTrialsExhaustedError,
        BundleInvalidError,
        ServiceNotEnabledError,
        QuotaExhaustedError,
        OverloadedError,
        RequestTimeoutError,
        TooManyConnectionsError,
        InternalServerError,
        EngineUnavailableError,
        DatabaseUnavailableError,
        ImageUnreadableError,
        InvalidBase64Error,
        UnsupportedImageError,
        CorruptImageError,
        ImageTooLargeError,
        ImageTooManyPixelsError,
        ImageTooSmallError,
        ImageBadShapeError,
        ImageTooComplexError,
        FaceUnusableError,
        NoFaceError,
        MultipleFacesError,
        FaceTooSmallError,
        FaceTooDarkError,
        FaceOverexposedError,
        FaceBlurredError,
        FaceTurnedError,
        ReferenceNotFoundError,
        ReferenceModelMismatchError,
        TransactionNotFoundError,
        AccessTokenNotFoundError,
        InquiryConflictingFieldsError,
        ImagesNotStoredError,
        ImagesPurgedError,
        PublicKeyMissingError,
        StoredDataUnreadableError,
        OAuthInvalidRequestError,
        OAuthInvalidClientError,
        OAuthInvalidGrantError,
        OAuthUnsupportedGrantTypeError,
        OAuthSlowDownError,
    )
    if cls.code is not None
}
"""Catalogue code → exception class."""

OAUTH_ERRORS: dict[str, type[ApiError]] = {
    "invalid_request": OAuthInvalidRequestError,
    "invalid_client": OAuthInvalidClientError,
    "invalid_grant": OAuthInvalidGrantError,
    "unsupported_grant_type": OAuthUnsupportedGrantTypeError,
    "slow_down": OAuthSlowDownError,
}
"""The token endpoint's RFC 6749 ``error`` value → exception class."""


def error_class(error_code: int | None, status: int) -> type[ApiError]:
    """The class for a catalogue code: its own, else its range's family, else by status."""
    if error_code is not None:
        if error_code in ERRORS_BY_CODE:
            return ERRORS_BY_CODE[error_code]
        family = _FAMILIES.get(error_code // 100)
        if family is not None:
            return family
    if status in (429, 503):
        return CapacityError
    if status >= 500:
        return ServerError
    return ApiError
