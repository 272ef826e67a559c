"""Bucket and key validation, parsed once from the raw request target.

Through nginx with ``raw_request`` (the target goes out byte for byte), and straight to the
worker's socket with ``fcgi_request`` for targets nginx refuses or normalises away before the
worker could see them: the worker must hold on its own, whatever sits in front of it.

"Never reaches another bucket" is checked on the answer (status, and no byte of the other
bucket's objects) and on moto's request log (no request for any other bucket was made).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from checks import assert_absent, backend_confined_to
from conftest import SENTINEL, assert_json_error, fcgi_params, fcgi_request, no_backend_requests, raw_exchange, \
    raw_request, unique

OTHER_BUCKET_BODY = b"other bucket, not listed in ALLOWED_BUCKETS"

# Targets that try to leave the bucket; SRC is the bucket named first, DST the one aimed at.
# The worker itself refuses every one of them (400 invalid_object) before any S3 call.
ESCAPES_REFUSED_BY_WORKER = [
    "/objects/SRC/../DST/x",
    "/objects/SRC/%2e%2e/DST/x",
    "/objects/SRC/%2E%2e/DST/x",
    "/objects/SRC/%2E%2E/DST/x",
    "/objects/SRC/.%2e/DST/x",
    "/objects/SRC/%2e./DST/x",
    "/objects/SRC/..%2fDST/x",
    "/objects/SRC/..%2FDST%2Fx",
    "/objects/SRC/%2e%2e%2fDST%2fx",
    "/objects/SRC/%2f..%2fDST/x",
    "/objects/SRC%2f..%2fDST/x",
    "/objects/SRC%2F..%2FDST/x",
    "/objects/SRC//../DST/x",
    "/objects/SRC/a/../../DST/x",
    "/objects/SRC/%2e%2e%2f%2e%2e%2fobjects/DST/x",
    "/objects/../objects/DST/x",
    "/objects/SRC/%c0%ae%c0%ae/DST/x",      # overlong UTF-8 for "..": not UTF-8 at all
    "/objects/SRC/./../DST/x",
]

# Targets that look like an escape but are, decoded exactly once, a plain key inside SRC.
# (target template, the key S3 must be asked for)
LITERAL_KEYS = [
    ("/objects/SRC/%252e%252e/DST/x", "%2e%2e/DST/x"),                 # double encoding stays literal
    ("/objects/SRC/%252e%252e%252fDST%252fx", "%2e%2e%2fDST%2fx"),
    ("/objects/SRC/..%5cDST%5cx", "..\\DST\\x"),                       # a backslash is no separator
    ("/objects/SRC/..\\DST\\x", "..\\DST\\x"),
    ("/objects/SRC/%5c..%5cDST", "\\..\\DST"),
    ("/objects/SRC/..;/DST/x", "..;/DST/x"),
    ("/objects/SRC/...", "..."),
]

# Targets nginx refuses (400) or resolves to a path outside the s3cache locations (404)
# before the worker sees them. The worker, asked directly, refuses them too.
ESCAPES_STOPPED_BY_NGINX = [
    ("/objects/SRC/../../DST/x", 404),
    ("/objects/SRC/../../../DST/x", 400),
    ("/objects/%2e%2e/DST/x", 404),
    ("/objects/SRC/%2e%2e%2f%2e%2e%2fDST/x", 404),
]


# Everything printable in ASCII stays as written (including "%" escapes and "\\").
_AS_WRITTEN = "".join(chr(code) for code in range(0x21, 0x7f))


def ascii_target(target: str) -> str:
    """``target`` with only its non-ASCII characters %-escaped (http.client sends ASCII only)."""
    return quote(target, safe=_AS_WRITTEN)


def fill(template: str, src: str, dst: str) -> str:
    return template.replace("SRC", src).replace("DST", dst)


def assert_nothing_leaked(reply) -> None:
    assert SENTINEL not in reply.body and OTHER_BUCKET_BODY not in reply.body, reply.body[:200]


def worker_reply(stack, method: str, target: str | bytes):
    """The worker's own answer to ``target``, bypassing nginx."""
    params = fcgi_params(method, "")
    params["REQUEST_URI"] = target
    return fcgi_request(stack.socket_path, params)


# ---------------------------------------------------------------------------------------------
# leaving the bucket


@pytest.mark.parametrize("dst", ["private", "other"])
@pytest.mark.parametrize("template", ESCAPES_REFUSED_BY_WORKER)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_read_escapes_are_refused_before_s3(stack, method, template, dst):
    target = fill(template, "public", dst)
    with no_backend_requests(stack):
        reply = raw_request(stack, method, target)
    assert_json_error(reply, 400, "invalid_object", head=method == "HEAD")
    assert_nothing_leaked(reply)


@pytest.mark.parametrize("template", ESCAPES_REFUSED_BY_WORKER)
def test_put_escapes_are_refused_and_write_nothing(stack, template):
    """PUT from a writable bucket aimed at private/x (which holds the sentinel)."""
    target = fill(template, "local", "private")
    with no_backend_requests(stack):
        reply = raw_request(stack, "PUT", target, body=b"overwritten through an escape")
    assert_json_error(reply, 400, "invalid_object")
    assert stack.boto3.get_object(Bucket="private", Key="x")["Body"].read() == SENTINEL


@pytest.mark.parametrize("template", ESCAPES_REFUSED_BY_WORKER)
def test_delete_escapes_are_refused_and_delete_nothing(stack, template):
    target = fill(template, "local", "private")
    with no_backend_requests(stack):
        reply = raw_request(stack, "DELETE", target)
    assert_json_error(reply, 400, "invalid_object")
    assert stack.boto3.get_object(Bucket="private", Key="x")["Body"].read() == SENTINEL


@pytest.mark.parametrize("template, literal", LITERAL_KEYS)
def test_escape_lookalikes_read_a_literal_key_in_the_same_bucket(stack, template, literal):
    """Decoded once, these are ordinary keys of ``public``: 404, and S3 is asked only about
    ``public`` (never ``private``, whose x holds the sentinel)."""
    with backend_confined_to(stack, "public"):
        reply = raw_request(stack, "GET", fill(template, "public", "private"))
    assert_json_error(reply, 404, "not_found")
    assert_nothing_leaked(reply)


@pytest.mark.parametrize("template, literal", LITERAL_KEYS)
def test_escape_lookalikes_write_a_literal_key_in_the_same_bucket(stack, template, literal):
    key_prefix = unique("literal")
    target = fill(template, f"local/{key_prefix}", "private")
    body = f"stored under {literal}".encode()
    with backend_confined_to(stack, "local"):
        reply = raw_request(stack, "PUT", target, body=body)
    assert reply.status == 200, reply.body
    key = f"{key_prefix}/{fill(literal, 'local', 'private')}"
    assert reply.json()["key"] == key
    listed = [item["Key"] for item in stack.boto3.list_objects_v2(Bucket="local", Prefix=key_prefix)["Contents"]]
    assert listed == [key]
    assert stack.boto3.get_object(Bucket="private", Key="x")["Body"].read() == SENTINEL


@pytest.mark.parametrize("template, nginx_status", ESCAPES_STOPPED_BY_NGINX)
def test_escapes_nginx_stops_are_refused_by_the_worker_too(stack, template, nginx_status):
    target = fill(template, "public", "private")
    with no_backend_requests(stack):
        through_nginx = raw_request(stack, "GET", target)
        direct = worker_reply(stack, "GET", target)
    assert through_nginx.status == nginx_status, through_nginx.body[:200]
    assert_nothing_leaked(through_nginx)
    assert_json_error(direct, 400, "invalid_object")


def test_absolute_form_request_target_is_validated(stack):
    """``GET http://host/objects/...``: nginx passes the path of an absolute-form target."""
    with no_backend_requests(stack):
        response = raw_exchange(stack.port, b"GET http://127.0.0.1/objects/public/../private/x HTTP/1.1\r\n"
                                            b"Host: localhost\r\nConnection: close\r\n\r\n")
    status_line, _, _ = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400"), status_line
    assert SENTINEL not in response and b"invalid_object" in response


def test_encoded_bucket_name_is_the_same_bucket(stack):
    """%-escapes in the bucket part are decoded once; ``publi%63`` is ``public``, nothing else."""
    with backend_confined_to(stack, "public"):
        reply = raw_request(stack, "GET", "/objects/publi%63/hello.txt")
    assert reply.status == 200 and reply.body.startswith(b"hello")


# ---------------------------------------------------------------------------------------------
# key rules


REFUSED_KEYS = [
    "%01", "a%0ab", "a%0Db", "tab%09", "%1f", "del%7f", "c1-%c2%80", "c1-%c2%9f",   # control characters
    "%ff", "trunc%c3", "surrogate%ed%a0%80", "overlong%c0%af",                     # not UTF-8
    ".", "..", "a/./b", "a/../b", "a/.", "a/..", "./a", "../a", "%2e", "a/%2E%2E",  # dot segments
    "x" * 1025, "é" * 512 + "x", "%41" * 1025,                                     # over 1024 bytes, decoded
]


@pytest.mark.parametrize("key", REFUSED_KEYS, ids=lambda key: key[:40])
def test_invalid_keys_are_400_before_s3(stack, key):
    with no_backend_requests(stack):
        reply = raw_request(stack, "GET", ascii_target(f"/objects/public/{key}"))
    assert_json_error(reply, 400, "invalid_object")


@pytest.mark.parametrize("raw, key", [
    ("...", "..."), (".a", ".a"), ("a.", "a."), ("..a", "..a"), ("a..", "a.."), ("a/.../b", "a/.../b"),
    ("nbsp%c2%a0", "nbsp\u00a0"), ("%e2%80%a8line-separator", "\u2028line-separator"),
    ("é" * 500, "é" * 500),
], ids=lambda value: value[:20])
def test_keys_at_the_edge_of_the_rules_are_stored_exactly(stack, raw, key):
    prefix = unique("edge")
    full_key = f"{prefix}/{key}"
    reply = raw_request(stack, "PUT", ascii_target(f"/objects/local/{prefix}/{raw}"), body=b"edge")
    assert reply.status == 200, reply.body
    listed = [item["Key"] for item in stack.boto3.list_objects_v2(Bucket="local", Prefix=prefix)["Contents"]]
    assert listed == [full_key]


def test_key_length_counts_decoded_bytes(stack):
    """1024 bytes is the limit after decoding: 3072 characters of %41 are 1024 bytes."""
    prefix = unique("enc")
    key = prefix + "/" + "A" * (1024 - len(prefix) - 1)
    encoded = prefix + "/" + "%41" * (1024 - len(prefix) - 1)
    reply = raw_request(stack, "PUT", f"/objects/local/{encoded}", body=b"1024 decoded")
    assert reply.status == 200, reply.body
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"1024 decoded"
    with no_backend_requests(stack):
        assert_json_error(raw_request(stack, "PUT", f"/objects/local/{encoded}%41", body=b"x"), 400, "invalid_object")


def test_multibyte_key_of_exactly_1024_bytes_is_accepted(stack):
    prefix = unique("mb")
    filler = "é" * ((1024 - len(prefix) - 1) // 2)
    key = prefix + "/" + filler + "x" * ((1024 - len(prefix) - 1) % 2)
    assert len(key.encode()) == 1024
    reply = raw_request(stack, "PUT", ascii_target(f"/objects/local/{key}"), body=b"multibyte")
    assert reply.status == 200, reply.body
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"multibyte"


def test_invalid_key_refused_for_every_method(stack):
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        with no_backend_requests(stack):
            reply = raw_request(stack, method, "/objects/local/a/../b", body=b"x" if method == "PUT" else None)
        assert_json_error(reply, 400, "invalid_object", head=method == "HEAD")
    assert_absent(stack, "local", "b")


def test_raw_non_utf8_byte_in_key_is_refused(stack):
    """A raw 0xFF (as nginx passes it on) is no more UTF-8 than %FF: 400, never a key with
    U+FFFD in its place (which would make every invalid byte the same key)."""
    with no_backend_requests(stack):
        response = raw_exchange(stack.port, b"GET /objects/public/a\xffb HTTP/1.1\r\nHost: localhost\r\n"
                                            b"Connection: close\r\n\r\n")
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400"), response[:300]
    assert b"invalid_object" in rest


def test_raw_utf8_in_key_is_accepted(stack):
    """Raw UTF-8 (curl sends it unescaped) is the same key as its %-escaped form."""
    prefix = unique("rawutf8")
    key = f"{prefix}/café"
    response = raw_exchange(stack.port, f"PUT /objects/local/{key} HTTP/1.1\r\nHost: localhost\r\n"
                                        "Content-Length: 4\r\nConnection: close\r\n\r\nbody".encode())
    assert response.startswith(b"HTTP/1.1 200"), response[:300]
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"body"


# Refused by nginx (400) before the worker could see them; the worker must refuse them itself.
@pytest.mark.parametrize("target", [
    b"/objects/public/a%00b", b"/objects/public/%zz", b"/objects/public/a%2", b"/objects/public/a%",
    b"/objects/public/a\x01b", b"/objects/public/a\x7fb", b"/objects/public/a\tb", b"/objects/public/a\nb",
    b"/objects/public/\xff", b"/objects/public/\xc3", b"/objects/pu\xffblic/x",
], ids=repr)
def test_worker_refuses_what_nginx_refuses(stack, target):
    with no_backend_requests(stack):
        reply = worker_reply(stack, "GET", target)
    assert_json_error(reply, 400, "invalid_object")


# ---------------------------------------------------------------------------------------------
# bucket rules


@pytest.mark.parametrize("bucket", [
    "ab", "a" * 64, "Public", "PUBLIC", "pub_lic", "pub%20lic", "-public", "public-", ".public", "public.",
    "pub..lic", "pub.-lic", "pub-.lic", "192.168.1.1", "xn--public", "sthree-public", "amzn-s3-demo-public",
    "public-s3alias", "public--ol-s3", "public.mrap", "public--x-s3", "p%c3%bcblic", "pub%2flic", "%70ublic%2f",
])
def test_invalid_bucket_names_are_400_before_s3(stack, bucket):
    with no_backend_requests(stack):
        reply = raw_request(stack, "GET", f"/objects/{bucket}/x")
    assert_json_error(reply, 400, "invalid_object")


@pytest.mark.parametrize("bucket", ["abc", "a" * 63, "1.2.3", "my.bucket-1", "other"])
def test_valid_but_unlisted_bucket_names_are_403_not_400(stack, bucket):
    with no_backend_requests(stack):
        reply = raw_request(stack, "GET", f"/objects/{bucket}/x")
    assert_json_error(reply, 403, "forbidden")
    assert_nothing_leaked(reply)


# ---------------------------------------------------------------------------------------------
# paths that are no object


@pytest.mark.parametrize("target", ["/objects/", "/objects/public", "/objects/public/", "/objects//"])
def test_object_path_without_key_is_400(stack, target):
    with no_backend_requests(stack):
        reply = raw_request(stack, "GET", target)
    assert_json_error(reply, 400, "invalid_object")


def test_objects_without_anything_is_400(stack):
    """The worker answers ``/objects`` with 400. Through nginx the shipped ``location
    /objects/`` redirects ``/objects`` to ``/objects/`` first (nginx's rule for prefix
    locations ending in a slash); the redirect's target is the same 400."""
    assert_json_error(worker_reply(stack, "GET", "/objects"), 400, "invalid_object")
    reply = raw_request(stack, "GET", "/objects")
    if reply.status in (301, 308):
        assert reply.headers["location"].endswith("/objects/"), reply.headers
        reply = raw_request(stack, "GET", "/objects/")
    assert_json_error(reply, 400, "invalid_object")


@pytest.mark.parametrize("target", ["/", "/nothing", "/objectsx/public/x", "/Objects/public/x", "/healthz",
                                    "/health/x", "/object/public/x", ""])
def test_worker_answers_unknown_paths_404_json(stack, target):
    with no_backend_requests(stack):
        reply = worker_reply(stack, "GET", target)
    assert_json_error(reply, 404, "not_found")


@pytest.mark.parametrize("target", ["/health/../objects/private/x", "/foo/../objects/private/x",
                                    "/health/%2e%2e/objects/private/x"])
def test_unknown_paths_nginx_routes_to_the_worker_are_404_json(stack, target):
    """nginx routes these on its normalised path (``/objects/private/x``); the worker parses
    the raw target, finds no route, and never touches private."""
    with no_backend_requests(stack):
        reply = raw_request(stack, "GET", target)
    assert_json_error(reply, 404, "not_found")
    assert_nothing_leaked(reply)


def test_query_string_is_not_part_of_the_key(stack):
    with backend_confined_to(stack, "public") as seen:
        reply = raw_request(stack, "GET", "/objects/public/hello.txt?x=/../../private/x")
    assert reply.status == 200 and reply.body.startswith(b"hello")
    assert all(path.split("?")[0] == "/public/hello.txt" for _, path, _ in seen), seen
