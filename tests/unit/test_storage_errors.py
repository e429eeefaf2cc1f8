"""Which reelforge error a failed filesystem call on a store becomes, and what it says."""

from __future__ import annotations

import errno
import os

import pytest

from reelforge.errors import InsufficientStorage, ServiceUnavailable
from reelforge.storage import storage_error

SERVER_PATH = "/srv/reelforge/artifacts/jobs/abc/.tmp-1234"


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code), SERVER_PATH)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_or_quota_is_insufficient_storage(code: int) -> None:
    error = storage_error(_os_error(code))
    assert isinstance(error, InsufficientStorage) and error.status_code == 507
    assert error.message == f"the artifact store is full: {os.strerror(code)}"


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (errno.EROFS, "is read-only"),
        (errno.EACCES, "is not writable"),
        (errno.EPERM, "is not writable"),
    ],
)
def test_a_store_that_refuses_writes_is_unavailable_for_a_while(code: int, state: str) -> None:
    error = storage_error(_os_error(code))
    assert isinstance(error, ServiceUnavailable) and error.status_code == 503
    assert error.message == f"the artifact store {state}: {os.strerror(code)}"
    assert error.retry_after_s >= 30  # an operator has to act; no point in coming back in 5 s


def test_any_other_failure_is_unavailable_and_names_the_store() -> None:
    error = storage_error(_os_error(errno.EIO), "the worker's scratch directory")
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "the worker's scratch directory failed: Input/output error"


def test_the_message_never_carries_the_server_path() -> None:
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO, errno.ESTALE):
        assert "/srv" not in storage_error(_os_error(code)).message


def test_an_error_without_errno_still_gets_a_cause() -> None:
    error = storage_error(OSError("something odd"))
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "the artifact store failed: OSError"
