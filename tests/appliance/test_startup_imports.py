"""What a restart loads: packages that only a request, a task or a send needs stay out of the
serving process's start (BENCHMARKS.md, "Footprint"), and aiohttp, loaded after start, is
loaded off the event loop and awaited by a send that comes first.

Each check runs in a fresh interpreter: this test process has everything imported already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Loaded by the request, task or send that needs them, never by `aat-appliance serve` at start.
NOT_AT_START = ("aiohttp", "httpx_aiohttp", "rich", "pygments", "segno", "jwt", "httpx_auth", "cryptography.x509",
                "jinja2", "argon2", "anthropic", "openai", "pypdf",
                # httpcore (and h11): only the SSRF-vetting client of integrations uses them (vetting.py)
                "httpcore", "h11", "appliance.integrations.vetting",
                # the first retention run and the first knowledge upload import these
                "appliance.privacy.retention", "appliance.ai.knowledge.service",
                # the first ai_reply step builds a prompt; the first upload extracts and chunks
                "appliance.ai.prompt", "appliance.ai.knowledge.extract", "appliance.ai.knowledge.chunking")


def _run(code: str) -> dict:
    # -X faulthandler: a crash prints every thread's stack to stderr, which the assertion shows.
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_serve_imports_leave_out_what_only_a_request_needs() -> None:
    found = _run(f"""
        import json, sys
        import appliance.cli, appliance.app
        print(json.dumps(sorted(m for m in {NOT_AT_START!r} if m in sys.modules)))
    """)
    assert found == []


def test_first_send_waits_for_aiohttp_off_the_loop_and_goes_out() -> None:
    # A real HTTP server on loopback; an import hook records which thread first imports aiohttp.
    result = _run("""
        import asyncio, http.server, json, sys, threading
        importers = []

        class Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "aiohttp":
                    importers.append(threading.current_thread().name)
                return None

        sys.meta_path.insert(0, Spy())
        import httpx
        from appliance.channels import transport

        class Graph(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = json.dumps({"echo": json.loads(body)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Graph)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        async def main():
            loaded_before = "aiohttp" in sys.modules
            client = httpx.AsyncClient(transport=transport.pooled_transport(httpx.Limits(max_connections=4)))
            try:
                response = await client.post(f"http://127.0.0.1:{server.server_address[1]}/v25.0/1/messages",
                                             json={"text": "hi"})
                return {"loaded_before": loaded_before, "status": response.status_code, "json": response.json(),
                        "importers": importers, "loop_thread": threading.current_thread().name,
                        "is_loaded": transport.is_loaded(), "once": transport.preload() is transport.preload()}
            finally:
                await client.aclose()

        print(json.dumps(asyncio.run(main())))
    """)
    assert result["loaded_before"] is False
    assert (result["status"], result["json"]) == (200, {"echo": {"text": "hi"}})
    assert result["importers"] == ["aat-load-aiohttp"]  # imported once, in the loader thread, not on the loop
    assert result["loop_thread"] == "MainThread"
    assert result["is_loaded"] is True and result["once"] is True


def test_an_exit_right_after_ready_waits_for_the_aiohttp_load_instead_of_finalizing_under_it() -> None:
    # A stop within half a second of ready exits while aiohttp is still being imported. The loader
    # must not be a daemon thread: the interpreter waits for it before it finalizes (atexit runs
    # after that wait), so no C extension is still loading while the runtime is torn down.
    result = _run("""
        import atexit, json, threading
        from appliance.channels import transport

        transport.preload()
        loader = next(t for t in threading.enumerate() if t.name == "aat-load-aiohttp")
        atexit.register(lambda: print(json.dumps({"daemon": loader.daemon, "loaded_at_exit": transport.is_loaded()})))
    """)
    assert result == {"daemon": False, "loaded_at_exit": True}


def test_only_the_serve_command_starts_with_the_cyclic_collector_off() -> None:
    from appliance import _starts_server

    assert _starts_server(["/venv/bin/python3", "/venv/bin/aat-appliance", "serve", "--port", "8000"])
    assert _starts_server(["python", "-X", "importtime", "-m", "appliance.cli", "serve"])
    assert not _starts_server(["/venv/bin/python3", "/venv/bin/aat-appliance", "migrate"])
    assert not _starts_server(["python", "-m", "control_plane.cli", "serve"])
    assert not _starts_server(["/venv/bin/python3", "/venv/bin/aat-control-plane", "serve"])
    assert not _starts_server(["python", "-m", "pytest", "serve"])
    assert not _starts_server(["/venv/bin/aat-appliance"])


def test_serve_listens_before_litestar_is_imported_then_builds_the_app_with_the_collector_off(tmp_path) -> None:
    # The real `serve` command on a fresh data directory, in a fresh interpreter started as
    # `python -m appliance.cli serve`; only uvicorn's server is replaced, by one that records the
    # state when it would start listening, drives the front door's lifespan, asks /readyz, waits
    # for the full app and stops it as uvicorn would.
    result = _run(f"""
        import asyncio, base64, gc, json, os, sys, types
        sys.orig_argv = [sys.executable, "-m", "appliance.cli", "serve"]
        os.environ.update(AAT_MASTER_KEY=base64.b64encode(bytes(range(32))).decode(), AAT_LOG_LEVEL="warning")
        seen = {{}}

        class Config:
            def __init__(self, app, **options):
                self.app, self.options = app, options

        class Server:
            def __init__(self, config):
                self.config, self.started, self.should_exit = config, False, False

            def run(self):
                seen.update(listening=dict(collector_on=gc.isenabled(),
                                           loaded=sorted(m for m in ("litestar", "jinja2", "httpx") if m in sys.modules)))
                asyncio.run(self.serve(self.config.app))

            async def serve(self, door):
                events, answers, sent = asyncio.Queue(), asyncio.Queue(), []
                lifespan = asyncio.create_task(door({{"type": "lifespan"}}, events.get, answers.put))
                await events.put({{"type": "lifespan.startup"}})
                seen["startup"] = (await answers.get())["type"]
                self.started = True

                async def receive():
                    return {{"type": "http.request", "body": b"", "more_body": False}}

                async def send(message):
                    sent.append(message)

                await door({{"type": "http", "method": "GET", "path": "/readyz", "headers": [], "query_string": b""}},
                           receive, send)
                seen["readyz"] = [sent[0]["status"], json.loads(sent[1]["body"])]
                seen["ready_before_the_app"] = door.app is None
                while door.app is None and door.failure is None:
                    await asyncio.sleep(0.01)
                from litestar import Litestar
                seen.update(app=isinstance(door.app, Litestar), collector_on=gc.isenabled(),
                            frozen=gc.get_freeze_count(), loaded=sorted(m for m in ("httpcore", "h11") if m in sys.modules))
                await events.put({{"type": "lifespan.shutdown"}})
                seen["shutdown"] = (await answers.get())["type"]
                await lifespan

        fake = types.ModuleType("uvicorn")
        fake.Config, fake.Server = Config, Server
        sys.modules["uvicorn"] = fake
        import appliance
        off_at_import = not gc.isenabled()
        from appliance.cli import main
        try:
            main(["serve", "--port", "1", "--data-dir", {str(tmp_path / "data")!r}])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        print(json.dumps(dict(seen, off_at_import=off_at_import)))
    """)
    assert result["off_at_import"] is True
    # Listening: webhooks and /readyz are answered by the front door, Litestar is not loaded yet.
    assert result["listening"] == {"collector_on": False, "loaded": []}
    assert result["startup"] == "lifespan.startup.complete"
    assert result["readyz"] == [200, {"status": "ready"}] and result["ready_before_the_app"] is True
    # Then the full app: built with the collector off, the heap frozen, the collector on again.
    assert result["app"] is True and result["collector_on"] is True and result["frozen"] > 10_000
    # Serving without httpcore. (attrs: aiohttp, preloaded in a thread once the app is open, brings
    # it; that create_app's plugins do not is checked by test_route_handlers_carry_evaluated_annotations.)
    assert result["loaded"] == []
    assert result["shutdown"] == "lifespan.shutdown.complete"


def test_other_commands_keep_the_collector_on() -> None:
    assert _run("""
        import gc, json, sys
        sys.orig_argv = [sys.executable, "-m", "appliance.cli", "migrate"]
        import appliance.cli
        print(json.dumps(gc.isenabled()))
    """) is True


def test_route_handlers_carry_evaluated_annotations(tmp_path) -> None:
    # Litestar resolves every handler's type hints while `create_app` registers it; string
    # annotations (`from __future__ import annotations`) cost a compile and an eval each, about
    # 25 ms of a restart for the 240 handlers. Route modules therefore keep their annotations real.
    from appliance.app import create_app
    from appliance.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data"), run_queue=False)
    stringly = sorted({
        f"{handler.fn.__module__}.{handler.fn.__qualname__}"
        for route in app.routes for handler in getattr(route, "route_handlers", [getattr(route, "route_handler", None)])
        if handler is not None and handler.fn.__module__.startswith("appliance.")
        and any(isinstance(hint, str) for hint in getattr(handler.fn, "__annotations__", {}).values())
    })
    assert stringly == []
    assert len(app.routes) > 100

    # Litestar's default plugins, but for the attrs schema plugin (appliance.app._Appliance).
    from litestar import Litestar

    defaults = sorted(type(plugin).__name__ for plugin in Litestar(route_handlers=[]).plugins)
    assert sorted(type(plugin).__name__ for plugin in app.plugins) == [n for n in defaults if n != "AttrsSchemaPlugin"]
