"""The docs cannot drift from the code: every `autotrader <command>` and `make <target>` that
docs/operations.md names exists (the CLI's registered commands, the Makefile's targets), and every
setting is in the configuration table of docs/foundation.md."""

from __future__ import annotations

import enum
import re
from functools import cache
from pathlib import Path
from typing import Any

import typer.main
from pydantic import BaseModel

from cli.main import app
from engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "operations.md"

FENCED_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# `autotrader` as a command (also `.venv/bin/autotrader`), not `autotrader-process`, `autotrader:`, `x/autotrader.db`.
AUTOTRADER_CALL = re.compile(r"(?<![\w.-])autotrader[ \t]+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9-]*))?")
MAKE_CALL = re.compile(r"(?<![\w.-])make[ \t]+([a-z][a-z0-9-]*)")
MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?!=)", re.MULTILINE)


def code_texts(markdown: str) -> list[str]:
    """The fenced code blocks and inline code spans of a markdown text: where commands are written."""
    blocks = FENCED_BLOCK.findall(markdown)
    prose = FENCED_BLOCK.sub("", markdown)
    return blocks + INLINE_CODE.findall(prose)


def autotrader_calls(markdown: str) -> set[tuple[str, str | None]]:
    """(command, the next word or None) of every `autotrader …` in the code of `markdown`."""
    return {(m[1], m[2]) for text in code_texts(markdown) for m in AUTOTRADER_CALL.finditer(text)}


def make_calls(markdown: str) -> set[str]:
    return {m[1] for text in code_texts(markdown) for m in MAKE_CALL.finditer(text)}


def makefile_targets(makefile: str) -> set[str]:
    return {name for m in MAKE_TARGET.finditer(makefile) for name in m[1].split()}


@cache
def cli_commands() -> dict[str, Any]:
    """The `autotrader` command's registered commands and groups, by name."""
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def argument_choices(command: Any) -> list[str] | None:
    """The allowed values of the command's first positional argument when it is an Enum, [] when the
    command takes no positional argument, None when any word is accepted."""
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if not arguments:
        return []
    annotation = arguments[0].type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return None


def unknown_autotrader_calls(calls: set[tuple[str, str | None]]) -> list[str]:
    problems = []
    for name, word in sorted(calls, key=lambda call: (call[0], call[1] or "")):
        command = cli_commands().get(name)
        if command is None:
            problems.append(f"autotrader {name}: no such command")
            continue
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            if word not in subcommands:
                problems.append(f"autotrader {name} {word}: {name} has only {sorted(subcommands)}")
            continue
        choices = argument_choices(command)
        if word is not None and choices is not None and word not in choices:
            problems.append(f"autotrader {name} {word}: {name} takes {choices or 'no argument'}")
    return problems


def unknown_make_targets(targets: set[str]) -> list[str]:
    known = makefile_targets((ROOT / "Makefile").read_text())
    return [f"make {target}: no such target in the Makefile" for target in sorted(targets - known)]


def test_every_autotrader_command_in_the_runbook_exists() -> None:
    calls = autotrader_calls(RUNBOOK.read_text())
    # The parser finds the commands the runbook is built on (so an empty match cannot pass).
    assert {("login", "zerodha"), ("login", "upstox"), ("report", None), ("reconcile", None),
            ("instruments", "refresh"), ("metadata", "build"), ("calendar", None)} <= calls
    assert unknown_autotrader_calls(calls) == []


def test_every_make_target_in_the_runbook_exists() -> None:
    targets = make_calls(RUNBOOK.read_text())
    assert {"server", "server-stop", "automations", "install"} <= targets
    assert unknown_make_targets(targets) == []


def test_the_checks_catch_what_does_not_exist() -> None:
    markdown = "\n".join([
        "Run `autotrader report --date 2024-06-04` and `.venv/bin/autotrader nosuch`.",
        "```bash",
        "autotrader data import PATH",
        "autotrader data nosuch",
        "autotrader login kite",
        "autotrader reconcile everything",
        "make demo && make nosuch-target",
        "```",
        "Not commands: `autotrader-process`, `autotrader: stage failed`, `var/autotrader.db`; autotrader nosuch",
    ])
    assert unknown_autotrader_calls(autotrader_calls(markdown)) == [
        "autotrader data nosuch: data has only ['build', 'import']",
        "autotrader login kite: login takes ['zerodha', 'upstox']",
        "autotrader nosuch: no such command",
        "autotrader reconcile everything: reconcile takes no argument",
    ]
    assert unknown_make_targets(make_calls(markdown)) == ["make nosuch-target: no such target in the Makefile"]


def test_makefile_targets_are_parsed() -> None:
    targets = makefile_targets((ROOT / "Makefile").read_text())
    assert {"install", "demo", "test", "server", "server-stop", "automations", "lock", "ui"} <= targets
    assert not {"PYTHON", "PIP_TOOLS", "LOCK_FLAGS"} & targets  # variables (`:=`), not targets


def test_the_runbook_is_linked() -> None:
    assert "(docs/operations.md)" in (ROOT / "README.md").read_text()
    assert "(operations.md)" in (ROOT / "docs" / "orchestration.md").read_text()


def _setting_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += _setting_keys(field.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_setting_is_in_the_configuration_table() -> None:
    table = (ROOT / "docs" / "foundation.md").read_text()
    keys = _setting_keys(Settings)
    assert len(keys) > 50  # the walk reached the sections
    assert [key for key in keys if f"| `{key}` |" not in table] == []
