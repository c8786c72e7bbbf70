"""Command-line options of an Azure Blob source (``az://ACCOUNT/CONTAINER[/PREFIX]``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from transferd.sources.azure.auth import AzureOptions


def add_azure_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Azure Blob sources (az://ACCOUNT/CONTAINER[/PREFIX])")
    group.add_argument(
        "--azure-credential-file",
        type=Path,
        metavar="FILE",
        help="a 0600 file holding a connection string, a SAS token or an account key "
        "(default: AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_KEY)",
    )
    group.add_argument(
        "--azure-endpoint",
        metavar="URL",
        help="the blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite "
        "(default: the connection string's, else https://ACCOUNT.blob.core.windows.net)",
    )


def azure_options(args: argparse.Namespace) -> AzureOptions:
    return AzureOptions(credential_file=args.azure_credential_file, endpoint=args.azure_endpoint)
