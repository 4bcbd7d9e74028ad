"""Every route in the control plane's OpenAPI document is named in the control plane section
of docs/spec/api.md (names there are fixed, additions are listed there too)."""

from __future__ import annotations

import re
from pathlib import Path

from control_plane.app import create_app
from control_plane.settings import ControlPlaneSettings

API_MD = Path(__file__).resolve().parents[2] / "docs" / "spec" / "api.md"


def _shape(path: str) -> str:
    """``/admin/api/tenants/{tenant_id:str}`` and ``/admin/api/tenants/{id}`` alike."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_control_plane_route_is_named_in_api_md(tmp_path: Path) -> None:
    app = create_app(ControlPlaneSettings(data_dir=tmp_path / "cp"))
    text = API_MD.read_text(encoding="utf-8")
    section = text[text.index("## Control plane HTTP"):]
    documented = _shape(" ".join(re.findall(r"`([^`]*)`", section)))
    routes = app.openapi_schema.paths or {}
    assert len(routes) > 25, sorted(routes)
    missing = sorted(path for path in routes if _shape(path) not in documented)
    assert missing == [], f"add these to the control plane section of docs/spec/api.md: {missing}"
