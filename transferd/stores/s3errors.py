"""What an S3 failure means for the Store contract: transient, permanent, full, or not found.

=====================================  ===================  =======================================
S3 answer                              store error          why
=====================================  ===================  =======================================
no connection, timeout, reset          TransientStoreError  the endpoint may come back: retry, and
                                                            a stopped job resumes where it was
5xx, SlowDown, 429, RequestTimeout     TransientStoreError  the service asks to come back later
BadDigest, XAmzContentSHA256Mismatch   TransientStoreError  the body was altered on the way (we
                                                            hashed it before sending): send again
InvalidAccessKeyId, SignatureDoes…,    PermanentStoreError  "the S3 endpoint refused the
ExpiredToken, InvalidToken, 403                             credentials": retrying cannot help
AccessDenied naming Object Lock or     PermanentStoreError  "protected by Object Lock": a retained
retention                                                   version cannot be deleted or shortened
NoSuchBucket                           PermanentStoreError  a bucket that does not exist is named
                                                            as such, with its endpoint
RequestTimeTooSkewed                   PermanentStoreError  fix the clock, then resume
QuotaExceeded                          StoreFullError       the operator must grow the quota
NoSuchKey, 404                         ObjectNotFoundError  (mapped by each call that expects it)
other 4xx                              PermanentStoreError  with S3's own code and message
=====================================  ===================  =======================================

Every message names the endpoint and bucket, never the credentials.
"""

from __future__ import annotations

import asyncio
from typing import Any

from transferd.errors import PermanentStoreError, StoreError, StoreFullError, TransientStoreError

CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
     "TokenRefreshRequired", "AuthorizationHeaderMalformed", "InvalidSecurity"}
)  # fmt: skip
TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
     "ThrottlingException", "RequestThrottled", "TooManyRequests", "BadDigest",
     "XAmzContentSHA256Mismatch", "IncompleteBody", "OperationAborted",
     "ConditionalRequestConflict"}
)  # fmt: skip
FULL_CODES = frozenset({"QuotaExceeded", "StorageFull", "InsufficientStorage"})
RESUME_HINT = "the job resumes where it stopped once this is fixed: run the same command again"


def status_and_code(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, S3 error code, message) of a botocore ClientError; (0, "", "") otherwise."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0, "", ""
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode") or 0
    code = str(error.get("Code") or "")
    if not status and code.isdigit():
        status = int(code)
    return int(status), code, str(error.get("Message") or "")


def is_client_error(exc: BaseException) -> bool:
    return status_and_code(exc)[0] != 0 or bool(status_and_code(exc)[1])


def map_error(exc: BaseException, what: str, endpoint: str, bucket: str) -> StoreError:
    """The store error for ``exc`` raised while doing ``what`` at ``endpoint``/``bucket``."""
    status, code, message = status_and_code(exc)
    if not status and not code:
        return TransientStoreError(
            f"cannot reach the S3 endpoint {endpoint} ({what}): {_reason(exc)}",
            hint="check the endpoint URL and the network; " + RESUME_HINT,
        )
    detail = f"{code}: {message}" if message and message != code else code or str(status)
    if code == "NoSuchBucket":
        return PermanentStoreError(
            f"the bucket {bucket} does not exist at {endpoint} ({what})",
            hint="create the bucket, or correct the name in s3://BUCKET/PREFIX; " + RESUME_HINT,
        )
    if code in CREDENTIAL_CODES or status == 401 or (status == 403 and code in ("403", "")):
        return PermanentStoreError(
            f"the S3 endpoint refused the credentials ({detail}) at {endpoint} ({what})",
            hint="check the access key and secret (the [s3] credentials_file or AWS_ACCESS_KEY_ID"
            " and AWS_SECRET_ACCESS_KEY); " + RESUME_HINT,
        )
    if (code == "AccessDenied" or status == 403) and _about_lock(message):
        return PermanentStoreError(
            f"{what} at {endpoint}: the object is protected by Object Lock ({detail})",
            hint="a retained version can be neither deleted nor shortened until its retention "
            "ends (transferd verify --object-lock shows it)",
        )
    if code == "AccessDenied" or status == 403:
        return PermanentStoreError(
            f"the S3 endpoint refused the credentials or denied access to bucket {bucket} "
            f"({detail}) at {endpoint} ({what})",
            hint="check the credentials and the bucket policy; " + RESUME_HINT,
        )
    if code == "RequestTimeTooSkewed":
        return PermanentStoreError(
            f"the S3 endpoint {endpoint} says this host's clock is wrong ({what})",
            hint="set the clock (NTP), then resume",
        )
    if code in FULL_CODES:
        return StoreFullError(
            f"the bucket {bucket} at {endpoint} is out of quota ({what})",
            hint="grow the quota, then resume the job",
        )
    if code in TRANSIENT_CODES or status >= 500 or status in (408, 429):
        return TransientStoreError(f"the S3 endpoint {endpoint} failed ({what}): {detail}")
    return PermanentStoreError(f"the S3 endpoint {endpoint} refused {what}: {detail}")


def _about_lock(message: str) -> bool:
    text = message.lower()
    return "object lock" in text or "retention" in text or "worm" in text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text[0].lower() + text[1:] if text else text
