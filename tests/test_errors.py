"""errors.py is the one place of errors and exit codes, and README.md's table says what it says.

Scripts test exit codes, so the published table, the codes the classes carry and the tree drawn
in errors.py's docstring must agree; and a class or a code defined anywhere else would be one
the table cannot show.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import transferd
from transferd import errors

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "transferd"


def _readme_table() -> dict[int, str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Exit codes") :]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section.split("\n\n## ")[0], re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def _all_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(transferd.__path__, "transferd.")]


def test_the_readme_table_is_errors_exit_codes_row_for_row() -> None:
    table = _readme_table()
    assert list(table.items()) == list(errors.EXIT_CODES.items())


def test_the_readme_gives_verify_precedence_as_errors_py_does() -> None:
    codes = ", ".join(str(errors.VERDICT_EXIT_CODES[v]) for v in errors.PRECEDENCE)
    assert f"`verify` exits with the first of {codes};" in (REPO / "README.md").read_text()


def test_every_error_class_of_the_package_is_defined_in_errors_py() -> None:
    strays = []
    for name in _all_modules():
        module = importlib.import_module(name)
        for cls_name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and issubclass(cls, BaseException)
                and cls.__module__ == name
                and name != "transferd.errors"
            ):
                strays.append(f"{name}.{cls_name}")
    assert strays == []


def _defined_errors() -> dict[str, type[BaseException]]:
    return {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == "transferd.errors"
    }


def _drawn_tree() -> dict[str, str]:
    """Class name -> the exit column of its line in errors.py's drawn tree."""
    assert errors.__doc__ is not None
    drawn = re.findall(
        r"^    [│├└─ ]*(\w+Error|\w+Exception)\s+(\S+)", errors.__doc__, re.MULTILINE
    )
    return dict(drawn)


def test_every_error_class_is_drawn_in_the_tree_with_its_exit_code() -> None:
    drawn = _drawn_tree()
    classes = _defined_errors()
    assert set(drawn) == set(classes)
    for name, cls in classes.items():
        if not issubclass(cls, errors.TransferdError):
            assert drawn[name] == "-", name  # never reaches a user: no code
        elif name == "DaemonAnswerError":
            assert drawn[name] == "*"  # the daemon's own code, one of the table's
        else:
            assert drawn[name] == str(cls.exit_code), name


def test_every_exit_code_a_class_carries_is_in_the_table() -> None:
    for cls in _defined_errors().values():
        if issubclass(cls, errors.TransferdError):
            assert cls.exit_code in errors.EXIT_CODES, cls.__name__
    for code in errors.VERDICT_EXIT_CODES.values():
        assert code in errors.EXIT_CODES


def test_no_other_module_defines_an_exit_code_or_a_verdict_table() -> None:
    """An ``EXIT_…`` constant or a verdict table elsewhere is a code the table does not own."""
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            found.extend(
                f"{path.relative_to(REPO)}:{node.lineno} {target.id}"
                for target in targets
                if isinstance(target, ast.Name)
                and re.fullmatch(r"EXIT_\w+|VERDICT_\w+|PRECEDENCE", target.id)
            )
    assert found == []


def test_fields_cannot_shadow_the_json_error_keys() -> None:
    for reserved in errors.RESERVED_FIELDS - {"hint"}:  # hint is the argument of that name
        try:
            errors.TransferdError("boom", **{reserved: "x"})
        except ValueError:
            continue
        raise AssertionError(f"field {reserved} was accepted")
    assert errors.TransferdError("boom", path="/x", skipped=None).fields == {"path": "/x"}
