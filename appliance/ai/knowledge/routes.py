"""``/api/v1/knowledge``: the documents AI replies answer from, and search over their passages.

Admins add (JSON ``{title, text}``, the text read as Markdown so ``# headings`` start passages, or an upload of a .txt, .md, .html or .pdf file in the form
field ``file``, optional form field ``title``; up to 20 MiB), replace (PUT, same bodies: the
passages are re-cut and re-indexed) and delete documents (their passages leave the index in
the same transaction). Agents may list, read and search: they see the passages the AI used in
the inbox anyway, and searching helps them answer by hand.
"""

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import QueryParameter

from appliance.ai.knowledge import store
from appliance.ai.knowledge.upload import BODY_LIMIT, parse_document
from appliance.errors import Detail, Unprocessable
from appliance.team.auth import requires
from appliance.web.api import Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["KnowledgeController"]

DocumentId = Annotated[int, IdPath]


async def _document(request: Request[Any, Any, Any]) -> Any:
    content_type, options = request.content_type
    return parse_document(content_type, options, await request.body())


class KnowledgeController(Controller):
    path = "/knowledge"
    guards = [requires("agent")]

    @get("/")
    async def list_documents(
        self, runtime: RuntimeDep, limit: Annotated[int, Limit] = 50, cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        """Documents, oldest first, without their text."""
        after = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(store.list_documents, after_id=after, limit=limit + 1)
        return page([store.public_document(r) for r in rows], limit, lambda item: int(item["id"]))

    @post("/", status_code=201, guards=[requires("admin")], request_max_body_size=BODY_LIMIT)
    async def add_document(self, request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
        """Add a document: JSON ``{title, text}`` or a multipart upload (``file``, ``title``)."""
        from appliance.ai.knowledge import service  # with the first upload, not at start

        row = await service.create(runtime, await _document(request))
        return store.public_document(row)

    @get("/search")
    async def search(
        self,
        runtime: RuntimeDep,
        q: Annotated[str | None, QueryParameter(max_length=2000, description="The question")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=20, description="Passages at most (default 4)")] = 4,
    ) -> dict[str, Any]:
        """The passages an AI reply to ``q`` would be given, best first, with their scores
        (share of the question's weight the passage holds, 0..1); none when nothing is relevant."""
        if not q or not q.strip():
            # Checked here: Litestar reports a missing query parameter without saying which.
            raise Unprocessable("send the question as ?q=", details=[Detail("q", "Field required")])
        passages = await runtime.db.read(store.search, q, limit=limit)
        return {"items": [{**p, "chunk_id": str(p["chunk_id"]), "document_id": str(p["document_id"])}
                          for p in passages]}

    @get("/{document_id:int}")
    async def get_document(self, document_id: DocumentId, runtime: RuntimeDep) -> dict[str, Any]:
        """One document with its extracted text."""
        return store.public_document(await runtime.db.read(store.get_document, document_id), with_text=True)

    @put("/{document_id:int}", guards=[requires("admin")], request_max_body_size=BODY_LIMIT)
    async def replace_document(
        self, document_id: DocumentId, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Replace a document's title and content (same bodies as POST); it is re-indexed."""
        from appliance.ai.knowledge import service  # with the first upload, not at start

        row = await service.replace(runtime, document_id, await _document(request))
        return store.public_document(row)

    @delete("/{document_id:int}", status_code=204, guards=[requires("admin")])
    async def delete_document(self, document_id: DocumentId, runtime: RuntimeDep) -> None:
        """Delete a document and its passages."""
        await runtime.db.write(store.delete_document, document_id)
