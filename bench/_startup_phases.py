"""Where a restart's time goes, for ``bench/footprint.py``: the steps of ``aat-appliance serve``
timed one by one, in one fresh interpreter, on an existing data directory.

    python bench/_startup_phases.py DATA_DIR PORT     (AAT_MASTER_KEY in the environment)

Prints one JSON line of seconds. Up to ready (the front door, appliance/web/front.py): the
imports ``serve`` needs before it listens, reading the settings, ``open_workspace`` (keys,
migrations check, connections), and from starting uvicorn with the door to the first
``GET /readyz`` 200. Then the full app, built in the door's thread while the door answers:
importing ``appliance.app``, ``create_app``, and its lifespan until the door hands requests to it
(``app_open``, counted from the interpreter's start like ``ready``). Mirrors
``appliance/cli.py``'s ``serve``; it is not the shipped path.
"""

from __future__ import annotations

import gc
import time

started = time.perf_counter()
gc.disable()  # as `aat-appliance serve` does from its first import (appliance/__init__.py)

import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import uvicorn  # noqa: E402

import appliance.cli  # noqa: E402,F401
from appliance.ingest.receiver import WebhookReceiver  # noqa: E402
from appliance.logs import configure_logging  # noqa: E402
from appliance.metrics import Metrics  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.store.workspace import open_workspace  # noqa: E402
from appliance.web.front import FrontDoor  # noqa: E402

marks = {"door_imports": time.perf_counter() - started}


def main() -> None:
    data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    t = time.perf_counter()
    settings = Settings(data_dir=data_dir, port=port, log_level="warning")
    configure_logging(settings.log_level)
    marks["settings"] = time.perf_counter() - t
    t = time.perf_counter()
    workspace = open_workspace(settings)
    marks["open_workspace"] = time.perf_counter() - t
    metrics = Metrics()

    def build() -> object:
        t = time.perf_counter()
        from appliance.app import create_app

        marks["app_imports"] = time.perf_counter() - t
        t = time.perf_counter()
        app = create_app(settings, workspace=workspace, close_workspace=True, metrics=metrics)
        marks["create_app"] = time.perf_counter() - t
        gc.freeze()  # then, as cli._full_app: the start-up heap frozen, the collector on again
        gc.enable()
        marks["_built"] = time.perf_counter()
        return app

    def opened(_: object) -> None:
        marks["app_lifespan"] = time.perf_counter() - marks.pop("_built")
        marks["app_open"] = time.perf_counter() - started
        print(json.dumps({k: round(v, 4) for k, v in marks.items()}), flush=True)
        os._exit(0)

    door = FrontDoor(workspace=workspace, webhooks=WebhookReceiver(settings=settings, db=workspace.gateway,
                                                                   metrics=metrics),
                     build=build, on_open=opened)
    serving = time.perf_counter()

    def report_when_ready() -> None:
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    marks["door_to_ready"] = time.perf_counter() - serving
                    marks["ready"] = time.perf_counter() - started
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.005)

    threading.Thread(target=report_when_ready, daemon=True).start()
    uvicorn.Server(uvicorn.Config(door, host="127.0.0.1", port=port, lifespan="on", log_config=None,
                                  access_log=False, server_header=False)).run()


if __name__ == "__main__":
    main()
