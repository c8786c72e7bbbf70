"""Where an S3-compatible store is and how to sign in to it: ``s3://BUCKET/PREFIX`` plus settings.

A location names the bucket and a key prefix; everything else comes, first found wins, from

1. the URL's query (``s3://bucket/prefix?endpoint=https://…&region=gra``: never credentials);
2. a TOML file with an ``[s3]`` table, given by the caller (``--s3-config``, a plan's or
   serve's config) or by ``$TRANSFERD_S3_CONFIG``::

       [s3]
       endpoint = "https://s3.gra.io.cloud.ovh.net"
       region = "gra"
       credentials_file = "s3.credentials"   # relative to this file; mode 0600
       profile = "default"                   # the section of credentials_file
       addressing = "path"                   # or "virtual" (bucket.host)
       conditional_writes = "auto"           # "yes" / "no": If-None-Match: * on manifests
       multipart_threshold = 67108864        # bytes; larger objects go in parts
       part_size = 16777216
       read_timeout = 120                    # seconds without a byte: the request is retried
       object_lock_days = 3650               # retain what is stored (stores/s3lock.py)
       lock_mode = "compliance"              # or "governance" (the default)

3. the variables every S3 tool reads: ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
   ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
   ``AWS_SESSION_TOKEN``, and the shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``,
   default ``~/.aws/credentials``, section ``AWS_PROFILE``).

The credentials file is the AWS CLI's INI format (``aws_access_key_id``, ``aws_secret_access_key``,
optional ``aws_session_token``), so an operator's existing file works as is. Credentials are
never logged, never part of ``description`` and never in a ``repr``. No instance-metadata lookup
is made: a sovereign host has none, and a silent 1-second probe per start helps nobody.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from transferd.errors import ConfigError
from transferd.stores.s3lock import LockPolicy
from transferd.util.secretfiles import read_secret_file
from transferd.util.tomlfile import config_path, read_toml_table

CONFIG_ENV = "TRANSFERD_S3_CONFIG"
MULTIPART_THRESHOLD = 64 * 1024 * 1024
"""Objects up to this size are sent in one PUT. Packs close at 16 MiB (PACK_TARGET), so a job's
packs go in one request each; only an unusually large object pays for a multipart upload."""
PART_SIZE = 16 * 1024 * 1024
"""Parts of a multipart upload: S3 wants at least 5 MiB (but the last) and at most 10,000 parts."""
MIN_PART_SIZE = 5 * 1024 * 1024
READ_TIMEOUT = 120.0
"""Seconds without a byte before a request counts as failed (transient): a 16 MiB pack on a
slow link still moves well within it; a dead connection does not hang a job for ever."""
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SETTINGS = frozenset(
    {"endpoint", "region", "credentials_file", "profile", "addressing", "conditional_writes",
     "multipart_threshold", "part_size", "read_timeout", "object_lock_days", "lock_mode"}
)  # fmt: skip
_QUERY = frozenset({"endpoint", "region", "addressing", "conditional_writes"})


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str
    """"" or a key prefix ending with "/"."""
    endpoint: str | None = None
    """None: AWS itself (the region's default endpoint)."""
    region: str = "us-east-1"
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing: str = "path"
    conditional_writes: str = "auto"
    multipart_threshold: int = MULTIPART_THRESHOLD
    part_size: int = PART_SIZE
    read_timeout: float = READ_TIMEOUT
    """Seconds without a byte before a request counts as failed and is retried."""
    lock: LockPolicy | None = None
    """Retention for everything the store writes but lease records; None: none."""

    @property
    def description(self) -> str:
        where = self.endpoint or f"AWS {self.region}"
        return f"s3://{self.bucket}/{self.prefix} at {where}"


def is_s3_location(location: str) -> bool:
    return location.startswith("s3://")


def parse_location(location: str) -> tuple[str, str, dict[str, str]]:
    """(bucket, prefix, query) of ``s3://BUCKET[/PREFIX][?k=v…]``; the prefix ends with "/"."""
    parts = urlsplit(location)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"{location!r} is not an S3 location: use s3://BUCKET/PREFIX")
    if "@" in parts.netloc:
        raise ConfigError(
            "an S3 location must not carry credentials",
            hint=f"put them in a credentials file or the environment ({CONFIG_ENV}, AWS_*)",
        )
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket):
        raise ConfigError(f"{bucket!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise ConfigError(f"the key prefix {prefix!r} of {location} has an empty or dot part")
    query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    unknown = sorted(set(query) - _QUERY)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {location}",
            hint=f"the URL may set {', '.join(sorted(_QUERY))}; credentials go elsewhere",
        )
    return bucket, prefix + "/" if prefix else "", query


def load_settings(
    location: str,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    table: Mapping[str, Any] | None = None,
    base: Path | None = None,
) -> S3Settings:
    """The settings of ``location``: its query, then ``table`` (an ``[s3]`` table already read,
    paths relative to ``base``) or ``config_file`` or ``$TRANSFERD_S3_CONFIG``, then ``env``."""
    env = os.environ if env is None else env
    bucket, prefix, query = parse_location(location)
    if table is None:
        path = config_file or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
        table, base = ({}, None) if path is None else (read_table(path), path.parent)
    where = "the [s3] settings"
    unknown = sorted(set(table) - _SETTINGS)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {where}",
            hint=f"known settings: {', '.join(sorted(_SETTINGS))}",
        )

    def pick(name: str, *env_names: str) -> str | None:
        value = query.get(name) or table.get(name)
        if value is None:
            value = next((env[n] for n in env_names if env.get(n)), None)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} in {where} must be a string")
        return value

    endpoint = pick("endpoint", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if endpoint is not None and not re.fullmatch(r"https?://[^/\s]+/?", endpoint):
        raise ConfigError(f"S3 endpoint {endpoint!r} is not http(s)://HOST[:PORT]")
    region = pick("region", "AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
    addressing = pick("addressing") or "path"
    if addressing not in ("path", "virtual"):
        raise ConfigError(f"addressing must be 'path' or 'virtual', not {addressing!r}")
    conditional = pick("conditional_writes") or "auto"
    if conditional not in ("auto", "yes", "no"):
        raise ConfigError(f"conditional_writes must be auto, yes or no, not {conditional!r}")
    threshold = _size(table, "multipart_threshold", MULTIPART_THRESHOLD)
    part_size = _size(table, "part_size", PART_SIZE)
    if part_size < MIN_PART_SIZE:
        raise ConfigError(f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 rule)")
    read_timeout = table.get("read_timeout", READ_TIMEOUT)
    if (
        not isinstance(read_timeout, int | float)
        or isinstance(read_timeout, bool)
        or not (1 <= read_timeout <= 3600)
    ):
        raise ConfigError("read_timeout in [s3] must be a number of seconds from 1 to 3600")
    key, secret, token = _credentials(table, base, env)
    lock = None
    if "object_lock_days" in table:
        lock = LockPolicy.parse(table["object_lock_days"], table.get("lock_mode"))
    elif "lock_mode" in table:
        raise ConfigError("lock_mode in [s3] needs object_lock_days")
    return S3Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint=endpoint.rstrip("/") if endpoint else None,
        region=region,
        access_key=key,
        secret_key=secret,
        session_token=token,
        addressing=addressing,
        conditional_writes=conditional,
        multipart_threshold=max(threshold, MIN_PART_SIZE),
        part_size=part_size,
        read_timeout=float(read_timeout),
        lock=lock,
    )


def read_table(path: Path) -> dict[str, Any]:
    """The ``[s3]`` table of a TOML file (empty when the file has none)."""
    return read_toml_table(path, "s3")


def _size(table: Mapping[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} in [s3] must be a positive number of bytes")
    return value


def _credentials(
    table: Mapping[str, Any], base: Path | None, env: Mapping[str, str]
) -> tuple[str, str, str | None]:
    """(access key, secret, session token): the configured file, else the environment, else the
    shared credentials file. Raises ConfigError naming what was tried when nothing is found."""
    profile = table.get("profile") or env.get("AWS_PROFILE") or "default"
    if not isinstance(profile, str):
        raise ConfigError("profile in [s3] must be a string")
    configured = table.get("credentials_file")
    if configured is not None:
        if not isinstance(configured, str):
            raise ConfigError("credentials_file in [s3] must be a path")
        return _from_file(config_path(base or Path.cwd(), configured, env), profile, required=True)
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN")
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE")
    path = Path(shared) if shared else Path(env.get("HOME", "~")).expanduser() / ".aws/credentials"
    found = _from_file(path, profile, required=bool(shared))
    if found[0]:
        return found
    raise ConfigError(
        "no S3 credentials found",
        hint=f"set credentials_file in an [s3] table (--s3-config or ${CONFIG_ENV}), or "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )


def _from_file(path: Path, profile: str, *, required: bool) -> tuple[str, str, str | None]:
    if not required and not path.exists():
        return "", "", None
    text = read_secret_file(path)
    if text.exposed:
        raise ConfigError(f"S3 credentials file {path} is readable by group or others; chmod 600")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text.text, source=str(path))
    except configparser.Error:
        raise ConfigError(f"S3 credentials file {path} is not in the AWS INI format") from None
    if not parser.has_section(profile):
        raise ConfigError(f"S3 credentials file {path} has no [{profile}] section")
    section = parser[profile]
    key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not key or not secret:
        raise ConfigError(
            f"[{profile}] of {path} needs aws_access_key_id and aws_secret_access_key"
        )
    return key.strip(), secret.strip(), (section.get("aws_session_token") or None)
