"""Shared pieces of the benchmarks: the machine, free ports, server processes, readiness.

Nothing here installs anything. A missing tool is reported with the command that installs it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent

__all__ = [
    "BENCH_DIR",
    "REPO",
    "RESULTS_DIR",
    "Server",
    "appliance_env",
    "code_version",
    "free_port",
    "http_status",
    "machine",
    "median",
    "missing_tool",
    "require_module",
    "sql_shape",
    "wait_ready",
]


class BenchError(SystemExit):
    """A benchmark cannot run or produced a result that must not be reported."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


def missing_tool(name: str, install: str) -> None:
    if shutil.which(name) is None:
        raise BenchError(f"{name} is not installed; install it with: {install}")


def require_module(name: str, install: str) -> None:
    try:
        __import__(name)
    except ImportError as exc:
        raise BenchError(f"the Python module {name} is missing; install it with: {install}") from exc


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fsync_probe(directory: Path, rounds: int = 100) -> float:
    """Median milliseconds of a 4 KiB append + fdatasync in ``directory``: the floor under
    every durable commit (SQLite in WAL with synchronous=FULL syncs the WAL on each commit)."""
    path = directory / ".fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    samples = []
    try:
        block = os.urandom(4096)
        for _ in range(rounds):
            started = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return round(median(samples), 3)


def machine(data_dir: Path | None = None) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0]
        info["memory_kib"] = int(mem.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    with contextlib.suppress(OSError):
        info["virtualized"] = "hypervisor" in Path("/proc/cpuinfo").read_text()
    info["loadavg_1m_at_start"] = round(os.getloadavg()[0], 2)
    if data_dir is not None:
        info["fsync_ms_median"] = _fsync_probe(data_dir)
    return info


def code_version() -> dict[str, Any]:
    """The commit measured, and how many files differed from it (others may be editing)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    dirty = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "modified_tracked_files": len(dirty)}


def appliance_env(*, master_key: bytes, app_secret: str, log_level: str = "warning") -> dict[str, str]:
    """The environment of a benchmarked appliance: no inherited ``AAT_`` variable leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(
        AAT_MASTER_KEY=base64.b64encode(master_key).decode(),
        AAT_META_APP_SECRET=app_secret,
        AAT_LOG_LEVEL=log_level,
        PYTHONUNBUFFERED="1",
    )
    return env


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, path: str = "/readyz", timeout: float = 60.0, poll: float = 0.005) -> float:
    """Seconds from the server's start until ``path`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited with code {server.proc.returncode} before it was "
                             f"ready; its log: {server.log_path}\n{server.log_tail()}")
        if http_status(server.port, path, timeout=0.5) == 200:
            return time.perf_counter() - server.started
        time.sleep(poll)
    raise BenchError(f"{server.name} was not ready after {timeout:.0f} s; its log: {server.log_path}")


@dataclass
class Server:
    """A server subprocess; stdout and stderr go to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    cwd: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(init=False)
    started: float = field(init=False, default=0.0)

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            if getattr(server, "proc", None) is not None:
                server.stop()


def sql_shape(sql: str) -> str:
    """A statement with its literals replaced, so the same query counts once."""
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"\b(sqlite_utils|job)_[0-9a-f]+", r"\1_?", sql)
    sql = re.sub(r"\b\d+\b", "?", sql)
    return " ".join(sql.split())
