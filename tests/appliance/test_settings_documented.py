"""Every setting has a description and a row in the README's settings tables, and the README
lists no variable the code does not read (Datasette's ``tests/test_docs.py`` idea)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from appliance.settings import Settings
from control_plane.settings import ControlPlaneSettings

README = Path(__file__).resolve().parents[2] / "README.md"
# A settings-table row: | `AAT_NAME` | default | meaning |
_ROW = re.compile(r"^\|\s*`(AAT_[A-Z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|\s*$")


def _readme_rows() -> dict[str, str]:
    """Variable name -> its meaning, from every settings-table row of the README."""
    rows: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line.strip())
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice in README.md"
            rows[match.group(1)] = match.group(3).strip()
    return rows


def _variables(model: type[BaseSettings]) -> dict[str, str]:
    """Environment variable name -> the field's description."""
    prefix = model.model_config["env_prefix"]
    return {f"{prefix}{name}".upper(): field.description or "" for name, field in model.model_fields.items()}


APPLIANCE = _variables(Settings)
CONTROL_PLANE = _variables(ControlPlaneSettings)
EVERY = {**APPLIANCE, **CONTROL_PLANE}


def test_the_readme_has_settings_tables() -> None:
    assert len(_readme_rows()) >= len(EVERY) > 0


def test_prefixes_are_the_public_ones() -> None:
    assert Settings.model_config["env_prefix"] == "AAT_"
    assert ControlPlaneSettings.model_config["env_prefix"] == "AAT_CP_"


@pytest.mark.parametrize("variable", sorted(EVERY))
def test_every_setting_has_a_description(variable: str) -> None:
    assert EVERY[variable].strip(), f"{variable} has no description"


@pytest.mark.parametrize("variable", sorted(EVERY))
def test_every_setting_is_in_the_readme_table(variable: str) -> None:
    rows = _readme_rows()
    assert variable in rows, f"{variable} is missing from the settings table in README.md"
    assert rows[variable], f"{variable} has an empty meaning in README.md"


@pytest.mark.parametrize("variable", sorted(_readme_rows()))
def test_the_readme_lists_no_setting_that_does_not_exist(variable: str) -> None:
    known = CONTROL_PLANE if variable.startswith("AAT_CP_") else APPLIANCE
    assert variable in known, f"README.md documents {variable}, which no settings class reads"


def test_an_undocumented_setting_would_be_caught() -> None:
    # The check above is only worth something if a new field really shows up in _variables.
    class Extended(Settings):
        brand_new_knob: int = 1

    assert "AAT_BRAND_NEW_KNOB" in _variables(Extended)
    assert "AAT_BRAND_NEW_KNOB" not in _readme_rows()
