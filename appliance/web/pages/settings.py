"""Settings (admins and owners): ``/settings/{section}``.

The pages are the forms and their explanations; ``settings.js`` reads and changes everything
through the JSON API of each feature (channels, team, AI and knowledge, integrations,
workspace, saved replies), so these pages know no feature's tables and show exactly what the
API accepts or refuses. Agents get the 403 page.
"""

from typing import Any
from zoneinfo import available_timezones

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Redirect, Template

from appliance.web.pages.common import layout, not_found_page, signed_in

__all__ = ["SETTINGS_PAGES", "SECTIONS"]

# (key, label, one line on what it is for) in the order of the settings menu.
SECTIONS = [
    ("channels", "Channels", "Connect Facebook Pages, Instagram accounts and WhatsApp numbers."),
    ("team", "Team", "Invite teammates, choose their roles, send password reset links."),
    ("replies", "Saved replies", "Answers agents insert in the composer."),
    ("ai", "AI", "The AI provider, its instructions and the knowledge base it answers from."),
    ("integrations", "Integrations", "Google Sheets and outbound webhooks."),
    ("workspace", "Workspace", "Name, time zone and the words that unsubscribe a contact."),
]
_ZONES: list[str] = []


def _zones() -> list[str]:
    if not _ZONES:
        _ZONES.extend(sorted(available_timezones()))
    return _ZONES


@get("/settings", include_in_schema=False)
async def settings_home(request: Request[Any, Any, Any]) -> Redirect:
    await signed_in(request, "admin")
    return Redirect("/settings/channels", status_code=303)


@get("/settings/{section:str}", include_in_schema=False)
async def settings_page(request: Request[Any, Any, Any], section: FromPath[str]) -> Template:
    principal = await signed_in(request, "admin")
    context = await layout(request, principal, active="settings", sections=SECTIONS, section=section)
    if section not in {key for key, _, _ in SECTIONS}:
        return not_found_page(context, "settings page")
    label = next(label for key, label, _ in SECTIONS if key == section)
    extra = {"zones": _zones()} if section == "workspace" else {}
    return Template(f"settings/{section}.html", context={
        **context, "label": label, "is_owner": principal.role == "owner",
        "public_url": request.app.state.runtime.settings.public_url, **extra})


SETTINGS_PAGES = [settings_home, settings_page]
