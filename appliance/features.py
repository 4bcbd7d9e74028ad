"""How a feature package plugs into the app, so the app factory stays a list.

A feature package (``appliance.ai``, ``appliance.integrations`` ...) exposes ``FEATURE``:

- ``routes``: Litestar handlers/controllers mounted under ``/api/v1`` (behind API auth);
- ``public_routes``: handlers mounted at the root (OAuth callbacks and the like; their own auth);
- ``install(runtime)``: called in the lifespan before the workers start (register flow-step
  executors in ``runtime.executors``, ...);
- ``register_tasks(huey, runtime)``: huey tasks and periodic jobs;
- ``workers(runtime)``: coroutines run as background tasks for the life of the app (cancelled
  at shutdown).

A package whose modules are also used without the web framework (``entitlements``, ``privacy``,
``backup``) keeps ``FEATURE`` in a ``feature`` module and exposes it with :func:`exports_of`, so
that importing the package imports nothing: ``aat-appliance serve`` loads the entitlement in
force and opens the front door (``appliance.web.front``) before Litestar is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huey import SqliteHuey

    from appliance.runtime import Runtime

__all__ = ["Feature", "exports_of"]


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


def exports_of(module: str, names: Sequence[str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562): each of ``names`` is ``module``'s attribute of that
    name, imported on first use (``from appliance.backup import FEATURE`` works as before)."""
    package = module.rpartition(".")[0]

    def attribute(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(module), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return attribute
