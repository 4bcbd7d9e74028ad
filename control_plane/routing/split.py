"""Splitting a Meta delivery by asset: pure functions, no I/O.

A delivery may batch entries of several Pages, Instagram accounts and WhatsApp numbers
(docs/spec/meta-platform.md §7: up to 1000 updates per POST). Each entry is routed by its
asset id (§2-4):

- ``object: "page"``: ``entry[].id``, the Page id (messaging, standby and feed changes);
- ``object: "instagram"``: ``entry[].id``, the Instagram account id;
- ``object: "whatsapp_business_account"``: ``entry[].id`` is the WABA; each change is routed
  by ``value.metadata.phone_number_id``. An entry whose changes name several numbers is split
  into one entry per number; a change without a number (``account_update``, template status)
  is routed by the WABA id.

Entries that need no split are forwarded as the exact bytes Meta sent. Each part also carries
the Meta user ids it mentions (senders, recipients, commenters, WhatsApp ``wa_id`` / BSUID),
for the data-deletion fan-out.

Page and Instagram entries are decoded into typed structs holding only what routing reads (the
id, senders, recipients, commenters): message texts, attachments and the rest are skipped by
the decoder, not built as Python objects. An entry whose shape does not fit those types (an id
that is neither text nor a number, a list holding a non-object, ...) is read the generic way,
with the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from appliance.errors import BadRequest

__all__ = ["Part", "Delivery", "split", "OBJECTS", "body_of", "inner_entries", "prefix"]

# object -> routing kind (the channel type, or the WABA for number-less WhatsApp changes)
OBJECTS = {"page": "messenger", "instagram": "instagram", "whatsapp_business_account": "whatsapp"}
WABA = "whatsapp_waba"


class _Envelope(msgspec.Struct):
    object: str = ""
    entry: list[msgspec.Raw] = []


class _Who(msgspec.Struct):
    id: str | int | None = None


class _Messaging(msgspec.Struct):
    sender: _Who | None = None
    recipient: _Who | None = None


class _Contact(msgspec.Struct):
    wa_id: str | int | None = None
    user_id: str | int | None = None


class _Status(msgspec.Struct):
    recipient_id: str | int | None = None


class _Value(msgspec.Struct):
    from_: _Who | None = msgspec.field(default=None, name="from")
    contacts: list[_Contact] | None = None
    statuses: list[_Status] | None = None


class _Change(msgspec.Struct):
    value: _Value | None = None


class _Entry(msgspec.Struct):
    id: str | int | None = None
    messaging: list[_Messaging] | None = None
    standby: list[_Messaging] | None = None
    changes: list[_Change] | None = None


_entry_decoder = msgspec.json.Decoder(_Entry)
_any_decoder = msgspec.json.Decoder()


@dataclass(slots=True)
class Part:
    kind: str           # messenger | instagram | whatsapp | whatsapp_waba | unknown
    asset_id: str | None
    entry: bytes        # one JSON entry
    events: int
    users: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Delivery:
    object: str
    parts: list[Part]

    @property
    def events(self) -> int:
        return sum(p.events for p in self.parts)


def prefix(object_: str) -> bytes:
    return b'{"object":' + msgspec.json.encode(object_) + b',"entry":['


def body_of(object_: str, entries: list[bytes]) -> bytes:
    """The body forwarded to a tenant: Meta's envelope around some of its entries."""
    return prefix(object_) + b",".join(entries) + b"]}"


def inner_entries(object_: str, body: bytes) -> bytes:
    """The entries of a body made by :func:`body_of` (so bodies can be merged without parsing)."""
    return body[len(prefix(object_)):-2]


def _id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _messaging_users(entry: dict[str, Any], users: set[str]) -> int:
    count = 0
    for key in ("messaging", "standby"):
        for item in _dicts(entry.get(key)):
            count += 1
            for side in ("sender", "recipient"):
                who = item.get(side)
                if isinstance(who, dict) and (uid := _id(who.get("id"))):
                    users.add(uid)
    return count


def _change_users(value: dict[str, Any], users: set[str]) -> None:
    who = value.get("from")
    if isinstance(who, dict) and (uid := _id(who.get("id"))):
        users.add(uid)
    for contact in _dicts(value.get("contacts")):
        for key in ("wa_id", "user_id"):
            if uid := _id(contact.get(key)):
                users.add(uid)
    for status in _dicts(value.get("statuses")):
        if uid := _id(status.get("recipient_id")):
            users.add(uid)


def _whatsapp(entry: dict[str, Any], raw: bytes, waba: str | None) -> list[Part]:
    groups: dict[str | None, list[dict[str, Any]]] = {}
    users: dict[str | None, set[str]] = {}
    for change in _dicts(entry.get("changes")):
        value = change.get("value") if isinstance(change.get("value"), dict) else {}
        metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
        number = _id(metadata.get("phone_number_id"))
        groups.setdefault(number, []).append(change)
        _change_users(value, users.setdefault(number, set()))
    if not groups:
        return [Part(WABA, waba, raw, 0)]
    parts = []
    for number, changes in groups.items():
        body = raw if len(groups) == 1 else msgspec.json.encode({**entry, "changes": changes})
        if number is None:
            parts.append(Part(WABA, waba, body, len(changes), users[number]))
        else:
            parts.append(Part("whatsapp", number, body, len(changes), users[number]))
    return parts


def _typed_part(kind: str, raw: bytes) -> Part | None:
    """A page/Instagram entry's part from the typed decode, or ``None``: read it generically."""
    try:
        entry = _entry_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    users: set[str] = set()
    events = 0
    for items in (entry.messaging, entry.standby):
        for item in items or ():
            events += 1
            for who in (item.sender, item.recipient):
                if who is not None and (uid := _id(who.id)):
                    users.add(uid)
    for change in entry.changes or ():
        events += 1
        value = change.value
        if value is None:
            continue
        if value.from_ is not None and (uid := _id(value.from_.id)):
            users.add(uid)
        for contact in value.contacts or ():
            for candidate in (contact.wa_id, contact.user_id):
                if uid := _id(candidate):
                    users.add(uid)
        for status in value.statuses or ():
            if uid := _id(status.recipient_id):
                users.add(uid)
    asset = _id(entry.id)
    if asset is not None:
        users.discard(asset)
    return Part(kind, asset, raw, max(events, 1), users)


def split(body: bytes) -> Delivery:
    """Parts of a delivery, one per asset (raises ``BadRequest`` when it is not a JSON object)."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest("the body is not a Meta delivery (a JSON object with an entry list)",
                         code="invalid_json") from exc
    kind = OBJECTS.get(envelope.object, "unknown")
    parts: list[Part] = []
    for raw_entry in envelope.entry:
        raw = bytes(raw_entry)
        if kind in ("messenger", "instagram") and (typed := _typed_part(kind, raw)) is not None:
            parts.append(typed)
            continue
        try:
            entry = _any_decoder.decode(raw)
        except msgspec.DecodeError:  # pragma: no cover - the envelope decoded, so it is JSON
            continue
        if not isinstance(entry, dict):
            parts.append(Part("unknown", None, raw, 0))
            continue
        asset = _id(entry.get("id"))
        if kind == "whatsapp":
            parts.extend(_whatsapp(entry, raw, asset))
            continue
        users: set[str] = set()
        events = _messaging_users(entry, users)
        for change in _dicts(entry.get("changes")):
            events += 1
            if isinstance(change.get("value"), dict):
                _change_users(change["value"], users)
        if asset is not None:
            users.discard(asset)  # the Page / account itself is not a person
        parts.append(Part(kind, asset, raw, max(events, 1), users))
    return Delivery(envelope.object, parts)
