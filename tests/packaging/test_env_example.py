"""packaging/.env.example lists every AAT_ setting of the appliance, each with its description."""

from __future__ import annotations

import re

from appliance.settings import Settings
from tests.packaging.tools import PACKAGING

TEXT = (PACKAGING / ".env.example").read_text()


def test_every_setting_is_in_the_env_template() -> None:
    listed = set(re.findall(r"^#? ?(AAT_[A-Z0-9_]+)=", TEXT, flags=re.MULTILINE))
    every = {f"AAT_{name.upper()}" for name in Settings.model_fields}
    assert every - listed == set(), "add these to packaging/.env.example"
    assert listed - every == set(), "packaging/.env.example names settings the appliance does not read"


def test_only_the_required_secrets_are_left_uncommented() -> None:
    active = re.findall(r"^(AAT_[A-Z0-9_]+)=", TEXT, flags=re.MULTILINE)
    assert active == ["AAT_MASTER_KEY", "AAT_META_APP_SECRET", "AAT_META_VERIFY_TOKEN"]
    assert re.findall(r"^AAT_[A-Z_]+=(.+)$", TEXT, flags=re.MULTILINE) == []  # no secret shipped
