"""How a feature package plugs into the app, so the app factory stays a list.

A feature package (``appliance.ai``, ``appliance.integrations`` ...) exposes ``FEATURE``:

- ``routes``: Litestar handlers/controllers mounted under ``/api/v1`` (behind API auth);
- ``public_routes``: handlers mounted at the root (OAuth callbacks and the like; their own auth);
- ``install(runtime)``: called in the lifespan before the workers start (register flow-step
  executors in ``runtime.executors``, ...);
- ``register_tasks(huey, runtime)``: huey tasks and periodic jobs;
- ``workers(runtime)``: coroutines run as background tasks for the life of the app (cancelled
  at shutdown).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huey import SqliteHuey

    from appliance.runtime import Runtime

__all__ = ["Feature"]


def _nothing(*_: Any) -> None:
    return None


def _no_workers(_: Runtime) -> list[Coroutine[Any, Any, None]]:
    return []


@dataclass(frozen=True)
class Feature:
    name: str
    routes: Sequence[Any] = ()
    public_routes: Sequence[Any] = ()
    install: Callable[[Runtime], None] = _nothing
    register_tasks: Callable[[SqliteHuey, Runtime], None] = _nothing
    workers: Callable[[Runtime], list[Coroutine[Any, Any, None]]] = field(default=_no_workers)
