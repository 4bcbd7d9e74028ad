"""``POST /admin/api/notices/policy-change`` (admin token): email a policy change to every
active account, once per notice id (:mod:`control_plane.notices.service`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, post
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, StringConstraints

from control_plane.web import CpDep, actor_of, admin_guard

__all__ = ["send_policy_change", "PolicyChange", "NOTICE_ID"]

NOTICE_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class PolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notice_id: Annotated[str, StringConstraints(pattern=NOTICE_ID)]
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    body: Annotated[str, StringConstraints(min_length=1, max_length=50_000)]


@post("/admin/api/notices/policy-change", guards=[admin_guard], status_code=200)
async def send_policy_change(request: Request[Any, Any, Any], data: JSONBody[PolicyChange], cp: CpDep) -> dict[str, Any]:
    return await cp.notices.send_policy_change(data.notice_id, data.subject, data.body, actor_of(request))
