"""The dashboard: ``/dashboard`` (every role). Messages per day by channel and direction, new
contacts, flow completions, AI replies and the median first response time of agents, over the
last 7, 14, 30 or 90 UTC days, as SVG charts drawn here (no chart service, no script).

:func:`bar_chart` turns counts into rectangles, so the template only places them and tests
check the geometry as plain data.
"""

from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlite_utils import Database

from appliance.flows import analytics
from appliance.timeutil import to_iso, utcnow
from appliance.web.pages import views
from appliance.web.pages.common import layout, signed_in

__all__ = ["DASHBOARD_PAGES", "bar_chart", "RANGES", "duration_words"]

RANGES = (7, 14, 30, 90)
CHANNELS = ("messenger", "instagram", "whatsapp")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 400, 170, 30, 22, 8


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    top, i = 1, 0
    while top < value:
        top = round(top * (2, 2.5, 2)[i % 3])
        i += 1
    return top


def bar_chart(days: list[str], series: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Stacked bars, one per day: ``{width, height, bars: [{x, y, w, h, cls, title}],
    ticks: [{x, label}], grid: [{y, label}], total}``. ``series`` maps a class name (a channel,
    or ``total``) to ``{day: count}``."""
    totals = [sum(s.get(day, 0) for s in series.values()) for day in days]
    top = _nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    bars: list[dict[str, Any]] = []
    for i, day in enumerate(days):
        base = HEIGHT - BOTTOM
        for name, counts in series.items():
            n = counts.get(day, 0)
            if not n:
                continue
            h = plot_h * n / top
            base -= h
            bars.append({"x": round(LEFT + i * slot + (slot - bar_w) / 2, 2), "y": round(base, 2),
                         "w": round(bar_w, 2), "h": round(h, 2), "cls": name,
                         "title": f"{day}: {n} {views.CHANNEL_NAMES.get(name, '')}".rstrip()})
    every = max(1, round(len(days) / 7))
    ticks = [{"x": round(LEFT + i * slot + slot / 2, 2), "label": day[5:]} for i, day in enumerate(days) if i % every == 0]
    grid = [{"y": round(HEIGHT - BOTTOM - plot_h * f, 2), "label": str(round(top * f))} for f in (0, 0.5, 1)
            if f == 0 or top * f == int(top * f)]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "bars": bars, "ticks": ticks, "grid": grid,
            "total": sum(totals), "days": days, "rows": [(d, t) for d, t in zip(days, totals, strict=True)]}


def duration_words(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{round(seconds)} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _read(db: Database, since: str, until: str) -> dict[str, Any]:
    return {
        "messages": analytics.messages_per_day(db, since, until),
        "contacts": analytics.new_contacts_per_day(db, since, until),
        "completions": analytics.flow_completions_per_day(db, since, until),
        "ai": analytics.ai_replies_per_day(db, since, until),
        "responses": analytics.agent_first_responses(db, since, until),
    }


@get("/dashboard", include_in_schema=False)
async def dashboard_page(
    request: Request[Any, Any, Any], days: Annotated[int | None, QueryParameter(required=False, ge=1, le=366)] = None,
) -> Template:
    principal = await signed_in(request)
    span = days if days in RANGES else 14
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=span - 1)
    day_list = [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(span)]
    data = await request.app.state.runtime.db.read(_read, to_iso(start), to_iso(today + timedelta(days=1)))
    inbound: dict[str, dict[str, int]] = {c: {} for c in CHANNELS}
    outbound: dict[str, dict[str, int]] = {c: {} for c in CHANNELS}
    for row in data["messages"]:
        target = inbound if row["direction"] == "in" else outbound
        target.setdefault(row["channel"], {})[row["day"]] = row["n"]
    charts = {
        "inbound": bar_chart(day_list, inbound), "outbound": bar_chart(day_list, outbound),
        "contacts": bar_chart(day_list, {"total": data["contacts"]}),
        "completions": bar_chart(day_list, {"total": data["completions"]}),
        "ai": bar_chart(day_list, {"total": data["ai"]}),
    }
    context = await layout(request, principal, active="dashboard")
    return Template("dashboard/page.html", context={
        **context, "charts": charts, "span": span, "ranges": RANGES, "channels": CHANNELS,
        "responses": data["responses"], "median_response": duration_words(data["responses"]["median_seconds"]),
    })


DASHBOARD_PAGES = [dashboard_page]
