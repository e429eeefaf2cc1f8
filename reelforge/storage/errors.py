"""What a failed filesystem call means for the service: a full store or an unavailable one.

An `OSError` from a store is an operator's problem (a disk to grow, a mount to fix), so callers
see it as one of the server errors in `reelforge.errors`, whose message names the cause and not
the server's paths:

    ENOSPC, EDQUOT        -> InsufficientStorage (507) "... is full: No space left on device"
    EROFS                 -> ServiceUnavailable (503)  "... is read-only: ..."
    EACCES, EPERM         -> ServiceUnavailable (503)  "... is not writable: ..."
    any other OSError     -> ServiceUnavailable (503)  "... failed: ..."
"""

from __future__ import annotations

import errno

from reelforge.errors import InsufficientStorage, ServiceUnavailable

__all__ = ["ARTIFACT_STORE", "storage_error"]

ARTIFACT_STORE = "the artifact store"

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM})

# A read-only or unwritable store needs an operator, so clients need not come back at once;
# any other fault (an NFS hiccup, EIO) may be gone in seconds.
_NEEDS_OPERATOR_RETRY_AFTER_S = 60
_TRANSIENT_RETRY_AFTER_S = 5


def storage_error(
    exc: OSError, store: str = ARTIFACT_STORE
) -> InsufficientStorage | ServiceUnavailable:
    """The reelforge error for `exc`, raised by a filesystem call on `store` (e.g.
    "the artifact store", "the worker's scratch directory"); raise it `from exc`."""
    # strerror, not str(exc): the latter carries the full path of the file.
    cause = exc.strerror or type(exc).__name__
    if exc.errno in _FULL:
        return InsufficientStorage(f"{store} is full: {cause}")
    if exc.errno == errno.EROFS:
        return ServiceUnavailable(
            f"{store} is read-only: {cause}", retry_after_s=_NEEDS_OPERATOR_RETRY_AFTER_S
        )
    if exc.errno in _NOT_WRITABLE:
        return ServiceUnavailable(
            f"{store} is not writable: {cause}", retry_after_s=_NEEDS_OPERATOR_RETRY_AFTER_S
        )
    return ServiceUnavailable(f"{store} failed: {cause}", retry_after_s=_TRANSIENT_RETRY_AFTER_S)
