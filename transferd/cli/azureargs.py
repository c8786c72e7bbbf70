"""Command-line options of an Azure Blob source (``az://ACCOUNT/CONTAINER[/PREFIX]``).

No option takes a secret: a client secret, a certificate and a federated token are named by
their files (``${CREDENTIALS_DIRECTORY}/NAME`` for a systemd credential), which must be 0600.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transferd.sources.azure.auth import AzureOptions
from transferd.sources.azure.identity import KINDS, TOKEN_KINDS, SignIn
from transferd.util.tomlfile import config_path


def _file(value: str) -> Path:
    return config_path(Path.cwd(), value)


def add_azure_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Azure Blob sources (az://ACCOUNT/CONTAINER[/PREFIX])")
    group.add_argument(
        "--azure-auth",
        choices=KINDS,
        default="key",
        metavar="KIND",
        help="how to sign in: key (the default: --azure-credential-file or AZURE_STORAGE_*), "
        "or with Entra ID: " + ", ".join(KINDS[1:]),
    )
    group.add_argument(
        "--azure-credential-file",
        type=_file,
        metavar="FILE",
        help="with --azure-auth key: a 0600 file holding a connection string, a SAS token or an "
        "account key (default: AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN, "
        "AZURE_STORAGE_KEY)",
    )
    group.add_argument(
        "--azure-endpoint",
        metavar="URL",
        help="the blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite "
        "(default: the connection string's, else https://ACCOUNT.blob.core.windows.net)",
    )
    group.add_argument("--azure-tenant", metavar="ID", help="the Entra ID tenant (directory) id")
    group.add_argument(
        "--azure-client-id",
        metavar="ID",
        help="the application (client) id; with managed-identity, a user-assigned identity's",
    )
    group.add_argument(
        "--azure-client-secret-file",
        type=_file,
        metavar="FILE",
        help="client-secret: a 0600 file holding the client secret",
    )
    group.add_argument(
        "--azure-certificate-file",
        type=_file,
        metavar="FILE",
        help="certificate: a 0600 PEM or PKCS#12 file with the certificate and its private key",
    )
    group.add_argument(
        "--azure-certificate-password-file",
        type=_file,
        metavar="FILE",
        help="certificate: a 0600 file holding the password of an encrypted key",
    )
    group.add_argument(
        "--azure-token-file",
        type=_file,
        metavar="FILE",
        help="workload-identity: the federated token file, read again as it is rotated "
        "(default: AZURE_FEDERATED_TOKEN_FILE)",
    )
    group.add_argument(
        "--azure-sas-identity",
        choices=TOKEN_KINDS,
        metavar="KIND",
        help="user-delegation-sas: the sign-in that asks for the user delegation key",
    )
    group.add_argument(
        "--azure-authority",
        metavar="HOST",
        help="Entra ID's host (default login.microsoftonline.com; a national cloud's otherwise)",
    )
    group.add_argument(
        "--azure-ca-file",
        type=_file,
        metavar="FILE",
        help="a CA certificate to trust for the blob endpoint and Entra ID (default: the system's)",
    )


def azure_options(args: argparse.Namespace) -> AzureOptions:
    sign_in = SignIn(
        auth=args.azure_auth,
        tenant_id=args.azure_tenant,
        client_id=args.azure_client_id,
        client_secret_file=args.azure_client_secret_file,
        certificate_file=args.azure_certificate_file,
        certificate_password_file=args.azure_certificate_password_file,
        token_file=args.azure_token_file,
        authority=args.azure_authority,
        sas_identity=args.azure_sas_identity,
    ).check()
    return AzureOptions(
        credential_file=args.azure_credential_file,
        endpoint=args.azure_endpoint,
        sign_in=sign_in,
        ca_file=args.azure_ca_file,
    )
