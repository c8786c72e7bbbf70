"""Where an Azure Blob source is and how to sign in to it, without ever printing a secret.

``az://ACCOUNT/CONTAINER[/PREFIX]`` names what to copy. With an Entra ID sign-in
(``AzureOptions.sign_in``, sources/azure/identity.py) the identity gives the credential, and
neither a file nor the variables below are read. Otherwise (``auth = "key"``, the default) the
credential comes from the first of:

1. a file (``--azure-credential-file``, a plan's ``[azure] credential_file``), mode 0600,
   holding one of the three forms below (``#`` comment lines allowed);
2. ``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_SAS_TOKEN``, ``AZURE_STORAGE_KEY``
   (the names the ``az`` CLI reads);
3. none: anonymous reads, for a public container.

Forms: a **connection string** (``AccountName=…;AccountKey=…`` or ``…;SharedAccessSignature=…``,
optionally ``BlobEndpoint=…``), a **SAS token** (``sv=…&sig=…``, with or without the leading
``?``; a read-and-list SAS is all a copy needs), or an **account key** (base64).

The endpoint is ``--azure-endpoint`` (for Azurite: ``http://127.0.0.1:10000/devstoreaccount1``),
else the connection string's ``BlobEndpoint``, else ``https://ACCOUNT.blob.<EndpointSuffix>``
(``core.windows.net`` by default). A connection string for another account than the URL's is
refused rather than used against the wrong account.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from transferd.errors import ConfigError
from transferd.sources.azure.identity import KEY, SignIn
from transferd.util.secretfiles import read_secret_file

ENV_NAMES = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY")
_CONNECTION_KEYS = ("AccountName", "AccountKey", "BlobEndpoint", "SharedAccessSignature")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_CONTAINER = re.compile(r"\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


@dataclass(frozen=True)
class AzureOptions:
    credential_file: Path | None = None
    endpoint: str | None = None
    range_size: int = 8 * 1024 * 1024
    """Bytes per ranged read of a large blob: large enough that a request's latency is small
    against its transfer, small enough that ``parallel_ranges`` of them fit in memory."""
    parallel_ranges: int = 4
    """Ranges of one blob in flight: a single Azure stream tops out near 60 MB/s; four overlap
    latency and fill a 10 Gbit/s share per agent with several jobs."""
    attempts: int = 8
    """Tries per request on throttling (503, 429), server errors and dropped connections."""
    sign_in: SignIn = field(default_factory=SignIn)
    """How to sign in: a key (the default) or an Entra ID identity."""
    ca_file: Path | None = None
    """A CA to trust for the blob endpoint and Entra ID's (a TLS-inspecting proxy, a test CA);
    None: the system's."""


@dataclass(frozen=True)
class AzureLocation:
    account: str
    container: str
    prefix: str
    """"" or a name prefix ending with "/"."""
    endpoint: str
    credential: str | dict[str, str] | None = field(repr=False)
    """A SAS token, {"account_name", "account_key"}, or None (anonymous)."""

    @property
    def description(self) -> str:
        return f"az://{self.account}/{self.container}/{self.prefix} at {self.endpoint}"


def parse_url(url: str) -> tuple[str, str, str]:
    """(account, container, prefix) of ``az://ACCOUNT/CONTAINER[/PREFIX]``."""
    parts = urlsplit(url)
    if parts.scheme != "az" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{url!r} is not an Azure location: use az://ACCOUNT/CONTAINER[/PREFIX]")
    if "@" in parts.netloc or not _ACCOUNT.fullmatch(parts.netloc):
        raise ConfigError(f"{parts.netloc!r} is not an Azure storage account name")
    container, _, prefix = parts.path.lstrip("/").partition("/")
    if not _CONTAINER.fullmatch(container):
        raise ConfigError(f"{container!r} is not an Azure container name")
    prefix = prefix.strip("/")
    return parts.netloc, container, prefix + "/" if prefix else ""


def resolve(
    url: str, options: AzureOptions | None = None, env: Mapping[str, str] | None = None
) -> AzureLocation:
    options = options or AzureOptions()
    env = os.environ if env is None else env
    account, container, prefix = parse_url(url)
    options.sign_in.check()
    if options.sign_in.auth != KEY and options.credential_file is not None:
        raise ConfigError(
            f"--azure-credential-file is a key; auth {options.sign_in.auth} signs in with Entra ID",
            hint="give one of the two",
        )
    secret = _secret(options, env) if options.sign_in.auth == KEY else None
    endpoint: str | None = options.endpoint
    credential: str | dict[str, str] | None = None
    if secret is not None and any(f"{k}=" in secret for k in _CONNECTION_KEYS):
        fields = _connection_string(secret)
        named = fields.get("accountname")
        if named and named != account:
            raise ConfigError(
                f"the Azure connection string is for account {named}, not {account} of {url}"
            )
        if "accountkey" in fields:
            credential = {"account_name": account, "account_key": fields["accountkey"]}
        elif "sharedaccesssignature" in fields:
            credential = fields["sharedaccesssignature"].lstrip("?")
        endpoint = endpoint or fields.get("blobendpoint")
        if endpoint is None:
            scheme = fields.get("defaultendpointsprotocol", "https")
            suffix = fields.get("endpointsuffix", "core.windows.net")
            endpoint = f"{scheme}://{account}.blob.{suffix}"
    elif secret is not None and "sig=" in secret:
        credential = secret.lstrip("?")
    elif secret is not None:
        try:
            if len(base64.b64decode(secret, validate=True)) < 32:
                raise ValueError
        except (binascii.Error, ValueError):
            raise ConfigError(
                "the Azure credential is neither a connection string, a SAS token nor an "
                "account key"
            ) from None
        credential = {"account_name": account, "account_key": secret}
    endpoint = (endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
    if not re.fullmatch(r"https?://[^\s?#]+", endpoint):
        raise ConfigError(f"Azure endpoint {endpoint!r} is not an http(s) URL")
    return AzureLocation(account, container, prefix, endpoint, credential)


def _secret(options: AzureOptions, env: Mapping[str, str]) -> str | None:
    if options.credential_file is not None:
        text = read_secret_file(options.credential_file)
        if text.exposed:
            raise ConfigError(
                f"Azure credential file {options.credential_file} is readable by group or others",
                hint=f"chmod 600 {options.credential_file}",
            )
        lines = [ln.strip() for ln in text.text.splitlines()]
        values = [ln for ln in lines if ln and not ln.startswith("#")]
        if len(values) != 1:
            raise ConfigError(
                f"Azure credential file {options.credential_file} must hold one credential line"
            )
        return values[0]
    return next((env[name].strip() for name in ENV_NAMES if env.get(name, "").strip()), None)


def _connection_string(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError("the Azure connection string has a part that is not KEY=VALUE")
        fields[key.strip().lower()] = value.strip()
    return fields
