"""Which published flow an inbound message starts (docs/spec/flow-format.md, Triggers). Pure.

Precedence, highest first (a pending button or input of the contact's active run comes before
all of these; the runner checks it): ``ref``/``postback`` -> ``comment``/``story_reply``/
``story_mention`` -> ``keyword`` (longest matching keyword wins) -> ``welcome`` (the contact's
first message) -> ``default``. Ties go to the oldest flow. Keywords match case- and
accent-insensitively (``exact``, ``contains``, ``starts_with``); for ``exact`` and
``starts_with`` punctuation around the text and the keyword is ignored.

Comments start only ``comment`` flows (answering every comment with a default DM would spam);
story mentions only ``story_mention`` flows; reactions nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from appliance.flows.engine import fold
from appliance.flows.models import FlowDocument

__all__ = ["Inbound", "Candidate", "Match", "match_trigger", "keyword_hits"]


@dataclass(frozen=True, slots=True)
class Inbound:
    """What triggers look at in an inbound message."""

    channel: str
    kind: str
    text: str | None = None
    payload: str | None = None  # postback / quick reply / interactive reply id (not ours)
    ref: str | None = None
    post_id: str | None = None  # comments: the post (Facebook) or media (Instagram)
    new_contact: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    flow_id: int
    version: int
    document: FlowDocument


@dataclass(frozen=True, slots=True)
class Match:
    flow_id: int
    version: int
    trigger: str
    trigger_index: int


def _punctuation_trimmed(text: str) -> str:
    return text.strip(" .,!?;:¡¿\"'()")


def keyword_hits(keywords: Iterable[str], text: str | None, how: str) -> int:
    """Length of the longest keyword matching ``text`` (0 when none does)."""
    if not text:
        return 0
    folded = fold(text)
    trimmed = _punctuation_trimmed(folded)
    best = 0
    for keyword in keywords:
        key = fold(keyword)
        # Punctuation around the keyword is trimmed like the text's: "hello!" is "hello".
        bare = _punctuation_trimmed(key)
        if not key:
            continue
        if how == "exact":
            hit = trimmed == bare if bare else folded == key
        elif how == "starts_with":
            hit = bool(bare) and trimmed.startswith(bare)
        else:
            hit = key in folded
        if hit:
            best = max(best, len(key))
    return best


def _channel_ok(doc: FlowDocument, trigger_channels: Sequence[str] | None, channel: str) -> bool:
    if doc.settings and doc.settings.channels and channel not in doc.settings.channels:
        return False
    return trigger_channels is None or channel in trigger_channels


def match_trigger(candidates: Sequence[Candidate], event: Inbound) -> Match | None:
    """The flow ``event`` starts, or ``None``. ``candidates`` are published flows, oldest first."""
    ranked: list[tuple[int, int, int, Match]] = []  # (class, -keyword length, order, match)
    for order, candidate in enumerate(candidates):
        doc = candidate.document
        for index, trigger in enumerate(doc.triggers):
            if not _channel_ok(doc, trigger.channels, event.channel):
                continue
            rank = _rank(trigger, event)
            if rank is None:
                continue
            klass, strength = rank
            ranked.append((klass, -strength, order, Match(candidate.flow_id, candidate.version, trigger.type, index)))
    if not ranked:
        return None
    ranked.sort(key=lambda item: item[:3])
    return ranked[0][3]


def _rank(trigger: object, event: Inbound) -> tuple[int, int] | None:  # noqa: PLR0911
    kind = getattr(trigger, "type")
    if event.kind == "comment":
        if kind != "comment":
            return None
        post_ids = getattr(trigger, "post_ids")
        if post_ids is not None and event.post_id not in post_ids and not any(
            event.post_id and event.post_id.endswith("_" + p) for p in post_ids
        ):
            return None
        keywords = getattr(trigger, "keywords")
        if keywords is None:
            return (1, 0)
        hit = keyword_hits(keywords, event.text, getattr(trigger, "match"))
        return (1, hit) if hit else None
    if event.kind == "reaction":
        return None
    if event.kind == "story_mention":
        return (1, 0) if kind == "story_mention" else None
    if kind == "postback":
        return (0, 0) if event.payload is not None and event.payload == getattr(trigger, "payload") else None
    if kind == "ref":
        ref = getattr(trigger, "ref")
        if event.ref is not None and event.ref == ref:
            return (0, 0)
        # wa.me links carry the ref as the prefilled first message.
        if event.channel == "whatsapp" and event.text and fold(_punctuation_trimmed(event.text)) == fold(ref):
            return (0, 0)
        return None
    if kind == "story_reply":
        if event.kind != "story_reply":
            return None
        keywords = getattr(trigger, "keywords")
        if keywords is None:
            return (1, 0)
        hit = keyword_hits(keywords, event.text, getattr(trigger, "match"))
        return (1, hit) if hit else None
    if kind == "keyword":
        hit = keyword_hits(getattr(trigger, "keywords"), event.text, getattr(trigger, "match"))
        return (2, hit) if hit else None
    if kind == "welcome":
        return (3, 0) if event.new_contact else None
    if kind == "default":
        return (4, 0)
    return None
