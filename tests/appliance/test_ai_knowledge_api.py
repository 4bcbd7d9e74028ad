"""``/api/v1/knowledge``: documents as JSON or uploaded files (.txt, .md, .html, .pdf), their
limits and errors, re-indexing on PUT, deleting, listing, and search with scores."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.ai_helpers import DOCUMENTS, add_documents
from tests.appliance.api_helpers import count, detail_paths, error_of, rows, walk
from tests.appliance.test_ai_knowledge_text import _encrypted_pdf
from tests.helpers import make_token
from tests.pdf_writer import make_pdf

URL = "/api/v1/knowledge"


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def upload(client: AsyncTestClient, headers: dict[str, str], name: str, data: bytes,
                 content_type: str = "application/octet-stream", title: str | None = None,
                 method: str = "POST", url: str = URL) -> Any:
    return await client.request(method, url, headers=headers, files={"file": (name, data, content_type)},
                                data={"title": title} if title is not None else None)


async def search(client: AsyncTestClient, headers: dict[str, str], q: str) -> list[dict[str, Any]]:
    response = await client.get(f"{URL}/search", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_add_text_and_read_it_back(client: AsyncTestClient, admin: dict[str, str]) -> None:
    title, text = DOCUMENTS["hours"]
    created = await client.post(URL, json={"title": title, "text": text}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("title", "source", "filename", "chunks")} == {
        "title": "Opening hours", "source": "text", "filename": None, "chunks": 2}
    assert set(body) == {"id", "title", "source", "filename", "chars", "chunks", "created_at", "updated_at"}
    got = (await client.get(f"{URL}/{body['id']}", headers=admin)).json()
    assert "On Sundays the shop is closed." in got["text"]


@pytest.mark.parametrize(("name", "content_type", "data", "source", "title"), [
    ("faq.txt", "text/plain", b"We repair bicycles.\n\nOpen daily.", "txt", "faq"),
    ("faq.md", "text/markdown", b"# Velo FAQ\n\nWe repair bicycles.", "md", "Velo FAQ"),
    ("faq.html", "text/html", b"<title>Velo page</title><p>We repair bicycles.</p>", "html", "Velo page"),
    ("faq.pdf", "application/pdf", make_pdf([["We repair bicycles."]], title="Velo PDF"), "pdf", "Velo PDF"),
    ("noext", "text/markdown", b"# From type\n\nWe repair bicycles.", "md", "From type"),
    ("scan.bin", "application/octet-stream", make_pdf([["We repair bicycles."]]), "pdf", "scan"),
    ("C:\\Users\\ana\\faq.txt", "text/plain", b"We repair bicycles.", "txt", "faq"),
])
async def test_uploads_by_extension_content_type_or_content(
    client: AsyncTestClient, admin: dict[str, str], name: str, content_type: str, data: bytes, source: str,
    title: str,
) -> None:
    response = await upload(client, admin, name, data, content_type)
    assert response.status_code == 201, response.text
    assert (response.json()["source"], response.json()["title"]) == (source, title)
    assert [p["title"] for p in await search(client, admin, "Do you repair bicycles?")] == [title]


async def test_an_upload_may_bring_its_title(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await upload(client, admin, "x.txt", b"We repair bicycles.", "text/plain", title="Repairs")
    assert response.json()["title"] == "Repairs" and response.json()["filename"] == "x.txt"


async def test_a_200_page_pdf(client: AsyncTestClient, admin: dict[str, str]) -> None:
    pages = [[f"Page {n} talks about frame size {n} and wheel number {n}." for _ in range(3)] for n in range(200)]
    pages[137].append("The secret tandem discount is 15 percent.")
    response = await upload(client, admin, "catalogue.pdf", make_pdf(pages), "application/pdf")
    assert response.status_code == 201, response.text
    found = await search(client, admin, "tandem discount")
    assert "15 percent" in found[0]["text"]


UPLOAD_ERRORS = {
    "unsupported type": (("logo.png", b"\x89PNG\r\n\x1a\n....", "image/png"), 422, "unsupported_file_type"),
    "a pdf that is not one": (("fake.pdf", b"hello", "application/pdf"), 422, "unsupported_file_type"),
    "empty file": (("empty.txt", b"", "text/plain"), 422, "invalid_request"),
    "binary as text": (("x.txt", b"\x00\x01\x02", "text/plain"), 422, "unreadable_document"),
    "password protected pdf": (("locked.pdf", _encrypted_pdf("pw"), "application/pdf"), 422, "encrypted_document"),
    "damaged pdf": (("bad.pdf", b"%PDF-1.7\n\x00garbage", "application/pdf"), 422, "unreadable_document"),
    "scanned pdf without text": (("scan.pdf", make_pdf([[]]), "application/pdf"), 422, "no_text"),
    "html without text": (("x.html", b"<script>x()</script>", "text/html"), 422, "no_text"),
}


@pytest.mark.parametrize("case", sorted(UPLOAD_ERRORS))
async def test_upload_errors_say_why_and_store_nothing(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], case: str
) -> None:
    (name, data, content_type), status, code = UPLOAD_ERRORS[case]
    response = await upload(client, admin, name, data, content_type)
    error = error_of(response, status)
    assert error["code"] == code
    assert [d["path"] for d in error["details"]] == ["file"]
    assert count(workspace, "knowledge_documents") == count(workspace, "knowledge_chunks") == 0


async def test_over_20_mib_is_413(client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]) -> None:
    response = await upload(client, admin, "big.txt", b"a" * (20 * 1024 * 1024 + 1), "text/plain")
    error = error_of(response, 413)
    assert "20 MiB" in error["message"]
    assert count(workspace, "knowledge_documents") == 0


async def test_a_body_far_over_the_limit_is_413_before_it_is_read(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await upload(client, admin, "huge.txt", b"a" * (22 * 1024 * 1024), "text/plain")
    assert error_of(response, 413)["code"] == "payload_too_large"


async def test_multipart_without_a_file_field(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.post(URL, headers=admin, files={"document": ("a.txt", b"x", "text/plain")})
    assert detail_paths(response) == ["file"]


JSON_ERRORS = {
    "no title": ({"text": "x"}, ["title"]),
    "blank title": ({"title": "  ", "text": "x"}, ["title"]),
    "no text": ({"title": "T"}, ["text"]),
    "blank text": ({"title": "T", "text": "  \n "}, ["text"]),
    "unknown field": ({"title": "T", "text": "x", "tags": []}, ["tags"]),
    "title too long": ({"title": "t" * 201, "text": "x"}, ["title"]),
}


@pytest.mark.parametrize("case", sorted(JSON_ERRORS))
async def test_json_errors_have_paths(client: AsyncTestClient, workspace: Workspace, admin: dict[str, str],
                                      case: str) -> None:
    body, paths = JSON_ERRORS[case]
    assert detail_paths(await client.post(URL, json=body, headers=admin)) == paths
    assert count(workspace, "knowledge_documents") == 0


async def test_not_json_is_400(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.post(URL, content=b"{nope", headers={**admin, "Content-Type": "application/json"})
    assert error_of(response, 400)["code"] == "invalid_json"


async def test_put_replaces_and_reindexes(client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]) -> None:
    ids = await add_documents(client, admin, "returns")
    assert await search(client, admin, "return a bicycle for a refund")
    response = await client.put(f"{URL}/{ids['returns']}", json={"title": "Exchanges",
                                                                "text": "Helmets cannot be exchanged once worn."},
                                headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Exchanges"
    assert await search(client, admin, "return a bicycle for a refund") == []
    assert [p["title"] for p in await search(client, admin, "exchange a worn helmet")] == ["Exchanges"]
    replaced = await upload(client, admin, "r.md", b"# Returns\n\nBicycles: 14 days.", "text/markdown",
                            method="PUT", url=f"{URL}/{ids['returns']}")
    assert replaced.status_code == 200 and replaced.json()["source"] == "md"
    assert await search(client, admin, "exchange a worn helmet") == []
    assert len(rows(workspace, "SELECT id FROM knowledge_chunks")) == 1


async def test_put_unknown_document_is_404(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.put(f"{URL}/999", json={"title": "T", "text": "x"}, headers=admin)
    assert error_of(response, 404)["code"] == "not_found"


async def test_delete_removes_the_document_and_its_passages(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    ids = await add_documents(client, admin)
    assert (await client.delete(f"{URL}/{ids['shipping']}", headers=admin)).status_code == 204
    assert await search(client, admin, "delivery cost DHL") == []
    assert rows(workspace, "SELECT id FROM knowledge_chunks WHERE document_id = ?", [int(ids["shipping"])]) == []
    assert error_of(await client.get(f"{URL}/{ids['shipping']}", headers=admin), 404)["code"] == "not_found"
    assert error_of(await client.delete(f"{URL}/{ids['shipping']}", headers=admin), 404)["code"] == "not_found"


async def test_list_pages_through_every_document(client: AsyncTestClient, admin: dict[str, str]) -> None:
    for n in range(5):
        assert (await client.post(URL, json={"title": f"Doc {n}", "text": f"Text {n}"}, headers=admin)).status_code == 201
    pages = await walk(client, URL, admin, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [d["title"] for p in pages for d in p] == [f"Doc {n}" for n in range(5)]
    assert all("text" not in d for p in pages for d in p)


async def test_search_answers_passages_with_scores(client: AsyncTestClient, admin: dict[str, str]) -> None:
    ids = await add_documents(client, admin)
    items = await search(client, admin, "opening hours on Sunday")
    assert [i["document_id"] for i in items] == [ids["hours"]]
    assert set(items[0]) == {"chunk_id", "document_id", "title", "heading", "text", "score", "bm25"}
    assert 0 < items[0]["score"] <= 1
    assert await search(client, admin, "quantum physics") == []


@pytest.mark.parametrize("q", ['"', "NEAR(", "*", "title:x", "a OR", ")(", "^"])
async def test_search_with_fts_syntax_is_not_an_error(client: AsyncTestClient, admin: dict[str, str], q: str) -> None:
    await add_documents(client, admin)
    assert isinstance(await search(client, admin, q), list)


async def test_search_needs_a_question(client: AsyncTestClient, admin: dict[str, str]) -> None:
    assert detail_paths(await client.get(f"{URL}/search", headers=admin)) == ["q"]
    assert detail_paths(await client.get(f"{URL}/search", params={"q": "  "}, headers=admin)) == ["q"]


async def test_agents_read_and_search_but_do_not_edit(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    ids = await add_documents(client, admin, "hours")
    agent = make_token(workspace, "agent")
    assert (await client.get(URL, headers=agent)).status_code == 200
    assert (await client.get(f"{URL}/{ids['hours']}", headers=agent)).status_code == 200
    assert [p["document_id"] for p in await search(client, agent, "public holidays")] == [ids["hours"]]
    for method, url, body in (("POST", URL, {"title": "T", "text": "x"}),
                              ("PUT", f"{URL}/{ids['hours']}", {"title": "T", "text": "x"}),
                              ("DELETE", f"{URL}/{ids['hours']}", None)):
        response = await client.request(method, url, json=body, headers=agent)
        assert error_of(response, 403)["code"] == "forbidden"
    assert count(workspace, "knowledge_documents") == 1
