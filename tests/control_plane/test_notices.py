"""Policy-change notices: an admin (API or ``aat-control-plane notices send-policy-change``)
emails every active account through the email backend (Postmark's API on a local server here),
audited, once per account and notice id. One control plane (no appliances) serves the module;
the tests run in file order."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.audit import Actor
from control_plane.lifecycle.service import new_tenant_row
from tests.control_plane.harness import CP_MASTER_KEY, ControlPlaneServer, wait_for
from tests.standins.http_target import HttpTarget

pytestmark = pytest.mark.timeout(180)

CLI = Path(sys.prefix) / "bin" / "aat-control-plane"
SUBJECT = "Changes to our privacy policy"
BODY = "From 1 January 2027 we keep conversation logs for 90 days instead of 180.\n"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[HttpTarget]:
    server = HttpTarget().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, mailbox: HttpTarget) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("notices"), "http://127.0.0.1:9", email="postmark",
                                email_api_key="pm-key-1", email_from="AAT <notices@aat.example>",
                                email_api_base=mailbox.base_url).start()
    yield server
    server.stop()


def add_tenant(cp: ControlPlaneServer, owner_email: str, status: str = "active") -> str:
    """A tenant row for ``owner_email`` (no appliance: the notices are about accounts)."""
    assert cp.cp is not None

    def write(db: Any) -> str:
        row = new_tenant_row(db, cp.cp.store.fields, name="Shop", provisioner="local", owner_email=owner_email,
                             plan=None, actor=Actor("system", label="tests"))
        db.conn.execute("UPDATE tenants SET status = ? WHERE id = ?", [status, row["id"]])
        return row["id"]

    return cp.run(cp.cp.store.gateway.write(write))


def notices_to(mailbox: HttpTarget, subject: str = SUBJECT) -> list[str]:
    return sorted(r.json["To"] for r in list(mailbox.requests) if r.json and r.json.get("Subject") == subject)


@pytest.fixture(scope="module")
def people(cp: ControlPlaneServer) -> dict[str, str]:
    """Two active accounts, one without a tenant, one whose tenant is deleted."""
    for email, status in (("ana@example.com", "active"), ("ben@example.com", "suspended"),
                          ("dora@example.com", "deleted")):
        add_tenant(cp, email, status)
    return {email: cp.account(email)["id"] for email in
            ("ana@example.com", "ben@example.com", "cem@example.com", "dora@example.com")}


def send(cp: ControlPlaneServer, notice_id: str, body: str = BODY) -> Any:
    return cp.admin("POST", "/notices/policy-change", json={"notice_id": notice_id, "subject": SUBJECT, "body": body})


def test_a_notice_reaches_every_active_account_once_and_is_audited(cp: ControlPlaneServer, mailbox: HttpTarget,
                                                                    people: dict[str, str]) -> None:
    answer = send(cp, "privacy-2027-01")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"notice_id": "privacy-2027-01", "new": True, "sent": 2, "already_sent": 0}
    wait_for(lambda: len(notices_to(mailbox)) == 2, timeout=10, what="two emails")
    assert notices_to(mailbox) == ["ana@example.com", "ben@example.com"]
    [email] = [r for r in mailbox.requests if r.json and r.json["To"] == "ana@example.com"
               and r.json["Subject"] == SUBJECT]
    assert (email.path, email.headers["x-postmark-server-token"]) == ("/email", "pm-key-1")
    assert email.json == {"From": "AAT <notices@aat.example>", "To": "ana@example.com", "Subject": SUBJECT,
                          "TextBody": BODY, "MessageStream": "outbound"}
    entries = [e for e in cp.ok("GET", "/audit", params={"limit": 500})["items"] if e["action"] == "notice.policy_change"]
    assert [(e["target_id"], e["actor_kind"], e["actor_label"]) for e in entries] == [("privacy-2027-01", "admin", "tests")]
    assert cp.ok("GET", "/audit/verify")["intact"] is True


def test_sending_the_same_notice_again_sends_nothing_twice(cp: ControlPlaneServer, mailbox: HttpTarget,
                                                           people: dict[str, str]) -> None:
    before = len(mailbox.requests)
    again = send(cp, "privacy-2027-01")
    assert again.json() == {"notice_id": "privacy-2027-01", "new": False, "sent": 0, "already_sent": 2}
    changed = send(cp, "privacy-2027-01", body="Something else.")
    assert (changed.status_code, changed.json()["error"]["code"]) == (409, "notice_id_taken")
    add_tenant(cp, "cem@example.com")  # cem becomes active: a retry reaches cem only
    late = send(cp, "privacy-2027-01")
    assert late.json() == {"notice_id": "privacy-2027-01", "new": False, "sent": 1, "already_sent": 2}
    wait_for(lambda: len(mailbox.requests) == before + 1, timeout=10, what="cem's email")
    assert [r.json["To"] for r in list(mailbox.requests)[before:]] == ["cem@example.com"]
    audited = [e for e in cp.ok("GET", "/audit", params={"limit": 500})["items"] if e["action"] == "notice.policy_change"]
    assert len(audited) == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"notice_id": "Bad Id", "subject": SUBJECT, "body": BODY}, 422, "invalid_request"),
    ({"notice_id": "x1", "subject": "", "body": BODY}, 422, "invalid_request"),
    ({"notice_id": "x1", "subject": SUBJECT}, 422, "invalid_request"),
])
def test_bad_notices_are_refused_and_send_nothing(cp: ControlPlaneServer, mailbox: HttpTarget,
                                                  body: dict[str, Any], status: int, code: str) -> None:
    before = len(mailbox.requests)
    answer = cp.admin("POST", "/notices/policy-change", json=body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    unauthenticated = cp.http.post("/admin/api/notices/policy-change", json=body, headers={"Authorization": ""})
    assert unauthenticated.status_code == 401
    assert len(mailbox.requests) == before


def test_the_cli_sends_a_notice_beside_the_running_server(cp: ControlPlaneServer, mailbox: HttpTarget,
                                                          people: dict[str, str], tmp_path: Path) -> None:
    text = tmp_path / "notice.txt"
    text.write_text("We now process payments through a new provider.\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update({"AAT_CP_MASTER_KEY": CP_MASTER_KEY, "AAT_CP_EMAIL": "postmark", "AAT_CP_EMAIL_API_KEY": "pm-key-1",
                "AAT_CP_EMAIL_FROM": "AAT <notices@aat.example>", "AAT_CP_EMAIL_API_BASE": mailbox.base_url})
    argv = [str(CLI), "notices", "send-policy-change", "--id", "payments-2027", "--subject", "Payments change",
            "--body-file", str(text), "--data-dir", str(cp.settings.data_dir)]
    first = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=60)
    assert (first.returncode, first.stdout.strip()) == (0, "notice payments-2027: sent to 3 account(s) now"), first.stderr
    assert notices_to(mailbox, "Payments change") == ["ana@example.com", "ben@example.com", "cem@example.com"]
    again = cp.admin("POST", "/notices/policy-change", json={"notice_id": "payments-2027", "subject": "Payments change",
                                                               "body": text.read_text(encoding="utf-8")})
    assert again.json() == {"notice_id": "payments-2027", "new": False, "sent": 0, "already_sent": 3}
    entries = [e for e in cp.ok("GET", "/audit", params={"limit": 500})["items"] if e["action"] == "notice.policy_change"]
    assert [(e["target_id"], e["actor_kind"]) for e in entries if e["target_id"] == "payments-2027"] == [
        ("payments-2027", "cli")]
