"""requirements/image.lock: the image installs exactly these files, each checked by its hash.

The lock must cover every runtime dependency of pyproject.toml (with its extras) at a version
the dependency's specifier allows, pin every entry with ``==`` and carry at least one
``--hash=sha256:`` per entry (``pip install --require-hashes`` refuses the whole file
otherwise); the Dockerfile must install it that way and the project itself with ``--no-deps``.
When this fails after a dependency change, regenerate the lock with the command at its top.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "image.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(line) for line in PROJECT["dependencies"]]
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _entries() -> list[str]:
    """The lock's requirement entries, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _pins() -> dict[str, Version]:
    pins = {}
    for entry in _entries():
        requirement = Requirement(entry.split(" --hash", 1)[0].strip())
        (spec,) = requirement.specifier
        assert spec.operator == "==", entry
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_every_entry_is_pinned_and_hashed() -> None:
    entries = _entries()
    assert len(entries) > len(RUNTIME)
    unhashed = [e.split()[0] for e in entries if not HASH.search(e)]
    assert unhashed == [], "entries without --hash (pip --require-hashes refuses the file)"
    assert all(" --hash=" in e and "==" in e.split(" --hash", 1)[0] for e in entries)
    assert len(_pins()) == len(entries), "a package is locked twice"


@pytest.mark.parametrize("requirement", RUNTIME, ids=lambda r: r.name)
def test_the_lock_covers_the_runtime_dependency(requirement: Requirement) -> None:
    pins = _pins()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is not in requirements/image.lock: regenerate it"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"the lock has {requirement.name}=={pins[name]}, pyproject.toml wants {requirement.specifier}")


def test_the_extras_dependencies_are_locked_too() -> None:
    """PyJWT[crypto] needs cryptography in the image: extras are not left to chance."""
    pins = _pins()
    with_extras = [r for r in RUNTIME if r.extras]
    assert with_extras, "pyproject.toml has a dependency with extras"
    assert "cryptography" in pins


def test_the_dockerfile_installs_the_lock_with_hashes_and_the_project_without_deps() -> None:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    runs = [line for line in text.splitlines() if line.startswith("RUN ") and "pip install" in line]
    assert any("--require-hashes" in r and "-r requirements/image.lock" in r for r in runs), runs
    project = [r for r in runs if re.search(r"pip install (--\S+ )*\.( |$)", r)]
    assert project and all("--no-deps" in r for r in project), runs
    assert "COPY requirements/image.lock" in text
