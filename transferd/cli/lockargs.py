"""The Object Lock options (``--object-lock DAYS --lock-mode governance|compliance``) of the
commands that store a copy, check its retention, or extend it (stores/s3lock.py)."""

from __future__ import annotations

import argparse

from transferd.errors import ConfigError
from transferd.stores.s3lock import LockPolicy


def add_lock_arguments(p: argparse.ArgumentParser, what: str, *, required: bool = False) -> None:
    group = p.add_argument_group("S3 Object Lock (immutable copies)")
    group.add_argument(
        "--object-lock",
        type=int,
        metavar="DAYS",
        required=required,
        help=what,
    )
    group.add_argument(
        "--lock-mode",
        choices=("governance", "compliance"),
        default=None,
        help="compliance: no one, not even the bucket's owner, can delete or shorten it; "
        "governance (the default): only with the s3:BypassGovernanceRetention permission",
    )


def lock_policy(args: argparse.Namespace) -> LockPolicy | None:
    if args.object_lock is None:
        if args.lock_mode is not None:
            raise ConfigError("--lock-mode needs --object-lock DAYS")
        return None
    return LockPolicy.parse(args.object_lock, args.lock_mode)
