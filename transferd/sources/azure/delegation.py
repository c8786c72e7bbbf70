"""A user delegation SAS: an Entra ID identity asks the account for a key, and the container is
read with a SAS signed by it, renewed well before it expires.

Why a source would: the SAS can be narrower than the identity (read and list, on one container,
for a few hours), and an account whose policy allows SAS reads but no bearer tokens for a
workload still serves it. The key is valid for at most 7 days (Azure's limit); ``LIFETIME`` is
much less, and the SAS is renewed at half of it, so a copy that runs for days never reads with an
expired one. A SAS leaked from a log (none is logged) would open the container for hours, not
days.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferd.sources.azure.identity import SignIn

if TYPE_CHECKING:
    from azure.core.credentials import AzureSasCredential
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob.aio import BlobServiceClient

LIFETIME = timedelta(hours=6)
RENEW_AFTER = LIFETIME / 2
CLOCK_SLACK = timedelta(minutes=5)
"""The SAS starts this long before now: a storage front end whose clock is a little ahead of
ours must not refuse a SAS as not yet valid."""


class UserDelegationSas:
    """The SAS credential of one container, with the identity and the client that renew it."""

    def __init__(
        self,
        sign_in: SignIn,
        endpoint: str,
        account: str,
        container: str,
        ca_file: Path | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sign_in, self._endpoint = sign_in, endpoint
        self._account, self._container, self._ca_file = account, container, ca_file
        self._clock = clock
        self._identity: AsyncTokenCredential | None = None
        self._service: BlobServiceClient | None = None
        self._sas: AzureSasCredential | None = None
        self._renew_at = 0.0

    async def credential(self) -> AzureSasCredential:
        """The SAS credential to read with, fetching the first key on the first call."""
        from azure.core.credentials import AzureSasCredential

        if self._sas is None:
            self._sas = AzureSasCredential(await self._sign())
        return self._sas

    async def refresh(self) -> None:
        """Renew the SAS once half its lifetime has passed (cheap otherwise)."""
        if self._sas is not None and self._clock() >= self._renew_at:
            self._sas.update(await self._sign())

    async def _sign(self) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas
        from azure.storage.blob.aio import BlobServiceClient

        if self._service is None:
            self._identity = self._sign_in.credential(self._ca_file)
            verify: dict[str, Any] = {}
            if self._ca_file is not None:
                verify["connection_verify"] = str(self._ca_file)
            self._service = BlobServiceClient(
                self._endpoint, credential=self._identity, retry_total=0, **verify
            )
        now = datetime.fromtimestamp(self._clock(), UTC)
        start, expiry = now - CLOCK_SLACK, now + LIFETIME
        key = await self._service.get_user_delegation_key(start, expiry)
        self._renew_at = self._clock() + RENEW_AFTER.total_seconds()
        return generate_container_sas(
            self._account,
            self._container,
            user_delegation_key=key,
            permission=ContainerSasPermissions(read=True, list=True),
            start=start,
            expiry=expiry,
        )

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None
        if self._identity is not None:
            await self._identity.close()
            self._identity = None
