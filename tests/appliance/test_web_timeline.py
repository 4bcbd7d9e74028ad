"""The thread's timeline HTML (appliance/web/pages/timeline.py): the same markup as the
template's ``timeline_items`` macro, and a cached message never outlives a change to what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar.plugins.jinja import JinjaTemplateEngine

from appliance.web.pages import timeline, views
from appliance.web.pages.templating import configure

TEMPLATES = Path(__file__).resolve().parents[2] / "appliance" / "web" / "templates"
ZONE = ZoneInfo("Europe/Berlin")
NAMES = {1: "Ana Agent"}


@pytest.fixture(scope="module")
def macros() -> Any:
    engine = JinjaTemplateEngine(directory=TEMPLATES)
    configure(engine)
    return engine.engine.get_template("inbox/_message.html").module


def row(id_: int, at: str, **fields: Any) -> dict[str, Any]:
    base = {"id": id_, "conversation_id": 7, "direction": "in", "kind": "text", "text": f"message {id_}",
            "payload": "{}", "attachments": "[]", "sent_by": "contact", "sent_by_user_id": None, "status": "received",
            "error_code": None, "error_message": None, "tag": None, "occurred_at": at, "created_at": at}
    return {**base, **fields}


ROWS = [
    row(1, "2026-11-25T22:50:00.000Z", text="<script>alert(1)</script>"),
    row(2, "2026-11-25T23:10:00.000Z", direction="out", sent_by="user", sent_by_user_id=1, status="delivered",
        text="Hello & welcome"),
    row(3, "2026-11-26T08:00:00.000Z", direction="out", sent_by="bot", status="failed", error_code=131047,
        error_message="Re-engagement message", payload='{"buttons": [{"title": "Yes"}]}'),
    row(4, "2026-11-26T09:00:00.000Z", kind="story_reply",
        payload='{"story_url": "https://cdn.example/story.jpg"}', text="nice"),
]
NOTES = [{"id": 9, "text": "call back <b>today</b>", "created_at": "2026-11-26T08:30:00.000Z", "author_name": "Ana",
          "author": "ana@example.com"}]


def reference(macros: Any, rows: list[dict[str, Any]], notes: list[dict[str, Any]], contact: str,
              zone: ZoneInfo = ZONE) -> str:
    """What the template's own loop renders for the same rows and notes."""
    items: list[tuple[str, dict[str, Any]]] = []
    pending = [views.note_view(n, zone) for n in notes]
    for r in rows:
        view = views.message_view(r, contact_name=contact, users=NAMES, zone=zone)
        while pending and pending[0]["created_at"] < view["created_at"]:
            items.append(("note", pending.pop(0)))
        items.append(("message", view))
    items.extend(("note", n) for n in pending)
    return str(macros.timeline_items(items))


def html(rows: list[dict[str, Any]], notes: list[dict[str, Any]], contact: str, zone: ZoneInfo = ZONE) -> str:
    return str(timeline.timeline_html(rows, notes, contact_name=contact, names=NAMES, zone=zone))


def test_the_markup_is_the_templates_own_cold_and_warm(macros: Any) -> None:
    expected = reference(macros, ROWS, NOTES, "Tamar")
    assert html(ROWS, NOTES, "Tamar") == expected  # rendered
    assert html(ROWS, NOTES, "Tamar") == expected  # from the cache
    assert expected.count('class="day"') == 2 and "&lt;script&gt;" in expected and "<script>" not in expected
    assert expected.index('data-message-id="1"') < expected.index('data-note-id="9"') < expected.index(
        'data-message-id="4"')


def test_a_changed_row_is_rendered_again(macros: Any) -> None:
    html(ROWS, [], "Tamar")
    changed = [*ROWS[:1], {**ROWS[1], "status": "read"}, *ROWS[2:]]
    assert html(changed, [], "Tamar") == reference(macros, changed, [], "Tamar")
    erased = [{**ROWS[0], "text": None, "payload": '{"deleted": true}'}, *ROWS[1:]]
    out = html(erased, [], "Tamar")
    assert out == reference(macros, erased, [], "Tamar") and "alert(1)" not in out


def test_a_renamed_contact_a_renamed_agent_or_another_zone_is_rendered_again(macros: Any) -> None:
    html(ROWS, [], "Tamar")
    assert html(ROWS, [], "Tamar Levi") == reference(macros, ROWS, [], "Tamar Levi")
    renamed = {1: "Ana B."}
    out = str(timeline.timeline_html(ROWS, [], contact_name="Tamar", names=renamed, zone=ZONE))
    assert "Ana B." in out and "Ana Agent" not in out
    tokyo = ZoneInfo("Asia/Tokyo")
    assert html(ROWS, [], "Tamar", tokyo) == reference(macros, ROWS, [], "Tamar", tokyo) != html(ROWS, [], "Tamar")


def test_the_cache_holds_at_most_its_size(macros: Any) -> None:
    many = [row(1000 + i, f"2026-11-26T10:{i % 60:02d}:{i % 60:02d}.000Z") for i in range(timeline.CACHE_SIZE + 10)]
    html(many, [], "Tamar")
    assert len(timeline._cache) == timeline.CACHE_SIZE
    assert html(many[-5:], [], "Tamar") == reference(macros, many[-5:], [], "Tamar")
