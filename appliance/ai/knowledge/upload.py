"""Reading a knowledge document out of a request: JSON ``{title, text}`` or a multipart upload
(``file``, optional ``title``), its size limit and its type.

Uploads are parsed in memory (``multipart``'s push parser, the one Litestar uses) rather than
with Litestar's ``UploadFile``, which spools anything over 1 MiB to a temporary file: a
customer's document must not touch the disk unencrypted (DESIGN.md invariant 1).

The type comes from the file name's extension, else from the part's content type; a body
that starts like a PDF is a PDF whatever it is called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from appliance.errors import BadRequest, Detail, PayloadTooLarge, Unprocessable

if TYPE_CHECKING:  # extract (and chunking) are imported by the first upload, not at start
    from appliance.ai.knowledge.extract import Extracted

__all__ = ["DocumentInput", "TextDocument", "parse_document", "MAX_FILE_BYTES", "MAX_TEXT_CHARS", "BODY_LIMIT"]

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 5_000_000
BODY_LIMIT = MAX_FILE_BYTES + 256 * 1024  # the file plus the multipart envelope and a title

_BY_EXTENSION = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html",
                 ".htm": "html", ".pdf": "pdf"}
_BY_CONTENT_TYPE = {"text/plain": "txt", "text/markdown": "md", "text/x-markdown": "md",
                    "text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf"}

Title = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class TextDocument(BaseModel):
    """A document typed into the API."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    title: Title
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """What a request brought. ``title`` is None for an upload without one: the file's own
    title (``<title>``, the first heading, the PDF's metadata), else its name, is used."""

    title: str | None
    source: str  # text | txt | md | html | pdf
    filename: str | None
    raw: bytes | None  # the uploaded file (extracted off the event loop), or None for text
    text: str | None

    def title_for(self, extracted: Extracted) -> str:
        fallback = PurePosixPath(self.filename).stem if self.filename else "Untitled"
        return (self.title or extracted.title or fallback).strip()[:200] or "Untitled"

    def extracted(self) -> Extracted:
        """The text and blocks; CPU-bound for PDFs: call it in a worker thread."""
        from appliance.ai.knowledge.extract import extract, from_markdown, unreadable  # noqa: PLC0415
        # Typed text is read as Markdown: plain text reads the same, and "# Heading" lines start
        # passages of their own.
        result = from_markdown(self.text or "") if self.raw is None else extract(self.raw, self.source)
        if len(result.text) > MAX_TEXT_CHARS:
            raise unreadable(f"the document holds more than {MAX_TEXT_CHARS:,} characters of text: split it",
                             "document_too_long")
        if not result.blocks:
            raise unreadable("the document holds no text to answer from", "no_text")
        return result


def _details(exc: ValidationError) -> list[Detail]:
    return [Detail(".".join(str(p) for p in e["loc"]) or "$", e["msg"].removeprefix("Value error, "))
            for e in exc.errors()]


def _from_json(body: bytes) -> DocumentInput:
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("the request body is not valid JSON", code="invalid_json") from exc
    try:
        data = TextDocument.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable("the document does not match the expected schema; see details",
                            details=_details(exc)) from exc
    if not data.text.strip():
        raise Unprocessable("the document holds no text", details=[Detail("text", "is blank")])
    return DocumentInput(data.title, "text", None, None, data.text)


def _kind(filename: str, content_type: str | None, data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return "pdf"
    kind = _BY_EXTENSION.get(PurePosixPath(filename.replace("\\", "/")).suffix.lower())
    kind = kind or _BY_CONTENT_TYPE.get((content_type or "").split(";")[0].strip().lower())
    if kind is None or kind == "pdf":  # a "PDF" without the PDF header is not one
        raise Unprocessable(
            "unsupported file type: upload a .txt, .md, .html or .pdf file",
            code="unsupported_file_type", details=[Detail("file", "must be .txt, .md, .html or .pdf")],
        )
    return kind


def _parts(body: bytes, boundary: str) -> dict[str, tuple[str | None, str | None, bytes]]:
    """``{name: (filename, content type, bytes)}`` of a multipart body, in memory."""
    from multipart import MultipartSegment, ParserError, PushMultipartParser  # noqa: PLC0415

    parts: dict[str, tuple[str | None, str | None, bytes]] = {}
    segment: Any = None
    data = bytearray()
    try:
        with PushMultipartParser(boundary, max_segment_count=10) as parser:
            for chunk in (body, b""):
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, data = event, bytearray()
                    elif event:
                        data.extend(event)
                    elif segment is not None:
                        parts.setdefault(segment.name, (segment.filename, segment.content_type, bytes(data)))
                        segment = None
    except ParserError as exc:
        raise BadRequest("the multipart body is malformed", code="invalid_multipart") from exc
    return parts


def _from_multipart(body: bytes, boundary: str | None) -> DocumentInput:
    if not boundary:
        raise BadRequest("multipart/form-data needs a boundary in Content-Type", code="invalid_multipart")
    parts = _parts(body, boundary)
    upload = parts.get("file")
    if upload is None or upload[0] is None:
        raise Unprocessable("send the document as a file in the form field `file`",
                            details=[Detail("file", "Field required")])
    filename, content_type, data = upload
    if len(data) > MAX_FILE_BYTES:
        raise PayloadTooLarge(f"files up to {MAX_FILE_BYTES // (1024 * 1024)} MiB are accepted")
    if not data:
        raise Unprocessable("the file is empty", details=[Detail("file", "is empty")])
    kind = _kind(filename or "", content_type, data)
    title_part = parts.get("title")
    title = title_part[2].decode("utf-8", "replace").strip() if title_part else ""
    if len(title) > 200:
        raise Unprocessable("the title is too long", details=[Detail("title", "at most 200 characters")])
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:255] or None
    return DocumentInput(title or None, kind, name, data, None)


def parse_document(content_type: str, options: dict[str, str], body: bytes) -> DocumentInput:
    """The document a POST/PUT carries; 400/413/415-like 422 errors say what is wrong."""
    if len(body) > BODY_LIMIT:
        raise PayloadTooLarge(f"files up to {MAX_FILE_BYTES // (1024 * 1024)} MiB are accepted")
    if content_type == "multipart/form-data":
        return _from_multipart(body, options.get("boundary"))
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        if not body:
            raise BadRequest("the request body is empty: send {title, text} or upload a file",
                             code="invalid_json")
        return _from_json(body)
    raise Unprocessable(
        "send JSON {title, text} or a multipart/form-data upload with a `file` field",
        code="unsupported_media_type", details=[Detail("$", f"unsupported content type {content_type}")],
    )
