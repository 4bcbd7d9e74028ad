"""The appliance's settings: every ``AAT_`` environment variable, read once at the entry point.

Names are part of the public contract (``docs/spec/api.md``) and are flat (``AAT_META_APP_SECRET``,
not ``AAT_META__APP_SECRET``), so the fields are flat too and grouped here by comment. Tests
build ``Settings(...)`` directly; ``tests/appliance/test_settings_documented.py`` fails when a
field is missing from the README's settings table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "ChannelType", "CHANNEL_TYPES"]

ChannelType = Literal["messenger", "instagram", "whatsapp"]
CHANNEL_TYPES: tuple[str, ...] = ("messenger", "instagram", "whatsapp")


def _no_secrets() -> list[SecretStr]:
    # A function rather than ``list``: pydantic reads the factory's signature, and a builtin's is
    # parsed from its text by ``tokenize``, whose patterns cost ~4 ms of CPU to compile, at every
    # restart (this model is built at import; BENCHMARKS.md, "Footprint").
    return []


class Settings(BaseSettings):
    """Configuration of one appliance process."""

    model_config = SettingsConfigDict(
        env_prefix="AAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage and keys -------------------------------------------------------------------
    data_dir: Path = Field(
        Path("./data"),
        description="Directory holding the encrypted workspace database, its wrapped data key "
        "and the task queue.",
    )
    master_key: SecretStr | None = Field(
        None,
        description="Base64 of 32 random bytes that wraps the workspace data key and encrypts "
        "tokens field by field. Takes precedence over AAT_MASTER_KEY_FILE.",
    )
    master_key_file: Path | None = Field(
        None,
        description="File holding the master key (base64). When neither this nor "
        "AAT_MASTER_KEY is set, a development key is generated at DATA_DIR/master.key "
        "(mode 0600) with a loud warning.",
    )

    # --- Meta ------------------------------------------------------------------------------
    meta_app_secret: SecretStr | None = Field(
        None,
        description="App Secret of the Meta app; webhooks are verified against it "
        "(X-Hub-Signature-256). Without it every webhook POST is refused.",
    )
    meta_extra_app_secrets: list[SecretStr] = Field(
        default_factory=_no_secrets,
        description="Further secrets accepted for webhook signatures, as a JSON list: the "
        "Instagram app secret of an app using Instagram Login, or the previous secret "
        "during a rotation.",
    )
    meta_verify_token: SecretStr | None = Field(
        None,
        description="The verify token typed into the Meta App Dashboard; the GET /webhooks/meta "
        "handshake answers only when it matches.",
    )
    graph_api_base: str = Field(
        "https://graph.facebook.com", description="Base URL of the Graph API (tests point it at a "
        "local stand-in)."
    )
    graph_api_version: str = Field("v25.0", description="Graph API version pinned for all calls.")
    instagram_api_base: str = Field(
        "https://graph.instagram.com",
        description="Base URL of the Instagram Graph API, used by Instagram channels connected "
        "with Instagram Login (no Facebook Page).",
    )

    # --- web -------------------------------------------------------------------------------
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The URL at which users and Meta reach this appliance (https in production).",
    )
    host: str = Field("127.0.0.1", description="Address `aat-appliance serve` binds to.")
    port: int = Field(8000, description="Port `aat-appliance serve` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of the JSON logs written to stderr."
    )

    # --- team sessions and email ------------------------------------------------------------
    session_idle_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="A browser session ends after this long without use."
    )
    session_max_days: float = Field(
        7.0, gt=0, le=90, description="A browser session ends this long after sign-in, used or not."
    )
    email_backend: Literal["none", "console", "smtp"] = Field(
        "none",
        description="How the appliance sends email (invitations, password resets): `none`, "
        "`console` (printed to stdout, for development) or `smtp` (AAT_SMTP_URL).",
    )
    smtp_url: SecretStr | None = Field(
        None, description="smtp[s]://user:password@host:port for AAT_EMAIL_BACKEND=smtp."
    )
    email_from: str = Field(
        "AAT Systems <no-reply@localhost>", description="Sender address of the appliance's email."
    )

    # --- ingest ----------------------------------------------------------------------------
    journal_retention_days: float = Field(
        7.0,
        ge=0,
        description="Days a processed webhook's raw body is kept in the journal before it is "
        "purged (dedupe keys are kept 8 days whatever this says, to outlast Meta's retries).",
    )

    # --- privacy and retention ---------------------------------------------------------------
    log_retention_days: float = Field(
        90.0, ge=1, le=3650,
        description="Days operational records are kept: flow step statistics, outbound-webhook "
        "delivery attempts, and the raw bodies of webhook deliveries that failed (the time left "
        "to retry them).",
    )
    erasure_grace_days: float = Field(
        0.0, ge=0, le=30,
        description="Days between a data-deletion or deauthorize callback from Meta and the "
        "erasure it asks for (0: at once). The status page shows the date; the retention job "
        "completes the request when it is due.",
    )

    # --- outbox ----------------------------------------------------------------------------
    rate_limit_whatsapp: int = Field(
        80, ge=1, le=1000,
        description="Default sends per second per WhatsApp number (Meta: 80, up to 1,000 after "
        "an upgrade; 20 for coexistence numbers). A channel's own rate_limit overrides it.",
    )
    rate_limit_messenger: int = Field(
        300, ge=1, le=300, description="Default sends per second per Facebook Page."
    )
    rate_limit_instagram: int = Field(
        300, ge=1, le=300, description="Default sends per second per Instagram account."
    )
    send_max_attempts: int = Field(
        8, ge=1, le=30,
        description="Attempts for a send that fails with a transient error before it is "
        "marked failed.",
    )
    send_backoff_base_seconds: float = Field(
        1.0, gt=0,
        description="Scale of the retry delays: the first retry waits between half of it and "
        "all of it, each further attempt doubles that (equal jitter), capped at 10 minutes.",
    )
    send_in_doubt_grace_seconds: float = Field(
        20.0, ge=0,
        description="After a crash, a send that may or may not have reached Meta waits this "
        "long for its echo or status before it is sent again.",
    )
    http_timeout_seconds: float = Field(
        15.0, gt=0, description="Timeout of every outside HTTP call (Graph API and others)."
    )

    # --- AI providers --------------------------------------------------------------------
    anthropic_base_url: str | None = Field(
        None, description="Base URL of the Anthropic API (default: the SDK's)."
    )
    openai_base_url: str | None = Field(
        None, description="Base URL of the OpenAI API (default: the SDK's)."
    )
    ai_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Timeout of one AI provider call."
    )
    ai_max_retries: int = Field(
        2, ge=0, le=5, description="Retries of a failed AI provider call (the SDKs' own backoff)."
    )

    # --- integrations ----------------------------------------------------------------------
    google_api_base: str = Field(
        "https://sheets.googleapis.com", description="Base URL of the Google Sheets API."
    )
    google_oauth_base: str = Field(
        "https://oauth2.googleapis.com", description="Base URL of Google's OAuth 2.0 token endpoint."
    )
    google_authorize_url: str = Field(
        "https://accounts.google.com/o/oauth2/v2/auth",
        description="Google's OAuth 2.0 authorization page (the Connect button sends users there).",
    )
    google_client_id: str | None = Field(
        None, description="OAuth client id used by the Google Sheets Connect button (hosted); "
        "self-hosters can instead PUT their own client with a refresh token.",
    )
    google_client_secret: SecretStr | None = Field(
        None, description="OAuth client secret belonging to AAT_GOOGLE_CLIENT_ID."
    )
    http_allow_private: bool = Field(
        False,
        description="Test-only: lets http_request steps and outbound webhooks reach loopback and "
        "private addresses. Refused (with a warning) when AAT_PUBLIC_URL is https.",
    )

    # --- entitlements (appliance/entitlements) -----------------------------------------------
    entitlements_public_key: str | None = Field(
        None,
        description="The control plane's Ed25519 public key (base64 of 32 bytes, or PEM) that "
        "entitlement tokens and license files are verified with. Unset: no entitlement is "
        "accepted and no limits apply.",
    )
    license_file: Path | None = Field(
        None,
        description="Self-hosted: the license file (an entitlement token from AAT Systems) "
        "whose plan and limits apply; the appliance refuses to start when it does not verify.",
    )
    tenant_id: str | None = Field(
        None,
        description="Hosted: this workspace's tenant id, set by the control plane; entitlement "
        "tokens must name it.",
    )
    control_plane_url: str | None = Field(
        None,
        description="Hosted: the control plane's base URL, set by the control plane; the month's "
        "usage is reported there hourly, signed with a key derived from AAT_META_APP_SECRET "
        "(unset: no usage reports).",
    )

    # --- backups (appliance/backup) ---------------------------------------------------------
    backup_dir: Path | None = Field(
        None,
        description="Directory the scheduled backups are written to (unset: no scheduled "
        "backups; `aat-appliance backup --to DIR` works either way). Put it on another disk.",
    )
    backup_interval_hours: float = Field(
        24.0, gt=0, le=24 * 31,
        description="Hours between scheduled backups; the queue checks every 15 minutes whether "
        "the newest backup in AAT_BACKUP_DIR is older than this.",
    )
    backup_keep: int = Field(
        7, ge=1, le=1000, description="Backups kept in the backup directory; older ones are deleted."
    )
    backup_s3_url: str | None = Field(
        None,
        description="S3-compatible bucket URL, path style (https://s3.eu-central-1.amazonaws.com/"
        "BUCKET[/PREFIX]); when set, every backup is also uploaded there (AWS SigV4).",
    )
    backup_s3_region: str = Field("us-east-1", description="Region the S3 signature is made for.")
    backup_s3_access_key_id: str | None = Field(None, description="Access key id for AAT_BACKUP_S3_URL.")
    backup_s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret access key for AAT_BACKUP_S3_URL."
    )

    @field_validator("graph_api_base", "instagram_api_base", "public_url", "google_api_base", "google_oauth_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "workspace.db"

    def rate_limit_for(self, channel_type: str) -> int:
        """Default sends per second for a channel type."""
        return {
            "whatsapp": self.rate_limit_whatsapp,
            "messenger": self.rate_limit_messenger,
            "instagram": self.rate_limit_instagram,
        }[channel_type]

    def graph_url(self, path: str) -> str:
        return f"{self.graph_api_base}/{self.graph_api_version}/{path.lstrip('/')}"

    def instagram_url(self, path: str) -> str:
        return f"{self.instagram_api_base}/{self.graph_api_version}/{path.lstrip('/')}"

    def app_secrets(self) -> list[bytes]:
        """Every secret a webhook signature may be made with, primary first."""
        secrets = [self.meta_app_secret, *self.meta_extra_app_secrets]
        return [s.get_secret_value().encode() for s in secrets if s and s.get_secret_value()]
