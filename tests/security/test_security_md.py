"""SECURITY.md's threat map cannot rot: every ``tests/...py::name`` it cites names a test
function that exists in that file (``def``/``async def`` at module level or in a class), and
every threat section cites at least one test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOC = ROOT / "SECURITY.md"
REFERENCE = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


def test_every_cited_test_exists() -> None:
    cited = REFERENCE.findall(DOC.read_text())
    assert len(cited) >= 100, "SECURITY.md should map its threats to tests"
    missing = []
    found: dict[str, set[str]] = {}
    for file, name in cited:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
            continue
        if file not in found:
            found[file] = _tests_in(path)
        if name not in found[file]:
            missing.append(f"{file}::{name}")
    assert missing == [], "SECURITY.md cites tests that do not exist: " + ", ".join(sorted(set(missing)))


def test_every_threat_section_cites_a_test() -> None:
    sections = re.split(r"(?m)^## ", DOC.read_text())[1:]
    threats = [s for s in sections if re.match(r"\d+\. ", s)]
    assert len(threats) >= 8
    for section in threats:
        title = section.splitlines()[0]
        assert REFERENCE.search(section), f"section {title!r} cites no test"
