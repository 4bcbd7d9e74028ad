"""The knowledge base: documents, their passages and the FTS5 index over them. SQL only.

Writing a document stores its passages (``knowledge_chunks``); triggers keep the external-
content FTS5 index (``knowledge_fts``) in step, so replacing or deleting a document leaves no
stale passage behind, in the same transaction.

Retrieval (:func:`search`), for a question:

1. its words (:func:`~appliance.ai.knowledge.terms.query_terms`: no stop words, stemmed);
2. the words the knowledge base knows, weighted by rarity, ``ln(1 + (N - df + 0.5)/(df + 0.5))``
   over the ``N`` passages (``df`` from ``knowledge_terms``, kept with every change). A word
   found in more than half of the passages of a knowledge base of at least
   ``COMMON_MIN_PASSAGES`` passages is a stop word of that knowledge base and has no weight (as
   in FTS5's own bm25): it cannot tell passages apart, and ranking its thousands of passages
   was the slowest part of a search (BENCHMARKS.md, "AI knowledge base");
3. FTS5 candidates ranked with ``bm25()`` (headings weigh twice the body), asked for the rarer
   words only (:func:`_searched`: leaving out words that could not make a passage relevant);
4. each candidate's *score*: the share of the question's weight it contains (0..1). A passage
   is relevant when its score is at least ``MIN_SCORE`` and at least ``RELATIVE`` times the best
   one's; the best ``limit`` are returned (score, then bm25). A question that shares no
   meaningful word with the knowledge base gets nothing.

The score is a share rather than raw bm25, whose scale changes with the size of the knowledge
base (FTS5 gives a word found in more than half of the passages no weight at all, so a knowledge
base of three passages would rank everything near zero).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

from appliance.ai.knowledge.terms import match_expression, query_terms
from appliance.errors import NotFound
from appliance.store.rows import many, one, scalar

__all__ = [
    "ChunkRow", "insert_document", "replace_document", "delete_document", "get_document",
    "list_documents", "search", "MIN_SCORE", "RELATIVE", "TOP_K", "COMMON_SHARE", "COMMON_MIN_PASSAGES",
    "public_document",
]

# (position, heading, text, heading_terms, body_terms), prepared off the writer thread.
ChunkRow = tuple[int, str, str, str, str]

MIN_SCORE = 0.4
RELATIVE = 0.6
TOP_K = 4
CANDIDATES = 16
COMMON_SHARE, COMMON_MIN_PASSAGES = 0.5, 50
HEADING_WEIGHT, BODY_WEIGHT = 2.0, 1.0


def public_document(row: dict[str, Any], *, with_text: bool = False) -> dict[str, Any]:
    doc = {
        "id": str(row["id"]), "title": row["title"], "source": row["source"], "filename": row["filename"],
        "chars": row["chars"], "chunks": row["chunks"], "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if with_text:
        doc["text"] = row["text"]
    return doc


def _term_counts(chunks: Iterable[tuple[str, str]]) -> Counter[str]:
    """Passages holding each word, over ``(heading_terms, body_terms)`` pairs."""
    counts: Counter[str] = Counter()
    for heading_terms, body_terms in chunks:
        counts.update(set(heading_terms.split()) | set(body_terms.split()))
    return counts


def _insert_chunks(db: Database, document_id: int, chunks: list[ChunkRow]) -> None:
    db.conn.executemany(
        "INSERT INTO knowledge_chunks (document_id, position, heading, text, heading_terms, body_terms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(document_id, *chunk) for chunk in chunks],
    )
    db.conn.executemany(
        "INSERT INTO knowledge_terms (term, chunks) VALUES (?, ?) "
        "ON CONFLICT (term) DO UPDATE SET chunks = chunks + excluded.chunks",
        list(_term_counts((c[3], c[4]) for c in chunks).items()),
    )


def _delete_chunks(db: Database, document_id: int) -> None:
    held = db.conn.execute(
        "SELECT heading_terms, body_terms FROM knowledge_chunks WHERE document_id = ?", [document_id]).fetchall()
    db.conn.executemany("UPDATE knowledge_terms SET chunks = chunks - ? WHERE term = ?",
                        [(n, term) for term, n in _term_counts(held).items()])
    db.conn.execute("DELETE FROM knowledge_terms WHERE chunks <= 0")
    # Their delete trigger takes the passages out of the FTS5 index in the same statement.
    db.conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", [document_id])


def insert_document(
    db: Database, *, title: str, source: str, filename: str | None, text: str, chunks: list[ChunkRow], now: str
) -> dict[str, Any]:
    cursor = db.conn.execute(
        "INSERT INTO knowledge_documents (title, source, filename, text, chars, chunks, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [title, source, filename, text, len(text), len(chunks), now, now],
    )
    document_id = int(cursor.lastrowid)
    _insert_chunks(db, document_id, chunks)
    return get_document(db, document_id)


def replace_document(
    db: Database, document_id: int, *, title: str, source: str, filename: str | None, text: str,
    chunks: list[ChunkRow], now: str,
) -> dict[str, Any]:
    """New content for a document: its passages are re-cut and re-indexed."""
    get_document(db, document_id)
    _delete_chunks(db, document_id)
    db.conn.execute(
        "UPDATE knowledge_documents SET title = ?, source = ?, filename = ?, text = ?, chars = ?, chunks = ?, "
        "updated_at = ? WHERE id = ?",
        [title, source, filename, text, len(text), len(chunks), now, document_id],
    )
    _insert_chunks(db, document_id, chunks)
    return get_document(db, document_id)


def delete_document(db: Database, document_id: int) -> None:
    get_document(db, document_id)
    _delete_chunks(db, document_id)  # explicitly, not by the cascade: the word counts go too
    db.conn.execute("DELETE FROM knowledge_documents WHERE id = ?", [document_id])


def get_document(db: Database, document_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM knowledge_documents WHERE id = ?", [document_id])
    if row is None:
        raise NotFound(f"knowledge document {document_id} does not exist")
    return row


def list_documents(db: Database, *, after_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Oldest first, without their text."""
    return many(
        db,
        "SELECT id, title, source, filename, chars, chunks, created_at, updated_at FROM knowledge_documents "
        "WHERE id > ? ORDER BY id LIMIT ?",
        [after_id or 0, limit],
    )


def _weights(db: Database, words: list[str]) -> dict[str, float]:
    """Rarity weight of each word the knowledge base holds and that can tell its passages
    apart (the others cannot decide anything)."""
    total = scalar(db, "SELECT COALESCE(SUM(chunks), 0) FROM knowledge_documents") or 0
    marks = ", ".join("?" for _ in words)
    found = {r["term"]: r["chunks"] for r in many(
        db, f"SELECT term, chunks FROM knowledge_terms WHERE term IN ({marks})", words)}
    common = COMMON_SHARE * total if total >= COMMON_MIN_PASSAGES else math.inf
    return {
        word: math.log(1 + (total - found[word] + 0.5) / (found[word] + 0.5))
        for word in words if found.get(word) and found[word] <= common
    }


def _searched(weights: dict[str, float], min_score: float) -> list[str]:
    """The words worth asking the index for: the rarest first, until the words left out weigh
    less than ``min_score`` of the question. A passage holding none of these holds less than
    ``min_score`` and could not be relevant anyway, so nothing relevant is lost, while the
    commonest words, whose long lists of passages bm25() would otherwise score one by one, stay
    out of the query."""
    total = sum(weights.values())
    chosen: list[str] = []
    left = total
    for word in sorted(weights, key=weights.__getitem__, reverse=True):
        if chosen and left < min_score * total - 1e-12:
            break
        chosen.append(word)
        left -= weights[word]
    return chosen


def search(
    db: Database, question: str, *, limit: int = TOP_K, min_score: float = MIN_SCORE,
) -> list[dict[str, Any]]:
    """The passages relevant to ``question``, best first (see the module docstring):
    ``{chunk_id, document_id, title, heading, text, score, bm25}``."""
    words = query_terms(question)
    if not words:
        return []
    weights = _weights(db, words)
    if not weights:
        return []
    ranked = many(
        db,
        f"SELECT rowid AS id, -bm25(knowledge_fts, {HEADING_WEIGHT}, {BODY_WEIGHT}) AS bm25 FROM knowledge_fts "
        f"WHERE knowledge_fts MATCH ? ORDER BY bm25(knowledge_fts, {HEADING_WEIGHT}, {BODY_WEIGHT}) LIMIT ?",
        [match_expression(_searched(weights, min_score)), CANDIDATES],
    )
    if not ranked:
        return []
    bm25 = {r["id"]: r["bm25"] for r in ranked}
    marks = ", ".join("?" for _ in ranked)
    rows = many(
        db,
        "SELECT c.id, c.document_id, c.heading, c.text, c.heading_terms, c.body_terms, d.title "
        f"FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id WHERE c.id IN ({marks})",
        list(bm25),
    )
    total = sum(weights.values())
    scored = []
    for row in rows:
        present = set(row["heading_terms"].split())
        present.update(row["body_terms"].split())
        share = sum(weight for word, weight in weights.items() if word in present) / total
        scored.append((share, bm25[row["id"]], row))
    if not scored:
        return []
    best = max(share for share, _, _ in scored)
    floor = max(min_score, RELATIVE * best)
    kept = sorted((s for s in scored if s[0] >= floor - 1e-9), key=lambda s: (-round(s[0], 6), -s[1], s[2]["id"]))
    return [
        {"chunk_id": row["id"], "document_id": row["document_id"], "title": row["title"], "heading": row["heading"],
         "text": row["text"], "score": round(share, 3), "bm25": round(score, 4)}
        for share, score, row in kept[:limit]
    ]
