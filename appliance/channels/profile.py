"""Growth entry points as Meta wants them: links that carry a ``ref``, and the conversation
profile (Get Started, greeting, persistent menu, ice breakers; WhatsApp prompts and commands).

Pure: :func:`ref_link` builds the link, :func:`profile_requests` the Graph API calls that put
a profile in place (docs/spec/meta-platform.md §9; Messenger Profile API, Instagram's
``platform=instagram`` variant, WhatsApp ``conversational_automation``). Sending them is the
caller's job, through the shared HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

__all__ = ["ProfileRequest", "ref_link", "profile_requests", "handle_lookup", "ProfileError"]


class ProfileError(ValueError):
    """The profile asks for something the channel does not have."""


@dataclass(frozen=True, slots=True)
class ProfileRequest:
    method: Literal["POST", "DELETE"]
    host: Literal["graph", "instagram"]
    path: str
    body: Mapping[str, Any]
    params: Mapping[str, str] | None = None


def ref_link(channel_type: str, *, asset_id: str, handle: str | None, ref: str | None) -> str:
    """``m.me/<page>?ref=``, ``ig.me/m/<username>?ref=``, or ``wa.me/<number>?text=<ref>``
    (WhatsApp has no ref parameter: the ref arrives as the contact's prefilled first message,
    which the ``ref`` trigger recognises). Without ``ref``: the plain link to the chat."""
    if channel_type == "messenger":
        base, key = f"https://m.me/{quote(handle or asset_id, safe='')}", "ref"
    elif channel_type == "instagram":
        if not handle:
            raise ProfileError("the Instagram username is not known yet")
        base, key = f"https://ig.me/m/{quote(handle, safe='')}", "ref"
    else:
        if not handle:
            raise ProfileError("the WhatsApp number is not known yet")
        base, key = f"https://wa.me/{''.join(c for c in handle if c.isdigit())}", "text"
    return f"{base}?{urlencode({key: ref})}" if ref else base


def handle_lookup(channel_type: str, *, asset_id: str, page_id: str | None) -> tuple[str, str, str] | None:
    """``(host, path, field)`` of the Graph call that tells a channel's public handle."""
    if channel_type == "instagram":
        return ("graph", asset_id, "username") if page_id else ("instagram", "me", "username")
    if channel_type == "whatsapp":
        return ("graph", asset_id, "display_phone_number")
    return None


def _menu(items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    actions = []
    for item in items:
        if item.get("url"):
            actions.append({"type": "web_url", "title": item["title"], "url": item["url"]})
        else:
            actions.append({"type": "postback", "title": item["title"], "payload": item["payload"]})
    return actions


def _ice_breakers(items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"locale": "default",
             "call_to_actions": [{"question": i["question"], "payload": i["payload"]} for i in items]}]


def profile_requests(
    channel_type: str, profile: Mapping[str, Any], *, asset_id: str, page_id: str | None
) -> list[ProfileRequest]:
    """The calls that make Meta show ``profile``; empty parts are deleted on Meta's side."""
    if channel_type == "whatsapp":
        for unsupported in ("get_started_payload", "greeting", "persistent_menu"):
            if profile.get(unsupported):
                raise ProfileError(f"`{unsupported}` does not exist on WhatsApp")
        body = {
            "enable_welcome_message": bool(profile.get("welcome_message", False)),
            "prompts": [i["question"] for i in profile.get("ice_breakers", [])],
            "commands": [{"command_name": c["name"], "command_description": c["description"]}
                         for c in profile.get("commands", [])],
        }
        return [ProfileRequest("POST", "graph", f"{asset_id}/conversational_automation", body)]
    if profile.get("commands"):
        raise ProfileError("`commands` exist only on WhatsApp")
    set_: dict[str, Any] = {}
    cleared: list[str] = []
    if channel_type == "messenger":
        if profile.get("get_started_payload"):
            set_["get_started"] = {"payload": profile["get_started_payload"]}
        else:
            cleared.append("get_started")
        if profile.get("greeting"):
            set_["greeting"] = [{"locale": "default", "text": profile["greeting"]}]
        else:
            cleared.append("greeting")
    elif profile.get("get_started_payload") or profile.get("greeting"):
        raise ProfileError("Instagram has no Get Started button or greeting; use ice breakers")
    if profile.get("persistent_menu"):
        set_["persistent_menu"] = [{"locale": "default", "composer_input_disabled": False,
                                    "call_to_actions": _menu(profile["persistent_menu"])}]
    else:
        cleared.append("persistent_menu")
    if profile.get("ice_breakers"):
        set_["ice_breakers"] = _ice_breakers(profile["ice_breakers"])
    else:
        cleared.append("ice_breakers")
    if channel_type == "instagram":
        host: Literal["graph", "instagram"] = "graph" if page_id else "instagram"
        path = f"{page_id or asset_id}/messenger_profile"
        params = {"platform": "instagram"}
        requests = []
        if set_:
            requests.append(ProfileRequest("POST", host, path, {"platform": "instagram", **set_}, params))
        if cleared:
            requests.append(ProfileRequest("DELETE", host, path, {"fields": cleared, "platform": "instagram"}, params))
        return requests
    path = f"{asset_id}/messenger_profile"
    requests = []
    if set_:
        requests.append(ProfileRequest("POST", "graph", path, set_))
    if cleared:
        requests.append(ProfileRequest("DELETE", "graph", path, {"fields": cleared}))
    return requests
