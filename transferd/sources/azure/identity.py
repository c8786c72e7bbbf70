"""Entra ID sign-in for an Azure Blob source: which identity, from which files, as azure-identity
credentials.

The kind is always named (``[azure] auth``, ``--azure-auth``): a daemon must not wander a
credential chain and sign in as whatever identity the host happens to offer. ``default``
(DefaultAzureCredential) is there for those who ask for exactly that.

==========================  ==================================================================
``auth``                    signs in with
==========================  ==================================================================
``key`` (the default)       a connection string, SAS or account key (sources/azure/auth.py)
``client-secret``           a service principal: ``tenant_id``, ``client_id`` and the secret in
                            ``client_secret_file`` (0600, or a systemd credential)
``certificate``             a service principal: ``tenant_id``, ``client_id``, and a PEM or
                            PKCS#12 file with the certificate and its key in
                            ``certificate_file`` (0600); ``certificate_password_file`` if the
                            key is encrypted
``workload-identity``       a federated token (Kubernetes, GitHub…) in ``token_file``, read
                            again whenever a token is needed (it is rotated); unset values come
                            from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE,
                            which AKS's webhook sets
``managed-identity``        the host's managed identity (VM, App Service, AKS pod identity…);
                            ``client_id`` names a user-assigned one
``azure-cli``               what ``az login`` signed in as (runs ``az account get-access-token``)
``user-delegation-sas``     one of the kinds above (``sas_identity``) asks the account for a
                            user delegation key, signs a read-and-list SAS for the container
                            with it, and the blobs are read with that SAS (renewed in time)
``default``                 DefaultAzureCredential's chain; the credential it used is logged
==========================  ==================================================================

``authority`` is Entra ID's host (``login.microsoftonline.com`` unless given: a sovereign or
test cloud names its own); ``ca_file`` is trusted for it and for the blob endpoint (a
TLS-inspecting proxy, a test CA). Secrets are read from files only, checked to be 0600, and
handed to azure-identity as values: never an argument, an environment variable or a log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferd.errors import ConfigError, SignInError
from transferd.util.secretfiles import read_secret_file

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger(__name__)
# azure-identity logs a warning for each token it fails to get; the SourceError says it once.
logging.getLogger("azure.identity").setLevel(logging.ERROR)

KEY = "key"
TOKEN_KINDS = (
    "client-secret",
    "certificate",
    "workload-identity",
    "managed-identity",
    "azure-cli",
    "default",
)
"""The kinds that sign in to Entra ID and give bearer tokens."""
USER_DELEGATION = "user-delegation-sas"
KINDS = (KEY, *TOKEN_KINDS, USER_DELEGATION)
STORAGE_SCOPE = "https://storage.azure.com/.default"
DEFAULT_AUTHORITY = "login.microsoftonline.com"
AZ_TIMEOUT = 60
"""Seconds ``az account get-access-token`` may take: it starts a Python of its own (about a
second) and may refresh its token first; azure-identity's default of 10 s is short on a busy
host."""


@dataclass(frozen=True)
class SignIn:
    """How to sign in to Azure: the kind, and what that kind needs (module docstring)."""

    auth: str = KEY
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_file: Path | None = None
    certificate_file: Path | None = None
    certificate_password_file: Path | None = None
    token_file: Path | None = None
    authority: str | None = None
    sas_identity: str | None = None
    """For ``user-delegation-sas``: the kind that obtains the user delegation key."""
    env: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False, compare=False)

    @property
    def identity_kind(self) -> str:
        """The kind that signs in to Entra ID (``sas_identity`` for a user delegation SAS)."""
        return (self.sas_identity or "") if self.auth == USER_DELEGATION else self.auth

    @property
    def who(self) -> str:
        """The identity, for messages: never a secret."""
        kind = self.identity_kind
        if kind in ("client-secret", "certificate"):
            return f"the service principal {self.client_id} of tenant {self.tenant_id}"
        if kind == "workload-identity":
            return f"the workload identity {self._value('client_id')} (token {self._token_path})"
        if kind == "managed-identity":
            which = f" {self.client_id}" if self.client_id else ""
            return f"the managed identity{which} of this host"
        if kind == "azure-cli":
            return "the Azure CLI's signed-in account"
        return "DefaultAzureCredential"

    def check(self) -> SignIn:
        """This sign-in, refused with a ConfigError if it cannot work (a missing tenant, a
        secret file for a kind that takes none, a kind that does not exist)."""
        if self.auth not in KINDS:
            raise ConfigError(
                f"unknown Azure sign-in {self.auth!r}", hint=f"use one of {', '.join(KINDS)}"
            )
        given = {
            name: getattr(self, name)
            for name in ("tenant_id", "client_id", "client_secret_file", "certificate_file",
                         "certificate_password_file", "token_file", "authority", "sas_identity")
            if getattr(self, name) is not None
        }  # fmt: skip
        if self.auth == KEY:
            if given:
                raise ConfigError(
                    f"Azure {', '.join(sorted(given))} given without an Entra ID sign-in",
                    hint="choose one with --azure-auth (or auth in [azure]): "
                    + ", ".join(KINDS[1:]),
                )
            return self
        if self.auth == USER_DELEGATION:
            if self.sas_identity not in TOKEN_KINDS:
                raise ConfigError(
                    "a user delegation SAS needs the identity that asks for its key",
                    hint="set sas_identity in [azure] (--azure-sas-identity) to one of "
                    + ", ".join(TOKEN_KINDS),
                )
        elif self.sas_identity is not None:
            raise ConfigError(f"sas_identity is for auth = {USER_DELEGATION}, not {self.auth}")
        allowed = {"authority", "sas_identity", *_NEEDS.get(self.identity_kind, ()),
                   *_MAY.get(self.identity_kind, ())}  # fmt: skip
        extra = sorted(set(given) - allowed)
        if extra:
            raise ConfigError(f"Azure sign-in {self.identity_kind} takes no {extra[0]}")
        for name in _NEEDS.get(self.identity_kind, ()):
            if self._value(name) is None:
                raise ConfigError(
                    f"Azure sign-in {self.identity_kind} needs {name}",
                    hint=f"set {name} in [azure], or --azure-{_flag(name)}",
                )
        return self

    def credential(self, ca_file: Path | None) -> SignedIn:
        """The azure-identity credential of this sign-in, whose failures say they are the
        sign-in's (SignInError); close it with the client."""
        return SignedIn(self._credential(ca_file))

    def _credential(self, ca_file: Path | None) -> AsyncTokenCredential:
        from azure.identity import aio

        kind = self.identity_kind
        common: dict[str, Any] = {} if ca_file is None else {"connection_verify": str(ca_file)}
        authority = {"authority": self.authority or DEFAULT_AUTHORITY}
        if kind == "client-secret":
            tenant, client, path = self._required("client_secret_file")
            secret = _secret(path, "Azure client secret").strip()
            if not secret:
                raise ConfigError(f"the Azure client secret file {path} is empty")
            return aio.ClientSecretCredential(tenant, client, secret, **authority, **common)
        if kind == "certificate":
            tenant, client, path = self._required("certificate_file")
            password = None
            if self.certificate_password_file is not None:
                text = _secret(self.certificate_password_file, "certificate password")
                password = text.rstrip("\r\n").encode()
            data = _secret_bytes(path, "Azure certificate")
            return aio.CertificateCredential(
                tenant, client, certificate_data=data, password=password, **authority, **common
            )
        if kind == "workload-identity":
            token = self._token_path
            if not os.access(token, os.R_OK):
                raise ConfigError(f"cannot read the federated token file {token}")
            return aio.WorkloadIdentityCredential(
                tenant_id=self._value("tenant_id"),
                client_id=self._value("client_id"),
                token_file_path=str(token),
                **authority,
                **common,
            )
        if kind == "managed-identity":
            return aio.ManagedIdentityCredential(client_id=self.client_id, **common)
        if kind == "azure-cli":
            return aio.AzureCliCredential(
                tenant_id=self.tenant_id or "", process_timeout=AZ_TIMEOUT
            )
        # DefaultAzureCredential says at INFO which credential of its chain gave the token
        # (first the chain's module, then its own), and nothing else at that level.
        for module in ("chained", "default"):
            logging.getLogger(f"azure.identity.aio._credentials.{module}").setLevel(logging.INFO)
        chain: dict[str, Any] = {"process_timeout": AZ_TIMEOUT}
        if self.client_id:
            chain["managed_identity_client_id"] = self.client_id
        return aio.DefaultAzureCredential(**authority, **chain, **common)

    def _required(self, file: str) -> tuple[str, str, Path]:
        """tenant, client id and the named file of a service principal (check() made sure)."""
        tenant, client, path = self.tenant_id, self.client_id, getattr(self, file)
        if not (tenant and client and isinstance(path, Path)):
            raise ConfigError(f"Azure sign-in {self.auth} needs tenant_id, client_id and {file}")
        return tenant, client, path

    def _value(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None and self.identity_kind == "workload-identity" and name in _WORKLOAD_ENV:
            found = self.env.get(_WORKLOAD_ENV[name])
            return (Path(found) if name == "token_file" else found) if found else None
        return value

    @property
    def _token_path(self) -> Path:
        return Path(self._value("token_file") or "")


_NEEDS: dict[str, tuple[str, ...]] = {
    "client-secret": ("tenant_id", "client_id", "client_secret_file"),
    "certificate": ("tenant_id", "client_id", "certificate_file"),
    "workload-identity": ("tenant_id", "client_id", "token_file"),
}
_MAY: dict[str, tuple[str, ...]] = {
    "certificate": ("certificate_password_file",),
    "managed-identity": ("client_id",),
    "azure-cli": ("tenant_id",),
    "default": ("client_id",),
}
_WORKLOAD_ENV = {
    "tenant_id": "AZURE_TENANT_ID",
    "client_id": "AZURE_CLIENT_ID",
    "token_file": "AZURE_FEDERATED_TOKEN_FILE",
}


def _flag(name: str) -> str:
    return {"tenant_id": "tenant", "client_id": "client-id"}.get(name, name.replace("_", "-"))


def _secret(path: Path, what: str) -> str:
    text = read_secret_file(path)
    if text.exposed:
        raise ConfigError(
            f"{what} file {path} is readable by group or others (mode {text.mode:04o}); "
            "refusing to use it",
            hint=f"chmod 600 {path}, or pass it as a systemd credential (LoadCredential=)",
            path=str(path),
        )
    return text.text


def _secret_bytes(path: Path, what: str) -> bytes:
    """A certificate file (PEM text or binary PKCS#12), refused unless 0600."""
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read {what} file {path}: {(e.strerror or str(e)).lower()}"
        ) from None
    if mode & 0o077:
        raise ConfigError(
            f"{what} file {path} is readable by group or others (mode {mode:04o}); "
            "refusing to use it",
            hint=f"chmod 600 {path}, or pass it as a systemd credential (LoadCredential=)",
            path=str(path),
        )
    return data


class SignedIn:
    """An azure-identity credential whose failures raise SignInError: a 401 from Entra ID and a
    401 from Azure Storage are both ClientAuthenticationError, and mean different things."""

    def __init__(self, inner: AsyncTokenCredential) -> None:
        self.inner = inner

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return await self.inner.get_token(*scopes, **kwargs)
        except ClientAuthenticationError as e:
            raise SignInError(str(e)) from e

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> SignedIn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def describe_failure(sign_in: SignIn, exc: BaseException) -> tuple[str, str]:
    """(message, hint) for a sign-in that failed before Azure Storage saw a token: Entra ID (or
    the managed identity endpoint, or az) said no, or no such identity is on this host."""
    from azure.identity import CredentialUnavailableError

    reason = _first_line(exc)
    kind = sign_in.identity_kind
    if isinstance(exc, CredentialUnavailableError):
        if kind == "managed-identity":
            return (
                f"no managed identity is available on this host ({reason})",
                "run on an Azure host with a managed identity, or choose another --azure-auth",
            )
        if kind == "azure-cli":
            return (
                f"the Azure CLI gave no token ({reason})",
                "run 'az login' as the user transferd runs as, or choose another --azure-auth",
            )
        return (
            f"{sign_in.who} is not available ({reason})",
            "name the sign-in to use with --azure-auth instead of default",
        )
    hint = {
        "client-secret": f"check the secret in {sign_in.client_secret_file}, the client id and "
        "the tenant; a secret expires (Entra ID, App registrations, Certificates & secrets)",
        "certificate": f"check that {sign_in.certificate_file} holds the key and the "
        "certificate registered for the application, and the client id and tenant",
        "workload-identity": "check the federated credential of the application (issuer, "
        f"subject, audience api://AzureADTokenExchange) and the token in {sign_in._token_path}",
        "managed-identity": "check that the identity exists and is assigned to this host",
        "azure-cli": "run 'az login' again",
    }.get(kind, "check the identity DefaultAzureCredential found")
    return f"Entra ID refused {sign_in.who} ({reason})", hint


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
