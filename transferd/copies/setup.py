"""Turn a copy plan into what an agent runs with: keys, the copy secret, the store, sources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transferd.copies.plan import CopyPlan
from transferd.core.copy import CopySecret, parse_copy_secret_file
from transferd.core.keys import RecipientKey, SenderSecretKey
from transferd.errors import ConfigError, KeyFormatError
from transferd.send.compose import SendOptions
from transferd.sources.azure.auth import AzureOptions
from transferd.sources.base import Source
from transferd.sources.open import open_source
from transferd.stores.base import CopyStore
from transferd.stores.open import open_store
from transferd.stores.retry import RetryingStore
from transferd.util.keyfiles import Warnings, load_recipients, load_sender_key
from transferd.util.secretfiles import read_secret_file


@dataclass
class CopyMaterial:
    sender: SenderSecretKey
    secret: CopySecret
    recipients: list[RecipientKey]


def load_material(plan: CopyPlan, out: Warnings | None) -> CopyMaterial:
    sender = load_sender_key(plan.sender_key, out)
    return CopyMaterial(sender, load_copy_secret(plan.copy_secret), load_recipients(
        list(plan.recipients), []))  # fmt: skip


def load_copy_secret(path: Path) -> CopySecret:
    text = read_secret_file(path)
    if text.exposed:
        raise ConfigError(
            f"copy secret {path} is readable by group or others: it opens every job of the copy",
            hint=f"chmod 600 {path}",
        )
    try:
        return parse_copy_secret_file(text.text)
    except KeyFormatError as e:
        raise KeyFormatError(f"{path}: {e.message}") from None


def open_copy_store(plan: CopyPlan, sender: SenderSecretKey, retries: int = 8) -> CopyStore:
    """The plan's store, retried; its [s3] table (if any) configures an s3:// store."""
    return RetryingStore(open_store(plan.store, sender, s3_config=plan.path), attempts=retries)


def send_options(plan: CopyPlan, retries: int = 8) -> SendOptions:
    """How the agents send each job: the plan's ``[pipeline]`` table (as ``transferd send``'s
    options), its ``[s3]`` table for an s3:// store, its ``[azure]`` table for az:// sources."""
    return SendOptions.from_table(
        plan.pipeline, retries=retries, s3_config=plan.path, azure=plan_azure(plan)
    )


def open_plan_source(plan: CopyPlan, spec: str) -> Source:
    """A job's source; relative directory paths are relative to the plan, and az:// sources
    take the plan's [azure] settings."""
    if "://" not in spec and not Path(spec).is_absolute():
        spec = str(plan.path.parent / spec)
    return open_source(spec, azure=plan_azure(plan))


def plan_azure(plan: CopyPlan) -> AzureOptions:
    """The plan's [azure] settings as an Azure Blob source takes them."""
    azure = plan.azure
    credential = azure.get("credential_file")
    endpoint = azure.get("endpoint")
    return AzureOptions(
        credential_file=Path(credential) if isinstance(credential, str) else None,
        endpoint=endpoint if isinstance(endpoint, str) else None,
    )
