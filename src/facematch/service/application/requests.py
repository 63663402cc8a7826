"""The fields of a face-match request, as the use case validates them (the HTTP layer
reuses the model for its OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FaceMatchRequest(BaseModel):
    """Fields of ``POST /api/v1/face/match/`` (inside ``data`` for ``/api/v1.1/``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    first_img: str = Field(
        min_length=1,
        description="The selfie: base64 of a JPEG, PNG or WebP image (a data: URL prefix "
        "and line breaks are tolerated).",
    )
    second_img: str | None = Field(
        None,
        min_length=1,
        description="The ID-document photo, base64. This is the reference face: its "
        "descriptor is stored with the transaction. Required unless transaction_id is given.",
    )
    transaction_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Instead of second_img: the transaction_id of an earlier successful "
        "face-match transaction of the same organisation; first_img is matched against "
        "the reference face stored with it.",
    )
    bundle_key: str = Field(min_length=1, max_length=200, description="The bundle's key.")
    lang: Literal["en", "ar"] = Field("en", description="Language of error messages.")
