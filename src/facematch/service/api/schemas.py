"""Request and response models of the HTTP API (kept apart from the table models,
so hashes and embeddings can never be serialized by accident)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from facematch.service.application.requests import FaceMatchRequest

__all__ = [
    "ErrorResponse",
    "FaceMatchRequest",
    "FaceMatchRequestV11",
    "FaceMatchResponse",
    "FaceMatchResult",
    "OAuthErrorResponse",
    "TokenResponse",
]


class FaceMatchRequestV11(BaseModel):
    """``POST /api/v1.1/face/match/``: the same fields wrapped in ``data``."""

    data: FaceMatchRequest


class FaceMatchResult(BaseModel):
    is_similar: bool = Field(description="Whether both images show the same person.")
    confidence: float = Field(
        ge=0, le=1, description="Calibrated probability that they do (4 decimals)."
    )


class FaceMatchResponse(BaseModel):
    result: FaceMatchResult
    transaction_id: str = Field(description="Id of the recorded transaction.")
    trials_remaining: int = Field(description="Calls the access token still allows.")


class ErrorResponse(BaseModel):
    """Body of every error of the service endpoints."""

    message: str = Field(description="Human-readable message in the request's lang.")
    error_code: int = Field(description="Stable numeric code from the error catalogue.")
    field: str | None = Field(
        None, description="The request field the error is about, when there is one."
    )
    transaction_id: str | None = Field(
        None, description="Present when the call created a transaction."
    )
    trials_remaining: int | None = Field(
        None, description="Present when the call consumed a trial of the access token."
    )


class TokenResponse(BaseModel):
    access_token: str
    expires_in: int = Field(description="Lifetime of the access token in seconds.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name, not a secret
    scope: str
    refresh_token: str


class OAuthErrorResponse(BaseModel):
    """RFC 6749 §5.2 error body of the token endpoint."""

    error: Literal["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type"]
    error_description: str
