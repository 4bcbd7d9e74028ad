"""``/api/v1/me`` and ``/api/v1/users``."""

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from sqlite_utils import Database

from appliance import email
from appliance.audit import audited, record
from appliance.entitlements import service as entitlements
from appliance.errors import Forbidden
from appliance.team import sessions, store
from appliance.team.auth import Principal, actor_of, requires
from appliance.team.credentials import hash_password
from appliance.team.models import NewUser
from appliance.team.signin import INVITE_VALID, RESET_VALID
from appliance.timeutil import iso_now, to_iso, utcnow
from appliance.web.api import Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["me", "UserController", "NewUser", "public_user"]


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "email": row["email"], "name": row["name"], "role": row["role"],
            "created_at": row["created_at"], "disabled": row["disabled_at"] is not None}


@get("/me")
async def me(request: Request[Principal, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
    """Who is calling: the signed-in user, or the API token used."""
    principal = request.user
    user = None
    if principal.user_id is not None:
        row = await runtime.db.read(store.get_user, principal.user_id)
        user = {"id": str(row["id"]), "email": row["email"], "role": row["role"]}
    token = {"id": str(principal.id), "name": principal.name, "role": principal.role} \
        if principal.kind == "token" else None
    return {"user": user, "token": token, "csrf_token": principal.csrf_token}


class UserController(Controller):
    path = "/users"
    guards = [requires("admin")]

    @get("/")
    async def list_users(
        self,
        runtime: RuntimeDep,
        limit: Annotated[int, Limit] = 50,
        cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        """The team, oldest first."""
        after = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(store.list_users, after_id=after, limit=limit + 1)
        return page([public_user(r) for r in rows], limit, lambda item: int(item["id"]))

    @post("/", status_code=201)
    async def create_user(
        self, data: JSONBody[NewUser], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Add a user (admin or owner; only an owner adds an owner); 409 when the email is taken."""
        if data.role == "owner" and request.user.role != "owner":
            raise Forbidden("only an owner can add another owner")
        # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        password_hash = await asyncio.to_thread(hash_password, data.password) if data.password else None
        actor = actor_of(request)

        def create(db: Database) -> tuple[dict[str, Any], str | None]:
            entitlements.check_room(db, runtime.entitlements, "seats", "team members")
            row = audited(db, actor, "user.create", "user", store.create_user, target_of=lambda r: r["id"],
                          details={"role": data.role}, email=data.email, role=data.role, name=data.name,
                          password_hash=password_hash, now=iso_now())
            token = None if password_hash else sessions.new_link(db, "invite", row["id"], valid_for=INVITE_VALID)
            return row, token

        row, token = await runtime.db.write(create)
        result = public_user(row)
        if token:
            # Shown once, here; and mailed when the workspace sends email.
            result["invite_url"] = f"{runtime.settings.public_url}/invite/{token}"
            result["invite_emailed"] = await email.send(
                runtime.settings, to=row["email"], subject="You're invited to an AAT Systems workspace",
                body=f"Choose your password within 7 days:\n\n{result['invite_url']}\n")
        return result

    @post("/{user_id:int}/reset-link", status_code=201)
    async def reset_link(
        self, user_id: Annotated[int, IdPath], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """A one-time link (2 hours) that lets the user choose a new password; shown once."""
        target = await runtime.db.read(store.get_user, user_id)
        if target["role"] == "owner" and request.user.role != "owner":
            raise Forbidden("only an owner can reset an owner's password")
        actor = actor_of(request)

        def make(db: Database) -> str:
            token = sessions.new_link(db, "reset", user_id, valid_for=RESET_VALID)
            record(db, actor, "user.reset_link", target_kind="user", target_id=user_id)
            return token

        token = await runtime.db.write(make)
        return {"reset_url": f"{runtime.settings.public_url}/reset/{token}",
                "expires_at": to_iso(utcnow() + RESET_VALID)}
