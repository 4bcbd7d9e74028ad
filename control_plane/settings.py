"""Control plane settings.

Two groups, both read once at the entry point and passed down:

- :class:`ControlPlaneSettings`, the ``AAT_CP_*`` variables (the README's control-plane table;
  ``tests/appliance/test_settings_documented.py`` checks the two stay in sync);
- :class:`PlatformApp`, the Meta platform app, read from the **same** ``AAT_`` names the
  appliance uses (``AAT_META_APP_SECRET``, ``AAT_META_VERIFY_TOKEN``, ``AAT_GRAPH_API_BASE``,
  ``AAT_GRAPH_API_VERSION``: docs/spec/api.md names ``AAT_META_APP_SECRET`` as the platform app
  secret). They are documented once, in the appliance's table. The control plane never hands
  these values to a tenant: each tenant's appliance gets its own webhook secret as *its*
  ``AAT_META_APP_SECRET``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.entitlements.plans import DEFAULT_PLANS

__all__ = ["ControlPlaneSettings", "PlatformApp", "ProvisionerName"]

ProvisionerName = Literal["local", "docker", "kubernetes"]


class ControlPlaneSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AAT_CP_", env_file=".env", extra="ignore")

    # --- storage and web ------------------------------------------------------------------
    data_dir: Path = Field(Path("./cp-data"), description="Control plane data directory.")
    master_key: SecretStr | None = Field(
        None, description="Base64 of 32 random bytes wrapping the control plane's data key "
        "(development: generated at DATA_DIR/master.key with a warning)."
    )
    host: str = Field("127.0.0.1", description="Address `aat-control-plane serve` binds to.")
    port: int = Field(9000, description="Port `aat-control-plane serve` listens on.")
    public_url: str = Field(
        "http://127.0.0.1:9000",
        description="The URL at which Meta and admins reach the control plane (https in production); "
        "data-deletion status links point here.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of the control plane's JSON logs (stderr)."
    )

    # --- the Meta platform app ---------------------------------------------------------------
    meta_app_id: str | None = Field(
        None, description="App id of the platform's Meta app (its secret is AAT_META_APP_SECRET): "
        "code exchanges and debug_token checks during channel onboarding."
    )

    # --- plans and entitlements (control_plane/entitlements) ------------------------------------
    plans: str = Field(
        DEFAULT_PLANS, description="The plans, as a JSON list of `{id, stripe_price, limits: {contacts, "
        "ai_replies_per_month, seats, channels}}` (a limit left out: unlimited)."
    )
    entitlements_key: SecretStr | None = Field(
        None, description="Base64 of the 32-byte Ed25519 seed entitlement tokens and licenses are signed "
        "with (development: generated at DATA_DIR/entitlements.key with a warning); "
        "`aat-control-plane entitlements public-key` prints what appliances verify with."
    )

    # --- Stripe billing (control_plane/billing) ---------------------------------------------------
    stripe_api_base: str = Field("https://api.stripe.com", description="Base URL of the Stripe API "
                                 "(tests point it at a local stand-in).")
    stripe_secret_key: SecretStr | None = Field(
        None, description="Stripe secret key (`sk_...`); unset: billing routes answer 503.")
    stripe_webhook_secret: SecretStr | None = Field(
        None, description="Signing secret of the Stripe webhook endpoint (`whsec_...`); `POST /webhooks/stripe` "
        "verifies `Stripe-Signature` with it (300 s tolerance).")
    stripe_meters: str = Field(
        "{}", description="Overage billed through Stripe meters: a JSON object mapping a limited quantity "
        "(`contacts`, `ai_replies`, `seats`, `channels`) to its meter's `event_name`; what the tenants' signed "
        "usage reports show beyond the plan's limit is sent as meter events. `{}`: none.")
    billing_grace_days: float = Field(
        7.0, ge=0, description="Days a past_due subscription keeps its tenant running before the tenant is suspended.")

    # --- sign-in (control_plane/accounts) ------------------------------------------------------
    google_issuer: str | None = Field(
        None, description="OpenID Connect issuer for sign-in with Google (`https://accounts.google.com`); "
        "endpoints and keys come from its discovery document.")
    google_client_id: str | None = Field(None, description="OAuth client id of the Google sign-in.")
    google_client_secret: SecretStr | None = Field(None, description="OAuth client secret of the Google sign-in.")
    meta_dialog_base: str = Field(
        "https://www.facebook.com", description="Base URL of Facebook Login's dialog (sign-in with Meta; "
        "the platform app AAT_CP_META_APP_ID is the client).")
    session_days: float = Field(14.0, gt=0, description="Lifetime of an `aat-session` cookie, days.")

    # --- tenants ---------------------------------------------------------------------------
    provisioner: ProvisionerName = Field(
        "local", description="Where tenants' appliances run: `local` (processes on this host), "
        "`docker` (Docker Engine API) or `kubernetes`."
    )
    retention_days: float = Field(
        30.0, ge=0, description="Days between a tenant's cancellation or deletion and its teardown "
        "(crypto-shredded data, volume and routing removed)."
    )
    sweep_seconds: float = Field(
        60.0, gt=0, description="How often the lifecycle sweep runs: provisioning, teardown past "
        "delete_after, purges of delivered bodies, dead letters and unclaimed events, support-token expiry."
    )
    appliance_image: str = Field(
        "aat-appliance:latest", description="Container image of the appliance (docker and kubernetes provisioners)."
    )
    tenant_memory_mb: int = Field(
        512, ge=64, description="Memory limit of one tenant's appliance, MiB (docker, kubernetes)."
    )
    tenant_cpu: float = Field(
        1.0, gt=0, description="CPU limit of one tenant's appliance, in cores (docker, kubernetes)."
    )
    support_token_minutes: float = Field(
        60.0, gt=0, le=24 * 60, description="Lifetime of a support token minted in a tenant's appliance; "
        "the sweep revokes it after that."
    )
    email: Literal["none", "console", "resend", "postmark"] = Field(
        "none", description="How the control plane emails tenant owners and accounts (channel tokens about to "
        "break, sign-up, receipts, payment failures, deletion notices): `none`, `console` (printed to stdout), "
        "`resend` or `postmark`."
    )
    email_api_key: SecretStr | None = Field(None, description="API key of the Resend or Postmark email backend.")
    email_from: str | None = Field(None, description="Sender address of the control plane's emails (resend, postmark).")
    email_api_base: str | None = Field(
        None, description="Base URL of the email API (default: https://api.resend.com or https://api.postmarkapp.com).")

    # --- webhook router --------------------------------------------------------------------
    forward_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one forwarded delivery to a tenant's appliance."
    )
    forward_concurrency: int = Field(
        2, ge=1, le=32, description="Forwarded requests in flight per tenant (each tenant has its own queue)."
    )

    # --- docker ----------------------------------------------------------------------------
    docker_url: str = Field(
        "unix:///var/run/docker.sock", description="Docker Engine API endpoint (docker provisioner)."
    )
    docker_network: str = Field(
        "aat-tenants", description="Docker network the tenants' containers join (the control plane must be on it)."
    )

    # --- kubernetes ------------------------------------------------------------------------
    kube_namespace: str = Field("aat-tenants", description="Namespace of the tenants' resources (kubernetes).")
    kube_api_url: str | None = Field(
        None, description="Kubernetes API server URL without credentials (tests, kubectl proxy); unset: "
        "in-cluster service account, else the kubeconfig."
    )
    kube_storage_class: str | None = Field(
        None, description="StorageClass of the tenants' volume claims (unset: the cluster default)."
    )
    kube_storage_gb: int = Field(1, ge=1, description="Size of one tenant's volume claim, GiB (kubernetes).")

    def tenants_dir(self) -> Path:
        return self.data_dir / "tenants"


class PlatformApp(BaseSettings):
    """The platform's Meta app, read from the appliance's variable names (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="AAT_", env_file=".env", extra="ignore")

    meta_app_secret: SecretStr | None = Field(None, description="App Secret of the platform app.")
    meta_verify_token: SecretStr | None = Field(None, description="Verify token of the webhook handshake.")
    graph_api_base: str = Field("https://graph.facebook.com", description="Base URL of the Graph API.")
    graph_api_version: str = Field("v25.0", description="Graph API version pinned for all calls.")

    def secrets(self) -> list[bytes]:
        return [self.meta_app_secret.get_secret_value().encode()] if self.meta_app_secret else []
