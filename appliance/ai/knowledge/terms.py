"""Words as the knowledge index sees them: one normalisation for passages and questions.

``terms(text)`` folds case and accents (NFKD, combining marks dropped, ``casefold``), splits on
anything that is not a letter or digit (so no punctuation, quote, ``*``, ``:`` or ``^`` ever
reaches FTS5), and strips common English endings with a small, predictable stemmer, so that
"opening", "opens" and "opened" meet "open", and "prices" / "pricing" meet "price". It is
language-agnostic beyond that: words in other scripts keep their form.

``match_expression(words)`` builds the FTS5 query: every word a quoted string joined by ``OR``
(FTS5 syntax — NEAR, column filters, prefixes, AND/NOT — cannot be injected: the words hold
letters and digits only, and quoting makes even "near" or "or" plain words).
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["terms", "query_terms", "match_expression", "stem", "STOPWORDS", "MAX_QUERY_TERMS"]

MAX_QUERY_TERMS = 16
_WORD = re.compile(r"[^\W_]+")
_VOWELS = set("aeiouy")

# Words that say nothing about what is asked; dropped from questions only (passages keep them).
STOPWORDS = frozenset("""
a about above after again against all am an and any are aren as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don down during each
few for from further get got had hadn has hasn have haven having he her here hers herself him himself
his how i if in into is isn it its itself just let ll me might more most must mustn my myself no nor
not now of off on once only or other ought our ours ourselves out over own re same shall she should
shouldn so some such than that the their theirs them themselves then there these they this those
through to too under until up ve very was wasn we were weren what when where which while who whom
why will with won would wouldn you your yours yourself yourselves hi hello hey please thanks thank ok
okay yes yeah tell know want need like would d s t m also much many one
""".split())


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _undouble(word: str) -> str:
    # "shipping" -> "shipp" -> "ship"; "running" -> "run" (but "fall", "miss", "buzz" stay).
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "lsz" and word[-1] not in _VOWELS:
        return word[:-1]
    return word


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stemmer: plural and verb endings, then a final silent ``e``. Words of
    four letters or fewer, non-ASCII words and numbers are left as they are."""
    if len(word) <= 4 or not word.isascii() or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 5:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ing") and len(word) >= 6 and _VOWELS & set(word[:-3]):
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) >= 5 and not word.endswith("eed") and _VOWELS & set(word[:-2]):
        word = _undouble(word[:-2])
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The normalised words of ``text``, in order (duplicates kept)."""
    return [stem(w) for w in _WORD.findall(_fold(text)) if len(w) > 1 or w.isdigit()]


def query_terms(text: str) -> list[str]:
    """The distinct words of a question worth searching for, first ones first."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(_fold(text)):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        seen.setdefault(stem(word), None)
        if len(seen) >= MAX_QUERY_TERMS:
            break
    return list(seen)


def match_expression(words: list[str]) -> str:
    """An FTS5 MATCH expression matching any of ``words`` (each quoted)."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
