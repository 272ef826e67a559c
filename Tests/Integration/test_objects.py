"""GET/HEAD/PUT/DELETE on /objects/{bucket}/{key} through nginx, checked against what moto
actually holds (boto3 talks to moto directly, not through the gateway)."""

from __future__ import annotations

import email.utils
import re
import os
from urllib.parse import quote

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import HELLO, assert_json_error, raw_exchange, raw_request, unique

# Headers that describe the object; HEAD must answer exactly what GET answers for them.
OBJECT_HEADERS = ("content-type", "content-length", "last-modified", "etag")
# Per-connection or per-response headers that legitimately differ between two responses.
VOLATILE_HEADERS = {"date", "connection", "keep-alive", "transfer-encoding"}


def object_url(stack, bucket: str, key: str) -> str:
    return stack.url(f"/objects/{bucket}/{quote(key, safe='/')}")


def assert_absent(stack, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as caught:
        stack.boto3.head_object(Bucket=bucket, Key=key)
    assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey"), caught.value.response


def moto_headers(stack, bucket: str, key: str) -> dict[str, str]:
    """The object's headers as moto serves them (lower-case names)."""
    return stack.boto3.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]


# ---------------------------------------------------------------------------------------------
# round trip and status codes


@pytest.mark.parametrize("bucket", ["local", "private"])
def test_put_get_head_delete_round_trip(stack, bucket):
    key = f"{unique('roundtrip')}/file.bin"
    url = object_url(stack, bucket, key)
    body = os.urandom(100_000)

    put = requests.put(url, data=body, headers={"Content-Type": "application/x-test"}, timeout=30)
    assert put.status_code == 200, put.text
    stored = stack.boto3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == body
    assert stored["ContentType"] == "application/x-test"
    document = put.json()
    assert document["bucket"] == bucket and document["key"] == key
    assert document["size"] == len(body)
    assert document["etag"] == stored["ETag"]
    assert put.headers.get("ETag") == stored["ETag"]

    get = requests.get(url, timeout=30)
    assert get.status_code == 200
    assert get.content == body

    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(body)

    delete = requests.delete(url, timeout=30)
    assert delete.status_code == 204
    assert delete.content == b""
    assert_absent(stack, bucket, key)

    assert_json_error(raw_request(stack, "GET", f"/objects/{bucket}/{quote(key)}"), 404, "not_found")
    assert_json_error(raw_request(stack, "HEAD", f"/objects/{bucket}/{quote(key)}"), 404, head=True)
    assert_json_error(raw_request(stack, "DELETE", f"/objects/{bucket}/{quote(key)}"), 404, "not_found")


def test_get_missing_object_is_404_json(stack):
    reply = raw_request(stack, "GET", f"/objects/public/{unique('missing')}.txt")
    assert_json_error(reply, 404, "not_found")


def test_head_missing_object_is_404_without_body(stack):
    key = unique("missing")
    response = raw_exchange(stack.port, f"HEAD /objects/public/{key} HTTP/1.1\r\nHost: localhost\r\n"
                                        "Connection: close\r\n\r\n".encode())
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 404"), head
    assert rest == b"", rest


def test_delete_missing_object_is_404(stack):
    assert_json_error(raw_request(stack, "DELETE", f"/objects/local/{unique('missing')}"), 404, "not_found")


def test_put_overwrites(stack):
    key = unique("overwrite")
    url = object_url(stack, "local", key)
    assert requests.put(url, data=b"first", timeout=30).status_code == 200
    assert requests.put(url, data=b"second version", timeout=30).status_code == 200
    assert requests.get(url, timeout=30).content == b"second version"
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"second version"


def test_empty_object(stack):
    key = unique("empty")
    url = object_url(stack, "local", key)
    put = requests.put(url, data=b"", timeout=30)
    assert put.status_code == 200, put.text
    assert stack.boto3.head_object(Bucket="local", Key=key)["ContentLength"] == 0
    get = requests.get(url, timeout=30)
    assert get.status_code == 200
    assert get.content == b""
    assert get.headers["Content-Length"] == "0"


def test_get_object_put_by_another_client(stack):
    reply = raw_request(stack, "GET", "/objects/public/hello.txt")
    assert reply.status == 200
    assert reply.body == HELLO


def test_chunked_put_is_stored_whole_or_refused(stack):
    """A PUT without Content-Length (chunked) must be stored exactly, or refused with a JSON
    error (411) and nothing stored; never a truncated object or a hang."""
    key = unique("chunked")
    body = os.urandom(300_000)

    def chunks():
        for offset in range(0, len(body), 50_000):
            yield body[offset:offset + 50_000]

    response = requests.put(object_url(stack, "local", key), data=chunks(), timeout=30)
    if response.status_code == 200:
        assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == body
    else:
        assert response.status_code == 411, (response.status_code, response.text)
        assert response.json()["error"]
        assert_absent(stack, "local", key)


# ---------------------------------------------------------------------------------------------
# headers


def test_get_and_head_headers_match_s3(stack):
    key = f"{unique('headers')}/doc.json"
    body = b'{"hello": "world"}\n' * 50
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="application/vnd.test+json")
    expected = moto_headers(stack, "public", key)
    target = f"/objects/public/{key}"

    first = raw_request(stack, "GET", target)
    assert first.status == 200 and first.headers["x-cache"] == "MISS"
    # Compared in the same cache state: both answered from the entry the first GET stored.
    get = raw_request(stack, "GET", target)
    head = raw_request(stack, "HEAD", target)
    assert get.status == 200 and head.status == 200
    assert get.headers["x-cache"] == head.headers["x-cache"] == "HIT"
    assert get.body == body
    for reply in (get, head):
        assert reply.headers["content-type"] == "application/vnd.test+json"
        assert reply.headers["content-length"] == str(len(body))
        assert reply.headers["etag"] == expected["etag"]
        assert reply.headers["last-modified"] == expected["last-modified"]
        assert email.utils.parsedate_to_datetime(reply.headers["last-modified"]) == \
            stack.boto3.head_object(Bucket="public", Key=key)["LastModified"]

    # HEAD answers exactly the headers GET answers (all of them, not only the four above).
    def comparable(reply):
        # Cache-Status carries the seconds of freshness left, which may tick between the two.
        return {name: re.sub(r"; ttl=\d+", "", value) for name, value in reply.headers.items()
                if name not in VOLATILE_HEADERS}

    assert comparable(head) == comparable(get)


def test_head_sends_no_body(stack):
    """On the wire: after HEAD's header block the connection closes with no byte of body."""
    response = raw_exchange(stack.port, b"HEAD /objects/public/hello.txt HTTP/1.1\r\nHost: localhost\r\n"
                                        b"Connection: close\r\n\r\n")
    head, separator, rest = response.partition(b"\r\n\r\n")
    assert separator, response
    assert head.startswith(b"HTTP/1.1 200"), head
    assert f"content-length: {len(HELLO)}".encode() in head.lower()
    assert rest == b""


# ---------------------------------------------------------------------------------------------
# Content-Type on PUT


@pytest.mark.parametrize("name, expected", [
    ("data.json", "application/json"),
    ("notes.txt", "text/plain"),
    ("page.html", "text/html"),
    ("image.png", "image/png"),
    ("archive.unknownext", "application/octet-stream"),
    ("no-extension", "application/octet-stream"),
    ("dir.json/plain", "application/octet-stream"),
])
def test_put_without_content_type_guesses_from_extension(stack, name, expected):
    key = f"{unique('ctype')}/{name}"
    # http.client sends no Content-Type unless told to.
    reply = raw_request(stack, "PUT", f"/objects/local/{key}", body=b"content")
    assert reply.status == 200, reply.body
    stored = stack.boto3.head_object(Bucket="local", Key=key)["ContentType"]
    assert stored.split(";")[0].strip() == expected, stored
    get = raw_request(stack, "GET", f"/objects/local/{key}")
    assert get.headers["content-type"] == stored


def test_put_keeps_client_content_type(stack):
    key = f"{unique('ctype')}/data.json"   # the extension says JSON; the client wins
    reply = raw_request(stack, "PUT", f"/objects/local/{key}", body=b"a;b",
                        headers={"Content-Type": "text/x-custom; charset=iso-8859-1"})
    assert reply.status == 200, reply.body
    assert stack.boto3.head_object(Bucket="local", Key=key)["ContentType"] == "text/x-custom; charset=iso-8859-1"


# ---------------------------------------------------------------------------------------------
# keys


ODD_KEYS = [
    "dir/sub/deeper/file.txt",
    "with space.txt",
    "plus+sign.txt",
    "unicode/ключ-文件-ü-😀.txt",
    "literal%20percent",
    "question?mark#hash&amp;semi;colon=eq",
    "dots..inside/a...b",
    "double//slash",
    "trailing-slash/",
    "tilde~_-.,!'()*@$",
]


@pytest.mark.parametrize("name", ODD_KEYS)
def test_odd_keys_round_trip(stack, name):
    key = f"{unique('keys')}/{name}"
    body = f"body of {name}".encode()
    target = f"/objects/local/{quote(key, safe='/')}"
    put = raw_request(stack, "PUT", target, body=body)
    assert put.status == 200, put.body
    listed = [item["Key"] for item in stack.boto3.list_objects_v2(Bucket="local", Prefix=key.split("/")[0])["Contents"]]
    assert listed == [key], f"stored as {listed!r}, expected {key!r}"
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == body
    get = raw_request(stack, "GET", target)
    assert get.status == 200 and get.body == body
    assert put.json()["key"] == key


@pytest.mark.parametrize("name", ODD_KEYS)
def test_odd_keys_put_by_s3_client_are_served(stack, name):
    key = f"{unique('keys')}/{name}"
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"from boto3: " + key.encode())
    reply = raw_request(stack, "GET", f"/objects/public/{quote(key, safe='/')}")
    assert reply.status == 200, reply.body
    assert reply.body == b"from boto3: " + key.encode()


def test_unencoded_plus_is_a_plus(stack):
    """A '+' in a path is a plus, not a space (no form decoding)."""
    prefix = unique("rawplus")
    reply = raw_request(stack, "PUT", f"/objects/local/{prefix}/a+b", body=b"plus")
    assert reply.status == 200, reply.body
    keys = [item["Key"] for item in stack.boto3.list_objects_v2(Bucket="local", Prefix=prefix)["Contents"]]
    assert keys == [f"{prefix}/a+b"]


def test_longest_key_is_accepted(stack):
    prefix = unique("long")
    key = prefix + "/" + "k" * (1024 - len(prefix) - 1)
    assert len(key.encode()) == 1024
    reply = raw_request(stack, "PUT", f"/objects/local/{key}", body=b"1024")
    assert reply.status == 200, reply.body
    assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == b"1024"
    assert raw_request(stack, "GET", f"/objects/local/{key}").body == b"1024"
