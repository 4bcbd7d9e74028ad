"""Helpers of ``bench/router.py``: the control plane launched on a seeded data directory with
a provisioner that only knows where the tenants already listen, and the tenants' stand-in: one
raw asyncio HTTP server per tenant port that answers 200 at once (healthy), or accepts and
never answers (black hole); refused tenants have no listener at all."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["seed", "serve_control_plane", "Sink"]

MID = re.compile(rb'"mid":"(m_[0-9]+)"')


def seed(data_dir: Path, master_key: str, tenants: list[tuple[str, str, str]]) -> None:
    """``tenants``: ``(tenant id, page id, url)``; active, routed, with a dummy API token."""
    from appliance import audit
    from appliance.timeutil import iso_now
    from control_plane.channels import store as channels
    from control_plane.db import direct_database
    from control_plane.lifecycle import store
    from control_plane.lifecycle.service import new_tenant_row, seal
    from control_plane.settings import ControlPlaneSettings

    settings = ControlPlaneSettings(data_dir=data_dir, master_key=master_key)
    with direct_database(settings) as (db, cp_store):
        for tenant_id, page_id, url in tenants:
            new_tenant_row(db, cp_store.fields, name=tenant_id, provisioner="bench", owner_email=None, plan=None,
                           actor=audit.Actor("cli", label="bench"), tenant_id=tenant_id)
            store.set_api_token(db, tenant_id, seal(cp_store.fields, "api_token", tenant_id, "aat_bench"))
            store.set_endpoint(db, tenant_id, url=url, port=None, now=iso_now())
            channels.add_channel(db, tenant_id=tenant_id, channel_type="messenger", external_id=page_id, name=None,
                                 waba_id=None, page_id=None, token_enc=None, appliance_channel_id="1", now=iso_now())


_NO_TENANT_FILES = "the benchmark's tenants are HTTP sinks: they run no commands and hold no data"


class StaticProvisioner:
    """Tenants that already run somewhere (the sink): nothing to start or stop."""

    name = "bench"

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls

    def on_ready(self, listener: Any) -> None:
        pass

    async def provision(self, spec: Any) -> Any:
        return await self.start(spec)

    async def start(self, spec: Any) -> Any:
        from control_plane.provisioning.base import Endpoint

        return Endpoint(url=self.urls[spec.id])

    async def stop(self, tenant_id: str) -> None:
        pass

    async def teardown(self, tenant_id: str) -> None:
        pass

    async def restore(self, spec: Any, source: Path, passphrase: str) -> None:
        raise RuntimeError(_NO_TENANT_FILES)

    async def exec(self, spec: Any, argv: list[str], stdin: bytes | None = None) -> Any:
        raise RuntimeError(_NO_TENANT_FILES)

    async def export(self, spec: Any, out: Path, passphrase: str) -> None:
        raise RuntimeError(_NO_TENANT_FILES)

    async def close(self) -> None:
        pass


def serve_control_plane(data_dir: str, master_key: str, port: int, secret: str, urls_file: str) -> None:
    """``python bench/_router_services.py cp DATA_DIR KEY PORT SECRET URLS``: uvicorn, as ``serve`` runs it."""
    import json

    import uvicorn

    from appliance.logs import configure_logging
    from control_plane.app import create_app
    from control_plane.settings import ControlPlaneSettings, PlatformApp

    configure_logging("warning")
    settings = ControlPlaneSettings(data_dir=Path(data_dir), master_key=master_key, port=port, sweep_seconds=3600,
                                    forward_timeout_seconds=10)
    provisioner = StaticProvisioner(json.loads(Path(urls_file).read_text()))
    app = create_app(settings, PlatformApp(meta_app_secret=secret), provisioner=provisioner)
    _heap_policy(os.environ.get("BENCH_HEAP", "serve"))
    if os.environ.get("BENCH_PROBE"):
        _probe(Path(os.environ["BENCH_PROBE"]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, server_header=False)


def _heap_policy(policy: str) -> None:
    """The collector policy before serving (``BENCH_HEAP``): ``serve`` (default) as the control
    plane's ``serve`` applies it, ``freeze`` the start-up freeze only, ``none`` CPython's
    defaults; ``BENCH_GC_GEN0=N`` then sets the gen-0 threshold (experiments)."""
    import gc

    from appliance.heap import freeze_startup_heap, raise_young_threshold

    if policy not in {"serve", "freeze", "none"}:
        raise SystemExit(f"BENCH_HEAP: serve, freeze or none, not {policy!r}")
    if policy != "none":
        freeze_startup_heap()
    if policy == "serve":
        raise_young_threshold()
    if os.environ.get("BENCH_GC_GEN0"):
        gc.set_threshold(int(os.environ["BENCH_GC_GEN0"]), *gc.get_threshold()[1:])


def _probe(out: Path) -> None:
    """Where an ack's time goes (``--probe``): the writer's batches (wall, the writer thread's
    CPU, jobs, the journal function's wall), each accept's wall, and the event loop's lag (a
    10 ms sleep's overshoot), GC collections per generation in thread CPU. Timing wrappers
    installed in this benchmark process only. The collector policy is ``_heap_policy``'s."""
    import json

    from appliance.store.gateway import Gateway
    from control_plane.routing import service, store

    stats: dict[str, list[Any]] = {"batch": [], "accept": [], "lag": [], "journal": [], "queued": []}
    run_batch, accept, journal_many, submit = Gateway._run_batch, service.Router.accept, store.journal_many, \
        Gateway.submit_write

    def timed_batch(self: Any, batch: list[Any]) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        for job in batch:
            stats["queued"].append(t0 - getattr(job.future, "_bench_t", t0))
        run_batch(self, batch)
        stats["batch"].append((time.perf_counter() - t0, time.thread_time() - c0, len(batch), t0))

    def timed_submit(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        future = submit(self, fn, *args, **kwargs)
        future._bench_t = time.perf_counter()  # type: ignore[attr-defined]
        return future

    def timed_journal(db: Any, deliveries: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return journal_many(db, deliveries)
        finally:
            stats["journal"].append((time.perf_counter() - t0, len(deliveries)))

    async def timed_accept(self: Any, delivery: Any) -> Any:
        t0 = time.perf_counter()
        if not stats.get("first_accept"):
            stats["first_accept"] = [t0]
        try:
            return await accept(self, delivery)
        finally:
            stats["accept"].append(time.perf_counter() - t0)

    handle_run = asyncio.Handle._run
    stats["slow"] = []

    def timed_run(self: Any) -> None:  # every event-loop callback: the slow ones, named, wall and CPU
        t0, c0 = time.perf_counter(), time.thread_time()
        handle_run(self)
        wall = time.perf_counter() - t0
        if wall > 0.005:
            stats["slow"].append((wall, time.thread_time() - c0, t0, _callback_name(self._callback)))

    asyncio.Handle._run = timed_run  # type: ignore[method-assign]
    run_once = asyncio.BaseEventLoop._run_once
    stats["iterations"] = []

    selected = [0.0]
    stats["late_select"] = []

    def timed_run_once(self: Any) -> None:  # one loop iteration, less its wait in select
        if not hasattr(self._selector, "_bench"):
            select = self._selector.select

            def timed_select(timeout: float | None = None) -> Any:
                t, c = time.perf_counter(), time.thread_time()
                try:
                    return select(timeout)
                finally:
                    waited = time.perf_counter() - t
                    selected[0] += waited
                    if waited > 0.02 and timeout is not None and timeout <= 0.01:  # the lag watch's timer
                        stats["late_select"].append((waited, timeout, time.thread_time() - c, t))
            self._selector.select, self._selector._bench = timed_select, True
        waited = _run_delay()
        selected[0], t0, c0 = 0.0, time.perf_counter(), time.thread_time()
        run_once(self)
        wall = time.perf_counter() - t0 - selected[0]
        if wall > 0.02:
            stats["iterations"].append((wall, time.thread_time() - c0, t0, len(self._ready),
                                        time.perf_counter(), _run_delay() - waited))

    asyncio.BaseEventLoop._run_once = timed_run_once  # type: ignore[method-assign]
    Gateway._run_batch, Gateway.submit_write = timed_batch, timed_submit  # type: ignore[method-assign]
    service.Router.accept = timed_accept  # type: ignore[method-assign]
    store.journal_many = timed_journal

    import gc

    gc_started: list[float] = []
    stats["gc"] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[:] = [time.thread_time()]
        elif gc_started:
            stats["gc"].append((info["generation"], time.thread_time() - gc_started[0],  # CPU, not wall
                                time.perf_counter()))
    gc.callbacks.append(on_gc)

    def lag_monitor() -> None:
        async def watch() -> None:
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                stats["lag"].append((time.perf_counter() - t0 - 0.01, t0))
        asyncio.get_event_loop().create_task(watch())

    import uvicorn.server
    startup = uvicorn.server.Server.startup

    async def hooked(self: Any, sockets: Any = None) -> None:
        lag_monitor()
        await startup(self, sockets)
        stats["heap_objects"] = [len(gc.get_objects()), gc.get_freeze_count()]
        stats["gc_threshold"] = list(gc.get_threshold())
    shutdown = uvicorn.server.Server.shutdown

    async def written(self: Any, sockets: Any = None) -> None:  # uvicorn re-raises SIGTERM: no atexit
        out.write_text(json.dumps(stats))
        await shutdown(self, sockets)
    uvicorn.server.Server.startup = hooked  # type: ignore[method-assign]
    uvicorn.server.Server.shutdown = written  # type: ignore[method-assign]


_schedstat: dict[int, int] = {}


def _run_delay() -> float:
    """Seconds this thread has spent runnable but waiting for a core (``/proc`` schedstat): the
    OS's preemption, as opposed to waiting for the GIL, which is sleeping. One ``pread`` on a
    descriptor kept open per thread (a few microseconds: it runs once per loop iteration)."""
    tid = threading.get_native_id()
    fd = _schedstat.get(tid)
    if fd is None:
        fd = _schedstat[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
    return int(os.pread(fd, 128, 0).split()[1]) / 1e9


def _callback_name(callback: Any) -> str:
    """A task step as its coroutine's name, any other callback as its own."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return "task " + getattr(coro, "__qualname__", repr(coro))
    return getattr(callback, "__qualname__", repr(callback))


class Sink:
    """The tenants: ``healthy`` ports answer 200 at once and record when each mid arrived;
    ``blackhole`` ports accept and never answer."""

    def __init__(self) -> None:
        self.arrivals: dict[bytes, float] = {}
        self.requests = 0
        self.duplicates = 0
        self._servers: list[asyncio.base_events.Server] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def listen(self, port: int, *, blackhole: bool = False) -> None:
        handler = self._blackhole if blackhole else self._healthy

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            self._writers.add(writer)
            try:
                await handler(reader, writer)
            finally:
                self._handlers.discard(task)
                self._writers.discard(writer)

        self._servers.append(await asyncio.start_server(tracked, "127.0.0.1", port, backlog=512))

    async def _healthy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"(?i)content-length: *(\d+)", head)  # none: a GET (the usage sweep)
                body = await reader.readexactly(int(found.group(1))) if found else b""
                now = time.monotonic()
                self.requests += 1
                for mid in MID.findall(body):
                    if mid in self.arrivals:
                        self.duplicates += 1
                    else:
                        self.arrivals[mid] = now
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\nEVENT_RECEIVED\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _blackhole(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        """Stop listening and end the open connections (so the loop closes without cancelling
        handlers behind our back)."""
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # the handler's read ends with ConnectionError and it returns
        await asyncio.wait_for(asyncio.gather(*self._handlers, return_exceptions=True), 10)


if __name__ == "__main__":
    if sys.argv[1] == "cp":
        serve_control_plane(*sys.argv[2:4], int(sys.argv[4]), *sys.argv[5:7])
