"""Supply chain: `make install` takes every package from a lock that pins its version and its sha256 hashes, and pip
refuses anything else (`--require-hashes`); the build backend is pinned too, and the locks cover what pyproject.toml
asks for."""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import PROJECT_ROOT

LOCKS = ("requirements-bootstrap.lock", "requirements.lock")
PINNED = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _entries(lock: Path) -> list[str]:
    """The lock's logical lines (backslash continuations joined), comments and blank lines dropped."""
    logical = re.sub(r"\\\n", " ", lock.read_text())
    lines = (line.split("#", 1)[0].strip() for line in logical.splitlines())
    return [line for line in lines if line]


def _pins(lock: Path) -> dict[str, str]:
    """Canonical name → pinned version; fails on any entry that is not `name==version` with sha256 hashes."""
    pins: dict[str, str] = {}
    for entry in _entries(lock):
        requirement, *hashes = entry.split()
        match = PINNED.fullmatch(requirement)
        assert match, f"{lock.name}: {entry!r} is not a name==version pin"
        assert hashes and all(HASH.fullmatch(h) for h in hashes), f"{lock.name}: {requirement} lacks sha256 hashes"
        pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def _install_recipe() -> list[str]:
    """The commands of the Makefile rule that builds the venv (the `$(STAMP):` target)."""
    lines = (PROJECT_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def _pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("lock_name", LOCKS)
def test_every_lock_entry_is_pinned_with_hashes(lock_name: str) -> None:
    lock = PROJECT_ROOT / lock_name
    pins = _pins(lock)
    assert pins, f"{lock_name} pins nothing"
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lock.read_text().splitlines()))
    assert "make lock" in header, f"{lock_name} does not say at its top how to regenerate it"


def test_a_lock_entry_without_hashes_or_an_exact_pin_is_caught(tmp_path: Path) -> None:
    unhashed = tmp_path / "unhashed.lock"
    unhashed.write_text("pip==26.3 \\\n    # via -r -\n")
    with pytest.raises(AssertionError, match="lacks sha256 hashes"):
        _pins(unhashed)
    ranged = tmp_path / "ranged.lock"
    ranged.write_text(f"pip>=26 --hash=sha256:{'0' * 64}\n")
    with pytest.raises(AssertionError, match="not a name==version pin"):
        _pins(ranged)


def test_make_installs_only_hash_checked_locks_and_the_project_without_dependencies() -> None:
    installs = [command for command in _install_recipe() if "pip install" in command]
    assert installs, "the install rule runs no pip install"
    locked = [command for command in installs if " -r " in command]
    assert {command.split(" -r ")[1].split()[0] for command in locked} == set(LOCKS)
    for command in locked:
        assert "--require-hashes" in command and "--upgrade" not in command, command
    for command in set(installs) - set(locked):
        assert "--no-deps" in command and "--no-build-isolation" in command, f"unlocked install: {command}"
        assert command.endswith("-e ."), f"an install that is neither a lock nor the project: {command}"
    dependencies = next(command for command in locked if "requirements.lock" in command)
    assert "--no-deps" in dependencies and "--no-build-isolation" in dependencies


def test_the_build_backend_is_pinned_to_the_locked_setuptools() -> None:
    requires = [Requirement(text) for text in _pyproject()["build-system"]["requires"]]
    (setuptools,) = [r for r in requires if canonicalize_name(r.name) == "setuptools"]
    (specifier,) = setuptools.specifier
    assert specifier.operator == "==", f"setuptools is not pinned in [build-system]: {setuptools}"
    for lock_name in LOCKS:
        assert _pins(PROJECT_ROOT / lock_name).get("setuptools") == specifier.version, lock_name
    assert "pip" in _pins(PROJECT_ROOT / "requirements-bootstrap.lock")


def test_every_dependency_of_pyproject_is_locked_at_an_allowed_version() -> None:
    project = _pyproject()["project"]
    pins = _pins(PROJECT_ROOT / "requirements.lock")
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} (pyproject.toml) is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )
    assert "matplotlib" in pins
