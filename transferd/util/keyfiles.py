"""Load the keys a command line or a plan names: key files (mode checked) and recipient lists.

A key file that group or others can read is loaded all the same, with a warning to whoever
reports for the caller (the CLI's output); the daemon refuses such files itself (config.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from transferd.core.keys import (
    RecipientIdentity,
    RecipientKey,
    SenderPublicKey,
    SenderSecretKey,
    parse_key_file,
    parse_recipient,
    parse_sender_public,
)
from transferd.errors import ConfigError, KeyFormatError
from transferd.util.secretfiles import read_secret_file


class Warnings(Protocol):
    """Where a warning goes: the CLI's Output, or anything else with this method."""

    def warning(self, message: str, *, hint: str | None = None) -> None: ...


def load_secret(path: Path, out: Warnings | None) -> RecipientIdentity | SenderSecretKey:
    text = read_secret_file(path)
    if text.exposed and out is not None:
        out.warning(f"{path} is readable by group or others; chmod 600 it")
    try:
        return parse_key_file(text.text)
    except KeyFormatError as e:
        raise KeyFormatError(f"{path}: {e.message}", hint=e.hint) from None


def load_sender_key(path: Path, out: Warnings | None = None) -> SenderSecretKey:
    key = load_secret(path, out)
    if not isinstance(key, SenderSecretKey):
        raise ConfigError(f"{path} holds a recipient identity, a sender key was expected")
    return key


def load_identity(path: Path, out: Warnings | None = None) -> RecipientIdentity:
    key = load_secret(path, out)
    if not isinstance(key, RecipientIdentity):
        raise ConfigError(f"{path} holds a sender key, a recipient identity was expected")
    return key


def load_recipients(texts: list[str], files: list[Path]) -> list[RecipientKey]:
    """Recipients from --recipient texts and --recipients-file files (one per line, # comments)."""
    keys = [parse_recipient(t) for t in texts]
    for f in files:
        try:
            lines = f.read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"cannot read recipients file {f}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    keys.append(parse_recipient(line))
                except KeyFormatError as e:
                    raise KeyFormatError(f"{f}:{n}: {e.message}") from None
    return keys


def parse_sender_arg(value: str) -> SenderPublicKey:
    """A public key given as text, or as a file holding one key line."""
    text = value.strip()
    if not text.lower().startswith("tds1") and os.path.exists(value):
        try:
            lines = Path(value).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read sender key file {value}: {e}") from None
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        if len(keys) != 1:
            raise ConfigError(f"{value} must hold exactly one public key line tds1…")
        text = keys[0]
    try:
        return parse_sender_public(text)
    except KeyFormatError as e:
        raise KeyFormatError(f"--sender: {e.message}", hint=e.hint) from None
