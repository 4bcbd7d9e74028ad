"""A thread's timeline as HTML: each message rendered once, then reused while its row is unchanged.

A 500-message thread spent most of its time turning rows into views and escaping ~6,000 values
(``inbox/_message.html``), the same work for the same rows on every open, live refresh and
agent. :func:`timeline_html` renders a message through the template's own ``message`` macro
the first time and keeps the result in a process-wide LRU of :data:`CACHE_SIZE` entries (about
half a KB each).

Contract: the HTML is exactly what ``timeline_items`` in ``inbox/_message.html`` renders for the
same rows and notes (day separators included). A cached message is reused only when everything
its HTML depends on is the same: the key holds the message's id, a hash of every column of its
row (any change to the row, e.g. a status, an error, an erasure, makes a new key), the contact's
display name, the team's names and the workspace's time zone. Notes are few and always rendered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from appliance.web.pages import views

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["CACHE_SIZE", "timeline_html", "use_environment"]

CACHE_SIZE = 4000

_cache: OrderedDict[tuple[Any, ...], tuple[str | None, Markup]] = OrderedDict()
_lock = threading.Lock()
_environment: list[Callable[[], Environment]] = []


def use_environment(env: Environment) -> None:
    """The pages' Jinja environment (templating.configure calls this once per app)."""
    _environment[:] = [lambda: env]


def use_environment_of(environment: Callable[[], Environment]) -> None:
    """The environment as ``environment()`` returns it when a timeline is first rendered (the
    app's engine makes its environment on first use: appliance/web/pages/templating.py)."""
    _environment[:] = [environment]


def _macros() -> Any:
    return _environment[0]().get_template("inbox/_message.html").module


def _day(day: str) -> str:
    value = escape(day)
    return f'<li class="day" data-day="{value}"><span>{value}</span></li>'


def _message(row: dict[str, Any], context: tuple[Any, ...], contact_name: str, names: dict[int, str],
             zone: ZoneInfo, macros: Any) -> tuple[str | None, Markup]:
    key = (row["id"], hash(tuple(row.values())), *context)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    view = views.message_view(row, contact_name=contact_name, users=names, zone=zone)
    made = (view["time"]["day"] if view["time"] else None, macros.message(view))
    with _lock:
        _cache[key] = made
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return made


def timeline_html(rows: list[dict[str, Any]], notes: list[dict[str, Any]], *, contact_name: str,
                  names: dict[int, str], zone: ZoneInfo) -> Markup:
    """Messages (``rows``, in id order) with the notes written between them, as the ``<li>``
    items of the thread's ``<ol>``."""
    macros = _macros()
    context = (contact_name, hash(tuple(sorted(names.items()))), zone.key)
    parts: list[str] = []
    shown_day: str | None = None

    def add(day: str | None, html: str) -> None:
        nonlocal shown_day
        if day and day != shown_day:
            parts.append(_day(day))
            shown_day = day
        parts.append(html)

    def add_note(note: dict[str, Any]) -> None:
        view = views.note_view(note, zone)
        add(view["time"]["day"] if view["time"] else None, macros.note(view))

    pending = list(notes)
    for row in rows:
        while pending and pending[0]["created_at"] < (row.get("created_at") or ""):
            add_note(pending.pop(0))
        add(*_message(row, context, contact_name, names, zone, macros))
    for note in pending:
        add_note(note)
    return Markup("".join(parts))
