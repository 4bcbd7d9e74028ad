"""Hypothesis strategies for hostile variations of real inputs (the fuzz tests' shared part).

:func:`mutated` takes a decoded fixture (a Meta delivery, a flow document) and applies one to
three mutations at random places in its tree: drop a key or item, put a value of the wrong
type, a huge string, arbitrary unicode (lone surrogates and NULs included) or a deeply nested
value there. Every generated string carries :data:`MARKER`, so a test can check that no error
message or log quotes content.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

__all__ = ["MARKER", "json_values", "mutated", "nested", "paths_of"]

MARKER = "ZQXMARKERZQX"

unicode_text = st.text(st.characters(exclude_categories=()), max_size=20).map(lambda t: MARKER + t)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | unicode_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) to a value inside ``doc``, the root ``()`` first."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths_of(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += paths_of(value, prefix + (i,))
    return found


def nested(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"x": value}
    return value


def _replacement(max_string: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        json_values,
        st.integers(1, max_string).map(lambda n: MARKER + "x" * n),
        unicode_text,
        st.tuples(json_values, st.integers(1, 120), st.booleans()).map(lambda t: nested(*t)),
        st.sampled_from([0, -1, 2**63, 1e308, "", " ", "\x00", [], {}, True, None, "9" * 40]),
    )


@st.composite
def mutated(draw: Any, doc: Any, max_string: int = 100_000) -> Any:
    """``doc`` (not modified) with one to three random mutations applied to a copy."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(doc)))
        if not path:
            if draw(st.integers(0, 9)) == 0:  # rarely: the whole body replaced
                doc = draw(_replacement(max_string))
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(_replacement(max_string))
    return doc
