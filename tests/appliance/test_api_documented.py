"""Every route in the appliance's OpenAPI document is named in docs/spec/api.md (the public
interface: names there are fixed, additions are listed there too)."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.app import create_app
from appliance.settings import Settings

API_MD = Path(__file__).resolve().parents[2] / "docs" / "spec" / "api.md"


def _shape(path: str) -> str:
    """``/api/v1/contacts/{contact_id:int}`` and ``/api/v1/contacts/{id}`` alike: ``/api/v1/contacts/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_in_the_openapi_document_is_named_in_api_md(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"), run_queue=False)
    documented = _shape(" ".join(re.findall(r"`([^`]*)`", API_MD.read_text(encoding="utf-8"))))
    routes = app.openapi_schema.paths or {}
    assert len(routes) > 50, sorted(routes)  # the document really lists the API
    missing = sorted(path for path in routes if _shape(path) not in documented)
    assert missing == [], f"add these to docs/spec/api.md: {missing}"
