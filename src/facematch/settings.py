"""Process configuration, read from ``FACEMATCH_*`` environment variables.

One class, built through :func:`get_settings` so tests can construct their own
``Settings(...)`` and pass it explicitly. Nothing here does work at import time.
Every field is listed in docs/configuration.md (a test checks this).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EmbedderName = Literal["onnx", "dlib"]
DetectorName = Literal["hog", "blazeface"]

# Longest access-token lifetime a bundle may set (1 hour, six times Valify's 600 s).
# A token is a bearer credential: the bound caps how long a leaked one works
# where nobody revokes it. Clients that need longer sessions use the refresh grant.
MAX_TOKEN_LIFETIME_S = 3600


class Settings(BaseSettings):
    """All settings of a facematch process. Units are in the field names."""

    model_config = SettingsConfigDict(env_prefix="FACEMATCH_", extra="ignore")

    # --- engine -------------------------------------------------------------
    embedder: EmbedderName = Field(
        "onnx", description="Embedding backend: 'onnx' (fast, default) or 'dlib' (reference)."
    )
    detector: DetectorName = Field(
        "blazeface",
        description="Face detector: 'blazeface' (CNN on onnxruntime, default) or 'hog' "
        "(dlib, the pipeline before issue 13); each has its own model id and calibration.",
    )
    onnx_threads: int = Field(
        1, ge=0, description="onnxruntime intra-op threads per session (0 = onnxruntime default)."
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(user_cache_dir("facematch")),
        description="Where derived files (the converted ONNX model) are cached.",
    )
    max_image_bytes: int = Field(
        5 * 1024 * 1024, gt=0, description="Largest accepted encoded image, in bytes (decoded)."
    )
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="Largest accepted image area in pixels (decompression bombs)."
    )
    max_full_decode_pixels: int = Field(
        16_000_000,
        gt=0,
        description="Largest accepted PNG/WebP area in pixels (no reduced decoding: decode cost).",
    )
    min_image_side_px: int = Field(64, gt=0, description="Smallest accepted image side, in pixels.")
    min_face_px: int = Field(
        40, gt=0, description="Smallest face (box side, in original pixels) the engine accepts."
    )
    mirror_descriptor: bool = Field(
        True,
        description="Average each face's descriptor with its mirror image's, at unit length "
        "(model id dlib-resnet-v1+mirror-l2). false: the plain descriptor (dlib-resnet-v1), "
        "e.g. to keep comparing references stored before it.",
    )
    quality_checks: bool = Field(
        True,
        description="Refuse faces that are too dark, over-exposed, blurred or turned away "
        "(docs/accuracy.md has the limits).",
    )
    match_threshold: float | None = Field(
        None,
        gt=0,
        description="Distance below which two faces are 'similar'. Default: the calibrated "
        "threshold for FMR 1e-3.",
    )
    calibration_file: Path | None = Field(
        None,
        description="Calibration JSON to use instead of the one shipped for the model id "
        "(e.g. written by `facematch calibrate`); its model id must be the pipeline's "
        "(or the embedder's, which the HOG pipeline shares).",
    )

    # --- service ------------------------------------------------------------
    # (fields for the HTTP service, store and operations are added below)
    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("facematch")),
        description="Directory of the embedded SQLite database (used when database_url is "
        "unset) and of the calibrations `facematch calibrate` writes.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database, e.g. "
        "'postgresql+psycopg://user:pass@host:5432/facematch'. Default: SQLite file "
        "'facematch.sqlite3' in data_dir.",
    )
    host: str = Field("127.0.0.1", description="Interface `facematch serve` listens on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port `facematch serve` listens on.")
    workers: int = Field(
        0, ge=0, description="Worker processes of `facematch serve` (0 = one per CPU core)."
    )
    token_lifetime_s: int = Field(
        600,
        gt=0,
        le=MAX_TOKEN_LIFETIME_S,
        description="Access-token lifetime for new bundles, in seconds (each bundle stores "
        "its own); at most 3600.",
    )
    token_trials: int = Field(
        3,
        ge=1,
        description="Service calls one access token allows, for new bundles (each bundle stores "
        "its own).",
    )
    refresh_token_lifetime_s: int = Field(
        86_400, gt=0, description="How long a refresh token can be exchanged, in seconds."
    )
    token_throttle_username_failures: int = Field(
        10,
        ge=0,
        description="Failed token requests one username may make per token_throttle_window_s "
        "before it gets 429 slow_down (per worker process; 0 = no limit).",
    )
    token_throttle_client_failures: int = Field(
        50,
        ge=0,
        description="Failed token requests one client address may make per "
        "token_throttle_window_s before it gets 429 slow_down (per worker process; 0 = no limit).",
    )
    token_throttle_window_s: int = Field(
        900,
        gt=0,
        description="Window of the token endpoint's failure limits, in seconds: the limits "
        "drain evenly over it.",
    )
    password_hash_concurrency: int = Field(
        2,
        ge=1,
        description="Token requests whose password check (scrypt, 128 MiB each) runs at once "
        "per worker; further ones wait their turn.",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        gt=0,
        description="Largest accepted HTTP request body, in bytes (413 above it). Two 5 MiB "
        "images in base64 need about 14 MB.",
    )
    max_inflight_matches: int = Field(
        32,
        ge=1,
        description="Face-match requests processed or queued at once per worker; further ones "
        "get 429 until one finishes.",
    )
    warm_up: bool = Field(
        True, description="Run one synthetic match at startup so the first request is not slow."
    )

    # --- serving: CPU pool, limits, probes, logs (docs/operations.md) ---------
    cpu_threads: int = Field(
        0,
        ge=0,
        description="Threads per worker running face-engine work (0 = the cores available).",
    )
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest a request may take, queue wait included; later it gets the "
        "catalogue's timeout error and queued work for it is dropped.",
    )
    graceful_shutdown_s: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long in-flight requests may run before workers exit.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection must send a complete request head within this many seconds "
        "of opening and of each response, or it is closed.",
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="How long an idle keep-alive connection stays open, in seconds."
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=4096,
        description="Largest request head (request line and headers), in bytes; the "
        "connection is closed above it.",
    )
    max_connections: int = Field(
        512,
        ge=1,
        description="Open connections per worker; a further one gets a 503 JSON answer "
        "and is closed at once.",
    )
    api_docs: bool | None = Field(
        None,
        description="Serve /docs, /redoc and /openapi.json. Default: on in development, off "
        "in production (they describe the API to anyone who can reach the port).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, /metrics answers only requests with 'Authorization: Bearer "
        "<token>'. When unset, /metrics is open in development and off (404) in production.",
    )
    readiness_timeout_s: float = Field(
        1.0, gt=0, description="Time limit of each /readyz check (database ping), in seconds."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level of log records written."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="'json': one JSON object per line (production); 'text': for humans."
    )

    # --- transactions: encryption at rest, retention (docs/transactions.md) ---
    environment: Literal["development", "production"] = Field(
        "production",
        description="'development' lets the server create a local image key in data_dir when "
        "image_keys is unset; 'production' refuses to start without real keys.",
    )
    image_keys: SecretStr | None = Field(
        None,
        description="Keys encrypting stored images and bundle HMAC secrets: comma-separated "
        "'key_id:base64(32 bytes)'; the first encrypts new data, all of them decrypt.",
    )
    purge_interval_s: int = Field(
        3600,
        ge=0,
        description="How often the server purges images past their bundle's retention period, "
        "in seconds (0 = never; `facematch admin purge` still works).",
    )
    pending_grace_s: float = Field(
        300.0,
        ge=10,
        description="A transaction still 'pending' this many seconds after its request's "
        "deadline (request_timeout_s) belongs to a call that died: the periodic purge "
        "closes it as 'abandoned'.",
    )

    # --- clients: the demo page (docs/demo.md) ---------------------------------
    demo: bool | None = Field(
        None,
        description="Serve the demo page at /demo (and its token route). Default: on when "
        "environment is 'development', off in 'production'.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
