"""Read a TOML file or one of its tables, with the one set of error messages every reader uses;
resolve the paths a file names."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
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


CREDENTIALS = "${CREDENTIALS_DIRECTORY}/"


def config_path(base: Path, value: str, env: Mapping[str, str] = os.environ) -> Path:
    """A path a configuration file names: relative to the file's directory, or, when it starts
    with ``${CREDENTIALS_DIRECTORY}/``, a systemd credential of the unit running transferd
    (``LoadCredential=``), so that a secret's only copy stays root's."""
    if not value.startswith(CREDENTIALS):
        return base / value
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"{value} names a systemd credential, but CREDENTIALS_DIRECTORY is not set",
            hint="run under systemd with LoadCredential=NAME:PATH, or name the file itself",
        )
    name = value[len(CREDENTIALS) :]
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{value}: name one credential, e.g. {CREDENTIALS}sender.key")
    return Path(directory) / name
