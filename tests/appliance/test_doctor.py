"""``aat-appliance doctor`` on good and broken installations: a real server behind a TLS proxy
(Caddy's place), the Graph API stand-in, and the doctor run as its own process."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from appliance.doctor import run_checks
from appliance.settings import Settings
from tests.e2e.conftest import BIN, Appliance, Template, base_env, run_cli
from tests.standins.graph_api import GraphStandIn
from tests.standins.tls_proxy import TlsProxy, self_signed

PAGE_ID = "1029384756"
PAGE_TOKEN = "EAAG-doctor-page-token"


@dataclass
class Installation:
    app: Appliance
    proxy: TlsProxy
    graph: GraphStandIn

    def doctor(self, **env: str) -> subprocess.CompletedProcess[str]:
        settings = {"AAT_PUBLIC_URL": self.proxy.url, "AAT_GRAPH_API_BASE": self.graph.base_url,
                    "AAT_BACKUP_DIR": str(self.app.root / "backups"),
                    "AAT_INSTAGRAM_API_BASE": self.graph.base_url, "SSL_CERT_FILE": str(self.proxy.cert_path)}
        return subprocess.run([str(BIN), "doctor", "--data-dir", str(self.app.data_dir)], cwd=self.app.root,
                              env=base_env(**{**settings, **env}), capture_output=True, text=True, timeout=60)


def lines(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Check name -> its status and message, from the doctor's output."""
    out = {}
    for line in done.stdout.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        name, _, message = rest.partition("  ")
        out[name.strip()] = f"{status} {message.strip()}"
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("template")
    run_cli("migrate", "--data-dir", str(root / "data"), cwd=root, env=base_env())
    out = run_cli("tokens", "create", "--name", "doctor", "--data-dir", str(root / "data"), cwd=root, env=base_env())
    return Template(root / "data", out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory, template: Template) -> Iterator[Installation]:
    root = tmp_path_factory.mktemp("installation")
    graph = GraphStandIn().start()
    app = Appliance(root, template, graph)
    proxy = TlsProxy(root, app.port).start()
    app.env["AAT_PUBLIC_URL"] = proxy.url
    try:
        app.start()
        app.connect_channel(type="messenger", external_id=PAGE_ID, access_token=PAGE_TOKEN)
        run_cli("backup", "--to", str(root / "backups"), "--data-dir", str(app.data_dir), cwd=root, env=app.env)
        yield Installation(app, proxy, graph)
    finally:
        app.cleanup()
        proxy.stop()
        graph.stop()


def test_a_good_installation_passes_every_check(installation: Installation) -> None:
    installation.graph.objects[PAGE_ID] = {"name": "Doctor's shop"}
    installation.graph.other_requests.clear()
    done = installation.doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    found = lines(done)
    assert list(found) == ["master key", "workspace", "app secret", "verify token", "public URL", "disk space",
                           "backups", "webhook", "messenger channel 1", "clock"]
    assert all(value.startswith("OK ") for value in found.values()), found
    assert found["webhook"] == f"OK {installation.proxy.url}/webhooks/meta answers Meta's handshake with this verify token"
    assert done.stdout.splitlines()[-1] == "all checks passed"
    [lookup] = installation.graph.other_requests
    assert (lookup.method, lookup.path, lookup.query) == ("GET", f"/v25.0/{PAGE_ID}", "fields=id")
    assert lookup.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert PAGE_TOKEN not in done.stdout + done.stderr


def test_a_refused_channel_token_is_a_problem(installation: Installation) -> None:
    installation.graph.objects.pop(PAGE_ID, None)
    done = installation.doctor()
    assert done.returncode == 1
    assert lines(done)["messenger channel 1"] == (
        "FAIL the Graph API refused its token: Unsupported get request. (code 100); reconnect the channel")
    assert done.stdout.splitlines()[-1] == "1 problem(s), 0 warning(s)"


def test_a_public_url_reaching_another_verify_token_is_a_problem(installation: Installation) -> None:
    installation.graph.objects[PAGE_ID] = {"name": "Doctor's shop"}
    done = installation.doctor(AAT_META_VERIFY_TOKEN="not-the-served-token")
    assert done.returncode == 1
    assert lines(done)["webhook"] == (f"FAIL {installation.proxy.url}/webhooks/meta refused this verify token: the "
                                      "public URL reaches an appliance with another AAT_META_VERIFY_TOKEN")


def test_an_untrusted_certificate_is_a_problem(installation: Installation, tmp_path: Path) -> None:
    installation.graph.objects[PAGE_ID] = {"name": "Doctor's shop"}
    other_ca, _ = self_signed(tmp_path)  # trusted instead of the proxy's own certificate
    done = installation.doctor(SSL_CERT_FILE=str(other_ca))
    assert done.returncode == 1
    assert lines(done)["webhook"] == (f"FAIL {installation.proxy.url}/webhooks/meta is not reachable: its TLS "
                                      "certificate is not trusted (Meta requires a valid certificate)")


def test_local_http_only_warns(installation: Installation) -> None:
    installation.graph.objects[PAGE_ID] = {"name": "Doctor's shop"}
    done = installation.doctor(AAT_PUBLIC_URL=installation.app.base_url)
    assert done.returncode == 2, done.stdout
    found = lines(done)
    assert found["public URL"].startswith(f"WARN {installation.app.base_url} is local http: fine for development")
    assert [name for name, value in found.items() if not value.startswith("OK ")] == ["public URL"]
    assert done.stdout.splitlines()[-1] == "no problems, 1 warning(s)"


def test_missing_secrets_wrong_key_and_plain_http_are_problems(template: Template, tmp_path: Path) -> None:
    env = base_env(AAT_MASTER_KEY=base64.b64encode(b"w" * 32).decode(), AAT_PUBLIC_URL="http://chat.example.invalid",
                   AAT_GRAPH_API_BASE="http://127.0.0.1:9")
    for name in ("AAT_META_APP_SECRET", "AAT_META_VERIFY_TOKEN"):
        env.pop(name)
    done = subprocess.run([str(BIN), "doctor", "--data-dir", str(template.data_dir)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    found = lines(done)
    assert found["master key"] == "OK set by AAT_MASTER_KEY"
    assert found["workspace"] == ("FAIL the master key does not unwrap this workspace's data key: check "
                                  "AAT_MASTER_KEY / AAT_MASTER_KEY_FILE")
    assert found["app secret"] == "FAIL AAT_META_APP_SECRET is not set: every webhook is refused"
    assert found["verify token"].startswith("FAIL AAT_META_VERIFY_TOKEN is not set")
    assert found["public URL"].startswith("FAIL http://chat.example.invalid is not https")
    assert found["webhook"] == "FAIL not checked: AAT_META_VERIFY_TOKEN is not set"
    assert found["clock"].startswith("WARN not checked: the Graph API is not reachable")


def test_a_clock_ten_minutes_off_is_a_problem(template: Template, tmp_path: Path) -> None:
    behind = format_datetime(datetime.now(UTC) - timedelta(minutes=10), usegmt=True)
    seen: list[str] = []

    def graph(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(400, headers={"Date": behind}, json={"error": {"message": "no token", "code": 2500}})

    settings = Settings(data_dir=tmp_path / "empty", graph_api_base="https://graph.example.test")
    [clock] = [r for r in run_checks(settings, transport=httpx.MockTransport(graph)) if r.name == "clock"]
    assert clock.status == "fail"
    assert re.fullmatch(r"60[01] s ahead of the Graph API's clock: synchronise it \(NTP\); signatures and "
                        r"expiries are checked against it", clock.message), clock.message
    assert seen == ["GET /v25.0/me"]  # no verify token set: the webhook was not asked


def test_missing_and_overdue_backups(tmp_path: Path) -> None:
    def graph(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, headers={"Date": format_datetime(datetime.now(UTC), usegmt=True)}, json={})

    def backups(settings: Settings) -> str:
        [result] = [r for r in run_checks(settings, transport=httpx.MockTransport(graph)) if r.name == "backups"]
        return f"{result.status} {result.message}"

    settings = Settings(data_dir=tmp_path / "empty", graph_api_base="https://graph.example.test")
    assert backups(settings).startswith("warn no scheduled backups: set AAT_BACKUP_DIR")
    directory = tmp_path / "backups"
    directory.mkdir()
    configured = settings.model_copy(update={"backup_dir": directory, "backup_interval_hours": 24.0})
    assert backups(configured) == f"warn no backup in {directory} yet (the server takes one within 15 minutes of starting)"
    old = datetime.now(UTC) - timedelta(hours=49)
    (directory / f"aat-backup-{old.strftime('%Y%m%dT%H%M%S')}000Z.tar").write_bytes(b"")
    assert re.fullmatch(rf"fail the newest of 1 backup\(s\) in {re.escape(str(directory))} is 49\.0 h old \(interval "
                        r"24 h\): the scheduled backup is not running or failing; see the server's log", backups(configured))
    fresh = datetime.now(UTC) - timedelta(hours=2)
    (directory / f"aat-backup-{fresh.strftime('%Y%m%dT%H%M%S')}000Z.tar").write_bytes(b"")
    assert backups(configured) == f"ok the newest of 2 backup(s) in {directory} is 2.0 h old"
