"""Python client of facematch, the self-hosted Valify Face Match API.

    from facematch_client import Client

    with Client("http://127.0.0.1:8000", username=..., password=..., client_id=...,
                client_secret=..., bundle_key=..., hmac_secret=...) as client:
        result = client.match("selfie.jpg", "id-card.jpg")

Public names are re-exported here; the underscore modules may change.
See docs/sdk.md.
"""

from facematch_client._async import AsyncClient
from facematch_client._client import Client
from facematch_client._core import MatchResult, RetryPolicy, Token, TransactionImages
from facematch_client._errors import *  # noqa: F403 - every catalogue exception
from facematch_client._errors import (
    ERRORS_BY_CODE,
    ApiError,
    DecryptionError,
    FacematchError,
    SignatureError,
    error_class,
)
from facematch_client._errors import __all__ as _error_names
from facematch_client._images import ImageInput

__version__ = "0.1.0"

__all__ = [
    "ERRORS_BY_CODE",
    "ApiError",
    "AsyncClient",
    "Client",
    "DecryptionError",
    "FacematchError",
    "ImageInput",
    "MatchResult",
    "RetryPolicy",
    "SignatureError",
    "Token",
    "TransactionImages",
    "error_class",
    *_error_names,
]
