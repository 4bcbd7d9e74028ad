"""``GET /api/v1/entitlements`` (the plan and limits in force, what is used) and
``PUT /entitlements`` (the control plane pushes a newer token; its signature is the credential)."""

from typing import Any

from litestar import get, put
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, Field

from appliance import audit
from appliance.entitlements import service, store
from appliance.team.auth import requires
from appliance.timeutil import utcnow
from appliance.web.api import RuntimeDep

__all__ = ["get_entitlements", "push_entitlements"]


class Push(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    token: str = Field(min_length=1, max_length=4096)


@get("/entitlements", guards=[requires("agent")])
async def get_entitlements(runtime: RuntimeDep) -> dict[str, Any]:
    usage = await runtime.db.read(store.usage, utcnow().strftime("%Y-%m"))
    return service.describe(runtime.entitlements, usage)


@put("/entitlements", request_max_body_size=8192)
async def push_entitlements(data: JSONBody[Push], runtime: RuntimeDep) -> dict[str, Any]:
    def write(db: Any) -> dict[str, Any]:
        answer = service.accept(db, runtime.settings, data.token, runtime.entitlements)
        audit.record(db, audit.Actor(kind="system", id=None, label="control plane", ip=None),
                     "entitlements.update", details={"plan": answer["plan"], "limits": answer["limits"]})
        return answer

    runtime.entitlements = await runtime.db.write(write)
    usage = await runtime.db.read(store.usage, utcnow().strftime("%Y-%m"))
    return service.describe(runtime.entitlements, usage)
