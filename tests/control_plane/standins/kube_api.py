"""A stand-in for the Kubernetes API server, enough for the kubernetes provisioner: server-side
apply (``PATCH`` with ``application/apply-patch+yaml``) of Secrets, Services, StatefulSets and
NetworkPolicies, the StatefulSet ``scale`` and ``status`` subresources, and deletes. It keeps
the objects applied, reports every StatefulSet as ready at its replica count, and records every
request (method, path, query, content type, body)."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

__all__ = ["KubeStandIn", "KubeRequest"]

_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)"
                   r"/(?P<name>[^/]+)(?:/(?P<sub>scale|status))?$")


@dataclass(frozen=True)
class KubeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


class KubeStandIn:
    def __init__(self) -> None:
        self.requests: list[KubeRequest] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> KubeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        match = _PATH.match(path)
        if match is None:
            return 404, {"kind": "Status", "code": 404, "message": f"unknown path {path}"}
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
                return (200 if current else 201), body
            if method == "GET" and current is not None:
                ready = current.get("spec", {}).get("replicas", 0)
                return 200, {**current, "status": {"replicas": ready, "readyReplicas": ready}}
            if method == "DELETE" and current is not None:
                del self.objects[key]
                if match["plural"] == "services":  # the API answers a Service delete with the Service
                    return 200, current
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _do(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type") or ""
                body = (yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw)) if raw else None
                standin.requests.append(KubeRequest(self.command, url.path, urllib.parse.parse_qs(url.query),
                                                    content_type, body))
                status, answer = standin._answer(self.command, url.path, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _do  # noqa: N815

        return Handler
