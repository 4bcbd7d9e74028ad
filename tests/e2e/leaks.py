"""Looking for a secret in bytes, in every form it could have been written in."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["forms", "find_leaks", "scan_dir", "files_in"]


def forms(text: str) -> dict[str, bytes]:
    """``text`` as UTF-8, JSON-escaped (``\\uXXXX``, lower- and upper-case hex, as Meta and
    ``json.dumps`` write it), and UTF-16 in both byte orders (SQLite's other text encodings)."""
    escaped = json.dumps(text)[1:-1]
    upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), escaped)
    return {
        "utf-8": text.encode("utf-8"),
        "json-escaped": escaped.encode("ascii"),
        "json-escaped-upper": upper.encode("ascii"),
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
    }


def find_leaks(blob: bytes, needles: Mapping[str, str]) -> list[str]:
    """``"<needle name> as <form>"`` for every form of every needle found in ``blob``."""
    return [
        f"{name} as {form}"
        for name, text in needles.items()
        for form, raw in forms(text).items()
        if raw in blob
    ]


def scan_dir(root: Path, needles: Mapping[str, str]) -> dict[str, list[str]]:
    """Every file under ``root`` (recursively) that holds a needle, with what it holds."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        leaks = find_leaks(path.read_bytes(), needles)
        if leaks:
            found[str(path.relative_to(root))] = leaks
    return found


def files_in(root: Path) -> Iterable[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
