"""The Jinja environment of the pages: autoescaping (Litestar's default, kept on) and the few
filters the templates use.

``m.text`` on a dict looks the key up first (:func:`_dict_first_getattr`). Jinja's own lookup
tries ``getattr(dict, "text")`` first and catches the ``AttributeError``: 17,000 raised and
caught exceptions for a 500-message thread, half its rendering time. The result differs from
Jinja's only for a dict that has a key named like a dict method (``items``, ``get``...): the
key wins, so templates write ``thread["items"]`` and never call dict methods on view dicts.

:class:`PagesTemplateEngine` is the app's engine: Litestar's ``JinjaTemplateEngine``, created
and configured on first use (the first page rendered), so a restart does not import Jinja
(about 20 modules, 60 ms and 2-4 MB of RSS that an appliance nobody browses never needs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.web.pages import timeline
from appliance.web.pages.views import CHANNEL_NAMES

if TYPE_CHECKING:
    from jinja2 import Environment, Template
    from litestar.plugins.jinja import JinjaTemplateEngine

__all__ = ["PagesTemplateEngine", "configure"]


def _channel_name(value: Any) -> str:
    return CHANNEL_NAMES.get(str(value), str(value))


def _dict_first_getattr(env: Environment) -> Any:
    standard = type(env).getattr

    def getattr_(obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return standard(env, obj, attribute)

    return getattr_


def configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    assert env.autoescape, "templates must autoescape"  # noqa: S101 - a start-up invariant
    env.filters["channel_name"] = _channel_name
    env.getattr = _dict_first_getattr(env)  # type: ignore[method-assign]
    timeline.use_environment(env)


class PagesTemplateEngine:
    """Litestar's template engine protocol over a ``JinjaTemplateEngine`` made on first use:
    the same environment, the same :func:`configure`, the same callables registered (Litestar
    registers ``url_for`` and friends at start; they are handed over when the engine is made).
    Thread-safe: pages rendered in worker threads share one engine."""

    def __init__(self, directory: Path | list[Path] | None, engine_instance: Any | None = None) -> None:
        if engine_instance is not None:
            raise ValueError("PagesTemplateEngine makes its own Jinja environment")
        self._directory = directory
        self._callables: dict[str, Callable[..., Any]] = {}
        self._inner: JinjaTemplateEngine | None = None
        self._lock = threading.Lock()
        timeline.use_environment_of(lambda: self.engine)

    def _made(self) -> JinjaTemplateEngine:
        inner = self._inner
        if inner is None:
            with self._lock:
                if self._inner is None:
                    from litestar.plugins.jinja import JinjaTemplateEngine

                    made = JinjaTemplateEngine(directory=self._directory)
                    for key, template_callable in self._callables.items():
                        made.register_template_callable(key, template_callable)
                    configure(made)
                    self._inner = made
                inner = self._inner
        return inner

    @property
    def engine(self) -> Environment:
        """The Jinja environment (made now if it was not yet)."""
        return self._made().engine

    def get_template(self, template_name: str) -> Template:
        return self._made().get_template(template_name)

    def render_string(self, template_string: str, context: Mapping[str, Any]) -> str:
        return self._made().render_string(template_string, context)

    def register_template_callable(self, key: str, template_callable: Callable[..., Any]) -> None:
        with self._lock:
            if self._inner is None:
                self._callables[key] = template_callable
                return
        self._inner.register_template_callable(key, template_callable)
