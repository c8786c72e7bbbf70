"""The package's layers, and a test that no import runs up them.

Each top-level part of transferd has one job, and may use only the parts below it::

    __main__               ``python -m transferd``
    cli                    the command line: parses, dispatches, turns errors into exit codes
    daemon                 jobs under systemd: definitions, control socket, metrics, config
    copies                 many jobs by many agents into one store: plan, leases, agents
    restore verify rekey   what is done with a stored copy
    send read host         a copy written, a copy read back, the storage host serving one
    stores sources report  where ciphertext lands, what is copied, the verify report as a value
    util                   small helpers: durable files, secret and key files, TOML, units
    core                   the format, free of I/O (tests/test_core_is_io_free.py)
    errors                 the exception tree, and the package's version

Two parts on one level do not import each other either, so each can be read, tested and changed
without the other; what they share moves down. An import inside a function counts as much as one
at the top: it is a dependency all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "transferd"

LAYERS: list[set[str]] = [
    {"errors", "__init__"},
    {"core"},
    {"util"},
    {"stores", "sources", "report"},
    {"send", "read", "host"},
    {"restore", "verify", "rekey"},
    {"copies"},
    {"daemon"},
    {"cli"},
    {"__main__"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """``transferd.send.pipeline`` → ``send``; ``transferd.rekey`` → ``rekey``; ``transferd`` →
    ``__init__``."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every ``transferd`` module the file imports, with its line."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("transferd")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            if (
                base == "transferd"
            ):  # from transferd import errors; from transferd import __version__
                found += [
                    (node.lineno, "transferd" if a.name.startswith("__") else f"transferd.{a.name}")
                    for a in node.names
                ]
            elif base.startswith("transferd."):
                found.append((node.lineno, base))
    return found


def violations() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = part_of(module_name(path))
        for line, target in imports(path):
            other = part_of(target)
            if other == own or (
                other not in LEVEL and target.count(".") == 1 and own == "__init__"
            ):
                continue
            if other not in LEVEL:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}: no layer")
            elif LEVEL[other] >= LEVEL[own]:
                how = "up" if LEVEL[other] > LEVEL[own] else "across"
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {target} ({how})"
                )
    return wrong


def test_every_part_of_the_package_has_a_layer() -> None:
    # a folder counts when it holds Python (a checkout may keep a moved folder's __pycache__)
    parts = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/*.py")}
    assert parts - set(LEVEL) == set(), "give each new top-level part a layer in LAYERS"


def test_no_import_runs_up_or_across_the_layers() -> None:
    assert violations() == []


def test_the_check_sees_every_form_of_import() -> None:
    """Not vacuous: the finder sees ``from transferd import …``, plain and deferred imports."""
    assert any(t == "transferd" for _, t in imports(PACKAGE / "cli" / "main.py"))
    assert any(
        t.startswith("transferd.errors") for _, t in imports(PACKAGE / "core" / "catalog.py")
    )
    deferred = imports(PACKAGE / "cli" / "commands" / "serve.py")
    assert any(t == "transferd.host.build" for _, t in deferred)  # imported inside a function
