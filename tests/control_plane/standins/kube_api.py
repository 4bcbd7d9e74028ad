"""A stand-in for the Kubernetes API server, enough for the kubernetes provisioner: server-side
apply (``PATCH`` with ``application/apply-patch+yaml``) of Secrets, Services, StatefulSets,
NetworkPolicies, PersistentVolumeClaims and Jobs, the StatefulSet ``scale`` and ``status``
subresources, reads, deletes, pod lists by label selector, and pod ``exec`` over WebSocket
(the ``v4.channel.k8s.io`` protocol: channel 0 stdin, 1 stdout, 2 stderr, 3 the exit status).

It keeps the objects applied, reports every StatefulSet as ready at its replica count, gives
every Job one pod (``<job>-x1y2z``, phase ``Running``, the template's labels) that goes with its
Job, and records every request (method, path, query, content type, body). What an exec does is
the test's ``exec_handler(pod, container, command, read_stdin) -> (exit code, stdout, stderr)``
(``read_stdin(n)`` reads ``n`` bytes of what the client wrote on stdin); each exec is also
recorded in ``execs`` with the stdin it read."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import IO, Any

import yaml

from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["KubeStandIn", "KubeRequest", "KubeExec", "ExecHandler"]

_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)"
                   r"(?:/(?P<name>[^/]+)(?:/(?P<sub>scale|status|exec))?)?$")
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ExecHandler = Callable[[str, str, list[str], Callable[[int], bytes]], tuple[int, bytes, bytes]]


@dataclass(frozen=True)
class KubeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


@dataclass(frozen=True)
class KubeExec:
    pod: str
    container: str
    command: list[str]
    stdin: bytes


def _no_op(pod: str, container: str, command: list[str], read_stdin: Callable[[int], bytes]) -> tuple[int, bytes, bytes]:
    return 0, b"", b""


class KubeStandIn(LoopbackStandIn):
    def __init__(self, exec_handler: ExecHandler = _no_op) -> None:
        self.exec_handler = exec_handler
        self.execs: list[KubeExec] = []
        self.requests: list[KubeRequest] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name)
        super().__init__()

    @property
    def url(self) -> str:
        return self.origin

    def _list(self, plural: str, namespace: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        wanted = dict(pair.split("=", 1) for pair in (query.get("labelSelector") or [""])[0].split(",") if pair)
        with self._lock:
            items = [obj for (kind, ns, _), obj in self.objects.items() if kind == plural and ns == namespace
                     and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
        return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}

    def _answer(self, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        match = _PATH.match(path)
        if match is None:
            return 404, {"kind": "Status", "code": 404, "message": f"unknown path {path}"}
        if match["name"] is None:
            return self._list(match["plural"], match["ns"], query)
        key = (match["plural"], match["ns"], match["name"])
        with self._lock:
            current = self.objects.get(key)
            if method == "PATCH" and match["sub"] == "scale":
                if current is None:
                    return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
                current["spec"]["replicas"] = body["spec"]["replicas"]
                return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": current["metadata"],
                             "spec": {"replicas": body["spec"]["replicas"]}}
            if method == "PATCH":
                self.objects[key] = body
                if match["plural"] == "jobs":  # the Job controller's pod, running at once
                    pod = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": f"{key[2]}-x1y2z", "namespace": key[1],
                                        "labels": body["spec"]["template"]["metadata"]["labels"]},
                           "spec": body["spec"]["template"]["spec"], "status": {"phase": "Running"}}
                    self.objects[("pods", key[1], f"{key[2]}-x1y2z")] = pod
                return (200 if current else 201), body
            if method == "GET" and current is not None:
                ready = current.get("spec", {}).get("replicas", 0)
                return 200, {**current, "status": {"replicas": ready, "readyReplicas": ready}}
            if method == "DELETE" and current is not None:
                del self.objects[key]
                if match["plural"] == "jobs":
                    self.objects.pop(("pods", key[1], f"{key[2]}-x1y2z"), None)
                if match["plural"] in ("services", "persistentvolumeclaims"):  # answered with the object
                    return 200, current
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            def _do(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path.endswith("/exec") and (self.headers.get("Upgrade") or "").lower() == "websocket":
                    standin.requests.append(KubeRequest(self.command, url.path, urllib.parse.parse_qs(url.query),
                                                        "", None))
                    self._exec(url)
                    return
                raw = self.read_body()
                content_type = self.headers.get("Content-Type") or ""
                body = (yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw)) if raw else None
                standin.requests.append(KubeRequest(self.command, url.path, urllib.parse.parse_qs(url.query),
                                                    content_type, body))
                self.send_json(*standin._answer(self.command, url.path, body, urllib.parse.parse_qs(url.query)))

            def _exec(self, url: urllib.parse.SplitResult) -> None:
                query = urllib.parse.parse_qs(url.query)
                accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + _WS_GUID).encode()).digest())
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept.decode())
                self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
                self.end_headers()
                pending = bytearray()
                read: list[bytes] = []

                def read_stdin(n: int) -> bytes:
                    while len(pending) < n:
                        opcode, payload = _read_frame(self.rfile)
                        if opcode == 8:
                            break
                        if payload[:1] == b"\x00":
                            pending.extend(payload[1:])
                    chunk = bytes(pending[:n])
                    del pending[:n]
                    read.append(chunk)
                    return chunk

                pod = url.path.rsplit("/", 2)[-2]
                container, command = query["container"][0], query["command"]
                code, out, err = standin.exec_handler(pod, container, command, read_stdin)
                standin.execs.append(KubeExec(pod, container, command, b"".join(read)))
                for channel, data in ((1, out), (2, err)):
                    if data:
                        _write_frame(self.wfile, bytes([channel]) + data)
                status: dict[str, Any] = {"metadata": {}, "status": "Success"}
                if code:
                    status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                              "message": f"command terminated with non-zero exit code: {code}",
                              "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
                _write_frame(self.wfile, b"\x03" + json.dumps(status).encode())
                _write_frame(self.wfile, struct.pack(">H", 1000), opcode=8)
                self.close_connection = True

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _do  # noqa: N815

        return Handler


def _read_frame(rfile: IO[bytes]) -> tuple[int, bytes]:
    """One client frame (masked, per RFC 6455): ``(opcode, payload)``; a closed stream reads as close."""
    head = rfile.read(2)
    if len(head) < 2:
        return 8, b""
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack(">H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b""
    data = rfile.read(length)
    if mask and data:
        key = (mask * (length // 4 + 1))[:length]
        data = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return opcode, data


def _write_frame(wfile: IO[bytes], payload: bytes, *, opcode: int = 2) -> None:
    """One server frame (unmasked, final)."""
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, length])
    elif length < 65536:
        head = bytes([0x80 | opcode, 126]) + struct.pack(">H", length)
    else:
        head = bytes([0x80 | opcode, 127]) + struct.pack(">Q", length)
    wfile.write(head + payload)
    wfile.flush()
