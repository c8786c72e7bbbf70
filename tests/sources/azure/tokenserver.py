"""A small OpenID token endpoint over HTTPS: what Entra ID does for the flows transferd uses.

It checks what Entra ID checks, so that a refusal in a test comes from here, the credential's
judge (Azurite decodes tokens but never verifies their signature):

- ``POST /{tenant}/oauth2/v2.0/token``, ``client_credentials`` grant, with a client secret
  (compared in constant time), with a client assertion signed by the service principal's
  certificate key (RS256 or PS256, ``x5t`` or ``x5t#S256`` = the certificate's thumbprint,
  ``aud`` = this URL, ``iss`` = ``sub`` = the client id), or with a federated assertion
  (workload identity: a JWT from a trusted issuer for ``api://AzureADTokenExchange``, with the
  expected subject);
- ``GET /{tenant}/v2.0/.well-known/openid-configuration``, which msal (the Azure CLI) reads;
- the managed identity endpoints: IMDS's ``/metadata/identity/oauth2/token`` (header
  ``Metadata: true``) and App Service's ``/msi/token`` (header ``X-IDENTITY-HEADER``);
- for the Azure CLI's custom cloud: ``/arm/metadata/endpoints`` and ``/arm/subscriptions``
  (a tenant with no subscription).

Access tokens are RS256 JWTs with the claims Azurite checks (``aud``, ``iss``, ``iat``, ``nbf``,
``exp``) and ``oid``/``tid`` (user delegation keys need them). ``audience`` and ``lifetime`` can
be changed to issue tokens Azurite must refuse. Runs on its own event loop in a thread, so both
async tests and transferd processes started by a test can use it.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sources.azure.certs import Certs
from tests.stores.s3server import free_port

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "2b1fd3c5-0f4e-4b2c-9a1e-7c3d9e8f1a01"
OID = "8c5a3d1e-6b2f-4e7a-9c1d-3f4b5a6c7d8e"
SECRET = "s3cr3t-from-a-file"  # noqa: S105 - the test service principal's, known to this server
FED_ISSUER = "https://oidc.test.local/"
FED_SUBJECT = "system:serviceaccount:transferd:agent"
MI_HEADER = "identity-header-value"
STORAGE = "https://storage.azure.com"


class TokenServer:
    """The endpoint's state: what it issues, and a log of what it was asked."""

    def __init__(self, certs: Certs, port: int) -> None:
        self.certs, self.port = certs, port
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fed_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sp = x509.load_pem_x509_certificate(certs.sp_cert.read_bytes())
        self.sp_public = sp.public_key()
        sha1 = sp.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1 by definition
        sha256 = sp.fingerprint(hashes.SHA256())
        self.sp_thumbprints = {"x5t": sha1, "x5t#S256": sha256}
        self.audience = STORAGE
        self.lifetime = 3600
        self.log: list[str] = []

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def access_token(self, tenant: str = TENANT) -> str:
        now = int(time.time())
        claims = {
            "aud": self.audience, "iss": f"https://sts.windows.net/{tenant}/", "iat": now,
            "nbf": now - 5, "exp": now + self.lifetime, "oid": OID, "tid": tenant,
            "appid": CLIENT_ID, "sub": OID, "ver": "1.0",
        }  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})

    def federated_token(self, subject: str = FED_SUBJECT) -> str:
        """What a Kubernetes projected service-account token for this identity holds."""
        now = int(time.time())
        claims = {"iss": FED_ISSUER, "sub": subject, "aud": "api://AzureADTokenExchange",
                  "iat": now, "nbf": now, "exp": now + 3600}  # fmt: skip
        return jwt.encode(claims, self.fed_key, algorithm="RS256")

    def count(self, prefix: str) -> int:
        return sum(1 for line in self.log if line.startswith(prefix))

    def _assertion(self, assertion: str, token_url: str) -> str | None:
        header = jwt.get_unverified_header(assertion)
        if any(_thumbprint(header.get(n)) == v for n, v in self.sp_thumbprints.items()):
            claims = jwt.decode(
                assertion, self.sp_public, algorithms=["RS256", "PS256"], audience=token_url
            )  # type: ignore[arg-type]
            return "certificate" if claims["iss"] == claims["sub"] == CLIENT_ID else None
        claims = jwt.decode(
            assertion,
            self.fed_key.public_key(),
            algorithms=["RS256"],
            audience="api://AzureADTokenExchange",
            issuer=FED_ISSUER,
        )
        return "federated" if claims["sub"] == FED_SUBJECT else None

    def app(self) -> web.Application:
        routes = web.RouteTableDef()

        @routes.get("/{tenant}/v2.0/.well-known/openid-configuration")
        async def openid(request: web.Request) -> web.Response:
            tenant, base = request.match_info["tenant"], self.authority
            self.log.append(f"openid {tenant}")
            return web.json_response({
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })  # fmt: skip

        @routes.post("/{tenant}/oauth2/v2.0/token")
        async def token(request: web.Request) -> web.Response:
            form = await request.post()
            tenant = request.match_info["tenant"]
            url = f"{self.authority}/{tenant}/oauth2/v2.0/token"
            how: str | None = None
            secret, assertion = form.get("client_secret"), form.get("client_assertion")
            if form.get("grant_type") != "client_credentials" or form.get("client_id") != CLIENT_ID:
                how = None
            elif isinstance(secret, str):
                how = "secret" if hmac.compare_digest(secret.encode(), SECRET.encode()) else None
            elif isinstance(assertion, str):
                try:
                    how = self._assertion(assertion, url)
                except jwt.PyJWTError as e:
                    self.log.append(f"bad assertion: {e}")
            self.log.append(f"token {how} scope={form.get('scope')}")
            if how is None or tenant != TENANT:
                return web.json_response(
                    {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid "
                     "client secret provided. Ensure the secret being sent in the request is "
                     "the client secret value."},
                    status=401,
                )  # fmt: skip
            return web.json_response({"token_type": "Bearer", "expires_in": self.lifetime,
                                      "ext_expires_in": self.lifetime,
                                      "access_token": self.access_token(tenant)})  # fmt: skip

        def managed(resource: str) -> web.Response:
            return web.json_response({
                "access_token": self.access_token(), "expires_on": str(int(time.time()) + 3600),
                "expires_in": "3599", "resource": resource, "token_type": "Bearer",
            })  # fmt: skip

        @routes.get("/metadata/identity/oauth2/token")
        async def imds(request: web.Request) -> web.Response:
            self.log.append(f"imds client_id={request.query.get('client_id')}")
            if request.headers.get("Metadata") != "true":
                return web.json_response({"error": "invalid_request"}, status=400)
            return managed(request.query["resource"])

        @routes.get("/msi/token")
        async def app_service(request: web.Request) -> web.Response:
            self.log.append("appservice")
            given = request.headers.get("X-IDENTITY-HEADER", "").encode()
            if not hmac.compare_digest(given, MI_HEADER.encode()):
                return web.json_response({"error": "unauthorized"}, status=401)
            return managed(request.query["resource"])

        @routes.get("/arm/metadata/endpoints")
        async def cloud(request: web.Request) -> web.Response:
            base = self.authority
            return web.json_response({
                "name": "TransferdTest", "resourceManager": f"{base}/arm/",
                "authentication": {"loginEndpoint": base, "tenant": "common",
                                   "audiences": ["https://management.core.windows.net/"],
                                   "identityProvider": "AAD"},
                "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.azure.net",
                             "acrLoginServer": "azurecr.io",
                             "sqlServerHostname": "database.windows.net"},
                "graph": f"{base}/graph/", "portal": base, "gallery": base, "batch": base,
                "sqlManagement": base, "media": base, "activeDirectoryDataLake": base,
                "microsoftGraphResourceId": f"{base}/graph/",
            })  # fmt: skip

        @routes.get("/arm/subscriptions")
        async def subscriptions(request: web.Request) -> web.Response:
            return web.json_response({"value": []})

        app = web.Application()
        app.add_routes(routes)
        return app


def _thumbprint(value: object) -> bytes | None:
    """A header's certificate thumbprint: base64, standard or URL-safe, padded or not (msal and
    azure-identity write it one way, the JOSE spec another)."""
    if not isinstance(value, str):
        return None
    text = value.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return None


@contextmanager
def running_token_server(certs: Certs) -> Iterator[TokenServer]:
    """The endpoint on a free port of 127.0.0.1, served by a thread of its own."""
    server = TokenServer(certs, free_port())
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: dict[str, Any] = {}

    async def start() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.server_cert, certs.server_key)
        runner["app"] = web.AppRunner(server.app(), access_log=None)
        await runner["app"].setup()
        await web.TCPSite(runner["app"], "127.0.0.1", server.port, ssl_context=context).start()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner["app"].cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="token-endpoint", daemon=True)
    thread.start()
    if not started.wait(15):
        raise RuntimeError("the token endpoint did not start within 15 s")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
