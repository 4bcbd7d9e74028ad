"""The control plane web app. Until its issue lands it serves only health endpoints."""

from __future__ import annotations

from litestar import Litestar, get

__all__ = ["create_app"]


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[healthz], logging_config=None)
