"""The raw body is committed before the 200, and a restart resumes what was not processed.

Large batched deliveries (hundreds of events each) make the journal processor slow while
acknowledging stays fast, so when the server is SIGKILLed right after the last 200 some
acknowledged deliveries are still ``pending``. The journal is then read directly (read-only,
with the workspace's own key): every acknowledged delivery is there. After a restart the
pending rows are processed and every event is in the inbox exactly once.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.store import connection
from appliance.store.keys import DataKeyFile, MasterKey
from tests.e2e.conftest import MASTER_KEY_RAW, Appliances, json_dumps
from tests.e2e.payloads import messenger_body, messenger_text
from tests.standins.graph_api import GraphStandIn

PAGE_ID = "107000000000001"
PSIDS = [f"2460007770{i:06d}" for i in range(40)]
DELIVERIES = 6
EVENTS_PER_DELIVERY = 200


def _delivery(i: int) -> tuple[bytes, list[str]]:
    mids = [f"m_journal_{i}_{j}" for j in range(EVENTS_PER_DELIVERY)]
    items = [messenger_text(PAGE_ID, PSIDS[j % len(PSIDS)], mid, f"journal {i}.{j} ✓") for j, mid in enumerate(mids)]
    # Several entries per body, as Meta batches them.
    half = len(items) // 2
    return json_dumps(messenger_body(PAGE_ID, items[:half], items[half:])), mids


def journal_states(data_dir: Path) -> Counter[str]:
    """Journal rows by state, read with a read-only connection of our own."""
    key = DataKeyFile(data_dir).load(MasterKey(MASTER_KEY_RAW))
    with closing(connection.connect(data_dir / "workspace.db", key, readonly=True)) as conn:
        rows = conn.execute("SELECT state, count(*) FROM webhook_journal GROUP BY state").fetchall()
    return Counter({state: count for state, count in rows})


@dataclass
class Outcome:
    acked: int
    mids: list[str]
    states_after_kill: Counter[str]
    stored: Counter[str]
    states_after_stop: Counter[str]


@pytest.fixture(scope="module")
def outcome(module_appliances: Appliances, module_graph_api: GraphStandIn) -> Outcome:
    app = module_appliances(module_graph_api)
    bodies = [_delivery(i) for i in range(DELIVERIES)]
    acked = 0
    for body, _ in bodies:
        assert app.post_webhook(body).status_code == 200
        acked += 1
    app.kill()  # right after the last 200, while the processor works through the batch
    states_after_kill = journal_states(app.data_dir)
    app.restart()
    app.wait_journal_settled(timeout=60)
    stored = Counter(m["external_id"] for m in app.all_messages())
    app.stop()
    return Outcome(
        acked=acked,
        mids=[mid for _, mids in bodies for mid in mids],
        states_after_kill=states_after_kill,
        stored=stored,
        states_after_stop=journal_states(app.data_dir),
    )


def test_every_acknowledged_delivery_survived_the_kill(outcome: Outcome) -> None:
    assert outcome.acked == DELIVERIES
    assert sum(outcome.states_after_kill.values()) == DELIVERIES


def test_some_acknowledged_deliveries_were_still_pending_at_the_kill(outcome: Outcome) -> None:
    """The precondition: the kill really interrupted the processing."""
    assert outcome.states_after_kill["pending"] >= 1
    assert outcome.states_after_kill["failed"] == 0


def test_the_restarted_server_processes_the_pending_rows(outcome: Outcome) -> None:
    assert outcome.states_after_stop == Counter({"processed": DELIVERIES})


def test_every_event_is_stored_exactly_once(outcome: Outcome) -> None:
    assert set(outcome.stored) == set(outcome.mids)
    assert {mid: n for mid, n in outcome.stored.items() if n != 1} == {}
