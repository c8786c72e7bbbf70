"""Read a TOML file or one of its tables, with the one set of error messages every reader uses."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from transferd.errors import ConfigError


def read_toml(path: Path, what: str = "") -> dict[str, Any]:
    """The whole document; ConfigError naming the file (``what`` before it, e.g. "plan")."""
    name = f"{what} {path}" if what else str(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read {name}: {(e.strerror or str(e)).lower()}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name} is not valid TOML: {e}") from None


def read_toml_table(path: Path, table: str) -> dict[str, Any]:
    """The ``[table]`` of a TOML file, empty when the file has none."""
    value = read_toml(path).get(table, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{table}] in {path} must be a table")
    return value
