"""The runner's view of a contact created in the same transaction (``created_contact_view``,
which spares the ingest path a statement per new contact) is exactly what reading it back gives."""

from __future__ import annotations

from typing import Any

from appliance.channels.events import ContactRef
from appliance.connections.store import connect_channel
from appliance.contacts import store as contacts
from appliance.flows import store as flows
from appliance.flows.runner import created_contact_view
from appliance.inbox import store as inbox
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now

NAMES = [None, "", "Ana", "Ana Maria Lima", "  Ana  ", "Нино Беридзе", "ნინო"]


def test_the_created_view_is_the_read_view(workspace: Workspace) -> None:
    def check(db: Any) -> list[tuple[Any, ...]]:
        now = iso_now()
        compared = []
        for channel, asset in (("whatsapp", "1555"), ("messenger", "page-1"), ("instagram", "ig-1")):
            channel_id = connect_channel(db, channel_type=channel, external_id=asset, token_enc="t", name=None,
                                         waba_id=None, page_id=None, rate_limit=None, now=now)["id"]
            for index, name in enumerate(NAMES):
                ref = ContactRef(external_id=f"{channel}-{index}", name=name,
                                 wa_id=f"99{index}" if channel == "whatsapp" else None)
                contact_id, created = contacts.upsert_contact(db, channel_id, ref, now, inbound_at=now)
                assert created
                inbox.ensure_conversation(db, contact_id, channel_id, now, new_contact=True)
                read, row = flows.contact_view(db, contact_id)
                assert created_contact_view(contact_id, channel, name) == read
                assert row["bot_paused"] == 0
                compared.append((channel, name))
        return compared

    assert len(workspace.gateway.write_sync(check)) == 3 * len(NAMES)
