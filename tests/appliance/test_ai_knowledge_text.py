"""Turning documents into passages, as plain function calls: words (normalising, stemming, the
FTS5 query), cutting on paragraph and heading boundaries, and reading .txt, .md, .html and PDF."""

from __future__ import annotations

import io

import pytest

from appliance.ai.knowledge.chunking import MAX_CHARS, TARGET_CHARS, Block, chunk_blocks
from appliance.ai.knowledge.extract import decode_text, extract, from_html, from_markdown, from_pdf
from appliance.ai.knowledge.terms import match_expression, query_terms, terms
from appliance.errors import Unprocessable
from tests.pdf_writer import make_pdf

# --- words -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("words", "same"), [
    (["open", "opens", "opened", "opening"], "open"),
    (["price", "prices", "priced", "pricing"], "pric"),
    (["ship", "ships", "shipped", "shipping"], "ship"),
    (["delivery", "deliveries"], "delivery"),
    (["Sunday", "SUNDAYS", "sundays"], "sunday"),
    (["address", "addresses"], "address"),
])
def test_word_forms_meet(words: list[str], same: str) -> None:
    assert {t for w in words for t in terms(w)} == {same}


@pytest.mark.parametrize("word", ["status", "bus", "analysis", "speed", "fall", "tbilisi", "ქართული", "2024"])
def test_words_that_stay(word: str) -> None:
    assert terms(word) == [word.casefold()]


def test_accents_and_case_fold() -> None:
    assert terms("Café CRÈME brûlée") == terms("cafe creme brulee")


def test_question_words_drop_stop_words_and_repeats() -> None:
    assert query_terms("What are your opening HOURS, and are you open on Sundays?") == ["open", "hour", "sunday"]


def test_question_of_stop_words_only_has_no_terms() -> None:
    assert query_terms("Hi! How are you?") == []


@pytest.mark.parametrize("hostile", [
    'price" OR "x', "NEAR(price shipping, 2)", "pri*", "title: refund", "heading_terms:refund", "^refund",
    "refund AND NOT shipping", "(refund", '"unbalanced', "body_terms : x", "a-b", "{heading_terms body_terms}: x",
])
def test_fts_syntax_cannot_be_injected(hostile: str) -> None:
    words = query_terms(hostile)
    assert all(w.isalnum() for w in words)
    expression = match_expression(words)
    # Every word is a quoted string; nothing else but OR between them.
    assert expression.replace('"', "").replace(" OR ", " ").split() == words


def test_match_expression_quotes_even_keywords() -> None:
    assert match_expression(["near", "or", "and"]) == '"near" OR "or" OR "and"'


# --- passages ----------------------------------------------------------------------------------------

def test_headings_start_passages_and_name_them() -> None:
    chunks = chunk_blocks([
        Block("Intro text."), Block("Shipping", 1), Block("We ship daily."), Block("Abroad", 2),
        Block("EU only."), Block("Returns", 1), Block("30 days."),
    ])
    assert [(c.heading, c.text) for c in chunks] == [
        ("", "Intro text."), ("Shipping", "We ship daily."), ("Shipping › Abroad", "EU only."),
        ("Returns", "30 days."),
    ]


def test_paragraphs_are_packed_up_to_the_target() -> None:
    paragraph = "word " * 60  # 300 characters
    chunks = chunk_blocks([Block(paragraph) for _ in range(9)])
    assert len(chunks) > 1
    assert all(len(c.text) <= TARGET_CHARS for c in chunks)
    assert sum(c.text.count("word") for c in chunks) == 9 * 60


def test_a_long_paragraph_is_cut_between_sentences() -> None:
    sentence = "This sentence is about bicycles and their frames. "
    chunks = chunk_blocks([Block(sentence * 100)])
    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert all(c.text.rstrip().endswith(".") for c in chunks)


def test_one_enormous_word_is_cut_anyway() -> None:
    chunks = chunk_blocks([Block("x" * 5000)])
    assert all(len(c.text) <= MAX_CHARS for c in chunks) and sum(len(c.text) for c in chunks) == 5000


def test_blank_blocks_make_no_passages() -> None:
    assert chunk_blocks([Block("  \n "), Block("Only heading", 1)]) == []


# --- files -------------------------------------------------------------------------------------------

def test_markdown_headings_links_and_emphasis() -> None:
    result = from_markdown(
        "Velo Bikes\n==========\n\nWe sell **bicycles** and _helmets_.\nSee [our shop](https://x.example).\n\n"
        "## Hours ##\n\n* Mon-Sat: 10-19\n\n---\n\n```\n# not a heading\n```\n\nSub\n---\n\n![logo](l.png) text"
    )
    assert [(b.level, b.text) for b in result.blocks] == [
        (1, "Velo Bikes"), (0, "We sell bicycles and helmets.\nSee our shop."), (2, "Hours"),
        (0, "* Mon-Sat: 10-19"), (0, "# not a heading"), (2, "Sub"), (0, "logo text"),
    ]
    assert result.title == "Velo Bikes"


def test_html_keeps_text_and_headings_drops_scripts_and_styles() -> None:
    result = from_html(
        "<html><head><title>Shop FAQ</title><style>p{color:red}</style></head><body>"
        "<script>alert('x')</script><h1>FAQ</h1><p>We open at <b>10&nbsp;AM</b>.<br>Closed on Sundays.</p>"
        "<ul><li>Cash</li><li>Card &amp; transfer</li></ul><h2>Returns</h2><div>30 days</div></body></html>"
    )
    assert [(b.level, b.text) for b in result.blocks] == [
        (1, "FAQ"), (0, "We open at 10 AM.\nClosed on Sundays."), (0, "Cash"), (0, "Card & transfer"),
        (2, "Returns"), (0, "30 days"),
    ]
    assert result.title == "Shop FAQ"
    assert "alert" not in result.text and "color" not in result.text


@pytest.mark.parametrize(("data", "text"), [
    ("Grüße aus Tbilisi".encode(), "Grüße aus Tbilisi"),
    (b"\xef\xbb\xbfWith BOM", "With BOM"),
    ("UTF-16 text".encode("utf-16"), "UTF-16 text"),
    ("Caf\xe9".encode("cp1252"), "Café"),
])
def test_text_encodings(data: bytes, text: str) -> None:
    assert decode_text(data) == text


def test_binary_is_not_text() -> None:
    with pytest.raises(Unprocessable) as caught:
        extract(b"\x00\x01\x02binary", "txt")
    assert caught.value.details[0].path == "file"


def test_pdf_text_and_title() -> None:
    pdf = make_pdf([["Opening hours.", "We open at 10."], ["Shipping takes two days."]], title="Handbook")
    result = from_pdf(pdf)
    assert result.title == "Handbook"
    assert "We open at 10." in result.text and "Shipping takes two days." in result.text


def _encrypted_pdf(user_password: str) -> bytes:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(make_pdf([["Secret price list."]])))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_refused_clearly() -> None:
    with pytest.raises(Unprocessable) as caught:
        from_pdf(_encrypted_pdf("open-sesame"))
    assert caught.value.code == "encrypted_document"
    assert "password" in caught.value.message


def test_pdf_encrypted_without_a_user_password_is_read() -> None:
    assert "Secret price list." in from_pdf(_encrypted_pdf("")).text


@pytest.mark.parametrize(("data", "code"), [
    (b"%PDF-1.4\nthis is not really a pdf", "unreadable_document"),
    (make_pdf([[]]), "no_text"),
])
def test_unreadable_pdfs(data: bytes, code: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        from_pdf(data)
    assert caught.value.code == code
