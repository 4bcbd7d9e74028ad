"""Agent role limits on the web pages (issue 12, part 4): every HTML page the app serves is
classified here, like the ``ROUTES`` table of tests/appliance/test_api_auth.py does for
``/api/v1`` (whose ``test_role_matrix`` already runs every route as agent, admin and owner). A
new page fails :func:`test_every_page_is_classified` until it is added with its lowest role;
an agent gets the 403 page (and none of the page's data) on every admin page."""

from __future__ import annotations

import pytest

from tests.appliance.api_helpers import Shared, on_shared_app, shared  # noqa: F401 - shared is a fixture
from tests.appliance.web_helpers import Web, web  # noqa: F401

# route as the app declares it -> (lowest role, a concrete path to open)
PAGES: dict[str, tuple[str, str]] = {
    "/": ("agent", "/"),
    "/inbox": ("agent", "/inbox"),
    "/contacts": ("agent", "/contacts"),
    "/contacts/{contact_id:int}": ("agent", "/contacts/1"),
    "/dashboard": ("agent", "/dashboard"),
    "/flows": ("admin", "/flows"),
    "/flows/new": ("admin", "/flows/new"),
    "/flows/{flow_id:int}": ("admin", "/flows/1"),
    "/broadcasts": ("admin", "/broadcasts"),
    "/broadcasts/new": ("admin", "/broadcasts/new"),
    "/settings": ("admin", "/settings"),
    "/settings/{section:str}": ("admin", "/settings/team"),
    "/integrations/google/connect": ("admin", "/integrations/google/connect"),
}
SECTIONS = ["channels", "team", "replies", "ai", "integrations", "workspace"]
# Pages outside the role model: anonymous ones (sign-in and its links, Meta's status page,
# the callback that checks its own state), inbox fragments (agent, JSON-less HTML for the
# inbox script: tests/appliance/test_web_pages.py), static files, health and the API schema.
UNCLASSIFIED_PREFIXES = ("/signin", "/invite/", "/reset/", "/forgot", "/inbox/fragments/", "/static/", "/schema",
                         "/data-deletion/", "/integrations/google/callback", "/healthz", "/readyz", "/metrics",
                         "/webhooks/meta")


def test_every_page_is_classified(web: Web) -> None:
    served = {route.path for route in web.client.app.routes
              if "GET" in getattr(route, "methods", ()) and not route.path.startswith("/api/v1")}
    unclassified = {p for p in served if p not in PAGES and not p.startswith(UNCLASSIFIED_PREFIXES)}
    assert unclassified == set(), "add new pages (and their lowest role) to PAGES in this file"
    assert set(PAGES) <= served


@on_shared_app
@pytest.mark.parametrize("route", sorted(r for r, (role, _) in PAGES.items() if role == "admin"))
async def test_an_agent_gets_the_403_page_on_every_admin_page(web: Web, route: str) -> None:
    client = web.client
    await web.login("agent")
    paths = [f"/settings/{s}" for s in SECTIONS] if route == "/settings/{section:str}" else [PAGES[route][1]]
    for path in paths:
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 403, (path, response.status_code)
        assert 'id="builder"' not in response.text and 'id="user-list"' not in response.text
        if response.headers["content-type"].startswith("text/html"):
            assert "you are signed in as agent" in response.text, path


@on_shared_app
@pytest.mark.parametrize("route", sorted(r for r, (role, _) in PAGES.items() if role == "agent"))
async def test_an_agent_opens_every_agent_page(web: Web, route: str) -> None:
    client = web.client
    await web.login("agent")
    response = await client.get(PAGES[route][1], follow_redirects=False)
    # "/" sends to the inbox; this module made no contact, so contact 1 is the 404 page, not a 403
    expected = {"/": 303, "/contacts/{contact_id:int}": 404}.get(route, 200)
    assert response.status_code == expected, response.status_code
