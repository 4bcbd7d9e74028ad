"""Control plane settings (``AAT_CP_*``). Grows with the control-plane issues."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ControlPlaneSettings"]


class ControlPlaneSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AAT_CP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./cp-data"), description="Control plane data directory.")
    master_key: SecretStr | None = Field(
        None, description="Base64 of 32 random bytes wrapping the control plane's data key "
        "(development: generated at DATA_DIR/master.key with a warning)."
    )
    host: str = Field("127.0.0.1", description="Address `aat-control-plane serve` binds to.")
    port: int = Field(9000, description="Port `aat-control-plane serve` listens on.")
