"""A flow's ``delay`` is durable: it fires after ``kill -9`` and a restart, once, and not early.

Real processes (``aat-appliance serve`` with its in-process huey consumer, as in production)
and the Graph API stand-in in the test process. A published WhatsApp flow sends a first
message, waits ``delay`` seconds and sends a second one; a signed webhook starts it.

How a timer is kept (appliance/flows/tasks.py): a ``flow_timers`` row in the encrypted
workspace (the truth), plus a huey task carrying only the row's token, scheduled at the due
time in ``DATA_DIR/queue.db``, plus a sweep that the consumer runs when it starts and then once
a minute. Whichever comes first claims the row; the run continues once.

- Killed and restarted *before* the due time: the scheduled task survived in ``queue.db`` and
  fires at the due time. The consumer's start-up sweep ran before anything was due and the
  next sweep is a minute away, so a second message within a few seconds of the due time
  proves the scheduled task fired it.
- Killed before the due time and restarted *after* it: at start the scheduler finds the task
  overdue and the start-up sweep finds the row due; both race for it, one wins.

Input timeouts use the same machinery, but ``timeout_seconds`` is at least 60, which would
take this file past its one-minute budget; they are covered in-process by
tests/appliance/test_flows_run.py (``test_an_input_timeout_goes_on_timeout``).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.store import connection
from appliance.store.keys import DataKeyFile, MasterKey
from appliance.timeutil import from_iso
from tests.e2e.conftest import MASTER_KEY_RAW, Appliance, Appliances, json_dumps, wait_for
from tests.e2e.payloads import whatsapp_body, whatsapp_text
from tests.standins.graph_api import GraphStandIn, RecordedRequest

WABA_ID = "208000000000001"
PHONE_NUMBER_ID = "308000000000001"
WA_ID = "995599880001"
FIRST = "Got it. I will remind you in a moment."
SECOND = "Here is your reminder."
# How late after its due time a fired timer may arrive: huey's scheduler looks once a second,
# then the run is committed and the message goes through the outbox to the stand-in.
LATENESS = 5.0
SWEEP_SECONDS = 60.0


def reminder_flow(seconds: int) -> dict[str, Any]:
    return {
        "schema": "aat.flow/v1", "name": f"Reminder in {seconds} s",
        "triggers": [{"type": "keyword", "keywords": ["remind"], "channels": ["whatsapp"]}],
        "start": "first",
        "steps": {
            "first": {"type": "message", "text": FIRST, "next": "wait"},
            "wait": {"type": "delay", "seconds": seconds, "next": "second"},
            "second": {"type": "message", "text": SECOND},
        },
    }


# --- looking inside the data directory (read-only, with the workspace's own key) -------------

def workspace_rows(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    key = DataKeyFile(data_dir).load(MasterKey(MASTER_KEY_RAW))
    with closing(connection.connect(data_dir / "workspace.db", key, readonly=True)) as conn:
        cursor = conn.execute(sql)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def timers(data_dir: Path) -> list[dict[str, Any]]:
    return workspace_rows(data_dir, "SELECT token, run_id, kind, due_at, fired_at FROM flow_timers ORDER BY due_at")


def run_statuses(data_dir: Path) -> list[str]:
    return [r["status"] for r in workspace_rows(data_dir, "SELECT status FROM flow_runs ORDER BY id")]


def scheduled_in_queue(data_dir: Path) -> int:
    """Tasks waiting for their time in huey's ``schedule`` table (plain SQLite: ids only)."""
    uri = f"file:{data_dir / 'queue.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        return int(conn.execute("SELECT count(*) FROM schedule").fetchone()[0])


def huey_events(log: bytes, prefix: str) -> list[str]:
    """The events of huey's log lines (JSON on stderr) that start with ``prefix``."""
    events = []
    for line in log.decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and str(entry.get("logger", "")).startswith("huey") \
                and str(entry.get("event", "")).startswith(prefix):
            events.append(entry["event"])
    return events


def scheduled_task_ids(log: bytes) -> list[str]:
    """Ids of the tasks huey put in its schedule ("Added task <id> to schedule, eta ...")."""
    return [event.split()[2] for event in huey_events(log, "Added task ")]


def executed(log: bytes, task: str) -> list[str]:
    """Ids of the runs of ``task`` (``flows.fire_timer`` or ``flows.sweep_timers``), in order."""
    prefix = f"Executing appliance.flows.tasks.{task}: "
    return [event.removeprefix(prefix).split()[0] for event in huey_events(log, prefix)]


# --- the scenario --------------------------------------------------------------------------

def wall(request: RecordedRequest) -> float:
    """The stand-in stamps requests with ``time.monotonic()`` (same process): as epoch time."""
    return request.at + (time.time() - time.monotonic())


def texts_sent(graph: GraphStandIn) -> list[str]:
    return [r.json["text"]["body"] for r in graph.sends_to(PHONE_NUMBER_ID) if r.json.get("type") == "text"]


def seconds_left(due_at: str) -> float:
    return from_iso(due_at).timestamp() - time.time()


@dataclass
class Started:
    app: Appliance
    timer: dict[str, Any]
    task_id: str  # huey's id of the scheduled fire_timer task


def start_reminder(appliances: Appliances, graph: GraphStandIn, seconds: int, *, startups: float = 0) -> Started:
    """A running appliance whose contact has had the first message and waits on a delay whose
    huey task sits in ``queue.db``'s schedule. The delay is ``seconds``, or longer than
    ``startups`` times this appliance's own start took (plus the time to get the first message
    out), so that a test that must restart before the due time does not depend on this
    machine's speed."""
    began = time.monotonic()
    app = appliances(graph)
    seconds = max(seconds, math.ceil(startups * (time.monotonic() - began)) + 3)
    app.connect_channel(type="whatsapp", external_id=PHONE_NUMBER_ID, waba_id=WABA_ID,
                        access_token="EAAGe2eDelayWaba")
    created = app.api.post("/api/v1/flows", json=reminder_flow(seconds))
    assert created.status_code == 201, created.text
    published = app.api.post(f"/api/v1/flows/{created.json()['id']}/publish")
    assert published.status_code == 200, published.text
    body = json_dumps(whatsapp_body(WABA_ID, PHONE_NUMBER_ID, contacts=[(WA_ID, "Nino")],
                                    messages=[whatsapp_text(WA_ID, "wamid.DELAY1", "remind me please")]))
    assert app.post_webhook(body).status_code == 200
    wait_for(lambda: texts_sent(graph) == [FIRST], what="the first message")
    # Recorded as sent, too: killed between Meta's answer and that commit, the first message
    # would be in doubt and sent again after the grace period (another suite's subject).
    wait_for(lambda: workspace_rows(app.data_dir, "SELECT count(*) AS n FROM outbox") == [{"n": 0}],
             what="the first message recorded as sent")
    wait_for(lambda: scheduled_in_queue(app.data_dir) == 1, what="the delay's task in huey's schedule")
    [task_id] = wait_for(lambda: scheduled_task_ids(app.stderr_bytes()), what="huey's log of the schedule")
    [timer] = timers(app.data_dir)
    assert (timer["kind"], timer["fired_at"]) == ("delay", None)
    return Started(app, timer, task_id)


def second_messages(graph: GraphStandIn, due_at: str) -> list[RecordedRequest]:
    """Wait until the second message arrived (or its time to arrive passed); then every send of it."""
    deadline = max(seconds_left(due_at), 0) + LATENESS  # due in the future, or due now (overdue)
    wait_for(lambda: SECOND in texts_sent(graph), timeout=deadline, what="the second message")
    time.sleep(1.5)  # a duplicate from the racing path would be here by now
    return [r for r in graph.sends_to(PHONE_NUMBER_ID) if r.json.get("text", {}).get("body") == SECOND]


def assert_fired_once(app: Appliance, graph: GraphStandIn, timer: dict[str, Any]) -> RecordedRequest:
    [second] = second_messages(graph, timer["due_at"])
    assert texts_sent(graph) == [FIRST, SECOND]
    assert wall(second) >= from_iso(timer["due_at"]).timestamp(), "the delay ended early"
    [after] = timers(app.data_dir)
    assert after["token"] == timer["token"] and after["fired_at"] is not None
    assert after["fired_at"] >= after["due_at"]
    assert run_statuses(app.data_dir) == ["completed"]
    # Nothing left that could fire it again: the row is claimed, huey's schedule is empty (a
    # stale task would find the row claimed anyway; the sweep only reads unfired rows).
    assert scheduled_in_queue(app.data_dir) == 0
    conversation = app.conversation_of(WA_ID)
    outbound = [m["text"] for m in app.messages(conversation) if m["direction"] == "out"]
    assert outbound == [FIRST, SECOND]
    return second


def test_a_delay_killed_before_its_time_fires_once_after_restart_from_the_scheduled_task(
    appliances: Appliances, graph_api: GraphStandIn
) -> None:
    # Killed with time to spare and restarted before the due time: twice a start's duration.
    started = start_reminder(appliances, graph_api, seconds=6, startups=2.5)
    app, timer = started.app, started.timer
    app.kill()
    killed_with = seconds_left(timer["due_at"])
    assert killed_with > 2.5, f"the kill came too late to test anything ({killed_with:.1f} s left)"
    assert scheduled_in_queue(app.data_dir) == 1  # the task survived the kill, on disk
    before_restart = len(app.stderr_bytes())
    app.restart()
    restarted_at = time.time()
    assert seconds_left(timer["due_at"]) > 0, "the restart took longer than the delay"
    assert texts_sent(graph_api) == [FIRST]

    second = assert_fired_once(app, graph_api, timer)
    # Which path fired: the very task scheduled before the kill, read back from queue.db. The
    # start-up sweep ran before the due time and the next one is a minute after the restart.
    log = app.stderr_bytes()[before_restart:]
    assert executed(log, "flows.fire_timer") == [started.task_id]
    assert len(executed(log, "flows.sweep_timers")) == 1
    assert wall(second) - from_iso(timer["due_at"]).timestamp() < LATENESS
    assert wall(second) - restarted_at < SWEEP_SECONDS


def test_a_delay_that_fell_due_while_the_server_was_dead_fires_once_at_restart(
    appliances: Appliances, graph_api: GraphStandIn
) -> None:
    started = start_reminder(appliances, graph_api, seconds=2, startups=0.5)
    app, timer = started.app, started.timer
    app.kill()
    assert seconds_left(timer["due_at"]) > 0, "the kill came after the due time"
    time.sleep(max(seconds_left(timer["due_at"]), 0) + 1.0)
    assert texts_sent(graph_api) == [FIRST]  # nobody was alive to send it
    before_restart = len(app.stderr_bytes())
    app.restart()
    restarted_at = time.time()

    second = assert_fired_once(app, graph_api, timer)
    assert wall(second) - restarted_at < LATENESS
    # Overdue at start, both paths ran: huey's scheduler enqueued the surviving task at once
    # and the start-up sweep found the row due. One of them claimed it; one message went out.
    log = app.stderr_bytes()[before_restart:]
    assert executed(log, "flows.fire_timer") == [started.task_id]
    assert len(executed(log, "flows.sweep_timers")) == 1
