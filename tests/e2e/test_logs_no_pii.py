"""DESIGN invariant 6, no PII in logs: JSON lines with ids only.

A real server at ``AAT_LOG_LEVEL=debug`` goes through the whole pipeline with distinctive
values: the verify handshake (token in the query string), channels connected with access
tokens, webhooks with a text, a profile name and a WhatsApp phone number (plus a forged one,
one that is not JSON and one that cannot be parsed), an agent reply that is sent, and one whose
sends fail with Graph errors quoting the text (first transient, then permanent). Then its
stderr is read: every line is a JSON log record, and no form of any of those values is in it
or in stdout. Then :class:`appliance.logs.JsonFormatter` and the process-wide hooks are
checked directly: exceptions come out as a type and stack frames, never a message.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from appliance.logs import JsonFormatter
from tests.e2e.conftest import APP_SECRET, MASTER_KEY, VERIFY_TOKEN, Appliances, json_dumps, wait_for
from tests.e2e.leaks import find_leaks
from tests.e2e.payloads import messenger_body, messenger_text, whatsapp_body, whatsapp_text
from tests.standins.graph_api import GraphStandIn

PAGE_ID = "108000000000001"
WABA_ID = "208000000000001"
PHONE_NUMBER_ID = "308000000000001"
PSID = "2460008880000001"

PAGE_TOKEN = "EAAGe2eLogsPageToken3Jk8Wq1Zx5"
WHATSAPP_TOKEN = "EAAGe2eLogsWabaToken9Ty2Hb6Nm4"
REJECTED_TOKEN = "EAAGe2eLogsRejectedToken5Gv7Cx"
WHATSAPP_TEXT = "Სალამი, log-probe-whatsapp: my card ends 4417 ✓"
MESSENGER_TEXT = "Grüße aus Köln, log-probe-messenger №88"
CONTACT_NAME = "Zurab Log-Probe-Ékashvili"
PHONE = "995577135791"
REPLY_TEXT = "Your order ships Tuesday — log-probe-reply ✓"
FAILING_TEXT = "Ceci échoue: log-probe-failing-send"
CHALLENGE = "1158201444"

NEEDLES = {
    "whatsapp text": WHATSAPP_TEXT,
    "messenger text": MESSENGER_TEXT,
    "contact name": CONTACT_NAME,
    "phone number": PHONE,
    "reply text": REPLY_TEXT,
    "failing reply text": FAILING_TEXT,
    "verify token": VERIFY_TOKEN,
    "app secret": APP_SECRET,
    "page access token": PAGE_TOKEN,
    "whatsapp access token": WHATSAPP_TOKEN,
    "rejected access token": REJECTED_TOKEN,
    "master key": MASTER_KEY,
}


@dataclass
class Run:
    stderr: bytes
    stdout: bytes
    api_token: str
    records: list[dict[str, Any]]
    failed_reply: dict[str, Any]


@pytest.fixture(scope="module")
def run(module_appliances: Appliances, module_graph_api: GraphStandIn) -> Run:
    graph = module_graph_api
    app = module_appliances(graph, AAT_LOG_LEVEL="debug")

    handshake = app.api.get("/webhooks/meta", params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": CHALLENGE})
    assert (handshake.status_code, handshake.text) == (200, CHALLENGE)
    wrong = app.api.get("/webhooks/meta", params={
        "hub.mode": "subscribe", "hub.verify_token": PHONE, "hub.challenge": CHALLENGE})
    assert wrong.status_code == 403

    app.connect_channel(type="messenger", external_id=PAGE_ID, access_token=PAGE_TOKEN)
    app.connect_channel(type="whatsapp", external_id=PHONE_NUMBER_ID, waba_id=WABA_ID,
                        access_token=WHATSAPP_TOKEN)
    invalid = app.api.post("/api/v1/channels", json={
        "type": "messenger", "external_id": CONTACT_NAME, "access_token": REJECTED_TOKEN})
    assert invalid.status_code == 422
    stranger = httpx.get(app.url("/api/v1/conversations"), headers={"Authorization": f"Bearer {REJECTED_TOKEN}"})
    assert stranger.status_code == 401
    assert app.api.get(f"/api/v1/contacts/by-phone/{PHONE}").status_code == 404

    whatsapp = whatsapp_body(WABA_ID, PHONE_NUMBER_ID, contacts=[(PHONE, CONTACT_NAME)],
                             messages=[whatsapp_text(PHONE, "wamid.LOGS1", WHATSAPP_TEXT)])
    messenger = messenger_body(PAGE_ID, [messenger_text(PAGE_ID, PSID, "m_logs_1", MESSENGER_TEXT)])
    for body in (json_dumps(whatsapp), json_dumps(messenger, ascii_only=False)):
        assert app.post_webhook(body).status_code == 200
    forged = json_dumps(whatsapp, ascii_only=False)
    assert app.post_webhook(forged, secret=WHATSAPP_TEXT).status_code == 403
    not_json = f"text={WHATSAPP_TEXT}&name={CONTACT_NAME}".encode()
    assert app.post_webhook(not_json).status_code == 400
    unparseable = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": [
        {"sender": {"name": CONTACT_NAME}, "timestamp": 1, "message": {"mid": "m_logs_bad", "text": MESSENGER_TEXT}}]}]}
    assert app.post_webhook(json_dumps(unparseable)).status_code == 200
    app.wait_journal_settled(failed=1)

    sent = app.reply(app.conversation_of(PHONE), REPLY_TEXT)
    graph.fail_next(
        PAGE_ID,
        GraphStandIn.graph_error(2, status=500, message=f"Temporary failure sending {FAILING_TEXT!r} to {PSID}"),
        GraphStandIn.graph_error(100, message=f"(#100) Param message[text] is invalid: {FAILING_TEXT}"),
    )
    failing = app.reply(app.conversation_of(PSID), FAILING_TEXT)
    wait_for(lambda: app.message(sent["conversation_id"], sent["id"])["status"] == "sent", what="the reply")
    failed_reply = wait_for(
        lambda: (m := app.message(failing["conversation_id"], failing["id"]))["status"] == "failed" and m,
        what="the failing reply to fail",
    )
    app.stop()
    stderr = app.stderr_bytes()
    return Run(
        stderr=stderr,
        stdout=app.stdout_bytes(),
        api_token=app.api_token,
        records=[json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")],
        failed_reply=failed_reply,
    )


def test_every_stderr_line_is_a_json_log_record(run: Run) -> None:
    lines = run.stderr.decode("utf-8").splitlines()
    assert lines
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict)
        assert {"ts", "level", "logger", "event"} <= set(record), line


def test_stdout_holds_only_the_start_banner(run: Run) -> None:
    """stdout is for people, not log collectors: two lines saying where the server runs."""
    lines = run.stdout.decode("utf-8").splitlines()
    assert [line.split(" ")[0] for line in lines] == ["AAT", "data"]


def test_the_logs_saw_the_whole_pipeline(run: Run) -> None:
    """The control: debug logging was on and the records of each step are there, so finding
    no secret below means the records leave them out."""
    events = {(r["logger"], r["event"]) for r in run.records}
    assert any(r["level"] == "debug" for r in run.records)
    requests = {(r["method"], r["path"], r["status"]) for r in run.records if r["logger"] == "aat.access"}
    assert {("GET", "/webhooks/meta", 200), ("GET", "/webhooks/meta", 403), ("POST", "/webhooks/meta", 200),
            ("POST", "/webhooks/meta", 403), ("POST", "/webhooks/meta", 400), ("POST", "/api/v1/channels", 201),
            ("POST", "/api/v1/channels", 422), ("GET", "/api/v1/conversations", 401)} <= requests
    assert ("aat.ingest", "journal row had problems") in events
    failures = [(r["code"], r["verdict"]) for r in run.records if r["event"] == "send failed"]
    assert failures == [(2, "retry"), (100, "fail")]
    # The Graph error's message (which quotes the text) is kept on the message, for the agent.
    assert FAILING_TEXT in run.failed_reply["error"]["message"]


def test_no_text_name_phone_number_or_token_reaches_the_logs(run: Run) -> None:
    needles = {**NEEDLES, "api token": run.api_token,
               "verify token in a query string": quote(VERIFY_TOKEN, safe="")}
    assert find_leaks(run.stderr, needles) == []
    assert find_leaks(run.stdout, needles) == []


# --- the formatter and the process-wide hooks ------------------------------------------------

SECRET = "Ünïcödé secret text +995577135791"


def _record(logger: str = "aat.test", msg: str = "something happened", args: Any = (),
            exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(logger, logging.ERROR, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def _raise_with_secret() -> None:
    raise ValueError(f"could not store {SECRET}")


def test_an_exception_is_logged_as_its_type_and_frames_but_not_its_message() -> None:
    try:
        _raise_with_secret()
    except ValueError:
        record = _record(exc_info=sys.exc_info(), message_id=42)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["exc_type"] == "ValueError"
    assert entry["message_id"] == 42
    assert [frame.rsplit(" ", 1)[1] for frame in entry["stack"]] == [
        "test_an_exception_is_logged_as_its_type_and_frames_but_not_its_message", "_raise_with_secret"]
    assert all(frame.startswith(__file__ + ":") for frame in entry["stack"])
    assert find_leaks(json.dumps(entry).encode(), {"secret": SECRET, "message": "could not store"}) == []


def test_an_exception_passed_as_a_field_is_logged_as_its_type() -> None:
    entry = json.loads(JsonFormatter().format(_record(error=ValueError(SECRET))))
    assert entry["error"] == "ValueError"


def test_asyncio_messages_keep_their_words_but_not_the_reprs_they_quote() -> None:
    future = f"Task exception was never retrieved\nfuture: <Task finished exception=ValueError('{SECRET}')>"
    callback = f"Exception in callback deliver('{SECRET}')"
    entries = [json.loads(JsonFormatter().format(_record("asyncio", msg))) for msg in (future, callback)]
    assert [e["event"] for e in entries] == ["Task exception was never retrieved", "Exception in callback deliver"]


def test_a_record_whose_message_cannot_be_formatted_does_not_print_its_arguments() -> None:
    entry = json.loads(JsonFormatter().format(_record(msg="stored %d messages", args=(SECRET,))))
    assert entry["event"] == "stored %d messages"
    assert SECRET not in json.dumps(entry, ensure_ascii=False)


def test_uncaught_exceptions_and_warnings_become_json_records_without_their_message() -> None:
    """In a process of its own, since the hooks are process-wide."""
    script = textwrap.dedent(f"""
        import threading, warnings
        from appliance.logs import configure_logging
        configure_logging("debug")
        SECRET = {SECRET!r}
        def fail():
            raise ValueError(SECRET)
        thread = threading.Thread(target=fail, name="worker")
        thread.start()
        thread.join()
        warnings.warn("a deprecated call")
        raise RuntimeError(SECRET)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stderr.decode().splitlines()]
    crashes = [(r["logger"], r["exc_type"], r.get("thread_name")) for r in records if "exc_type" in r]
    assert crashes == [("aat.crash", "ValueError", "worker"), ("aat.crash", "RuntimeError", None)]
    assert any(r["logger"] == "py.warnings" for r in records)
    assert find_leaks(done.stderr + done.stdout, {"secret": SECRET}) == []
