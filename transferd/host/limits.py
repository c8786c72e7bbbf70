"""What the storage host lets one peer, one key and everyone together make it spend.

The host faces the network for days. Each number here bounds one resource against one kind of
client (protocol/THREATS.md, "Denial of service", says who can spend what); each default says why
it is this value. They are settings of the ``[serve]`` table (host/settings.py), every one shown
with its default in systemd/transferd.toml.example.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostLimits:
    header_timeout: float = 10.0
    """Seconds from the first byte of a request to the end of its headers. Headers are a few
    hundred bytes: a client that needs longer is dripping them to hold the connection
    (slowloris). Also bounds a TLS handshake."""
    idle_timeout: float = 60.0
    """Seconds a connection may wait, open, for its next request. Above the 15 s for which
    aiohttp's client keeps an idle connection, so the host never closes one a client is about to
    reuse; low enough that idle connections do not pile up against ``max_connections``."""
    body_timeout: float = 30.0
    """Seconds without a byte of a body arriving before the request is dropped: a stalled upload
    frees its upload slot and its partial file. A sender's link that stops for longer has failed;
    the sender retries."""
    request_timeout: float = 900.0
    """Seconds for one request whole: headers, body, the host's work and its answer. A 64 MiB
    pack (PACK_MAX_SIZE) still fits at 75 KB/s; an upload dripping one byte every
    ``body_timeout`` is cut here."""
    max_connections: int = 512
    """Connections open at once. Half of systemd's default soft limit of 1,024 descriptors, so
    the store's own files always find a descriptor."""
    max_connections_per_peer: int = 64
    """Connections open at once from one address: a sender's uploads in flight (4 per job, 2 jobs
    per daemon by default) several times over, so agents behind one NAT still fit, while one
    address alone cannot take more than an eighth of ``max_connections``."""
    max_uploads: int = 16
    """Object uploads being received at once; the others wait (``upload_wait``). Enough to fill
    a 10 Gbit/s link with 16 MiB packs; bounds memory for a store that takes whole bodies (S3:
    16 x 64 MiB at worst) and the disk's concurrent writers for a directory."""
    upload_wait: float = 10.0
    """Seconds an upload waits for a slot before it is answered 503 ``busy`` with Retry-After,
    which the client honours; its body is not read meanwhile (TCP holds it back)."""
    key_rate: float = 100.0
    """Requests per second of one granted key, sustained (a token bucket). A sender at 10 Gbit/s
    with 16 MiB packs makes about 75; over it, 429 with Retry-After."""
    key_burst: int = 200
    """Requests one granted key may make at once above its rate: a resume's inventory, a restore's
    first ranges."""
    nonces_per_key: int = 65_536
    """(key, nonce) pairs remembered per granted key. A pair lives at most 600 s (its timestamp
    may be 300 s ahead), so a key within ``key_rate`` needs at most 60,000 plus its burst; about
    13 MiB per key. A key whose memory is full is answered 503 ``busy``; other keys are not
    affected."""
    partial_max_age: float = 900.0
    """Seconds after its last write that a partial upload (a temp file under ``jobs/*/tmp/``) is
    a leftover of a dropped upload or a killed host, and is removed. Far above ``body_timeout``,
    after which this host drops an upload that stopped writing; a file still being written by
    this process is never removed, whatever its age."""
    sweep_interval: float = 300.0
    """Seconds between two sweeps of partial uploads while the host runs (and one at start)."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"{name} must be above 0")
