"""All settings in one place.

Every setting comes from an environment variable with the ``SHELFCOUNT_`` prefix (the name is
the field name upper-cased), and every default runs as it is on a fresh machine. CLI flags
override the environment by passing keyword overrides to :func:`load_settings`.

The fields are a pydantic model: pydantic converts and checks the text of each variable (a
bad value names the variable). pydantic-settings was tried and not used: ``load_settings``
reads an explicit mapping (the tests and the CLI pass one) and keeps the unknown
``SHELFCOUNT_*`` variables for the plug-ins (``extra``, read by each sink's own settings
model), neither of which its environment source offers without reaching into its internals.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PREFIX = "SHELFCOUNT_"
REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseModel):
    """Runtime configuration; see README "Settings" for the documented meaning of each."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    # Where the catalog, the count store and stored photos live.
    data_dir: Path = Path("./data")
    # host:port of an external Triton (gRPC). Empty: start the embedded tritonserver.
    triton_url: str = ""
    # Where photos are kept: empty, <data_dir>/photos; s3://bucket/prefix, object storage
    # (endpoint, region and keys: SHELFCOUNT_S3_ENDPOINT, _REGION, _ACCESS_KEY, _SECRET_KEY).
    photo_store: str = ""
    # Gateway replicas on one database share the photos to count: a replica holds a photo for
    # this long and renews it while counting; a dead replica's photos go to another after it.
    lease_s: float = Field(30.0, ge=2.0, le=3600.0)
    model_repository: Path = REPO_ROOT / "triton_models"
    triton_start_timeout_s: float = 120.0
    triton_request_timeout_s: float = 30.0
    # How often the gateway checks which detector version is live (`shelfcount model
    # promote`) and has Triton load it; 0: never (the version Triton started with stays).
    model_poll_s: float = Field(5.0, ge=0.0, le=55.0)
    # Regular expression for bin location codes such as A-12-3.
    location_pattern: str = r"[A-Z]{1,2}-\d{1,3}-\d{1,2}"
    # Regular expression for SKU codes printed on labels, such as SKU-10234.
    sku_pattern: str = r"SKU-?[A-Z0-9]{3,12}"
    max_image_bytes: int = 25 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    # Gateway (issue 4).
    host: str = "0.0.0.0"
    port: int = 8080
    grpc_port: int = 8081
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    database_url: str = ""
    photo_retention_days: int = 30
    log_level: str = "WARNING"
    # Gateway limits and workers (issue 4).
    workers: int = 2  # threads counting stored photos
    preview_workers: int = 1  # threads counting live preview frames (never stored)
    max_message_bytes: int = 26 * 1024 * 1024  # one WebSocket / gRPC / HTTP message
    max_connections: int = 200  # concurrent WebSocket + HTTP API + gRPC stream connections
    max_sockets: int = 400  # open TCP connections to the HTTP port, idle keep-alive included
    header_timeout_s: float = 10.0  # TLS handshake + request line + headers must arrive by then
    read_timeout_s: float = 30.0  # a request body that sends nothing this long is dropped
    token_ttl_days: float = 0.0  # device tokens expire this long after pairing (0: never)
    photo_rate_per_min: float = 60.0  # stored photos per device per minute (burst: 10)
    preview_rate_per_s: float = 5.0  # preview frames per device per second (burst: 10)
    triton_retry_s: float = 2.0  # how often queued photos re-check Triton during an outage
    request_wait_s: float = 60.0  # REST/gRPC Count: how long to wait for a result
    ws_idle_timeout_s: float = 120.0  # a WebSocket silent this long is closed (the PWA pings)
    cameras_config: str = ""  # YAML of zones -> camera snapshot URLs + cron (default none)
    pwa_dir: Path = REPO_ROOT / "pwa"
    # A counted photo whose least sure line is below this Count_Confidence is marked "please
    # check" (the phone asks to look at the boxes; managers see it in the review queue).
    review_below: float = Field(0.6, ge=0.0, le=1.0)
    # Faces and whole people are found (Triton's face_detector, person_detector) and blurred in
    # the stored photo once it is counted; the count itself is made from the original pixels,
    # which are then dropped.
    blur_people: bool = True
    currency: str = "EUR"  # ISO 4217 code of Unit_Price / Total_Value, shown with values
    # Stock insights (issue 16): a bin with stock is a slow mover after this many days without
    # consumption, or with more than this many weeks of cover at its forecast demand.
    slow_mover_days: int = Field(60, ge=1, le=3650)
    slow_mover_weeks: float = Field(26.0, gt=0)
    # A drop between two counts this many standard deviations above the bin's usual demand
    # (and receipts) raises a shrinkage alert with a recount task.
    shrinkage_z: float = Field(3.0, gt=0)
    recount_days: int = Field(7, ge=1, le=90)  # a recount within this many days settles it
    # ABC classes by annual consumption value (cumulative shares A, B) and how often each
    # class is counted, in days (A, B, C).
    abc_shares: tuple[float, float] = (0.8, 0.95)
    count_every_days: tuple[int, int, int] = (30, 91, 365)
    # With Tryton configured, its done stock moves become receipts and shipments this often
    # (seconds; 0: only by `shelfcount moves sync`).
    tryton_moves_poll_s: float = Field(300.0, ge=0.0)
    # 1: at each such read, also write Tryton purchase order points from the forecast.
    tryton_order_points: bool = False
    # Blind counts: walkers are never shown the quantity a bin is expected to hold.
    blind_counts: bool = False
    # Unknown SHELFCOUNT_* variables, lower-cased without the prefix: the plug-ins' settings.
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("abc_shares", "count_every_days", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """"0.8,0.95" from the environment is a list of numbers."""
        return [v.strip() for v in value.split(",")] if isinstance(value, str) else value

    @field_validator("abc_shares")
    @classmethod
    def _shares(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1] < 1:
            raise ValueError("two shares with 0 < A < B < 1, such as 0.8,0.95")
        return value

    @field_validator("count_every_days")
    @classmethod
    def _every(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not all(1 <= v <= 3650 for v in value):
            raise ValueError("three whole numbers of days, 1-3650, such as 30,91,365")
        return value


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``env`` (default ``os.environ``) and explicit overrides.

    Unknown ``SHELFCOUNT_*`` variables are kept in ``extra`` so that plug-ins (sinks, cameras)
    can read their own settings without this module knowing them all. A value that is not of
    its setting's type is a ValueError naming the variable.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    extra: dict[str, str] = {}
    for key, raw in env.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):].lower()
        if name in Settings.model_fields and name != "extra":
            values[name] = raw
        else:
            extra[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values, extra=extra)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raw = env.get(PREFIX + name.upper(), overrides.get(name))
        raise ValueError(f"{PREFIX}{name.upper()}={raw!r}: {first['msg']}") from None
