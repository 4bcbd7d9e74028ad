"""Fuzzing the contact CSV import (:mod:`appliance.contacts.csv_io`): whatever the bytes and
their encoding, ``parse`` either reads rows or raises the import's own error
(``ImportError_``, answered as 422 ``invalid_import``) with a message; the rows it reads always
plan into a preview (``Plan.report``: what ``?dry_run=true`` answers) whose problems are per row
and per column, and that never quotes the cell that is wrong. It never raises anything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.contacts import csv_io
from appliance.errors import Detail
from appliance.settings import Settings
from appliance.store.workspace import Workspace, open_workspace
from tests.conftest import MASTER_KEY
from tests.helpers import connect_channel
from tests.security.mutations import MARKER

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADERS = [*csv_io.COLUMNS, "field.plan", "field.x1", "field.1bad", "unknown", "", "external_id"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "shift_jis"]
cells = st.one_of(
    st.sampled_from(["", "messenger", "whatsapp", "instagram", "true", "no", "maybe", "=1+1", "'=SUM(A1)",
                     "a;b;vip", "1", "99", "5511999999999", "x" * 300, "\x00", "a\nb", '"', "'", ",", ";", "\t"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12).map(lambda t: MARKER + t),
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One database with a Messenger and two WhatsApp channels (so ``channel`` alone is
    ambiguous for whatsapp) and nothing else; plans only read it."""
    data = Path(tmp_path_factory.mktemp("csv")) / "data"
    ws = open_workspace(Settings(data_dir=data, master_key=MASTER_KEY))
    connect_channel(ws, "messenger", "112233445566778")
    connect_channel(ws, "whatsapp", "109876543210987")
    connect_channel(ws, "whatsapp", "109876543210988")
    yield ws
    ws.close()


def _quote(cell: str, delimiter: str) -> str:
    if any(c in cell for c in (delimiter, '"', "\n", "\r")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_files(draw: Any) -> bytes:
    """A header of known and unknown columns, rows of hostile cells (some ragged), in a
    random delimiter, line ending and encoding."""
    header = draw(st.lists(st.sampled_from(HEADERS), min_size=1, max_size=6))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=len(header) + 1), max_size=8))
    text = newline.join(delimiter.join(_quote(c, delimiter) for c in row) for row in [header, *rows])
    encoding = draw(st.sampled_from(ENCODINGS))
    return text.encode(encoding, errors="replace")


def _preview(workspace: Workspace, data: bytes) -> dict[str, Any] | None:
    """The dry-run answer for ``data``, or None when the file is rejected whole (checked)."""
    try:
        parsed = csv_io.parse(data)
    except csv_io.ImportError_ as exc:
        assert exc.status_code == 422 and exc.message
        assert all(isinstance(d, Detail) and d.path and d.message for d in exc.details)
        assert MARKER not in exc.message + "".join(d.message for d in exc.details)
        return None
    assert parsed.rows and len(parsed.rows) == len(parsed.line_of)
    report = workspace.gateway.read_sync(csv_io.plan, parsed).report()
    json.dumps(report)  # what the API answers is JSON
    assert report["rows"] == len(parsed.rows)
    assert report["create"] + report["update"] + report["unchanged"] + report["invalid"] == report["rows"]
    lines = set(parsed.line_of)
    for error in report["errors"]:
        assert error["row"] in lines and error["path"].startswith(f"row {error['row']}")
        assert error["message"]
        if not error["path"].endswith((".tags", ".channel_id")):  # these name the bad tag / id, cut to 20
            assert MARKER not in error["message"], "an error quotes the cell"
    for row in report["preview"]:
        assert (row["action"] == "error") == bool(row["errors"])
    return report


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_rows_or_a_clear_rejection(workspace: Workspace, data: bytes) -> None:
    _preview(workspace, data)


@settings(FUZZ, max_examples=80)
@given(data=csv_files())
def test_hostile_files_preview_with_per_row_errors(workspace: Workspace, data: bytes) -> None:
    _preview(workspace, data)


def test_a_file_with_good_and_bad_rows_previews_each(workspace: Workspace) -> None:
    """The baseline the fuzzing builds on: one good row, one with four problems."""
    data = (f"channel,external_id,subscribed,name\r\nmessenger,2460001,yes,Ana\r\n"
            f"fax,bad id!,maybe,{'x' * 201}\r\n").encode()
    report = _preview(workspace, data)
    assert report is not None
    assert (report["rows"], report["create"], report["invalid"]) == (2, 1, 1)
    assert [e["path"] for e in report["errors"]] == ["row 3.channel", "row 3.external_id", "row 3.name",
                                                     "row 3.subscribed"]
