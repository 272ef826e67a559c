"""Assertions about what reached moto, shared by the integration test modules.

moto's request log (``Stack.backend_log``) is the ground truth for "did the worker talk to S3":
moto writes a request's log line before its status line, so when the gateway has answered
our client, every backend request it made for that answer is already in the log.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError


def bucket_of(path: str) -> str:
    """The bucket of a path-style S3 request path (``/bucket/key?query``)."""
    return path.split("?", 1)[0].split("/")[1]


@contextmanager
def backend_confined_to(stack, bucket: str):
    """Asserts that every request moto received inside the block was for ``bucket``.

    Yields the list the new requests are put in after the block (for further checks)."""
    before = len(stack.backend_log())
    seen: list[tuple[str, str, int]] = []
    yield seen
    seen.extend(stack.backend_log()[before:])
    foreign = [entry for entry in seen if bucket_of(entry[1]) != bucket]
    assert not foreign, f"requests for another bucket than {bucket!r} reached S3: {foreign}"


def assert_absent(stack, bucket: str, key: str) -> None:
    """moto holds no object ``bucket/key`` (asked directly, not through the gateway)."""
    with pytest.raises(ClientError) as caught:
        stack.boto3.head_object(Bucket=bucket, Key=key)
    assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey"), caught.value.response


def backend_writes(stack, since: int, method: str = "PUT") -> list[tuple[str, str, int]]:
    """Requests with ``method`` moto logged after the first ``since`` entries."""
    return [entry for entry in stack.backend_log()[since:] if entry[0] == method]
