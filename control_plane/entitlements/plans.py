"""Plans: what a subscription buys. Read from ``AAT_CP_PLANS`` (a JSON list), checked once."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from appliance.entitlements.token import LIMIT_NAMES

__all__ = ["Plan", "DEFAULT_PLANS", "parse_plans", "find_plan"]

Count = Annotated[int, Field(ge=0)]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts: Count | None = None
    ai_replies_per_month: Count | None = None
    seats: Count | None = None
    channels: Count | None = None

    def as_claims(self) -> dict[str, int]:
        """Only the limited quantities (absent: no limit)."""
        return {name: value for name in LIMIT_NAMES if (value := getattr(self, name)) is not None}


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
    stripe_price: str | None = None
    limits: Limits = Field(default_factory=Limits)


DEFAULT_PLANS = (
    '[{"id": "starter", "stripe_price": null, "limits": {"contacts": 1000, "ai_replies_per_month": 500, '
    '"seats": 2, "channels": 3}}, {"id": "growth", "stripe_price": null, "limits": {"contacts": 25000, '
    '"ai_replies_per_month": 5000, "seats": 10, "channels": 10}}]'
)


def parse_plans(text: str) -> list[Plan]:
    """The plans of ``AAT_CP_PLANS``; raises ``ValueError`` naming what is wrong and where."""
    try:
        plans = TypeAdapter(list[Plan]).validate_python(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"AAT_CP_PLANS is not JSON: {exc.msg} at character {exc.pos}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"AAT_CP_PLANS[{where}]: {first['msg']}") from None
    ids = [plan.id for plan in plans]
    if len(set(ids)) != len(ids):
        raise ValueError("AAT_CP_PLANS: two plans share an id")
    return plans


def find_plan(plans: list[Plan], plan_id: str) -> Plan:
    for plan in plans:
        if plan.id == plan_id:
            return plan
    raise KeyError(f"no plan {plan_id!r}; the plans are {', '.join(p.id for p in plans)}")
