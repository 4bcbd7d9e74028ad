"""``/api/v1/settings/workspace``: the workspace's name (``{{workspace.name}}``), its default
time zone (delay windows), and the words that unsubscribe and resubscribe a contact."""

from typing import Annotated, Any

from litestar import Request, get, put
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from appliance.audit import audited
from appliance.flows.timing import known_zone
from appliance.team.auth import Principal, actor_of, requires
from appliance.web.api import RuntimeDep
from appliance.workspace import store

__all__ = ["get_workspace_settings", "put_workspace_settings", "WorkspaceSettings"]

Word = Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]
Reply = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class SubscriptionWords(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    stop: list[Word] = Field(min_length=1, max_length=50)
    start: list[Word] = Field(min_length=1, max_length=50)
    stop_reply: Reply
    start_reply: Reply


class WorkspaceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    subscription: SubscriptionWords | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not known_zone(value):
            raise ValueError("not a known IANA time zone, e.g. Europe/Berlin")
        return value


@get("/settings/workspace", guards=[requires("admin")])
async def get_workspace_settings(runtime: RuntimeDep) -> dict[str, Any]:
    return await runtime.db.read(store.read)


@put("/settings/workspace", guards=[requires("admin")])
async def put_workspace_settings(
    data: JSONBody[WorkspaceSettings], request: Request[Principal, Any, Any], runtime: RuntimeDep
) -> dict[str, Any]:
    """Change the given settings; the others stay."""
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    return await runtime.db.write(
        audited, actor_of(request), "settings.workspace", None, store.write, changes,
        details={"changed": sorted(changes)},
    )
