"""Schemas of the team API, without the web framework: the CLI validates with them too."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["Email", "NewUser"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("is not an email address (expected name@example.com)")
    return value


Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    email: Email
    role: Literal["owner", "admin", "agent"]
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    password: Annotated[str, StringConstraints(min_length=12, max_length=1024)] | None = Field(
        None, description="At least 12 characters; omit to invite the user to choose one later."
    )
