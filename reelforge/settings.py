"""One `Settings` object, read from `REELFORGE_*` variables (and CLI flags), passed down.

Nothing in reelforge reads the environment anywhere else; `main()` builds a `Settings` and
hands it to the server, the worker and the stores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_WEBHOOK_RETRY_SCHEDULE_S", "Settings", "default_data_dir"]

DEFAULT_WEBHOOK_RETRY_SCHEDULE_S: tuple[float, ...] = (
    5,
    30,
    120,
    600,
    1800,
    3600,
    10800,
    21600,
    43200,
)
"""Nine retries over about 22.7 hours: a receiver down for most of a day still gets it."""
MIN_KLING_SECRET_CHARS = 32


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def default_data_dir() -> Path:
    """The per-user data folder: `$XDG_DATA_HOME/reelforge`, else `~/.local/share/reelforge`.

    Per user rather than per working directory, so a server started from another folder
    finds the same jobs instead of starting an empty database beside it.
    """
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says to ignore a relative path.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "reelforge"


class Settings(BaseSettings):
    """Configuration of a reelforge server or worker; every field has a working default."""

    model_config = SettingsConfigDict(
        env_prefix="REELFORGE_", extra="ignore", populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="Address the API server binds.")
    port: int = Field(default=8000, description="Port the API server binds.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded SQLite database, local artifacts and the URL "
        "signing secret live: $XDG_DATA_HOME/reelforge, else ~/.local/share/reelforge.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the job database; empty means SQLite in data_dir. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    storage_url: str = Field(
        default="",
        description="Where artifacts are stored; empty means data_dir/artifacts. file:///path, "
        "or s3://bucket/prefix for an S3-compatible store (see the s3_* settings).",
    )
    s3_endpoint_url: str = Field(
        default="",
        description="Endpoint of a non-AWS S3-compatible store (SeaweedFS, MinIO, R2, ...), "
        "e.g. http://127.0.0.1:8333; empty means AWS S3 (or AWS_ENDPOINT_URL).",
    )
    s3_region: str = Field(
        default="",
        description="Region of the S3 bucket; empty means AWS_REGION / AWS_DEFAULT_REGION, "
        "else us-east-1.",
    )
    s3_allow_http: bool = Field(
        default=False,
        description="Allow a plain http:// S3 endpoint (a store on loopback or a trusted "
        "network); credentials and artifacts then travel unencrypted.",
    )
    s3_access_key_id: str = Field(
        default="",
        description="S3 access key; empty means the standard AWS_ACCESS_KEY_ID (and "
        "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), which obstore reads itself.",
    )
    s3_secret_access_key: str = Field(
        default="",
        description="S3 secret key, with s3_access_key_id; empty means AWS_SECRET_ACCESS_KEY.",
    )
    public_links: Literal["signed", "presigned"] = Field(
        default="signed",
        description="The file links in generation objects: `signed`, this server's own "
        "expiring /files links (it streams the file from the store), or `presigned`, the "
        "S3 store's presigned GET URLs (clients download from the store directly; needs an "
        "s3:// storage_url).",
    )
    public_base_url: str = Field(
        default="",
        description="Base URL that clients reach this server at (behind a proxy); "
        "empty means the URL each request came in on.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted bearer keys, comma-separated. With none, only loopback "
        "clients are served.",
    )
    kling_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Kling API credentials, comma-separated ACCESS:SECRET pairs, each its "
        "own tenant: Kling clients sign a JWT (HS256, `iss` = ACCESS) with SECRET. With "
        "neither these nor API keys, only loopback clients are served.",
    )
    models_file: Path | None = Field(
        default=None, description="TOML model registry; empty means the built-in defaults."
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra registry entries ID=ENGINE[:CHECKPOINT], comma-separated; "
        "they override the file.",
    )
    models_dir: Path = Field(
        default=Path.home() / ".cache" / "reelforge" / "models",
        description="Where `reelforge models pull` downloads catalog models.",
    )
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        default=1,
        description="Worker processes `serve` starts; `auto`: one per visible CUDA device "
        "(each pinned to it with CUDA_VISIBLE_DEVICES), or one on the CPU when there is none.",
    )
    api_processes: int = Field(
        default=1,
        ge=1,
        description="API server processes `serve` runs on the one port (uvicorn workers), "
        "for a machine with more cores than one process uses.",
    )
    device: str = Field(
        default="auto",
        description="Torch device for engines: auto, cpu, cuda, or cuda:N (the worker is "
        "pinned to that one GPU). With workers=auto each worker gets its own GPU instead.",
    )
    cuda_visible_devices: str | None = Field(
        default=None,
        validation_alias=AliasChoices("cuda_visible_devices", "CUDA_VISIBLE_DEVICES"),
        description="CUDA's own variable (no REELFORGE_ prefix): the GPUs workers=auto and "
        "cuda:N choose from; unset means every GPU of the machine.",
    )
    video_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        default="ultrafast",
        description="libx264's preset for the mp4 (quality is set apart, CRF 20): slower "
        "presets make smaller files of flat content (superfast: up to a third the size) for "
        "more encoding time (about twice ultrafast's: 1.6 against 0.8 s for a 5 s 720p "
        "clip on two cores).",
    )
    drain_seconds: float = Field(
        default=60.0,
        ge=0,
        description="On SIGTERM a worker stops claiming and gives its running job this long "
        "to finish; past it the job is handed back to the queue without spending an attempt.",
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a claim lasts without a heartbeat; every worker and API "
        "process looks for expired ones every quarter of it and requeues their jobs.",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Runs a job gets before a lost worker fails it."
    )
    poll_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often an idle worker looks for work; on PostgreSQL a fallback, "
        "since workers are woken by NOTIFY when a job of their models is queued.",
    )
    listen_for_jobs: bool = Field(
        default=True,
        description="On PostgreSQL, workers LISTEN on one extra connection each and claim "
        "a new job at once; false: they only poll (behind a pooler that cannot LISTEN, "
        "e.g. PgBouncer in transaction mode).",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, description="Largest accepted request body."
    )
    image_max_bytes: int = Field(
        default=10 * 1024 * 1024, description="Largest accepted input image."
    )
    image_max_pixels: int = Field(
        default=36_000_000, description="Most pixels an input image may decode to."
    )
    image_fetch_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="Total time limit for fetching one image_url (waiting for a slot, DNS, "
        "connecting, redirects and every byte).",
    )
    image_fetch_concurrency: int = Field(
        default=16, ge=1, description="Image downloads one API process runs at once."
    )
    image_decode_budget_pixels: int = Field(
        default=40_000_000,
        ge=1,
        description="Pixels of input images one API process decodes at once (at least one "
        "image of image_max_pixels); further images wait, bounding memory.",
    )
    allow_private_urls: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "allow_private_urls",
            "REELFORGE_ALLOW_PRIVATE_URLS",
            "allow_private_image_urls",
            "REELFORGE_ALLOW_PRIVATE_IMAGE_URLS",  # the older, image-only name
        ),
        description="Let client-named URLs (image_url, webhook_url) reach loopback and "
        "private networks "
        "(not link-local or cloud metadata addresses). Off: a server must not be made to "
        "fetch from its own network.",
    )
    outbound_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks client-named URLs may reach beyond the public internet, "
        "comma-separated: 'loopback', 'private' or CIDRs such as 10.20.0.0/16 (only a CIDR "
        "opens link-local or metadata addresses).",
    )
    database_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long the API waits for the job database (a connection, or one "
        "request's reads and writes) before answering 503 with Retry-After.",
    )
    database_connect_timeout_s: float = Field(
        default=5.0,
        ge=2,
        description="PostgreSQL: longest wait for a new connection (whole seconds, at least 2).",
    )
    database_statement_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="PostgreSQL: longest statement; a connection that has not answered a "
        "second after that is closed and replaced.",
    )
    database_pool_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a free pooled database connection."
    )
    sqlite_busy_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="SQLite: how long a worker waits for the write lock (the API waits at most "
        "database_timeout_s).",
    )
    api_database_threads: int = Field(
        default=16, ge=1, description="Threads of one API process that talk to the database."
    )
    file_url_ttl_s: int = Field(
        default=7 * 24 * 3600, description="How long a signed artifact URL stays valid."
    )
    url_signing_secret: str = Field(
        default="",
        description="Secret for signing artifact URLs; empty means one kept in data_dir.",
    )
    retention_hours: float = Field(
        default=168,
        ge=0,
        description="How long a generation and its files are kept, counted from its "
        "creation (as the links it hands out last 168 h); the API's sweeper removes it once "
        "finished and older. Applies to generations created afterwards; 0 keeps them until "
        "deleted.",
    )
    sweep_interval_s: float = Field(
        default=60,
        gt=0,
        description="How often the retention sweeper of each API process runs, in seconds.",
    )
    event_stream_limit: int = Field(
        default=200,
        ge=1,
        description="Event streams (GET …/{id}/events) one API process serves at once; "
        "past it a new one is answered 503 (polling still works).",
    )
    event_stream_poll_interval_s: float = Field(
        default=0.25,
        ge=0.05,
        description="How often an event stream looks for its job's new events and progress: "
        "the most an event lags its transition.",
    )
    webhook_secret: str = Field(
        default="",
        description="Signing secret for webhooks, `whsec_` and base64 (Standard Webhooks); "
        "empty means one kept in data_dir (webhook-secret).",
    )
    webhook_retry_schedule_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_SCHEDULE_S),
        description="Seconds between a webhook's attempts, comma-separated, each ±20 % "
        "jitter; after the last one's attempt fails the delivery is given up. The default "
        "retries 9 times over about 23 hours.",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest one webhook attempt may take (DNS, connecting, sending, the "
        "answer's status); longer counts as a failure and is retried.",
    )
    webhook_poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often the webhook dispatcher looks for due deliveries."
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, description="Webhook attempts one API process makes at once."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level of the lines the server and workers log."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="The log's format, for reelforge and uvicorn alike: `text` (one readable "
        "line per record) or `json` (one JSON object per line, for log collectors).",
    )
    access_log: bool = Field(
        default=True,
        description="Log one line per HTTP request (request id, method, route, status, "
        "duration, tenant).",
    )
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a client may take to send a request's headers (from connecting, "
        "or from the start of the next request on a kept-alive connection); then 408.",
    )
    http_max_header_bytes: int = Field(
        default=65536, ge=4096, description="The most header bytes a request may have; 431."
    )
    http_body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a request body may stall between two chunks; then 408 and "
        "the connection is closed.",
    )
    http_body_deadline_s: float = Field(
        default=300.0,
        gt=0,
        description="The most time a request body may take in all, from the end of its "
        "headers, however steadily it trickles in; then 408 and the connection is closed.",
    )
    docs: Literal["keyed", "public", "off"] = Field(
        default="keyed",
        description="Who may read the OpenAPI document (`/openapi.json`, which `/docs` "
        "shows) and the model list (`/v1/models`): `keyed` (like the API's own reads; the docs "
        "page sends the key the studio keeps), `public` (anyone who reaches the port), `off` "
        "(no document, no docs page; `/v1/models` stays keyed).",
    )
    metrics: Literal["keyed", "public", "off"] = Field(
        default="keyed",
        description="Who may read the Prometheus metrics at `/metrics`: `keyed` (like the "
        "API's own reads: a key with the `read` scope, or a loopback client of a keyless "
        "server), `public` (anyone who reaches the port), `off` (no such route).",
    )
    metrics_max_age_s: float = Field(
        default=5.0,
        ge=0,
        description="How long an API process reuses the figures it read from the job "
        "database for `/metrics` (queue, generations, stages, workers), so frequent scrapes "
        "cost one set of reads per interval.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        # "~/videos" from a variable or a .env file, which no shell expanded.
        return value.expanduser()

    @field_validator(
        "api_keys",
        "kling_keys",
        "models",
        "outbound_allow_networks",
        "webhook_retry_schedule_s",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("kling_keys")
    @classmethod
    def _access_secret_pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            access, sep, secret = pair.partition(":")
            if not sep or not access.strip() or not secret.strip():
                raise ValueError("each Kling key must be ACCESS:SECRET")
            if len(secret.strip()) < MIN_KLING_SECRET_CHARS:
                # HS256 with a shorter secret is guessable offline from one token.
                raise ValueError(
                    f"the secret of Kling access key {access.strip()!r} must be at least "
                    f"{MIN_KLING_SECRET_CHARS} characters (generate one: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return value

    @property
    def kling_key_pairs(self) -> dict[str, str]:
        """Kling access key -> secret key."""
        pairs = (pair.partition(":") for pair in self.kling_keys)
        return {access.strip(): secret.strip() for access, _, secret in pairs}

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must not be negative")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'reelforge.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.data_dir / "artifacts").resolve().as_uri()

    def database_options(self, *, api: bool = False) -> dict[str, Any]:
        """Timeouts and pool size for `reelforge.jobs.open_store`; the API's SQLite lock wait
        is capped by its request deadline, since an answer after that is never read. The
        API's pool holds a connection per database thread, plus a few for its background
        loops; a worker needs its loop's and its heartbeat's."""
        busy = min(self.sqlite_busy_timeout_s, self.database_timeout_s) if api else None
        return {
            "connect_timeout_s": self.database_connect_timeout_s,
            "statement_timeout_s": self.database_statement_timeout_s,
            "pool_timeout_s": self.database_pool_timeout_s,
            "sqlite_busy_timeout_s": busy or self.sqlite_busy_timeout_s,
            "pool_size": self.api_database_threads + 4 if api else 4,
        }

    @property
    def outbound_networks(self) -> list[str]:
        """Every network client-named URLs may reach beyond the public internet."""
        opened = ["loopback", "private"] if self.allow_private_urls else []
        return [*opened, *self.outbound_allow_networks]

    @property
    def retention_s(self) -> float | None:
        """Seconds a generation is kept, or None to keep it until deleted."""
        return self.retention_hours * 3600 if self.retention_hours > 0 else None

    @property
    def lease_recovery_interval_s(self) -> float:
        # A lost worker's job waits at most a lease and a quarter before it is requeued.
        return self.lease_seconds / 4

    @property
    def heartbeat_interval_s(self) -> float:
        # Three renewals fit in one lease, so one slow beat does not lose the job.
        return self.lease_seconds / 3
