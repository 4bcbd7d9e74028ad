"""The Jinja environment of the pages: autoescaping (Litestar's default, kept on) and the few
filters the templates use."""

from __future__ import annotations

from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine

from appliance.web.pages.views import CHANNEL_NAMES

__all__ = ["configure"]


def _channel_name(value: Any) -> str:
    return CHANNEL_NAMES.get(str(value), str(value))


def configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    assert env.autoescape, "templates must autoescape"  # noqa: S101 - a start-up invariant
    env.filters["channel_name"] = _channel_name
