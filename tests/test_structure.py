"""The engine's modules form no import cycle (imports inside functions count: deferring one only hides the
cycle), and no module reaches into another's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "tasks", "flows", "cli")
# Compiled extension modules are named with a leading underscore by convention; they are no one's internals.
PRIVATE_MODULES_ALLOWED = {"engine.feed._fastfeed"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*packages: str) -> dict[str, Path]:
    return {_module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")
            if "proto" not in p.relative_to(ROOT).parts[:3]}


def _runtime_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports when it runs: at module level or inside functions, but not under
    `if TYPE_CHECKING:` (annotations only)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {name for name in found if name in modules and name != me}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph[module]:
            if imported not in index:
                connect(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            connect(module)
    return found


def test_no_import_cycles() -> None:
    modules = _sources(*PACKAGES)
    graph = {name: _runtime_imports(path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def _defined_private_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if name.startswith("_")}


def _private_reaches(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    own = _defined_private_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{node.module}.{alias.name}" not in PRIVATE_MODULES_ALLOWED:
                    yield f"{node.lineno}: from {node.module} import {alias.name}"
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            if node.attr not in own:  # another module's private name
                yield f"{node.lineno}: {ast.unparse(node)}"


def test_no_module_reaches_into_another_modules_private_names() -> None:
    reaches = {str(path.relative_to(ROOT)): list(_private_reaches(path)) for path in _sources(*PACKAGES).values()}
    assert {where: what for where, what in reaches.items() if what} == {}


# Each table has one writing module (engine/storage/ holds the trading path's repositories).
TABLE_WRITERS = {
    "InstrumentRow": "engine.data.instruments",
    "SetupRow": "engine.storage.setups",
    "OrderRow": "engine.storage.journal",
    "OrderEventRow": "engine.storage.journal",
    "FillRow": "engine.storage.journal",
    "GttRow": "engine.storage.journal",
    "PositionRow": "engine.storage.positions",
    "TradeRow": "engine.storage.positions",
    "RiskLedgerRow": "engine.storage.ledger",
    "SessionStateRow": "engine.session.stages",
    "SchemaVersionRow": "engine.storage.db",
    "NotificationRow": "engine.notify.delivery",
    "CorporateActionRow": "engine.data.corporate_actions",
}
WRITE_CALLS = {"insert", "update", "delete"}  # sqlalchemy statements
SESSION_WRITES = {"add", "add_all", "delete", "merge"}


def _row_names(node: ast.AST, aliases: dict[str, str]) -> list[str]:
    """The table row classes an expression names (a table constant such as ORDERS counts as its row)."""
    names = []
    for child in ast.walk(node):
        name = child.id if isinstance(child, ast.Name) else child.attr if isinstance(child, ast.Attribute) else None
        if name in TABLE_WRITERS:
            names.append(name)
        elif name in aliases:
            names.append(aliases[name])
    return names


def _table_aliases(tree: ast.AST) -> dict[str, str]:
    """Module-level `ORDERS: Table = OrderRow.__table__` constants."""
    aliases = {}
    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Attribute) and value.attr == "__table__" \
                and isinstance(value.value, ast.Name) and value.value.id in TABLE_WRITERS:
            aliases[target.id] = value.value.id
    return aliases


def _written_tables(path: Path) -> dict[str, list[str]]:
    """Row class -> where this module writes its table: `insert/update/delete(<table>)` and `session.add(<row>)`,
    the row's class read from the expression or from the assignment of the variable added."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = _table_aliases(tree)
    found: dict[str, list[str]] = {}
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        variables: dict[str, list[str]] = {}  # variable -> the row class it holds (followed through assignments)
        for _ in range(3):
            for node in ast.walk(function):
                if isinstance(node, ast.Assign | ast.For | ast.comprehension):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    source = node.value if isinstance(node, ast.Assign) else node.iter
                    held = (variables[n.id] for n in ast.walk(source) if isinstance(n, ast.Name) and n.id in variables)
                    rows = _row_names(source, aliases) or next(held, [])
                    for target in targets:
                        for name in ast.walk(target):
                            if isinstance(name, ast.Name) and rows:
                                variables.setdefault(name.id, rows[:1])
        for node in ast.walk(function):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in WRITE_CALLS:
                rows = _row_names(node.args[0], aliases)[:1]
            elif isinstance(func, ast.Attribute) and func.attr in SESSION_WRITES and \
                    ast.unparse(func.value) == "session":
                argument = node.args[0]
                rows = variables.get(argument.id, ["?"]) if isinstance(argument, ast.Name) else (
                    _row_names(argument, aliases)[:1] or ["?"])
            else:
                continue
            for row in rows:
                found.setdefault(row, []).append(f"{function.name}:{node.lineno}")
    return found


def test_each_table_has_one_writer() -> None:
    writers: dict[str, list[str]] = {}
    for module, path in _sources("engine", "tasks", "flows", "cli").items():
        for row, places in _written_tables(path).items():
            writers.setdefault(row, []).append(f"{module} ({', '.join(places)})")
    stray = {row: [w for w in where if w.split(" ")[0] != TABLE_WRITERS.get(row)] for row, where in writers.items()}
    assert {row: where for row, where in stray.items() if where} == {}


def test_only_the_writers_of_tables_import_them() -> None:
    """Everything else reads through their functions and repositories (domain objects, not rows)."""
    owners = set(TABLE_WRITERS.values()) | {"engine.storage.tables"}
    modules = _sources(*PACKAGES)
    importers = {name for name, path in modules.items() if "engine.storage.tables" in _runtime_imports(path, modules)}
    assert importers - owners == set()
