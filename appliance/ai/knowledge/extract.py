"""Text out of the files a knowledge base accepts: plain text, Markdown, HTML and PDF.

Each extractor returns :class:`Extracted`: the blocks (headings and paragraphs) the chunker
cuts passages from, the plain text kept with the document, and a title found in the file
(``<title>``, the first Markdown heading, the PDF's metadata) for uploads that bring none.
HTML uses the standard library's parser (no scripts or styles survive); PDF uses ``pypdf``
(imported when a PDF arrives). A file that cannot be read raises
:class:`~appliance.errors.Unprocessable` saying why, located at ``file``.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from appliance.ai.knowledge.chunking import Block
from appliance.errors import Detail, Unprocessable

__all__ = ["Extracted", "extract", "from_text", "unreadable", "KINDS"]

KINDS = ("txt", "md", "html", "pdf")
_BLANK = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class Extracted:
    blocks: list[Block]
    text: str
    title: str | None = None


def unreadable(message: str, code: str = "unreadable_document") -> Unprocessable:
    return Unprocessable(message, code=code, details=[Detail("file", message)])


def _paragraphs(text: str) -> list[Block]:
    return [Block(p) for p in _BLANK.split(text) if p.strip()]


def _plain(blocks: list[Block]) -> str:
    return "\n\n".join(("#" * b.level + " " if b.level else "") + b.text.strip() for b in blocks if b.text.strip())


def from_text(text: str) -> Extracted:
    """A plain-text file: paragraphs at blank lines."""
    blocks = _paragraphs(text.replace("\r\n", "\n"))
    return Extracted(blocks, _plain(blocks))


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252; binary is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data:
        for encoding in ("utf-8-sig", "cp1252"):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    raise unreadable("the file is not text: upload a UTF-8 .txt, .md or .html file, or a PDF")


# --- Markdown ------------------------------------------------------------------------------------

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: their alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"<[^>\n]+>"), ""),  # inline HTML tags
    (re.compile(r"`+([^`]*)`+"), r"\1"),
    (re.compile(r"(\*\*|__|~~)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"\1"),
    (re.compile(r"^\s{0,3}>\s?"), ""),  # block quotes
]


def _inline(line: str) -> str:
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    return line


def from_markdown(text: str) -> Extracted:
    blocks: list[Block] = []
    paragraph: list[str] = []
    title: str | None = None
    fenced = False

    def flush() -> None:
        if paragraph:
            blocks.append(Block("\n".join(paragraph)))
            paragraph.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            paragraph.append(line)
            continue
        heading = _ATX.match(line)
        setext = _SETEXT.match(line)
        if heading:
            flush()
            blocks.append(Block(_inline(heading.group(2)), len(heading.group(1))))
        elif setext and len(paragraph) == 1:
            level = 1 if setext.group(1)[0] == "=" else 2
            blocks.append(Block(_inline(paragraph.pop()), level))
        elif not line.strip() or _RULE.match(line):
            flush()
        else:
            paragraph.append(_inline(line))
    flush()
    title = next((b.text.strip() for b in blocks if b.level == 1), None)
    return Extracted(blocks, _plain(blocks), title)


# --- HTML ----------------------------------------------------------------------------------------

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas"})
_BREAKS = frozenset({
    "p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "ul", "ol", "li",
    "table", "tr", "blockquote", "pre", "dl", "dt", "dd", "hr", "form", "figure", "figcaption",
    "address", "details", "summary", "body", "html",
})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title: str | None = None
        self._text: list[str] = []
        self._skip = 0
        self._in_title = False
        self._title: list[str] = []
        self._heading = 0

    def _flush(self) -> None:
        text = "".join(self._text)
        self._text = []
        lines = [" ".join(line.split()) for line in text.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            self.blocks.append(Block(text, self._heading))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self._skip += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BREAKS:
            self._flush()
        elif tag == "br":
            self._text.append("\n")
        elif tag in ("td", "th"):
            self._text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _HEADINGS:
            self._flush()
            self._heading = 0
        elif tag in _BREAKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        elif not self._skip:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        self.title = " ".join("".join(self._title).split()) or None


def from_html(text: str) -> Extracted:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    title = parser.title or next((b.text for b in parser.blocks if b.level == 1), None)
    return Extracted(parser.blocks, _plain(parser.blocks), title)


# --- PDF -----------------------------------------------------------------------------------------

def from_pdf(data: bytes) -> Extracted:
    """Text of every page (pypdf's layout-free extraction); paragraphs at blank lines, else
    one paragraph per page that the chunker cuts between sentences."""
    import pypdf  # noqa: PLC0415 - only when a PDF arrives
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings can quote the file
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise unreadable("the PDF is protected by a password: remove the protection and upload it again",
                             "encrypted_document")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
        title = (metadata.title if metadata else None) or None
    except Unprocessable:
        raise
    except (PdfReadError, Exception) as exc:  # noqa: BLE001 - any parser failure is the file's
        if "decrypt" in type(exc).__name__.lower() or "password" in str(exc).lower():
            raise unreadable("the PDF is protected by a password: remove the protection and upload it again",
                             "encrypted_document") from exc
        raise unreadable("the PDF could not be read: it is damaged or not a PDF") from exc
    blocks: list[Block] = []
    for page in pages:
        text = page.replace("\r\n", "\n").replace("\x00", "")
        if _BLANK.search(text):
            blocks += _paragraphs(text)
        elif text.strip():
            blocks.append(Block(" ".join(text.split())))
    if not blocks:
        raise unreadable("the PDF has no text layer (a scan?): run it through OCR first", "no_text")
    return Extracted(blocks, _plain(blocks), str(title).strip() if title else None)


def extract(data: bytes, kind: str) -> Extracted:
    """Blocks and text of a file of ``kind`` (one of ``KINDS``)."""
    if kind == "pdf":
        return from_pdf(data)
    text = decode_text(data)
    if kind == "md":
        return from_markdown(text)
    if kind == "html":
        return from_html(text)
    return from_text(text)
