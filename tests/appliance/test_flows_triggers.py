"""Which published flow an inbound message starts (appliance/flows/triggers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.flows.triggers import Candidate, Inbound, keyword_hits, match_trigger
from tests.appliance.flow_helpers import make_flow


def candidate(flow_id: int, *triggers: dict[str, Any], channels: list[str] | None = None) -> Candidate:
    top: dict[str, Any] = {"triggers": list(triggers)}
    if channels:
        top["settings"] = {"channels": channels}
    return Candidate(flow_id, 1, make_flow({"a": {"type": "end"}}, **top))


def winner(candidates: list[Candidate], **event: Any) -> tuple[int, str] | None:
    values: dict[str, Any] = {"channel": "messenger", "kind": "text"}
    values.update(event)
    match = match_trigger(candidates, Inbound(**values))
    return (match.flow_id, match.trigger) if match else None


def kw(*keywords: str, match: str = "contains", **extra: Any) -> dict[str, Any]:
    return {"type": "keyword", "keywords": list(keywords), "match": match, **extra}


EVERYTHING = [
    candidate(1, {"type": "default"}),
    candidate(2, {"type": "welcome"}),
    candidate(3, kw("price")),
    candidate(4, {"type": "story_reply"}),
    candidate(5, {"type": "ref", "ref": "spring-promo"}),
    candidate(6, {"type": "postback", "payload": "MENU_PRICES"}),
    candidate(7, {"type": "comment"}),
    candidate(8, {"type": "story_mention"}),
]


# --- precedence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("event, expected", [
    ({"kind": "postback", "text": "price", "payload": "MENU_PRICES", "new_contact": True}, (6, "postback")),
    ({"kind": "referral", "text": "price", "ref": "spring-promo", "new_contact": True}, (5, "ref")),
    ({"kind": "story_reply", "text": "price", "new_contact": True}, (4, "story_reply")),
    ({"kind": "text", "text": "price?", "new_contact": True}, (3, "keyword")),
    ({"kind": "text", "text": "hello", "new_contact": True}, (2, "welcome")),
    ({"kind": "text", "text": "hello"}, (1, "default")),
    ({"kind": "image"}, (1, "default")),
], ids=["postback", "ref", "story-reply", "keyword", "welcome", "default", "default-for-media"])
def test_precedence(event: dict[str, Any], expected: tuple[int, str]) -> None:
    assert winner(EVERYTHING, **event) == expected


def test_comment_only_starts_comment_flows() -> None:
    assert winner(EVERYTHING, kind="comment", text="price", post_id="p1", new_contact=True) == (7, "comment")


def test_comment_without_comment_flow_starts_nothing() -> None:
    assert winner([c for c in EVERYTHING if c.flow_id != 7], kind="comment", text="price", new_contact=True) is None


def test_story_mention_only_starts_story_mention_flows() -> None:
    assert winner(EVERYTHING, kind="story_mention", new_contact=True) == (8, "story_mention")


def test_story_mention_without_flow_starts_nothing() -> None:
    assert winner([c for c in EVERYTHING if c.flow_id != 8], kind="story_mention", new_contact=True) is None


def test_reaction_starts_nothing() -> None:
    assert winner(EVERYTHING, kind="reaction", text="price", new_contact=True) is None


def test_nothing_matches() -> None:
    assert winner([candidate(1, kw("price"))], text="hello") is None


def test_flow_without_triggers_never_fires() -> None:
    assert winner([candidate(1)], text="hello") is None


# --- keywords ------------------------------------------------------------------------------------

def test_longest_keyword_wins_across_flows() -> None:
    flows = [candidate(1, kw("price")), candidate(2, kw("price list")), candidate(3, kw("list"))]
    assert winner(flows, text="send me the price list") == (2, "keyword")


def test_tie_goes_to_the_oldest_flow() -> None:
    flows = [candidate(1, kw("price")), candidate(2, kw("PRICE"))]
    assert winner(flows, text="price") == (1, "keyword")


def test_longest_keyword_within_a_trigger_counts() -> None:
    flows = [candidate(1, kw("price")), candidate(2, kw("a", "prices"))]
    assert winner(flows, text="prices please") == (2, "keyword")


@pytest.mark.parametrize("how, text, expected", [
    ("exact", "price", 5), ("exact", "Price!", 5), ("exact", "the price", 0),
    ("contains", "what is the price?", 5), ("contains", "prize", 0),
    ("starts_with", "price of pro", 5), ("starts_with", "¿price?", 5), ("starts_with", "the price", 0),
])
def test_match_kinds(how: str, text: str, expected: int) -> None:
    assert keyword_hits(["price"], text, how) == expected


@pytest.mark.parametrize("keyword, text", [("Prix", "prix"), ("prix", "PRIX"), ("CAFÉ", "cafe"), ("cafe", "Café"),
                                           ("Straße", "STRASSE"), ("naïve", "NAIVE")])
def test_keywords_ignore_case_and_accents(keyword: str, text: str) -> None:
    assert keyword_hits([keyword], text, "exact") > 0


@pytest.mark.parametrize("keyword, text, how", [
    ("hello!", "Hello", "exact"), ("hello!", "hello there", "starts_with"), ("¿hola?", "hola", "exact")])
def test_punctuation_around_keyword_is_ignored(keyword: str, text: str, how: str) -> None:
    assert keyword_hits([keyword], text, how) > 0


def test_keyword_of_punctuation_only_needs_the_same_text() -> None:
    assert (keyword_hits(["?"], "?", "exact"), keyword_hits(["?"], "hi", "exact")) == (1, 0)


def test_collapsed_whitespace() -> None:
    assert keyword_hits(["price list"], "price    list", "exact") == 10


@pytest.mark.parametrize("text", [None, ""])
def test_no_text_no_hit(text: str | None) -> None:
    assert keyword_hits(["price"], text, "contains") == 0


def test_keyword_trigger_exact_through_match_trigger() -> None:
    assert winner([candidate(1, kw("Prix", match="exact"))], text="prix") == (1, "keyword")


# --- channels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel, expected", [("instagram", (1, "keyword")), ("whatsapp", None)])
def test_trigger_channels(channel: str, expected: Any) -> None:
    flows = [candidate(1, kw("price", channels=["instagram", "messenger"]))]
    assert winner(flows, channel=channel, text="price") == expected


@pytest.mark.parametrize("channel, expected", [("whatsapp", (1, "keyword")), ("messenger", None)])
def test_flow_settings_channels(channel: str, expected: Any) -> None:
    flows = [candidate(1, kw("price"), channels=["whatsapp"])]
    assert winner(flows, channel=channel, text="price") == expected


def test_settings_and_trigger_channels_both_apply() -> None:
    flows = [candidate(1, kw("price", channels=["messenger"]), channels=["whatsapp", "instagram"])]
    assert winner(flows, channel="messenger", text="price") is None


def test_restricted_flow_leaves_room_for_the_next() -> None:
    flows = [candidate(1, kw("price", channels=["instagram"])), candidate(2, kw("price"))]
    assert winner(flows, channel="messenger", text="price") == (2, "keyword")


# --- comments, stories, refs, postbacks ----------------------------------------------------------

@pytest.mark.parametrize("post_id, expected", [
    ("p1", (1, "comment")), ("123_p1", (1, "comment")), ("p2", None), (None, None)],
    ids=["listed", "page-prefixed", "other-post", "no-post"])
def test_comment_post_ids(post_id: str | None, expected: Any) -> None:
    flows = [candidate(1, {"type": "comment", "post_ids": ["p1"]})]
    assert winner(flows, kind="comment", text="nice", post_id=post_id) == expected


@pytest.mark.parametrize("text, expected", [("Send me the PRICE", (1, "comment")), ("nice pic", None), (None, None)])
def test_comment_keywords(text: str | None, expected: Any) -> None:
    flows = [candidate(1, {"type": "comment", "keywords": ["price"]})]
    assert winner(flows, kind="comment", text=text, post_id="p1") == expected


def test_comment_any_post_any_text() -> None:
    assert winner([candidate(1, {"type": "comment"})], kind="comment", text=None) == (1, "comment")


def test_comment_longest_keyword_wins() -> None:
    flows = [candidate(1, {"type": "comment", "keywords": ["price"]}),
             candidate(2, {"type": "comment", "keywords": ["price list"]})]
    assert winner(flows, kind="comment", text="price list?", post_id="p") == (2, "comment")


def test_comment_does_not_start_keyword_flows() -> None:
    assert winner([candidate(1, kw("price"))], kind="comment", text="price", post_id="p") is None


@pytest.mark.parametrize("text, expected", [("love it", (1, "story_reply")), ("hi", None)])
def test_story_reply_keywords(text: str, expected: Any) -> None:
    flows = [candidate(1, {"type": "story_reply", "keywords": ["love"], "channels": ["instagram"]})]
    assert winner(flows, channel="instagram", kind="story_reply", text=text) == expected


def test_story_reply_trigger_needs_a_story_reply() -> None:
    assert winner([candidate(1, {"type": "story_reply"})], kind="text", text="hi") is None


def test_ref_matches_exactly() -> None:
    flows = [candidate(1, {"type": "ref", "ref": "spring-promo"})]
    assert (winner(flows, kind="referral", ref="spring-promo"), winner(flows, kind="referral", ref="Spring-promo")) == (
        (1, "ref"), None)


@pytest.mark.parametrize("channel, text, expected", [
    ("whatsapp", "spring-promo", (1, "ref")), ("whatsapp", " SPRING-PROMO! ", (1, "ref")),
    ("whatsapp", "spring-promo please", None), ("messenger", "spring-promo", None)])
def test_whatsapp_ref_through_prefilled_text(channel: str, text: str, expected: Any) -> None:
    flows = [candidate(1, {"type": "ref", "ref": "spring-promo"})]
    assert winner(flows, channel=channel, text=text) == expected


def test_whatsapp_ref_beats_keyword() -> None:
    flows = [candidate(1, kw("promo")), candidate(2, {"type": "ref", "ref": "promo"})]
    assert winner(flows, channel="whatsapp", text="promo") == (2, "ref")


@pytest.mark.parametrize("payload, expected", [("MENU_PRICES", (1, "postback")), ("menu_prices", None), (None, None)])
def test_postback_payload(payload: str | None, expected: Any) -> None:
    flows = [candidate(1, {"type": "postback", "payload": "MENU_PRICES"})]
    assert winner(flows, kind="postback", payload=payload) == expected


def test_welcome_needs_a_new_contact() -> None:
    flows = [candidate(1, {"type": "welcome"})]
    assert (winner(flows, text="hi", new_contact=True), winner(flows, text="hi")) == ((1, "welcome"), None)


def test_trigger_index_is_reported() -> None:
    flows = [candidate(1, kw("hello"), kw("price"))]
    match = match_trigger(flows, Inbound("messenger", "text", "price"))
    assert match is not None and match.trigger_index == 1
