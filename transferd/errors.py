"""The one exception hierarchy of transferd, and every exit code and verify verdict it maps to.

Every error raised on purpose is a :class:`TransferdError`; it carries the exit code the CLI
returns, a message written for an operator (lower case, naming the job, path or key, no final
period), an optional hint, and the values it is about as ``fields`` (a path, a job, a key, a
skew in seconds), which ``--json`` prints beside the message so that scripts and tests read
values, not prose. Anything else that escapes is a bug: the CLI prints its traceback and exits 1.

::

    class                               exit
    TransferdError                      1   every error raised on purpose; its own code below
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
    │   ├── CopyDiffersError            24  verify --against: the copy does not match the source
    │   └── RetentionShortError         25  verify --object-lock: a retention is missing or short
    ├── ProtocolError                   1   (abstract) a peer or we broke the wire protocol
    │   ├── LocalProtocolError          1   we broke it: a bug on our side
    │   └── RemoteProtocolError         14  the peer broke it: an answer transferd cannot read
    ├── SourceError                     8   could not read what is being copied; nothing published
    │   ├── SourceChangedError          8   an item changed while it was read
    │   ├── SnapshotGoneError           8   the PostgreSQL snapshot can no longer be adopted
    │   └── TableGoneError              8   a table is not the one the snapshot lists any more
    ├── TargetError                     6   could not write a restore's target directory
    ├── StateError                      9   the local state directory cannot be written or read
    │   └── StateFullError              9   … because its file system is full
    ├── StoreError                      4   (abstract) where ciphertext lands
    │   ├── TransientStoreError         4   worth retrying: timeout, connection reset, 5xx
    │   │   ├── ThrottledError          4   the host said when to retry (429, 503 Retry-After)
    │   │   └── LeaseLostError          26  a copy job's lease passed to another agent
    │   ├── PermanentStoreError         4   not worth retrying: refused, unauthorized
    │   │   ├── ManifestExistsError     4   a manifest of that sequence is stored already
    │   │   └── ClockSkewError          4   the host refused our clock: skew beyond its window
    │   ├── StoreUnopenedError          4   a local store that exists but cannot be opened
    │   ├── StoreFullError              5   the storage host is out of space
    │   └── StoreUnreadableError        23  verify: the store could not be read (unreachable)
    ├── DaemonUnavailableError          7   no daemon answers on the control socket
    ├── DaemonAnswerError               *   an error the daemon answered with: the daemon's code
    ├── JobError                        10  (abstract)
    │   ├── JobNotFoundError            10
    │   │   └── ObjectNotFoundError     10  the object, manifest or job is not in the store
    │   ├── JobLockedError              11  another process holds the job
    │   └── CheckpointCorruptError      10
    └── CancelledByUserError            130 a signal asked us to stop

    ApiError                            -   the storage host refuses one request (HTTP status
                                            and code); never leaves the host: it becomes the
                                            JSON answer (protocol/HTTP.md §9)
    SignInError                         -   Entra ID (or az, or a managed identity endpoint)
                                            gave no token; never leaves sources/azure/: it
                                            becomes a SourceError naming the identity
    ReadSkippedError                    -   a signal inside a PostgreSQL COPY whose rows are
                                            no longer wanted; never leaves sources/pg_copy.py

Exit codes are published in README.md (a test holds its table to ``EXIT_CODES``); add codes,
never renumber. A SourceError that ends a run means nothing was published (8); a run that
published its manifest without the items it could not read ends 3 (``EXIT_PARTIAL``) and lists
them. ``transferd verify`` reports its verdict with 0 or 20-24 (protocol/REPORT.md); when several
apply, the first of ``PRECEDENCE`` wins: a broken chain of trust makes every other finding moot,
and a finding proven on the bytes outranks a difference from a source that may have changed
since, and a read that failed.
"""

from __future__ import annotations

from typing import TypeAlias

FieldValue: TypeAlias = "str | int | float | bool | list[str] | None"
"""What an error's field may hold: a value ``--json`` can print as it is."""

RESERVED_FIELDS = frozenset({"error", "hint", "exit_code", "traceback"})
"""Keys of the ``--json`` error object that fields must not shadow."""

EXIT_OK = 0
EXIT_BUG = 1
EXIT_PARTIAL = 3
EXIT_JOBS_GIVEN_UP = 15

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_BUG: "unexpected failure (a bug: the traceback is printed)",
    2: "usage or configuration error: bad arguments, config file, or key file (mistyped, "
    "truncated, wrong kind)",
    EXIT_PARTIAL: "`send`: done and published, but part of the source could not be read (the "
    "items are listed)",
    4: "store error: where ciphertext lands failed or refused",
    5: "the store is full",
    6: "`restore`: the target directory could not be written (out of space, permission denied, "
    "a name in the way)",
    7: "`jobs`: no daemon answers on the control socket (not running, another path, or no "
    "permission)",
    8: "the source could not be read (missing, unreachable, refused): nothing was published",
    9: "the state directory could not be written or read (out of space, permission denied, "
    "read-only, a name in the way): nothing acknowledged is lost",
    10: "job or store not found (or a checkpoint that cannot be trusted)",
    11: "job locked by another process",
    12: "wrong key, or authentication failed (a tag did not verify)",
    13: "verification failed: a signature, hash, rollback or format check",
    14: "the storage host (or the daemon) sent an answer transferd cannot read: not JSON, or "
    "not the shape the protocol gives",
    EXIT_JOBS_GIVEN_UP: "`agent`: gave up on some of the copy's jobs after repeated failures "
    "(each is named): the copy is not complete",
    20: "`verify`: the copy is incomplete (stored objects missing or truncated)",
    21: "`verify`: the copy was altered (an object's hash differs, or objects no manifest names)",
    22: "`verify`: a manifest's signature is invalid or by another key, its chain is broken, or "
    "the store was rolled back",
    23: "`verify`: the store could not be read (unreachable, permission denied): nothing proven "
    "either way",
    24: "`verify --against`: the copy is intact but differs from the source (entries, kinds, "
    "modes, links, sizes or content)",
    25: "`verify --object-lock`: the copy is intact, but an object or manifest has no retention, "
    "a weaker mode, or a shorter one than asked (each is named)",
    26: "`agent`: another agent took over a job while this one was paused or cut off; it "
    "stopped, and nothing it wrote after that counts",
    130: "cancelled (Ctrl-C or a signal)",
}
"""Every exit code and what it means, as README.md's table shows it (a test compares them)."""


class TransferdError(Exception):
    """Every error transferd raises on purpose.

    ``fields`` are the values the error is about, by name (``path``, ``job``, ``key``,
    ``skew_seconds``...): set from the keyword arguments, printed in the ``--json`` error object.
    """

    exit_code: int = EXIT_BUG

    def __init__(self, message: str, *, hint: str | None = None, **fields: FieldValue) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        clash = RESERVED_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"error fields may not be named {', '.join(sorted(clash))}")
        self.fields: dict[str, FieldValue] = {k: v for k, v in fields.items() if v is not None}


class ConfigError(TransferdError):
    exit_code = 2


class KeyFormatError(ConfigError):
    """A key's text form does not parse: mistyped, truncated, or a key of the other kind."""


class FormatError(TransferdError):
    """Bytes that do not parse as the object they claim to be."""

    exit_code = 13


class UnsupportedVersionError(FormatError):
    def __init__(self, version: object, what: str = "object") -> None:
        super().__init__(f"unsupported format version {version} in {what}", what=what)
        self.version = version


class AuthenticationError(TransferdError):
    """A tag did not verify: wrong key, or the bytes were altered."""

    exit_code = 12


class NotARecipientError(AuthenticationError):
    def __init__(self, recipient: str, recipients: list[str] | None = None) -> None:
        hint = "use the identity of one of the job's recipients"
        if recipients:
            hint += ": " + ", ".join(recipients)
        super().__init__(
            f"this copy is not encrypted to key {recipient}",
            hint=hint,
            key=recipient,
            recipients=list(recipients or []),
        )
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


class RetentionShortError(IntegrityError):
    """Verify --object-lock: the copy is intact, but a stored object or manifest is retained
    for less than asked (none, a weaker mode, or a shorter period)."""

    exit_code = 25


class CopyDiffersError(IntegrityError):
    """Verify --against: the stored copy is intact but does not match the source it was compared
    with (entries only on one side, or another kind, mode, link target, size or content)."""

    exit_code = 24


class ProtocolError(TransferdError):
    exit_code = EXIT_BUG


class LocalProtocolError(ProtocolError):
    pass


class RemoteProtocolError(ProtocolError):
    """The peer (a storage host, or something answering in its place; the daemon) sent what the
    protocol does not allow: not JSON, or JSON of another shape.

    Permanent, never retried: a host that answers nonsense answers it again, and a retry loop
    would hide for minutes what one line can say now. Its own code (14), apart from 1, because
    it is not our bug, and apart from the store's 4, because the store may be fine and the
    thing at that address not a transferd host at all.
    """

    exit_code = 14

    def __init__(self, message: str, *, peer: str, problem: str, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint
            or "check that the address is a transferd storage host of a compatible version "
            "(transferd serve), and not a proxy or another service",
            peer=peer,
            problem=problem,
        )
        self.peer = peer
        self.problem = problem


class SourceError(TransferdError):
    """What is being copied could not be read.

    Raised out of a run, it ends the run before anything was published (8). The pipeline
    catches the ones raised for one item, goes on without it, and the run ends 3 once its
    manifest is published, listing those items.
    """

    exit_code = 8


class SourceChangedError(SourceError):
    """The item changed while it was being read."""


class SnapshotGoneError(SourceError):
    """The snapshot can no longer be adopted: the transaction that exported it has ended."""

    def __init__(self, snapshot_id: str, reason: str) -> None:
        super().__init__(
            f"snapshot {snapshot_id} is gone ({reason}): the transaction that exported it has "
            "ended (connection closed or killed, server restarted)",
            hint="run the same send again without --snapshot: it takes a new snapshot, and the "
            "data already stored is not uploaded again",
            snapshot=snapshot_id,
        )
        self.snapshot_id = snapshot_id


class TableGoneError(SourceError):
    """The table is not the one the snapshot lists any more."""


class TargetError(TransferdError):
    """A restore could not write its target: out of space, permission denied, a name in the way.

    Its own code because the copy itself is fine: freeing space or fixing permissions and running
    the restore again is the remedy, not a new key or a re-send.
    """

    exit_code = 6


class StateError(TransferdError):
    """The state directory (a job's journal, key and lock; the daemon's job definitions; the
    manifests a verifier has seen) could not be written or read.

    ``path`` is the file or directory that failed and ``cause`` one word for why: ``no_space``,
    ``permission``, ``read_only``, ``in_the_way`` (a directory where a file belongs, or the
    reverse), ``busy``, ``io`` or ``other``. Its own code because the job is fine: nothing the
    host acknowledged is lost, and the same command resumes once the cause is fixed.
    """

    exit_code = 9

    def __init__(
        self,
        message: str,
        *,
        path: str,
        cause: str,
        hint: str | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint, path=path, cause=cause, errno=errno)
        self.path = path
        self.cause = cause
        self.errno = errno


class StateFullError(StateError):
    """The state directory's file system is full (ENOSPC, EDQUOT, SQLITE_FULL): the daemon
    retries such a run later, as for a full store."""


class StoreError(TransferdError):
    exit_code = 4


class TransientStoreError(StoreError):
    pass


class ThrottledError(TransientStoreError):
    """The storage host is busy or the key over its rate, and said how long to wait
    (``Retry-After``): retried no sooner than that (stores/retry.py)."""

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class LeaseLostError(TransientStoreError):
    """The job's lease passed to another agent (at a higher epoch: copies/leases.py), or could not
    be renewed: the job was stopped. Its own code: the agent that ends with it was paused or cut
    off long enough for another to take over, and nothing it wrote after that counts."""

    exit_code = 26


class PermanentStoreError(StoreError):
    pass


class ManifestExistsError(PermanentStoreError):
    """A manifest with this sequence is already stored; manifests are never overwritten."""


class ClockSkewError(PermanentStoreError):
    """The storage host refused a request for its timestamp: this host's clock is off by more
    than the host's window. ``skew_seconds`` is positive when our clock is behind the host's."""

    def __init__(
        self, message: str, *, skew_seconds: int | None, limit_seconds: int, hint: str
    ) -> None:
        super().__init__(message, hint=hint, skew_seconds=skew_seconds, limit_seconds=limit_seconds)
        self.skew_seconds = skew_seconds
        self.limit_seconds = limit_seconds


class StoreUnopenedError(StoreError):
    """A local store that exists but could not be opened (permission denied, not a store)."""


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


class DaemonAnswerError(TransferdError):
    """An error the daemon answered with; its exit code is the daemon's (one of the table)."""

    def __init__(
        self, message: str, hint: str | None, exit_code: int, fields: dict[str, FieldValue]
    ) -> None:
        super().__init__(message, hint=hint, **fields)
        self.exit_code = exit_code


class JobError(TransferdError):
    exit_code = 10


class JobNotFoundError(JobError):
    pass


class ObjectNotFoundError(JobNotFoundError):
    """The object, manifest or job does not exist in the store."""


class JobLockedError(JobError):
    exit_code = 11


class CheckpointCorruptError(JobError):
    pass


class CancelledByUserError(TransferdError):
    exit_code = 130


class ApiError(Exception):
    """A request the storage host refuses: its HTTP status, a stable code, a message for people,
    and values the answer carries beside them (``skew_seconds`` of a ``clock_skew``);
    ``retry_after``, seconds the client should wait before asking again (429, 503), becomes a
    Retry-After header."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        **fields: int | str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.fields = fields


class SignInError(Exception):
    """Getting an Entra ID token failed: Entra ID (the managed identity endpoint, az) refused, or
    no such identity is on this host. Raised through the Azure storage client as it is;
    ``__cause__`` is what azure-identity raised. Apart from Azure Storage refusing a token, which
    carries an HTTP status."""


class ReadSkippedError(Exception):
    """Raised into a PostgreSQL COPY whose table the consumer no longer wants."""


# --- verify's verdicts ----------------------------------------------------------------------

VERDICT_OK = "pass"
VERDICT_ERRORS: dict[str, type[TransferdError]] = {
    "untrusted": CopyUntrustedError,
    "altered": CopyAlteredError,
    "incomplete": CopyIncompleteError,
    "differs": CopyDiffersError,
    "unreadable": StoreUnreadableError,
}
"""The error each failing verdict ends ``verify`` with, most serious first."""
PRECEDENCE = tuple(VERDICT_ERRORS)
"""Categories, most serious first: the first that has a failure is the verdict. A broken chain
of trust makes every other finding moot; a finding proven on the bytes outranks a difference
from the source (which may have changed since) and a read that failed."""
VERDICT_EXIT_CODES: dict[str, int] = {
    VERDICT_OK: EXIT_OK,
    **{verdict: error.exit_code for verdict, error in VERDICT_ERRORS.items()},
}
VERDICT_TEXT = {
    VERDICT_OK: "the copy is complete and untouched",
    "untrusted": "the manifests cannot be trusted",
    "altered": "the copy was altered",
    "incomplete": "the copy is incomplete",
    "differs": "the copy differs from the source",
    "unreadable": "the copy could not be read",
}
