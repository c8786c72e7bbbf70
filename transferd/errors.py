"""The one exception hierarchy of transferd.

Every error raised on purpose is a :class:`TransferdError`; it carries the exit code the CLI
returns and a message written for an operator (lower case, naming the job, path or key, no final
period). Anything else that escapes is a bug: the CLI prints its traceback and exits 1.

::

    TransferdError                      exit
    ├── ConfigError                     2   bad arguments, config file or key file
    │   └── KeyFormatError              2   a key text that does not parse (mistyped, truncated, …)
    ├── FormatError                     13  bytes that do not parse (object, manifest, catalog)
    │   └── UnsupportedVersionError     13  a format version this build does not know
    ├── AuthenticationError             12  wrong key, or a chunk/header/request failed its tag
    │   └── NotARecipientError          12  "this copy is not encrypted to key …"
    ├── IntegrityError                  13  signature, hash, rollback or completeness failure
    │   ├── SignatureError              13  manifest signed by another key, or signature invalid
    │   ├── RollbackError               13  an older manifest served as the newest
    │   ├── CopyIncompleteError         20  verify: stored objects missing or truncated
    │   ├── CopyAlteredError            21  verify: an object's bytes changed, or an extra object
    │   ├── CopyUntrustedError          22  verify: a manifest's signature, chain or sequence failed
    │   └── CopyDiffersError            24  verify --against: the copy does not match the source
    ├── ProtocolError                   1   (abstract) a peer or we broke the wire protocol
    │   ├── LocalProtocolError          1   we broke it: a bug on our side
    │   └── RemoteProtocolError         1   the peer broke it
    ├── SourceError                     3   could not read what is being copied
    ├── TargetError                     6   could not write a restore's target directory
    ├── StoreError                      4   (abstract) where ciphertext lands
    │   ├── TransientStoreError         4   worth retrying: timeout, connection reset, 5xx
    │   ├── PermanentStoreError         4   not worth retrying: refused, unauthorized
    │   ├── StoreFullError              5   the storage host is out of space
    │   └── StoreUnreadableError        23  verify: the store could not be read (unreachable)
    ├── DaemonUnavailableError          7   no daemon answers on the control socket
    ├── JobError                        10  (abstract)
    │   ├── JobNotFoundError            10
    │   ├── JobLockedError              11  another process holds the job
    │   └── CheckpointCorruptError      10
    └── CancelledByUserError            130 a signal asked us to stop

Exit codes are published in README.md; add codes, never renumber. ``transferd verify`` reports
its verdict with 0 or 20-24 (protocol/REPORT.md); when several apply, the first of 22, 21, 20,
24, 23 wins: a broken chain of trust makes every other finding moot, and a finding proven on the
bytes outranks a difference from a source that may have changed since, and a read that failed.
"""

from __future__ import annotations


class TransferdError(Exception):
    """Every error transferd raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(TransferdError):
    exit_code = 2


class KeyFormatError(ConfigError):
    """A key's text form does not parse: mistyped, truncated, or a key of the other kind."""


class FormatError(TransferdError):
    """Bytes that do not parse as the object they claim to be."""

    exit_code = 13


class UnsupportedVersionError(FormatError):
    def __init__(self, version: object, what: str = "object") -> None:
        super().__init__(f"unsupported format version {version} in {what}")
        self.version = version


class AuthenticationError(TransferdError):
    """A tag did not verify: wrong key, or the bytes were altered."""

    exit_code = 12


class NotARecipientError(AuthenticationError):
    def __init__(self, recipient: str, recipients: list[str] | None = None) -> None:
        hint = "use the identity of one of the job's recipients"
        if recipients:
            hint += ": " + ", ".join(recipients)
        super().__init__(f"this copy is not encrypted to key {recipient}", hint=hint)
        self.recipient = recipient
        self.recipients = recipients or []


class IntegrityError(TransferdError):
    exit_code = 13


class SignatureError(IntegrityError):
    pass


class RollbackError(IntegrityError):
    pass


class CopyIncompleteError(IntegrityError):
    """Verify: objects a manifest names are missing from the store or shorter than listed."""

    exit_code = 20


class CopyAlteredError(IntegrityError):
    """Verify: an object's bytes differ from its signed hash, or the store holds objects that no
    manifest names."""

    exit_code = 21


class CopyUntrustedError(IntegrityError):
    """Verify: a manifest is not signed by the expected sender, the chain of manifests is broken,
    or the store serves an older manifest than one seen before."""

    exit_code = 22


class CopyDiffersError(IntegrityError):
    """Verify --against: the stored copy is intact but does not match the source it was compared
    with (entries only on one side, or another kind, mode, link target, size or content)."""

    exit_code = 24


class ProtocolError(TransferdError):
    exit_code = 1


class LocalProtocolError(ProtocolError):
    pass


class RemoteProtocolError(ProtocolError):
    pass


class SourceError(TransferdError):
    exit_code = 3


class TargetError(TransferdError):
    """A restore could not write its target: out of space, permission denied, a name in the way.

    Its own code because the copy itself is fine: freeing space or fixing permissions and running
    the restore again is the remedy, not a new key or a re-send.
    """

    exit_code = 6


class StoreError(TransferdError):
    exit_code = 4


class TransientStoreError(StoreError):
    pass


class PermanentStoreError(StoreError):
    pass


class StoreFullError(StoreError):
    exit_code = 5


class StoreUnreadableError(StoreError):
    """Verify: the store, or objects in it, could not be read (unreachable, permission denied),
    so the copy could be neither proven nor disproven."""

    exit_code = 23


class DaemonUnavailableError(TransferdError):
    """``transferd jobs``: no daemon answers on the control socket (not running, another
    socket path, or no permission to open it)."""

    exit_code = 7


class JobError(TransferdError):
    exit_code = 10


class JobNotFoundError(JobError):
    pass


class JobLockedError(JobError):
    exit_code = 11


class CheckpointCorruptError(JobError):
    pass


class CancelledByUserError(TransferdError):
    exit_code = 130
