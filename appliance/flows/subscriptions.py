"""STOP / START: a contact's own words change their subscription (configurable, several
languages). A message that is exactly one of the words (case- and accent-insensitive) is the
command; the contact gets a confirmation and, on STOP, their active run ends: objecting to
marketing also stops automation. Unsubscribed contacts get no broadcasts.

The words and confirmations live in ``workspace_settings`` under ``subscription_words``
(``{"stop": [...], "start": [...], "stop_reply": "...", "start_reply": "..."}``); the defaults
below apply to whatever is not set.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from sqlite_utils import Database

from appliance.contacts import store as contacts
from appliance.flows.engine import fold
from appliance.outbox import store as outbox
from appliance.store.rows import scalar

__all__ = ["DEFAULTS", "words", "command", "apply"]

DEFAULTS: dict[str, Any] = {
    "stop": ["stop", "unsubscribe", "stopp", "abmelden", "arret", "desabonner", "baja", "parar",
             "стоп", "отписаться", "სტოპ"],
    "start": ["start", "subscribe", "anmelden", "abonner", "alta", "старт", "подписаться", "სტარტი"],
    "stop_reply": "You're unsubscribed and won't get automated messages from us. Reply START to "
                  "subscribe again.",
    "start_reply": "You're subscribed again. Reply STOP at any time to unsubscribe.",
}


def words(db: Database) -> dict[str, Any]:
    saved = scalar(db, "SELECT value FROM workspace_settings WHERE key = 'subscription_words'")
    configured = json.loads(saved) if saved else {}
    return {**DEFAULTS, **configured}


def command(config: dict[str, Any], text: str | None) -> Literal["stop", "start"] | None:
    """Is ``text`` one of the words in ``config`` (see :func:`words`)?"""
    if not text or len(text) > 40:
        return None
    folded = fold(text).strip(" .!")
    if folded in _folded(tuple(config["stop"])):
        return "stop"
    if folded in _folded(tuple(config["start"])):
        return "start"
    return None


@functools.lru_cache(maxsize=16)
def _folded(words: tuple[str, ...]) -> frozenset[str]:
    """The folded forms of a word list, computed once per list (keyed by its content, so a
    settings change is a new key): not again for every inbound message."""
    return frozenset(fold(w) for w in words)


def apply(db: Database, contact_id: int, conversation_id: int, which: str, now: str) -> None:
    subscribed = which == "start"
    contacts.update_contact(db, contact_id, {"subscribed": subscribed}, now)
    if not subscribed:
        db.execute(
            "UPDATE flow_runs SET status = 'interrupted', waiting = NULL, ended_at = ?, updated_at = ? "
            "WHERE contact_id = ? AND status = 'active'",
            [now, now, contact_id],
        )
    reply = words(db)["start_reply" if subscribed else "stop_reply"]
    outbox.enqueue(db, conversation_id=conversation_id, kind="text", text=reply,
                   payload={"subscription": which}, sent_by="bot", user_id=None,
                   messaging_type=None, tag=None, now=now)
