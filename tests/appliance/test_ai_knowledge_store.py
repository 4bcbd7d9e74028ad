"""The knowledge store on a real SQLCipher workspace: documents in, passages out of the FTS5
index with bm25 and the relevance threshold; replacing and deleting keep the index exact."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.ai.knowledge import store
from appliance.ai.knowledge.service import prepare
from appliance.ai.knowledge.upload import DocumentInput
from appliance.errors import NotFound
from appliance.store.rows import many, scalar
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now
from tests.appliance.ai_helpers import DOCUMENTS


def add(workspace: Workspace, title: str, text: str, source: str = "md") -> int:
    prepared = prepare(DocumentInput(title, "text", None, None, text))
    row = workspace.gateway.write_sync(
        store.insert_document, title=title, source=source, filename=None, text=prepared.text,
        chunks=prepared.chunks, now=iso_now())
    return int(row["id"])


def search(workspace: Workspace, question: str, **kw: Any) -> list[dict[str, Any]]:
    return workspace.gateway.read_sync(store.search, question, **kw)


def titles(passages: list[dict[str, Any]]) -> list[str]:
    return [p["title"] for p in passages]


def integrity_check(workspace: Workspace) -> None:
    """FTS5's own check that the index matches the chunks table exactly (raises otherwise)."""
    workspace.gateway.write_sync(
        lambda db: db.execute("INSERT INTO knowledge_fts (knowledge_fts) VALUES ('integrity-check')"))


@pytest.fixture
def shop(workspace: Workspace) -> dict[str, int]:
    return {name: add(workspace, title, text) for name, (title, text) in DOCUMENTS.items()}


@pytest.mark.parametrize(("question", "expected"), [
    ("What are your opening hours on Sunday?", ["Opening hours"]),
    ("Are you open on public holidays?", ["Opening hours"]),
    ("How much does delivery cost?", ["Shipping"]),
    ("Do you ship to the EU? Who pays customs?", ["Shipping"]),
    ("Can I return a bicycle for a refund?", ["Returns"]),
    ("when do refunds reach my card", ["Returns"]),
])
def test_the_relevant_passage_and_no_other(
    workspace: Workspace, shop: dict[str, int], question: str, expected: list[str]
) -> None:
    assert titles(search(workspace, question)) == expected


@pytest.mark.parametrize("question", [
    "Do you sell electric scooters?", "What's the weather like in Paris?", "Hello, how are you?", "", "???",
])
def test_unrelated_questions_find_nothing(workspace: Workspace, shop: dict[str, int], question: str) -> None:
    assert search(workspace, question) == []


def test_passages_carry_ids_heading_and_a_score(workspace: Workspace, shop: dict[str, int]) -> None:
    [passage] = search(workspace, "public holidays opening")
    assert passage["document_id"] == shop["hours"]
    assert passage["heading"] == "Opening hours › Holidays"
    assert passage["text"] == "On public holidays we open from 12:00 to 16:00."
    assert 0.4 <= passage["score"] <= 1 and passage["bm25"] > 0


@pytest.mark.parametrize("hostile", [
    'refund" OR "shipping', "NEAR(refund bicycle, 1)", "refu*", "title:refund", "heading_terms:Returns",
    "body_terms : refund", "^refund", "refund AND NOT bicycle", "(refund", '"refund', "refund)", "- refund",
    "{heading_terms}: refund", "refund + bicycle", "'; DROP TABLE knowledge_chunks; --",
])
def test_fts_syntax_in_questions_is_plain_text(workspace: Workspace, shop: dict[str, int], hostile: str) -> None:
    found = search(workspace, hostile)  # never an FTS5 syntax error: the words are searched as words
    assert set(titles(found)) <= {"Returns", "Shipping"}
    assert scalar_count(workspace) > 0


def scalar_count(workspace: Workspace) -> int:
    return workspace.gateway.read_sync(lambda db: scalar(db, "SELECT count(*) FROM knowledge_chunks"))


def test_top_k_and_order(workspace: Workspace) -> None:
    for n in range(8):
        add(workspace, f"Warranty {n}", f"The warranty on frames lasts {n + 1} years." + (" Frames!" * n))
    found = search(workspace, "frame warranty", limit=4)
    assert len(found) == 4
    assert [p["bm25"] for p in found] == sorted((p["bm25"] for p in found), reverse=True)


def test_a_passage_sharing_only_a_common_word_is_left_out(workspace: Workspace) -> None:
    add(workspace, "Battery", "The battery of e-bikes charges in four hours.")
    add(workspace, "Service", "A full service of your bicycle takes two hours in our workshop.")
    for n in range(6):
        add(workspace, f"Filler {n}", f"Our bicycle number {n} is in the workshop for hours.")
    assert titles(search(workspace, "how long does the e-bike battery take to charge")) == ["Battery"]


def test_a_word_in_most_passages_of_a_large_knowledge_base_decides_nothing(workspace: Workspace) -> None:
    add(workspace, "Warranty", "Every bicycle frame has a lifetime warranty.")
    for n in range(store.COMMON_MIN_PASSAGES):
        add(workspace, f"Model {n}", f"The bicycle model {n} comes in {n % 7 + 1} colours.")
    assert search(workspace, "bicycle?") == []  # in every passage: it tells none apart
    assert titles(search(workspace, "bicycle frame warranty")) == ["Warranty"]


def test_a_knowledge_base_of_one_passage_still_answers(workspace: Workspace) -> None:
    add(workspace, "All", "Velo Bikes repairs bicycles in Tbilisi.")
    assert titles(search(workspace, "Do you repair bicycles?")) == ["All"]
    assert search(workspace, "Do you sell cars?") == []


def test_replacing_a_document_reindexes_it(workspace: Workspace, shop: dict[str, int]) -> None:
    prepared = prepare(DocumentInput("Returns", "text", None, None, "Helmets cannot be exchanged once worn."))
    workspace.gateway.write_sync(store.replace_document, shop["returns"], title="Returns", source="text",
                                 filename=None, text=prepared.text, chunks=prepared.chunks, now=iso_now())
    assert search(workspace, "Can I return a bicycle for a refund?") == []
    assert titles(search(workspace, "exchange a worn helmet")) == ["Returns"]
    integrity_check(workspace)


def test_deleting_a_document_removes_its_passages_from_the_index(
    workspace: Workspace, shop: dict[str, int]
) -> None:
    workspace.gateway.write_sync(store.delete_document, shop["shipping"])
    assert search(workspace, "How much does delivery cost?") == []
    vocab = workspace.gateway.read_sync(lambda db: [r["term"] for r in many(db, "SELECT term FROM knowledge_vocab")])
    assert "dhl" not in vocab and "customs" not in vocab
    leftover = workspace.gateway.read_sync(
        lambda db: scalar(db, "SELECT count(*) FROM knowledge_chunks WHERE document_id = ?", [shop["shipping"]]))
    assert leftover == 0
    integrity_check(workspace)
    with pytest.raises(NotFound):
        workspace.gateway.write_sync(store.delete_document, shop["shipping"])


def test_documents_list_without_text(workspace: Workspace, shop: dict[str, int]) -> None:
    listed = workspace.gateway.read_sync(store.list_documents, after_id=None, limit=10)
    assert [r["title"] for r in listed] == ["Opening hours", "Shipping", "Returns"]
    assert all("text" not in r for r in listed)
