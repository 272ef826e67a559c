"""Requests a hostile or unlucky client sends, each of which once crashed the worker, served one
key's bytes for another, or let a write through that should have been refused.

Every test here failed on the main of 2026-12-01 (issue: "Defects found by hostile testing").
Runs on the shared stack; the autouse fixture in conftest checks after each test that the worker
is still the same live process.
"""

from __future__ import annotations

import gzip
import os
import urllib.parse

import pytest

from cache_support import assert_reported, get, x_cache
from conftest import assert_json_error, raw_request, unique


def path_of(bucket: str, key: str) -> str:
    """The request target for ``key``, every non-ASCII byte percent-encoded from its UTF-8."""
    return f"/objects/{bucket}/{urllib.parse.quote(key.encode(), safe='/')}"


def put(stack, bucket: str, key: str, body: bytes, headers: dict[str, str] | None = None):
    all_headers = {"Content-Type": "text/plain"}
    all_headers.update(headers or {})
    return raw_request(stack, "PUT", path_of(bucket, key), body=body, headers=all_headers)


def read(stack, bucket: str, key: str, headers: dict[str, str] | None = None, method: str = "GET"):
    return raw_request(stack, method, path_of(bucket, key), headers=headers)


# ---------------------------------------------------------------------------------------------
# HTTP dates: a header that does not parse is ignored, whatever its numbers


OVERFLOWING_DATES = [
    "Sun, 06 Nov -2147483648 08:49:37 GMT",
    "Sun, 06 Nov 2147483647 08:49:37 GMT",
    "Sun, 06 Nov 99999999999999999999 08:49:37 GMT",
    "Sun, 9999999999 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 99999999999:49:37 GMT",
    "Sun, 06 Nov 1994 -1:-1:-1 GMT",
    "Sunday, 06-Nov-2147483648 08:49:37 GMT",
    "Sun Nov  6 08:49:37 -2147483648",
]


@pytest.mark.parametrize("header", ["If-Modified-Since", "If-Unmodified-Since"])
@pytest.mark.parametrize("state", ["miss", "hit"])
def test_a_date_that_overflows_is_ignored(stack, header, state):
    key = f"{unique('date')}.txt"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"dated", ContentType="text/plain")
    if state == "hit":
        assert read(stack, "public", key).status == 200
    for value in OVERFLOWING_DATES:
        reply = read(stack, "public", key, headers={header: value})
        assert reply.status == 200 and reply.body == b"dated", (value, reply.status, reply.body[:200])


@pytest.mark.parametrize("value", [
    "Sun, 06 Nov 2095 08:49:37 GMT",     # IMF-fixdate
    "Sunday, 06-Nov-44 08:49:37 GMT",    # RFC 850 (2044)
    "Sun Nov  6 08:49:37 2095",          # asctime
])
def test_every_http_date_form_is_understood(stack, value):
    key = f"{unique('forms')}.txt"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"dated", ContentType="text/plain")
    assert read(stack, "public", key).status == 200
    assert read(stack, "public", key, headers={"If-Modified-Since": value}).status == 304


# ---------------------------------------------------------------------------------------------
# keys compare byte for byte, as S3 compares them


EQUIVALENT_PAIRS = [
    ("café.html", "cafe\u0301.html"),       # NFC and NFD: canonically equivalent
    ("K.txt", "\u212a.txt"),                # KELVIN SIGN: canonically equivalent to K
    ("report;v2.txt", "report\u037ev2.txt"),  # GREEK QUESTION MARK: canonically equivalent to ;
    ("ﬁle.txt", "file.txt"),                # LATIN SMALL LIGATURE FI: compatibility equivalent
    ("x².txt", "x2.txt"),                   # SUPERSCRIPT TWO: compatibility equivalent
]


@pytest.mark.parametrize("first,second", EQUIVALENT_PAIRS)
def test_equivalent_keys_are_different_objects(stack, first, second):
    prefix = unique("nfc") + "/"
    first, second = prefix + first, prefix + second
    assert first.encode() != second.encode()
    assert put(stack, "local", first, b"first body").status == 200
    assert put(stack, "local", second, b"second body").status == 200
    for _ in range(2):   # a miss, then a hit
        assert read(stack, "local", first).body == b"first body"
        assert read(stack, "local", second).body == b"second body"
    # A write of one never invalidates nor overwrites the other.
    assert put(stack, "local", first, b"first, again").status == 200
    assert read(stack, "local", second).body == b"second body"
    assert_reported(read(stack, "local", second), "HIT")
    assert read(stack, "local", first).body == b"first, again"


@pytest.mark.parametrize("first,second", EQUIVALENT_PAIRS[:3])
def test_one_keys_body_is_never_served_for_an_equivalent_missing_key(stack, first, second):
    prefix = unique("xss") + "/"
    attacker, victim = prefix + second, prefix + first
    script = b"<script>alert(1)</script>"
    assert put(stack, "local", attacker, script, headers={"Content-Type": "text/html"}).status == 200
    assert read(stack, "local", attacker).body == script      # now cached
    reply = read(stack, "local", victim)
    assert_json_error(reply, 404, "not_found")
    assert read(stack, "local", attacker).body == script      # and the other way round:
    assert_json_error(read(stack, "local", victim), 404)      # the 404 is cached for the victim only
    assert read(stack, "local", attacker).status == 200


# ---------------------------------------------------------------------------------------------
# conditional writes


def etag_of(stack, bucket: str, key: str) -> str:
    return stack.boto3.head_object(Bucket=bucket, Key=key)["ETag"]


def test_put_with_if_none_match_star_never_overwrites(stack):
    key = f"{unique('inm')}.txt"
    assert put(stack, "local", key, b"original").status == 200
    assert read(stack, "local", key).body == b"original"   # cached
    reply = put(stack, "local", key, b"overwrite", headers={"If-None-Match": "*"})
    assert_json_error(reply, 412, "precondition_failed")
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"original"
    # A refused write leaves the cache as it was: still a hit, still the original.
    again = read(stack, "local", key)
    assert again.body == b"original"
    assert_reported(again, "HIT")
    fresh = f"{unique('inm-new')}.txt"
    assert put(stack, "local", fresh, b"created", headers={"If-None-Match": "*"}).status == 200
    assert read(stack, "local", fresh).body == b"created"


def test_put_with_a_stale_if_match_is_a_lost_update_refused(stack):
    key = f"{unique('im')}.txt"
    assert put(stack, "local", key, b"version 1").status == 200
    old = etag_of(stack, "local", key)
    assert put(stack, "local", key, b"version 2").status == 200
    current = etag_of(stack, "local", key)
    assert_json_error(put(stack, "local", key, b"lost update", headers={"If-Match": old}), 412, "precondition_failed")
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"version 2"
    assert put(stack, "local", key, b"version 3", headers={"If-Match": current}).status == 200
    assert read(stack, "local", key).body == b"version 3"
    missing = f"{unique('im-missing')}.txt"
    assert_json_error(put(stack, "local", missing, b"x", headers={"If-Match": current}), 412)
    assert_json_error(read(stack, "local", missing), 404)


def test_delete_with_a_wrong_if_match_deletes_nothing(stack):
    key = f"{unique('del')}.txt"
    assert put(stack, "local", key, b"keep me").status == 200
    assert read(stack, "local", key).body == b"keep me"
    reply = raw_request(stack, "DELETE", path_of("local", key), headers={"If-Match": '"bogus"'})
    assert_json_error(reply, 412, "precondition_failed")
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"keep me"
    assert_reported(read(stack, "local", key), "HIT")
    reply = raw_request(stack, "DELETE", path_of("local", key), headers={"If-Match": etag_of(stack, "local", key)})
    assert reply.status == 204
    assert_json_error(read(stack, "local", key), 404)


def test_a_malformed_entity_tag_on_a_write_is_a_400(stack):
    key = f"{unique('badtag')}.txt"
    reply = put(stack, "local", key, b"x", headers={"If-Match": "no quotes"})
    assert_json_error(reply, 400, "bad_request")
    assert_json_error(read(stack, "local", key), 404)


def test_if_match_with_the_gateways_gzip_etag_passes(stack):
    key = f"{unique('gz-im')}.txt"
    body = b"compressible text " * 500
    assert put(stack, "local", key, body).status == 200
    assert read(stack, "local", key).body == body   # the miss stores it compressed
    zipped = read(stack, "local", key, headers={"Accept-Encoding": "gzip"})
    gzip_tag = zipped.headers["etag"]
    assert gzip_tag.endswith('-gzip"'), zipped.headers
    # A read: the gzip tag names the current version as well as S3's does.
    reply = read(stack, "local", key, headers={"If-Match": gzip_tag})
    assert reply.status == 200 and reply.body == body
    # A write: passed on to S3 as S3's own tag.
    assert put(stack, "local", key, b"replaced", headers={"If-Match": gzip_tag}).status == 200
    assert read(stack, "local", key).body == b"replaced"


# ---------------------------------------------------------------------------------------------
# ranges


@pytest.mark.parametrize("state", ["miss", "hit"])
@pytest.mark.parametrize("header", ["items=0-5", "bytes 0-5", "bytes=+0-5", "bytes=0x1-5", "bytes=5-1"])
def test_a_range_that_is_not_a_byte_range_is_ignored(stack, state, header):
    key = f"{unique('unit')}.bin"
    body = os.urandom(1000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    if state == "hit":
        assert read(stack, "public", key).body == body
    reply = read(stack, "public", key, headers={"Range": header})
    assert reply.status == 200 and reply.body == body, (reply.status, reply.headers)
    assert "content-range" not in reply.headers


@pytest.mark.parametrize("state", ["miss", "hit"])
def test_a_last_position_with_many_digits_means_to_the_end(stack, state):
    key = f"{unique('huge')}.bin"
    body = os.urandom(1000)
    stack.boto3.put_object(Bucket="public", Key=key, Body=body)
    if state == "hit":
        assert read(stack, "public", key).body == body
    reply = read(stack, "public", key, headers={"Range": "bytes=10-99999999999999999999999"})
    assert reply.status == 206 and reply.body == body[10:], (reply.status, reply.headers)
    assert reply.headers["content-range"] == "bytes 10-999/1000"
    reply = read(stack, "public", key, headers={"Range": "bytes=99999999999999999999999-"})
    assert_json_error(reply, 416)
    reply = read(stack, "public", key, headers={"Range": "bytes=-99999999999999999999999"})
    assert reply.status == 206 and reply.body == body


def test_if_range_validates_with_s3s_etag_only(stack):
    """Ranges are cut from the object as S3 holds it, never from the gzip form: If-Range with the
    gzip tag (a client holding gzip bytes) gets the whole response, never identity bytes."""
    key = f"{unique('ifrange')}.txt"
    body = b"range me " * 1000
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="text/plain")
    identity = read(stack, "public", key)   # the miss stores it compressed
    zipped = read(stack, "public", key, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    ranged = read(stack, "public", key, headers={"Range": "bytes=0-9", "If-Range": identity.headers["etag"]})
    assert ranged.status == 206 and ranged.body == body[:10]
    whole = read(stack, "public", key, headers={"Range": "bytes=0-9", "If-Range": zipped.headers["etag"]})
    assert whole.status == 200 and whole.body == body
    whole_gzip = read(stack, "public", key, headers={
        "Range": "bytes=0-9", "If-Range": zipped.headers["etag"], "Accept-Encoding": "gzip"})
    assert whole_gzip.status == 200 and gzip.decompress(whole_gzip.body) == body


# ---------------------------------------------------------------------------------------------
# stored headers


def test_control_characters_in_stored_headers_are_refused_at_put(stack):
    for name, value in [("Content-Language", "en\x0bX"), ("Cache-Control", "max-age=1\x01"),
                        ("Content-Disposition", "inline\x7f"), ("Content-Type", "text/plain\x1b")]:
        key = f"{unique('ctl')}.txt"
        reply = put(stack, "local", key, b"x", headers={name: value})
        assert_json_error(reply, 400, "bad_request")
        assert_json_error(read(stack, "local", key), 404)


def test_control_characters_from_s3_are_dropped(stack):
    key = f"{unique('ctl-s3')}.txt"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"x", ContentType="text/plain", ContentLanguage="en\x0bX")
    assert stack.boto3.head_object(Bucket="public", Key=key)["ContentLanguage"] == "en\x0bX"
    for method in ["GET", "GET", "HEAD"]:   # miss, hit, HEAD from memory
        reply = read(stack, "public", key, method=method)
        assert reply.status == 200
        assert "content-language" not in reply.headers, reply.headers
        assert all("\x0b" not in value for _, value in reply.header_list)


def test_header_bytes_that_are_not_utf8_are_refused(stack):
    key = f"{unique('latin1')}.txt"
    # http.client sends header values as Latin-1: \xe9 goes out as the single byte E9.
    reply = put(stack, "local", key, b"x", headers={"Content-Disposition": 'attachment; filename="caf\xe9.txt"'})
    assert_json_error(reply, 400, "bad_request")
    assert_json_error(read(stack, "local", key), 404)
    utf8 = 'attachment; filename="café.txt"'.encode().decode("latin-1")
    assert put(stack, "local", key, b"x", headers={"Content-Disposition": utf8}).status == 200
    # botocore reads header bytes as Latin-1, as http.client does: S3 holds the UTF-8 bytes.
    stored = stack.boto3.head_object(Bucket="local", Key=key)["ContentDisposition"]
    assert stored.encode("latin-1").decode() == 'attachment; filename="café.txt"'


# ---------------------------------------------------------------------------------------------
# uploaded content cannot act as the site


def test_every_object_response_says_nosniff(stack):
    key = f"{unique('sniff')}.png"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"<html><script>1</script>", ContentType="text/html")
    replies = [read(stack, "public", key), read(stack, "public", key), read(stack, "public", key, method="HEAD"),
               read(stack, "public", key, headers={"Range": "bytes=0-3"}), read(stack, "public", f"{key}.missing"),
               raw_request(stack, "PUT", path_of("public", key), body=b"x")]
    for reply in replies:
        assert reply.headers.get("x-content-type-options") == "nosniff", (reply.status, reply.headers)


# ---------------------------------------------------------------------------------------------
# gzip uploads


def test_a_gzip_body_that_inflates_past_the_limit_is_413(stack):
    key = f"{unique('bomb')}.bin"
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024 + 1), compresslevel=9)
    assert len(bomb) < 100_000
    reply = put(stack, "local", key, bomb, headers={"Content-Encoding": "gzip"})
    assert_json_error(reply, 413, "payload_too_large")
    assert_json_error(read(stack, "local", key), 404)
    ok = gzip.compress(b"fine " * 1000)
    assert put(stack, "local", key, ok, headers={"Content-Encoding": "gzip"}).status == 200
    assert read(stack, "local", key).body == b"fine " * 1000


# ---------------------------------------------------------------------------------------------
# errors on reads carry the cache's report


def test_a_missing_object_on_a_bypass_says_what_the_cache_did(stack):
    reply = read(stack, "public", f"{unique('nothing')}.bin", headers={"Range": "bytes=0-1"})
    assert_json_error(reply, 404)
    assert x_cache(reply) == "BYPASS", reply.headers
    assert "fwd-status=404" in reply.headers.get("cache-status", "")


@pytest.fixture(scope="module")
def safe_stack():
    from conftest import start_stack
    s = start_stack(worker_env={"SAFE_CONTENT_BUCKETS": "local"})
    yield s
    s.stop()


@pytest.mark.parametrize("content_type,active", [
    ("text/html", True), ("text/html; charset=utf-8", True), ("image/svg+xml", True), ("application/xml", True),
    ("text/javascript", True), ("application/xhtml+xml", True), ("image/png", False), ("text/plain", False),
    ("application/json", False)])
def test_active_content_in_a_safe_bucket_is_a_sandboxed_download(safe_stack, content_type, active):
    key = f"{unique('active')}.bin"
    body = b"<html><body><script>alert(document.cookie)</script></body></html>" * 40
    reply = put(safe_stack, "local", key, body, headers={"Content-Type": content_type,
                                                        "Content-Disposition": "inline"})
    assert reply.status == 200
    replies = {
        "miss": read(safe_stack, "local", key),
        "hit": read(safe_stack, "local", key),
        "gzip": read(safe_stack, "local", key, headers={"Accept-Encoding": "gzip"}),
        "range": read(safe_stack, "local", key, headers={"Range": "bytes=0-9"}),
        "head": read(safe_stack, "local", key, method="HEAD"),
    }
    for name, reply in replies.items():
        assert reply.status in (200, 206), (name, reply.status)
        assert reply.headers.get("x-content-type-options") == "nosniff", (name, reply.headers)
        if active:
            assert reply.headers.get("content-disposition") == "attachment", (name, reply.headers)
            assert reply.headers.get("content-security-policy") == "sandbox", (name, reply.headers)
            assert [n for n, _ in reply.header_list if n.lower() == "content-disposition"] == ["Content-Disposition"]
        else:
            assert reply.headers.get("content-disposition") == "inline", (name, reply.headers)
            assert "content-security-policy" not in reply.headers
    # Another bucket is not affected.
    key = f"{unique('active')}.html"
    safe_stack.boto3.put_object(Bucket="public", Key=key, Body=b"<p>hi</p>", ContentType="text/html")
    reply = read(safe_stack, "public", key)
    assert "content-security-policy" not in reply.headers and "content-disposition" not in reply.headers
