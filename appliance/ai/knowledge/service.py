"""From a request's document to stored, indexed passages.

Extraction (PDF above all), chunking and normalising the passages' words are CPU work: they run
in a worker thread, before the writer is involved, so the single writer only inserts rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from appliance.ai.knowledge import store
from appliance.ai.knowledge.chunking import chunk_blocks
from appliance.ai.knowledge.terms import terms
from appliance.ai.knowledge.extract import unreadable
from appliance.ai.knowledge.upload import DocumentInput
from appliance.runtime import Runtime
from appliance.timeutil import iso_now

__all__ = ["Prepared", "prepare", "create", "replace"]


@dataclass(frozen=True, slots=True)
class Prepared:
    title: str
    source: str
    filename: str | None
    text: str
    chunks: list[store.ChunkRow]

    def values(self) -> dict[str, Any]:
        return {"title": self.title, "source": self.source, "filename": self.filename, "text": self.text,
                "chunks": self.chunks}


def prepare(document: DocumentInput) -> Prepared:
    """Extract, cut into passages and normalise their words (synchronous, CPU-bound)."""
    extracted = document.extracted()
    rows = [
        (position, chunk.heading, chunk.text, " ".join(terms(" ".join(chunk.headings))), " ".join(terms(chunk.text)))
        for position, chunk in enumerate(chunk_blocks(extracted.blocks))
    ]
    if not rows:
        raise unreadable("the document holds no text to answer from (headings only?)", "no_text")
    return Prepared(document.title_for(extracted), document.source, document.filename, extracted.text, rows)


async def create(runtime: Runtime, document: DocumentInput) -> dict[str, Any]:
    prepared = await asyncio.to_thread(prepare, document)
    return await runtime.db.write(store.insert_document, **prepared.values(), now=iso_now())


async def replace(runtime: Runtime, document_id: int, document: DocumentInput) -> dict[str, Any]:
    await runtime.db.read(store.get_document, document_id)  # 404 before the work
    prepared = await asyncio.to_thread(prepare, document)
    return await runtime.db.write(store.replace_document, document_id, **prepared.values(), now=iso_now())
