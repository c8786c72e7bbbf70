"""The ``[azure]`` table of a configuration file (a copy plan), as an Azure Blob source's options.

::

    [azure]
    endpoint = "https://hdhsnds.blob.core.windows.net"   # optional
    auth = "client-secret"          # key (default) | client-secret | certificate |
                                    # workload-identity | managed-identity | azure-cli |
                                    # user-delegation-sas | default
    tenant_id = "72f988bf-…"
    client_id = "2b1fd3c5-…"
    client_secret_file = "${CREDENTIALS_DIRECTORY}/azure-sp-secret"    # 0600, or a credential
    # certificate_file = "keys/sp.pem"   certificate_password_file = "…"
    # token_file = "/var/run/secrets/azure/tokens/azure-identity-token"
    # sas_identity = "managed-identity"  (with auth = "user-delegation-sas")
    # authority = "login.microsoftonline.us"   ca_file = "/etc/transferd/proxy-ca.pem"
    # credential_file = "keys/azure.credential"  (auth = "key": a connection string, SAS or key)

Paths are relative to the file, or ``${CREDENTIALS_DIRECTORY}/NAME`` (util/tomlfile.py).
sources/azure/identity.py says what each kind needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transferd.errors import ConfigError
from transferd.sources.azure.auth import AzureOptions
from transferd.sources.azure.identity import SignIn
from transferd.util.tomlfile import config_path

PATHS = frozenset(
    {"credential_file", "client_secret_file", "certificate_file", "certificate_password_file",
     "token_file", "ca_file"}
)  # fmt: skip
TEXTS = frozenset({"endpoint", "auth", "tenant_id", "client_id", "authority", "sas_identity"})
KNOWN = PATHS | TEXTS


def check_table(table: Mapping[str, Any], base: Path, where: str) -> dict[str, Any]:
    """The table with its paths resolved against ``base``; ConfigError for an unknown key or a
    value that is not text. The sign-in itself is checked when the options are made."""
    unknown = sorted(set(table) - KNOWN)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in [azure] of {where}",
            hint=f"known: {', '.join(sorted(KNOWN))}",
        )
    resolved: dict[str, Any] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f'{key} in [azure] of {where} must be a string: {key} = "…"')
        resolved[key] = str(config_path(base, value)) if key in PATHS else value
    return resolved


def options_from_table(table: Mapping[str, Any]) -> AzureOptions:
    """Options from a table ``check_table`` resolved."""

    def path(key: str) -> Path | None:
        value = table.get(key)
        return Path(value) if isinstance(value, str) else None

    def text(key: str) -> str | None:
        value = table.get(key)
        return value if isinstance(value, str) else None

    sign_in = SignIn(
        auth=text("auth") or "key",
        tenant_id=text("tenant_id"),
        client_id=text("client_id"),
        client_secret_file=path("client_secret_file"),
        certificate_file=path("certificate_file"),
        certificate_password_file=path("certificate_password_file"),
        token_file=path("token_file"),
        authority=text("authority"),
        sas_identity=text("sas_identity"),
    ).check()
    return AzureOptions(
        credential_file=path("credential_file"),
        endpoint=text("endpoint"),
        sign_in=sign_in,
        ca_file=path("ca_file"),
    )
