"""Server-rendered pages: the session pages (``session``) and the app's screens.

``WEB_PAGES`` lists the screens' handlers (inbox, contacts, settings); the app factory mounts
them with ``SESSION_PAGES`` on one router that adds the security headers
(:data:`appliance.web.pages.common.SECURITY_HEADERS`) and turns :class:`Denied` into its
response (the sign-in redirect or the 403 page).
"""

from appliance.web.pages.broadcasts import BROADCAST_PAGES
from appliance.web.pages.common import SECURITY_HEADERS, Denied
from appliance.web.pages.contacts import CONTACT_PAGES
from appliance.web.pages.dashboard import DASHBOARD_PAGES
from appliance.web.pages.flows import FLOW_PAGES
from appliance.web.pages.inbox import INBOX_PAGES
from appliance.web.pages.settings import SETTINGS_PAGES

__all__ = ["WEB_PAGES", "SECURITY_HEADERS", "Denied", "denied_response"]

WEB_PAGES = [*INBOX_PAGES, *CONTACT_PAGES, *FLOW_PAGES, *DASHBOARD_PAGES, *BROADCAST_PAGES, *SETTINGS_PAGES]


def denied_response(_: object, exc: Denied) -> object:
    return exc.response
