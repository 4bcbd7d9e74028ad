"""Cutting a document into passages on paragraph and heading boundaries. Pure.

The extractors (:mod:`appliance.ai.knowledge.extract`) turn a file into :class:`Block` s:
headings (``level`` 1-6) and paragraphs (``level`` 0). :func:`chunk_blocks` packs paragraphs
into passages of about ``TARGET_CHARS``: a heading always starts a new passage and becomes
part of the heading path of the passages under it ("Shipping › Abroad"); a paragraph longer
than ``MAX_CHARS`` is cut between sentences (then between words). Passages never straddle a
heading, so a passage answers about one thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Block", "Chunk", "chunk_blocks", "TARGET_CHARS", "MAX_CHARS", "HEADING_SEPARATOR"]

TARGET_CHARS = 900
MAX_CHARS = 1500
HEADING_SEPARATOR = " › "
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
_SPACE = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    level: int = 0  # 1-6: a heading; 0: a paragraph


@dataclass(frozen=True, slots=True)
class Chunk:
    heading: str  # the heading path, "" before the first heading
    headings: tuple[str, ...]
    text: str


def _clean(text: str) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _pack(pieces: list[str], limit: int, joiner: str) -> list[str]:
    out: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(joiner) + len(piece) > limit:
            out.append(current)
            current = piece
        else:
            current = f"{current}{joiner}{piece}" if current else piece
    if current:
        out.append(current)
    return out


def _split_long(text: str) -> list[str]:
    """``text`` in pieces of at most ``MAX_CHARS``: between sentences, else between words,
    else (one enormous word) anywhere."""
    if len(text) <= MAX_CHARS:
        return [text]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if len(sentence) <= MAX_CHARS:
            pieces.append(sentence)
            continue
        for word in sentence.split():
            pieces.extend(word[i:i + MAX_CHARS] for i in range(0, len(word), MAX_CHARS))
    return _pack(pieces, TARGET_CHARS, " ")


def chunk_blocks(blocks: list[Block]) -> list[Chunk]:
    """Passages of the document, in reading order; blank blocks are skipped."""
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            titles = tuple(title for _, title in path)
            chunks.append(Chunk(HEADING_SEPARATOR.join(titles), titles, "\n\n".join(current)))
        current, size = [], 0

    for block in blocks:
        text = _clean(block.text)
        if not text:
            continue
        if block.level:
            flush()
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, " ".join(text.split())[:200]))
            continue
        for piece in _split_long(text):
            if current and size + 2 + len(piece) > TARGET_CHARS:
                flush()
            current.append(piece)
            size += len(piece) + 2
    flush()
    return chunks
