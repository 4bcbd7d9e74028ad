"""Shared pieces of the JSON API: the runtime dependency, ids in paths and cursor pagination.

Lists answer ``{"items": [...], "next_cursor": "..." | null}``; the cursor is opaque to
clients (base64url of the position after the last item). Ids are SQLite integers: a path id
or a cursor outside 1..2^63-1 is refused (422 / 400) before it reaches the database, where it
would overflow.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from appliance.errors import BadRequest
from appliance.runtime import Runtime

__all__ = [
    "RuntimeDep", "runtime_dep", "encode_cursor", "decode_cursor", "is_id", "page", "Limit", "Cursor",
    "MAX_ID", "IdPath",
]

MAX_ID = 2**63 - 1  # the largest SQLite INTEGER


def runtime_dep(state: State) -> Runtime:
    return state.runtime


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, shape: Callable[[Any], bool]) -> Any:
    """The position inside ``cursor``; ``shape`` checks it is what this list issues."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, RecursionError):  # not base64, not JSON, or nested absurdly deep
        position = None
    if position is None or not shape(position):
        raise BadRequest("the cursor is not one this API returned; start again without it",
                         code="invalid_cursor")
    return position


def is_id(position: Any) -> bool:
    return isinstance(position, int) and not isinstance(position, bool) and 0 <= position <= MAX_ID


def page(items: list[dict[str, Any]], limit: int, position_of: Any) -> dict[str, Any]:
    """``items`` holds up to ``limit + 1`` rows; the extra one only says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": items,
        "next_cursor": encode_cursor(position_of(items[-1])) if more and items else None,
    }


Limit = QueryParameter(name="limit", ge=1, le=500, description="Page size (default 50, max 500).")
Cursor = QueryParameter(name="cursor", description="next_cursor of the previous page.")
# A resource id in a path: ``contact_id: Annotated[int, IdPath]``.
IdPath = PathParameter(ge=1, le=MAX_ID)

# Handlers receive the runtime by name: ``runtime: RuntimeDep``.
RuntimeDep = NamedDependency[Runtime]
