"""A stand-in for the Docker Engine API (v1.44), enough for the docker provisioner: networks,
volumes, containers (create, inspect, start, stop, wait, remove, archive), exec. A real HTTP
server on loopback that records every request (method, path, query, JSON body) and keeps the
state those requests build; exec answers come from :attr:`DockerStandIn.exec_answer`.

The exec stream is Docker's multiplexed format (8-byte frame headers), which the SDK parses."""

from __future__ import annotations

import io
import itertools
import json
import struct
import tarfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["DockerStandIn", "Recorded"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    json: Any


class DockerStandIn(LoopbackStandIn):
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.networks: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}  # id -> {"name", "config", "running", "files"}
        self.execs: dict[str, dict[str, Any]] = {}
        # (container name, cmd) -> (exit code, stdout, stderr)
        self.exec_answer: Callable[[str, list[str]], tuple[int, bytes, bytes]] = lambda name, cmd: (0, b"", b"")
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def url(self) -> str:
        """The ``DOCKER_HOST`` form of the loopback port (TCP, not the engine's Unix socket)."""
        return f"tcp://127.0.0.1:{self.port}"

    def calls(self, method: str, fragment: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    def by_name(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.containers.values() if c["name"] == name), None)

    # --- routing -------------------------------------------------------------------------------
    def _find(self, ref: str) -> tuple[str, dict[str, Any]] | None:
        for cid, c in self.containers.items():
            if cid == ref or c["name"] == ref:
                return cid, c
        return None

    def _inspect(self, cid: str, c: dict[str, Any]) -> dict[str, Any]:
        running = c["running"]
        return {"Id": cid, "Name": "/" + c["name"], "Config": {"Labels": c["config"].get("Labels") or {}},
                "State": {"Status": "running" if running else "exited", "Running": running, "ExitCode": 0,
                          "Health": {"Status": "healthy"} if running and c["config"].get("Healthcheck") else None}}

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any, raw: bytes) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][1:]  # drop the version
        with self._lock:
            if parts[:1] == ["networks"]:
                if method == "POST" and parts[1:] == ["create"]:
                    self.networks[body["Name"]] = body
                    return 201, {"Id": body["Name"]}
                if method == "GET" and len(parts) == 2:
                    return (200, {"Id": parts[1], "Name": parts[1]}) if parts[1] in self.networks else (404, {"message": "no such network"})
            if parts[:1] == ["volumes"]:
                if method == "POST" and parts[1:] == ["create"]:
                    self.volumes[body["Name"]] = body
                    return 201, {"Name": body["Name"], "Labels": body.get("Labels")}
                if len(parts) == 2:
                    if parts[1] not in self.volumes:
                        return 404, {"message": "no such volume"}
                    if method == "DELETE":
                        del self.volumes[parts[1]]
                        return 204, None
                    return 200, {"Name": parts[1], **self.volumes[parts[1]]}
            if parts[:2] == ["containers", "create"]:
                cid = f"c{next(self._ids):063d}"
                name = query.get("name", [cid])[0]
                self.containers[cid] = {"name": name, "config": body, "running": False, "files": {}}
                return 201, {"Id": cid, "Warnings": []}
            if parts[:1] == ["containers"] and len(parts) >= 2:
                found = self._find(parts[1])
                if found is None:
                    return 404, {"message": f"no such container: {parts[1]}"}
                cid, c = found
                action = parts[2] if len(parts) > 2 else ""
                if method == "GET" and action == "json":
                    return 200, self._inspect(cid, c)
                if method == "POST" and action in ("start", "stop"):
                    c["running"] = action == "start"
                    return 204, None
                if method == "POST" and action == "wait":
                    c["running"] = False
                    return 200, {"StatusCode": 0}
                if method == "DELETE" and action == "":
                    del self.containers[cid]
                    return 204, None
                if method == "PUT" and action == "archive":
                    c["files"][query["path"][0]] = raw
                    return 200, None
                if method == "GET" and action == "archive":
                    target = query["path"][0]
                    buffer = io.BytesIO()
                    with tarfile.open(fileobj=buffer, mode="w") as tar:
                        data = c["files"].get(target, b"exported " + target.encode())
                        info = tarfile.TarInfo(target.rsplit("/", 1)[-1])
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    return 200, ("tar", buffer.getvalue())
                if method == "POST" and action == "exec":
                    eid = f"e{next(self._ids):063d}"
                    self.execs[eid] = {"container": c["name"], "config": body}
                    return 201, {"Id": eid}
            if parts[:1] == ["exec"] and len(parts) == 3:
                run = self.execs.get(parts[1])
                if run is None:
                    return 404, {"message": "no such exec"}
                if parts[2] == "start":
                    code, out, err = self.exec_answer(run["container"], run["config"]["Cmd"])
                    run["exit"] = code
                    stream = b""
                    for kind, data in ((1, out), (2, err)):
                        if data:
                            stream += struct.pack(">BxxxL", kind, len(data)) + data
                    return 200, ("stream", stream)
                if parts[2] == "json":
                    return 200, {"ExitCode": run.get("exit", 0), "Running": False}
        return 404, {"message": f"the stand-in does not know {method} {path}"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            # HTTP/1.0: each answer closes its connection, which ends the exec stream (sent
            # without a Content-Length) as the engine's hijacked connection does.
            protocol_version = "HTTP/1.0"

            def _do(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                raw = self.read_body()
                body = None
                if raw and "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw)
                standin.requests.append(Recorded(self.command, url.path, query, body))
                status, answer = standin.answer(self.command, url.path, query, body, raw)
                if not isinstance(answer, tuple):
                    self.send_body(status, b"" if answer is None else json.dumps(answer).encode())
                elif answer[0] == "tar":
                    self.send_body(status, answer[1], content_type="application/x-tar",
                                   headers={"X-Docker-Container-Path-Stat": "e30="})
                else:
                    # Like the engine's hijacked connection: headers first, the output later, then
                    # EOF. The SDK reads the stream from the socket itself, past http.client's
                    # buffer, so the output must not arrive together with the headers.
                    self.send_response(status)
                    self.send_header("Content-Type", "application/vnd.docker.raw-stream")
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(0.1)
                    self.wfile.write(answer[1])

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _do  # noqa: N815

        return Handler
