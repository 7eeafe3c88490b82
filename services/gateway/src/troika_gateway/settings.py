"""The gateway's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from troika_gateway.social.settings import SocialSettings
from troika_shared.approvals import approval_key
from troika_shared.files import FilesSettings
from troika_shared.llm import sees_images
from troika_shared.settings import BusSettings
from troika_shared.vault import call_secrets_key, stored_secrets_key

# Keys people copy from examples and tutorials: refused whatever their length.
_WELL_KNOWN_KEYS = frozenset(
    {
        "secret",
        "secret-key",
        "secret_key",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "please-change-me",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "super-secret-key",
        "development",
        "insecure",
        "troika",
        "password",
    }
)
MIN_SECRET_KEY_LENGTH = 32


class GatewaySettings(BusSettings, SocialSettings, FilesSettings):
    """Everything the gateway reads from ``TROIKA_*`` variables.

    Attributes:
        secret_key: Signs access tokens. Required: at least 32 characters, not a well-known value.
            ``troika up`` generates one into the data directory.
        database_url: SQLAlchemy URL: ``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``.
            Defaults to ``troika.db`` in the data directory.
        database_dead_client_s: How long PostgreSQL waits on a client that stopped answering
            (its transaction idle, or the data it sent unacknowledged) before it ends the
            session: a process whose host is cut off holds its locks no longer.
        metrics_token: The bearer token Prometheus sends to read ``/metrics``; unset, only
            requests from this machine (loopback) may read them.
        data_dir: Task files (unless they are in a bucket) and uploads on their way in.
        gateway_host: The address the API listens on.
        gateway_port: The API's port.
        redis_url: Redis or Valkey, for scheduling and rate limits.
        redis_prefix: Prefix of every key the gateway writes to Redis.
        ready_timeout_s: How long each readiness check may take.
        access_token_ttl_s: Lifetime of an access token.
        refresh_token_ttl_s: Lifetime of a refresh token (a session), renewed on each refresh.
        max_json_bytes: Largest JSON request body.
        max_upload_bytes: Largest uploaded file.
        max_photo_bytes: Largest profile photo.
        login_attempts_per_account: Wrong passwords for one account within the window before
            that address may not try it again, and before the account is slowed down for
            addresses it never signed in from.
        login_attempts_per_address: Password attempts from one client address in the window.
        login_window_s: How long a failed attempt counts.
        login_slowdown_max_s: The longest wait between attempts on a slowed-down account.
        trusted_proxies: Peers whose ``X-Forwarded-For`` names the real client (the web app,
            a reverse proxy): login limits and the audit trail then count people, not the proxy.
        password_time_cost: Argon2id passes per hash (more is slower for attackers and for us).
        password_memory_kib: Argon2id memory per hash, in KiB.
        stuck_denials: Denied tool calls in one task before it asks for guidance.
        stuck_tool_failures: Consecutive failed tool calls before it asks.
        stuck_revision_rounds: Review rounds that send work back before it asks.
        stuck_unusable_answers: Empty or unparseable agent answers in a row before it asks.
        stuck_same_call: Times the same tool call (same arguments) may be proposed.
        max_steps: Executor steps per task when the task sets no budget of its own.
        llm_provider: Which model the agents use (``local``: the embedded one, whose limits a
            pause it caused then names); the agents' own setting, read here too.
        llm_model: The model's name.
        llm_images: Whether the model reads images (screenshots are then brought back from
            the person's PC for it); unset: by the model's name.
        evidence_chars: Characters of each produced file shown to the reviewer.
        relay_interval_s: How often the outbox relay sweeps for unpublished messages.
        approval_timeout_s: How long an approval or input form waits; unanswered, it expires
            as denied (and counts toward the denials that pause a task).
        expiry_sweep_s: How often the worker looks for expired approvals.
        watchdog_sweep_s: How often the worker looks for tasks with nothing in flight.
        watchdog_idle_s: How long a task must have been still before the watchdog looks at it.
        schedule_poll_s: How often the worker's arq queue is polled for due schedules (a
            schedule starts at most this late).
        schedule_sweep_s: How often the worker reconciles the schedules in the database with
            the jobs in Redis.
        schedule_misfire_grace_s: A fire time missed by more than this (nothing was running)
            follows the schedule's misfire policy instead of simply running late.
        pairing_code_ttl_s: How long a one-time code for pairing a PC works.
        desktop_wait_s: How long an approved desktop action waits for the person's PC to
            connect before the task pauses and asks them.
        desktop_answer_s: How long a connected PC may take over one action before the gateway
            gives it to the PC again (after a reconnection).
    """

    secret_key: SecretStr | None = None
    database_url: str = ""
    database_dead_client_s: float = Field(default=60.0, ge=3)
    metrics_token: SecretStr | None = None
    data_dir: Path = Path("var")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "troika:"
    ready_timeout_s: float = Field(default=2.0, gt=0)
    access_token_ttl_s: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    max_json_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=50 << 20, ge=1024)
    max_photo_bytes: int = Field(default=5 << 20, ge=1024)
    login_attempts_per_account: int = Field(default=5, ge=1)
    login_attempts_per_address: int = Field(default=30, ge=1)
    login_window_s: int = Field(default=15 * 60, ge=1)
    login_slowdown_max_s: int = Field(default=60, ge=1)
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    password_time_cost: int = Field(default=3, ge=1, le=20)
    password_memory_kib: int = Field(default=64 * 1024, ge=8 * 1024, le=4 * 1024 * 1024)
    stuck_denials: int = Field(default=3, ge=1)
    stuck_tool_failures: int = Field(default=3, ge=1)
    stuck_revision_rounds: int = Field(default=3, ge=1)
    stuck_unusable_answers: int = Field(default=2, ge=1)
    stuck_same_call: int = Field(default=3, ge=2)
    max_steps: int = Field(default=50, ge=1)
    llm_provider: Literal["auto", "openai", "local"] = "auto"
    llm_model: str = ""
    llm_images: bool | None = None
    evidence_chars: int = Field(default=8000, ge=100)
    relay_interval_s: float = Field(default=1.0, gt=0)
    approval_timeout_s: float = Field(default=24 * 3600.0, gt=0)
    expiry_sweep_s: float = Field(default=30.0, gt=0)
    watchdog_sweep_s: float = Field(default=15.0, gt=0)
    watchdog_idle_s: float = Field(default=10.0, ge=0)
    schedule_poll_s: float = Field(default=0.25, gt=0, le=10)
    schedule_sweep_s: float = Field(default=30.0, gt=0)
    schedule_misfire_grace_s: float = Field(default=60.0, ge=0)
    pairing_code_ttl_s: float = Field(default=600.0, gt=0)
    desktop_wait_s: float = Field(default=600.0, gt=0)
    desktop_answer_s: float = Field(default=120.0, gt=0)

    @field_validator("secret_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        key = value.get_secret_value()
        if key.strip().lower() in _WELL_KNOWN_KEYS:
            raise ValueError("is a well-known example value; generate a random one")
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"is {len(key)} characters; use at least {MIN_SECRET_KEY_LENGTH} random characters"
            )
        if len(set(key)) < 8:
            raise ValueError("repeats too few characters to be random")
        return value

    @model_validator(mode="after")
    def _default_database(self) -> GatewaySettings:
        if not self.database_url:
            path = (self.data_dir / "troika.db").resolve()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        return self

    @property
    def sees_images(self) -> bool:
        """Whether the agents' model reads images."""
        return sees_images(self.llm_model or "gpt-4o-mini", self.llm_images)

    def seal_key(self) -> bytes | None:
        """The key that seals approved tool calls for the executors (derived from the secret)."""
        return approval_key(self.secret_key.get_secret_value()) if self.secret_key else None

    def stored_secrets_key(self) -> bytes | None:
        """The key for the people's credentials at rest."""
        return stored_secrets_key(self.secret_key.get_secret_value()) if self.secret_key else None

    def sealing_key(self) -> bytes:
        """The key for the people's credentials at rest, which the gateway cannot run without.

        Raises:
            RuntimeError: ``TROIKA_SECRET_KEY`` is not set (the gateway refuses to start so).
        """
        key = self.stored_secrets_key()
        if key is None:  # pragma: no cover - the gateway refuses to start without a secret key
            raise RuntimeError("TROIKA_SECRET_KEY is not set")
        return key

    def call_secrets_key(self) -> bytes | None:
        """The key that seals credentials into an approved call for the executor."""
        return call_secrets_key(self.secret_key.get_secret_value()) if self.secret_key else None

    def require_secret_key(self) -> str:
        """The signing key.

        Raises:
            ValueError: ``TROIKA_SECRET_KEY`` is not set.
        """
        if self.secret_key is None:
            raise ValueError(
                "TROIKA_SECRET_KEY is not set: give the gateway at least 32 random characters "
                '(for example: python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return self.secret_key.get_secret_value()
