"""ALLOWED_BUCKETS for every method, and the methods the gateway does not serve.

A stack of its own with one bucket per access level plus one that exists in moto but is not
listed. Every refusal must be decided before any S3 call (moto's log shows none) and must
leave the backend as it was.
"""

from __future__ import annotations

import pytest

from checks import assert_absent
from conftest import assert_json_error, fcgi_params, fcgi_request, no_backend_requests, raw_request, start_stack, \
    unique

READ, WRITE, ALL, UNLISTED = "readers", "writers", "everyone", "strangers"
RULES = f"{READ}:read,{WRITE}:write,{ALL}:all"
ALLOWED = {
    READ: {"GET", "HEAD"},
    WRITE: {"GET", "HEAD", "PUT", "DELETE", "PURGE"},
    ALL: {"GET", "HEAD", "PUT", "DELETE", "PURGE"},
    UNLISTED: set(),
}
OBJECT_ALLOW = "GET, HEAD, PUT, DELETE, PURGE"
OTHER_METHODS = ["POST", "PATCH", "OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
                 "SEARCH", "FROB"]


@pytest.fixture(scope="module")
def access_stack():
    s = start_stack(buckets=[READ, WRITE, ALL, UNLISTED], worker_env={"ALLOWED_BUCKETS": RULES})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def _access_worker_still_up(request):
    yield
    if "access_stack" in request.fixturenames:
        s = request.getfixturevalue("access_stack")
        assert s.worker_alive(), s.worker_output()[-3000:]


def seed(stack, bucket: str) -> tuple[str, bytes]:
    key = f"{unique('seed')}/object.bin"
    body = f"seeded into {bucket}/{key}".encode()
    stack.boto3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, body


def stored(stack, bucket: str, key: str) -> bytes:
    return stack.boto3.get_object(Bucket=bucket, Key=key)["Body"].read()


# ---------------------------------------------------------------------------------------------
# the rules, method by method


@pytest.mark.parametrize("bucket", [READ, WRITE, ALL, UNLISTED])
def test_get(access_stack, bucket):
    key, body = seed(access_stack, bucket)
    if "GET" in ALLOWED[bucket]:
        reply = raw_request(access_stack, "GET", f"/objects/{bucket}/{key}")
        assert reply.status == 200 and reply.body == body
    else:
        with no_backend_requests(access_stack):
            reply = raw_request(access_stack, "GET", f"/objects/{bucket}/{key}")
        assert_json_error(reply, 403, "forbidden")
        assert body not in reply.body


@pytest.mark.parametrize("bucket", [READ, WRITE, ALL, UNLISTED])
def test_head(access_stack, bucket):
    key, body = seed(access_stack, bucket)
    if "HEAD" in ALLOWED[bucket]:
        reply = raw_request(access_stack, "HEAD", f"/objects/{bucket}/{key}")
        assert reply.status == 200 and reply.headers["content-length"] == str(len(body))
    else:
        with no_backend_requests(access_stack):
            reply = raw_request(access_stack, "HEAD", f"/objects/{bucket}/{key}")
        assert_json_error(reply, 403, head=True)
        assert "etag" not in reply.headers and "last-modified" not in reply.headers


@pytest.mark.parametrize("bucket", [READ, WRITE, ALL, UNLISTED])
def test_put(access_stack, bucket):
    new_key = unique("put")
    existing_key, existing_body = seed(access_stack, bucket)
    if "PUT" in ALLOWED[bucket]:
        reply = raw_request(access_stack, "PUT", f"/objects/{bucket}/{new_key}", body=b"written")
        assert reply.status == 200, reply.body
        assert stored(access_stack, bucket, new_key) == b"written"
    else:
        with no_backend_requests(access_stack):
            new = raw_request(access_stack, "PUT", f"/objects/{bucket}/{new_key}", body=b"written")
            overwrite = raw_request(access_stack, "PUT", f"/objects/{bucket}/{existing_key}", body=b"overwritten")
        assert_json_error(new, 403, "forbidden")
        assert_json_error(overwrite, 403, "forbidden")
        assert_absent(access_stack, bucket, new_key)
        assert stored(access_stack, bucket, existing_key) == existing_body


@pytest.mark.parametrize("bucket", [READ, WRITE, ALL, UNLISTED])
def test_purge(access_stack, bucket):
    """PURGE drops cached copies only: it never asks S3 and never touches the object."""
    key, body = seed(access_stack, bucket)
    with no_backend_requests(access_stack):
        reply = raw_request(access_stack, "PURGE", f"/objects/{bucket}/{key}")
    if "PURGE" in ALLOWED[bucket]:
        assert reply.status == 200 and reply.json()["key"] == key, reply.body
    else:
        assert_json_error(reply, 403, "forbidden")
    assert stored(access_stack, bucket, key) == body


@pytest.mark.parametrize("bucket", [READ, WRITE, ALL, UNLISTED])
def test_delete(access_stack, bucket):
    key, body = seed(access_stack, bucket)
    if "DELETE" in ALLOWED[bucket]:
        reply = raw_request(access_stack, "DELETE", f"/objects/{bucket}/{key}")
        assert reply.status == 204, reply.body
        assert_absent(access_stack, bucket, key)
    else:
        with no_backend_requests(access_stack):
            reply = raw_request(access_stack, "DELETE", f"/objects/{bucket}/{key}")
        assert_json_error(reply, 403, "forbidden")
        assert stored(access_stack, bucket, key) == body


def test_refused_put_with_a_large_body_leaves_the_connection_usable(access_stack):
    """The worker answers 403 without reading the body; what is left of it must not confuse
    the next requests on nginx's kept connections to the worker."""
    with no_backend_requests(access_stack):
        reply = raw_request(access_stack, "PUT", f"/objects/{READ}/{unique('big')}", body=b"z" * (4 << 20))
    assert_json_error(reply, 403, "forbidden")
    for _ in range(40):
        assert raw_request(access_stack, "GET", "/health").status == 200


def test_cached_object_in_a_read_bucket_still_refuses_writes(access_stack):
    key, body = seed(access_stack, READ)
    assert raw_request(access_stack, "GET", f"/objects/{READ}/{key}").body == body
    assert raw_request(access_stack, "GET", f"/objects/{READ}/{key}").headers.get("x-cache") == "HIT"
    with no_backend_requests(access_stack):
        assert_json_error(raw_request(access_stack, "PUT", f"/objects/{READ}/{key}", body=b"new"), 403, "forbidden")
        assert_json_error(raw_request(access_stack, "DELETE", f"/objects/{READ}/{key}"), 403, "forbidden")
    assert stored(access_stack, READ, key) == body
    assert raw_request(access_stack, "GET", f"/objects/{READ}/{key}").body == body


def test_write_bucket_round_trip(access_stack):
    """``write`` includes reads: PUT, GET, HEAD, DELETE, then 404."""
    key = unique("writers")
    target = f"/objects/{WRITE}/{key}"
    assert raw_request(access_stack, "PUT", target, body=b"round trip").status == 200
    assert raw_request(access_stack, "GET", target).body == b"round trip"
    assert raw_request(access_stack, "HEAD", target).status == 200
    assert raw_request(access_stack, "DELETE", target).status == 204
    assert_json_error(raw_request(access_stack, "GET", target), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# other methods


@pytest.mark.parametrize("method", OTHER_METHODS)
@pytest.mark.parametrize("bucket", [READ, ALL, UNLISTED])
def test_other_methods_are_405_with_allow(access_stack, method, bucket):
    key, body = seed(access_stack, bucket)
    with no_backend_requests(access_stack):
        reply = raw_request(access_stack, method, f"/objects/{bucket}/{key}", body=b"payload")
    assert_json_error(reply, 405, "method_not_allowed")
    assert reply.headers.get("allow") == OBJECT_ALLOW
    assert stored(access_stack, bucket, key) == body


@pytest.mark.parametrize("target", ["/objects/", f"/objects/{ALL}/a/../b", "/objects/NotABucket/x"])
def test_other_methods_on_invalid_object_paths_are_405(access_stack, target):
    with no_backend_requests(access_stack):
        reply = raw_request(access_stack, "POST", target, body=b"payload")
    assert_json_error(reply, 405, "method_not_allowed")
    assert reply.headers.get("allow") == OBJECT_ALLOW


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "get", "Get", ""])
def test_worker_refuses_methods_nginx_never_passes(access_stack, method):
    """nginx answers TRACE itself and refuses lower-case methods; the worker, asked directly,
    must not treat any of them as a read."""
    key, _ = seed(access_stack, ALL)
    with no_backend_requests(access_stack):
        reply = fcgi_request(access_stack.socket_path, fcgi_params(method, f"/objects/{ALL}/{key}"))
    assert_json_error(reply, 405, "method_not_allowed")
    assert reply.headers.get("allow") == OBJECT_ALLOW


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_health_allows_only_get_and_head(access_stack, method):
    reply = raw_request(access_stack, method, "/health", body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert_json_error(reply, 405, "method_not_allowed")
    assert reply.headers.get("allow") == "GET, HEAD"


def test_health_get_and_head(access_stack):
    with no_backend_requests(access_stack):
        get = raw_request(access_stack, "GET", "/health")
        head = raw_request(access_stack, "HEAD", "/health")
    assert get.status == 200 and get.json() == {"status": "ok"}
    assert head.status == 200 and head.body == b""
