"""``{{contact.first_name|there}}``: the template language of flow texts. Rendering never raises.

Names: ``contact.first_name``, ``contact.last_name``, ``contact.name``, ``contact.channel``,
``contact.fields.NAME``, ``workspace.name``. After ``|`` comes the fallback used when the value
is missing or empty. An unknown name renders as its fallback, or empty. In a URL
(:func:`render_url`) every substituted value is percent-encoded, so a contact's data cannot
change the URL's path or query structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["render_template", "render_url", "render_value", "TEMPLATE"]

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*(?:\|([^}]*))?\}\}")


# Values that render as nothing (a tuple built once: ``Mapping | list ...`` is a new union per call).
_NOT_TEXT = (Mapping, list, tuple, set, frozenset)


def _lookup(name: str, values: Mapping[str, Any]) -> Any:
    current: Any = values
    for part in name.split("."):
        # type() first: the values are plain dicts, and the ABC check costs more than the lookup
        if (type(current) is dict or isinstance(current, Mapping)) and part in current:
            current = current[part]
        else:
            return None
    return current


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, _NOT_TEXT):
        return ""
    return str(value)


def render_template(text: str | None, values: Mapping[str, Any]) -> str:
    """Substitute every ``{{name|fallback}}`` in ``text`` from ``values`` (nested mappings)."""
    if not text:
        return ""

    def substitute(match: re.Match[str]) -> str:
        rendered = _text(_lookup(match.group(1), values))
        if rendered.strip():
            return rendered
        return (match.group(2) or "").strip()

    try:
        if "{{" not in text:  # most titles and many texts: nothing to substitute, no regex run
            return text
        return TEMPLATE.sub(substitute, text)
    except Exception:  # noqa: BLE001 - the contract is "never raises"
        return text


def render_url(url: str, values: Mapping[str, Any]) -> str:
    """``url`` with each template's value percent-encoded (``a b/c`` -> ``a%20b%2Fc``)."""
    # errors="replace": a lone surrogate (valid in JSON, not in UTF-8) must not raise.
    return TEMPLATE.sub(lambda m: quote(render_template(m.group(0), values), safe="", errors="replace"), url)


def render_value(value: Any, values: Mapping[str, Any]) -> Any:
    """Render every string inside decoded JSON (an HTTP body); other values stay as they are."""
    if isinstance(value, str):
        return render_template(value, values)
    if isinstance(value, dict):
        return {k: render_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, values) for v in value]
    return value
