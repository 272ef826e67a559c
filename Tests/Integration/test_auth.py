"""Gateway keys and AWS Signature V4 from real clients, through nginx, against moto.

boto3 and the aws CLI address the gateway as an S3 endpoint (``endpoint_url=…/objects``, path
addressing) and sign with a gateway key; presigned URLs from boto3's presigner are used by plain
HTTP. Each refusal is checked for S3's error code (what SDKs show) and, in moto's log, for
nothing written.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
import time
import zlib
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cache_support import get, wait_for
from conftest import raw_request, start_stack, unique
from sigv4_client import sign, signed_chunks, timestamp

WRITER = ("S3CTESTWRITERKEY0001", "writer-secret-0123456789abcdefghijklmnop", "private:all,public:read,local:write")
READER = ("S3CTESTREADERKEY0001", "reader-secret-0123456789abcdefghijklmnop", "public:read,private:read")
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys"
    path.write_text("# gateway keys\n\n" + "".join(f"{k} {s} {g}\n" for k, s, g in (WRITER, READER)))
    return path


@pytest.fixture(scope="module")
def stack(keys_file):
    s = start_stack(tls=True, worker_env={
        "ACCESS_KEYS_FILE": str(keys_file), "ANONYMOUS_BUCKETS": "public:read",
        "CORS_ORIGINS": f"private:{ORIGIN}"})
    s.initial_worker_pid = s.worker_pid   # what conftest's check after each test compares with
    yield s
    s.stop()


def client(stack, key=WRITER, tls: bool = False, **s3_options):
    base = stack.tls_base_url if tls else stack.base_url
    return boto3.client(
        "s3", endpoint_url=f"{base}/objects", region_name="us-east-1", aws_access_key_id=key[0],
        aws_secret_access_key=key[1], verify=str(stack.cert_path) if tls else None,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path", **s3_options},
                      retries={"max_attempts": 1}))


def stored(stack, bucket: str, key: str) -> bytes | None:
    try:
        return stack.boto3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return None


def moto_puts(stack, bucket: str, key: str) -> int:
    return sum(1 for method, path, _ in stack.backend_log() if method == "PUT" and path.startswith(f"/{bucket}/{key}"))


def s3_error(reply) -> tuple[str, str]:
    assert reply.headers.get("content-type") == "application/xml", (reply.status, reply.headers, reply.body)
    text = reply.body.decode()
    code = text.split("<Code>")[1].split("</Code>")[0]
    message = text.split("<Message>")[1].split("</Message>")[0]
    return code, message


# ---------------------------------------------------------------------------------------------
# boto3 and the aws CLI


def test_boto3_round_trip_over_http_with_its_default_checksum(stack):
    s3 = client(stack)
    key = f"{unique('boto')}/a b+c.txt"
    put = s3.put_object(Bucket="private", Key=key, Body=b"hello from boto3", ContentType="text/plain")
    assert put["ETag"].strip('"')
    assert stored(stack, "private", key) == b"hello from boto3"
    got = s3.get_object(Bucket="private", Key=key)
    assert got["Body"].read() == b"hello from boto3" and got["ContentType"] == "text/plain"
    assert got["CacheControl"] == "private"   # private is not readable anonymously
    assert s3.head_object(Bucket="private", Key=key)["ContentLength"] == 16
    s3.delete_object(Bucket="private", Key=key)
    assert stored(stack, "private", key) is None
    with pytest.raises(ClientError) as error:
        s3.head_object(Bucket="private", Key=key)
    assert error.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket="private", Key=key)
    assert error.value.response["Error"]["Code"] == "NoSuchKey"


def test_boto3_over_https_sends_an_aws_chunked_body_with_a_crc32_trailer(stack):
    s3 = client(stack, tls=True)
    key = unique("trailer")
    body = os.urandom(200_000)
    seen = {}
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: seen.update(request.headers))
    s3.put_object(Bucket="private", Key=key, Body=body)
    sent = {name.lower(): value.decode() if isinstance(value, bytes) else value for name, value in seen.items()}
    assert sent["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER", sent
    assert sent["x-amz-trailer"] == "x-amz-checksum-crc32" and sent.get("transfer-encoding") == "chunked", sent
    assert stored(stack, "private", key) == body
    assert s3.get_object(Bucket="private", Key=key)["Body"].read() == body


def test_boto3_with_payload_signing_over_https(stack):
    s3 = client(stack, tls=True, payload_signing_enabled=True)
    key = unique("signed-payload")
    s3.put_object(Bucket="private", Key=key, Body=b"signed payload")
    assert stored(stack, "private", key) == b"signed payload"


def test_the_aws_cli_round_trip(stack, tmp_path):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": WRITER[0], "AWS_SECRET_ACCESS_KEY": WRITER[1],
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    aws = [str(Path(os.sys.executable).parent / "aws"), "--endpoint-url", f"{stack.base_url}/objects", "s3api"]
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(70_000))
    key = unique("cli")

    def run(*arguments):
        result = subprocess.run(aws + list(arguments), env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}

    assert run("put-object", "--bucket", "private", "--key", key, "--body", str(source))["ETag"]
    assert stored(stack, "private", key) == source.read_bytes()
    assert run("head-object", "--bucket", "private", "--key", key)["ContentLength"] == 70_000
    run("get-object", "--bucket", "private", "--key", key, str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    run("delete-object", "--bucket", "private", "--key", key)
    assert stored(stack, "private", key) is None


# ---------------------------------------------------------------------------------------------
# presigned URLs


def curl(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--fail-with-body", *arguments], capture_output=True, timeout=30)


def test_presigned_get_and_put_from_boto3_work_with_plain_curl(stack, tmp_path):
    s3 = client(stack)
    key = f"{unique('presigned')}/file name.bin"
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(50_000))
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "private", "Key": key}, ExpiresIn=300)
    # curl -T sends the file as it is (README: moto parses a form-typed body as a form).
    result = curl("-T", str(upload), "-H", "Content-Type: application/octet-stream", put_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(stack, "private", key) == upload.read_bytes()
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": key}, ExpiresIn=300)
    result = curl(get_url)
    assert result.returncode == 0 and result.stdout == upload.read_bytes()
    # The signature is not part of the cache key: another signature gets the same cached copy.
    again = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": key}, ExpiresIn=200)
    result = curl("-D", "-", "-o", "/dev/null", again)
    assert b"X-Cache: HIT" in result.stdout, result.stdout


def test_s3cache_presign_makes_urls_the_gateway_accepts(stack, keys_file):
    key = unique("cli-presign")
    stack.boto3.put_object(Bucket="private", Key=key, Body=b"presigned by s3cache")
    result = subprocess.run(
        [str(stack.binary), "presign", "--expires", "120", "--key-id", READER[0], f"{stack.base_url}/objects/private/{key}"],
        env={"ACCESS_KEYS_FILE": str(keys_file), "PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    fetched = curl(result.stdout.strip())
    assert fetched.returncode == 0 and fetched.stdout == b"presigned by s3cache"


# ---------------------------------------------------------------------------------------------
# refusals


def host(stack) -> str:
    return f"127.0.0.1:{stack.port}"


def signed_put(stack, key: str, body: bytes, *, credentials=WRITER, bucket="private", amz_date=None,
               payload_hash=None, path=None):
    path = path or f"/objects/{bucket}/{key}"
    headers, *_ = sign("PUT", path, credentials[0], credentials[1], host=host(stack), amz_date=amz_date,
                       payload_hash=payload_hash or hashlib.sha256(body).hexdigest())
    return raw_request(stack, "PUT", path, body=body, headers=headers)


@pytest.mark.parametrize("case, status, code", [
    ("wrong secret", 403, "SignatureDoesNotMatch"),
    ("unknown key", 403, "InvalidAccessKeyId"),
    ("skewed clock", 403, "RequestTimeTooSkewed"),
    ("another bucket", 403, "AccessDenied"),
    ("read-only key", 403, "AccessDenied"),
    ("body does not match its hash", 400, "XAmzContentSHA256Mismatch"),
])
def test_refused_writes_store_nothing(stack, case, status, code):
    key = unique("refused")
    body = b"must not be stored"
    if case == "wrong secret":
        reply = signed_put(stack, key, body, credentials=(WRITER[0], "not-the-secret-0123456789", ""))
    elif case == "unknown key":
        reply = signed_put(stack, key, body, credentials=("S3CNOSUCHKEY00000000", WRITER[1], ""))
    elif case == "skewed clock":
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        reply = signed_put(stack, key, body, amz_date=timestamp(past))
    elif case == "another bucket":
        reply = signed_put(stack, key, body, bucket="public")
    elif case == "read-only key":
        reply = signed_put(stack, key, body, credentials=READER)
    else:
        reply = signed_put(stack, key, body, payload_hash=hashlib.sha256(b"something else").hexdigest())
    assert reply.status == status, reply.body
    assert s3_error(reply)[0] == code
    bucket = "public" if case == "another bucket" else "private"
    assert stored(stack, bucket, key) is None
    if case != "body does not match its hash":
        assert moto_puts(stack, bucket, key) == 0, "refused before S3 was asked"


def test_a_tampered_path_and_an_expired_url_are_refused(stack):
    s3 = client(stack)
    key = unique("tamper")
    stack.boto3.put_object(Bucket="private", Key=key, Body=b"secret")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": key}, ExpiresIn=60)
    tampered = url.replace(f"/private/{key}", f"/private/{key}x")
    reply = raw_request(stack, "GET", tampered[len(stack.base_url):])
    assert reply.status == 403 and s3_error(reply)[0] == "SignatureDoesNotMatch"
    short = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": key}, ExpiresIn=1)
    time.sleep(2.2)
    reply = raw_request(stack, "GET", short[len(stack.base_url):])
    code, message = s3_error(reply)
    assert reply.status == 403 and code == "AccessDenied" and message == "Request has expired"


def test_sigv2_is_refused_with_a_request_for_sigv4(stack):
    reply = raw_request(stack, "GET", "/objects/public/x?AWSAccessKeyId=AKIA&Signature=abc&Expires=1")
    assert reply.status == 400 and s3_error(reply) == (
        "InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")
    reply = raw_request(stack, "GET", "/objects/public/x", headers={"Authorization": "AWS AKIA:c2lnbmF0dXJl"})
    assert reply.status == 400 and s3_error(reply)[0] == "InvalidRequest"


# ---------------------------------------------------------------------------------------------
# aws-chunked bodies SDKs send and those they do not


def test_signed_chunks_are_verified_and_only_the_payload_is_stored(stack):
    key = unique("chunks")
    body = os.urandom(30_000)
    path = f"/objects/private/{key}"
    amz_date = timestamp()
    headers, seed, signing_key, scope = sign(
        "PUT", path, WRITER[0], WRITER[1], host=host(stack), amz_date=amz_date,
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        headers={"x-amz-decoded-content-length": str(len(body)), "content-encoding": "aws-chunked"})
    encoded = signed_chunks(body, seed=seed, key=signing_key, amz_date=amz_date, scope=scope)
    reply = raw_request(stack, "PUT", path, body=encoded, headers=headers)
    assert reply.status == 200 and reply.body == b"", reply.body
    assert stored(stack, "private", key) == body

    # One flipped byte in the second chunk: refused, and S3 never receives the whole body.
    bad_key = unique("chunks-bad")
    bad_path = f"/objects/private/{bad_key}"
    headers, seed, signing_key, scope = sign(
        "PUT", bad_path, WRITER[0], WRITER[1], host=host(stack), amz_date=amz_date,
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        headers={"x-amz-decoded-content-length": str(len(body)), "content-encoding": "aws-chunked"})
    encoded = signed_chunks(body, seed=seed, key=signing_key, amz_date=amz_date, scope=scope, tamper_chunk=1)
    reply = raw_request(stack, "PUT", bad_path, body=encoded, headers=headers)
    assert reply.status == 403 and s3_error(reply)[0] == "SignatureDoesNotMatch"
    assert stored(stack, "private", bad_key) is None


def test_signed_chunks_with_a_signed_trailer(stack):
    key = unique("chunks-trailer")
    body = os.urandom(20_000)
    path = f"/objects/private/{key}"
    amz_date = timestamp()
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    headers, seed, signing_key, scope = sign(
        "PUT", path, WRITER[0], WRITER[1], host=host(stack), amz_date=amz_date,
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        headers={"x-amz-decoded-content-length": str(len(body)), "content-encoding": "aws-chunked",
                 "x-amz-trailer": "x-amz-checksum-crc32"})
    encoded = signed_chunks(body, seed=seed, key=signing_key, amz_date=amz_date, scope=scope,
                            trailer={"x-amz-checksum-crc32": crc})
    reply = raw_request(stack, "PUT", path, body=encoded, headers=headers)
    assert reply.status == 200, reply.body
    assert stored(stack, "private", key) == body


def test_a_checksum_that_does_not_match_stores_nothing(stack):
    key = unique("bad-crc")
    body = b"x" * 5000
    path = f"/objects/private/{key}"
    headers, *_ = sign("PUT", path, WRITER[0], WRITER[1], host=host(stack),
                       payload_hash="UNSIGNED-PAYLOAD", headers={"x-amz-checksum-crc32": "AAAAAA=="})
    reply = raw_request(stack, "PUT", path, body=body, headers=headers)
    assert reply.status == 400 and s3_error(reply)[0] == "BadDigest"
    assert stored(stack, "private", key) is None


# ---------------------------------------------------------------------------------------------
# anonymous access, caching, audit, CORS


def test_anonymous_clients_read_public_and_write_nothing(stack):
    key = unique("anon")
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"public bytes")
    reply = get(stack, "public", key)
    assert reply.status == 200 and reply.body == b"public bytes"
    assert "private" not in reply.headers.get("cache-control", "")
    for method, bucket in [("PUT", "private"), ("DELETE", "public"), ("PUT", "local"), ("GET", "private")]:
        reply = raw_request(stack, method, f"/objects/{bucket}/{key}", body=b"x" if method == "PUT" else None)
        assert reply.status == 403, (method, bucket, reply.body)
        assert reply.json()["error"] == "forbidden"   # an unsigned client gets our JSON
    assert moto_puts(stack, "private", key) == 0


def test_audit_lines_and_metrics_name_the_key_never_the_secret(stack):
    s3 = client(stack)
    key = unique("audit")
    s3.put_object(Bucket="private", Key=key, Body=b"audited")
    signed_put(stack, unique("audit-bad"), b"x", credentials=(WRITER[0], "wrong-secret-0123456789abc", ""))
    lines = stack.worker_log_lines()
    audit = [line for line in lines if line.get("msg") == "audit"]
    stored_line = next(line for line in audit if line.get("key") == key)
    assert stored_line["key_id"] == WRITER[0] and stored_line["method"] == "PUT" and stored_line["status"] == 200
    assert stored_line["bucket"] == "private" and stored_line.get("remote_addr")
    refused = [line for line in audit if line.get("reason") == "signature"]
    assert refused and refused[-1]["key_id"] == WRITER[0] and refused[-1]["status"] == 403
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in (WRITER[1], READER[1], "Signature=", "X-Amz-Signature", "AWS4-HMAC-SHA256 Credential"):
        assert secret not in text
    metrics = raw_request(stack, "GET", "/metrics").body.decode()
    assert 's3cache_auth_failures_total{reason="signature"}' in metrics
    assert WRITER[1] not in metrics


def test_cors_preflight_and_headers_for_an_allowed_origin_only(stack):
    key = unique("cors")
    reply = raw_request(stack, "OPTIONS", f"/objects/private/{key}", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type, x-amz-date"})
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in reply.headers["access-control-allow-methods"]
    assert reply.headers["access-control-allow-headers"] == "content-type, x-amz-date"
    refused = raw_request(stack, "OPTIONS", f"/objects/private/{key}", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert refused.status == 403 and "access-control-allow-origin" not in refused.headers
    s3 = client(stack)
    s3.put_object(Bucket="private", Key=key, Body=b"cors")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": key}, ExpiresIn=60)
    reply = raw_request(stack, "GET", url[len(stack.base_url):], headers={"Origin": ORIGIN})
    assert reply.status == 200 and reply.headers["access-control-allow-origin"] == ORIGIN
    assert "ETag" in reply.headers["access-control-expose-headers"]
    public = raw_request(stack, "GET", f"/objects/private/{key}", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in public.headers


def test_keys_are_reloaded_on_sighup_and_a_bad_file_is_refused(stack, keys_file):
    import signal
    newcomer = ("S3CTESTNEWKEY0000001", "newcomer-secret-0123456789abcdefghijklm", "private:all")
    key = unique("reloaded")
    assert signed_put(stack, key, b"x", credentials=newcomer).status == 403
    original = keys_file.read_text()
    try:
        keys_file.write_text(original + f"{newcomer[0]} {newcomer[1]} {newcomer[2]}\n")
        reloads = len([r for r in stack.worker_log_lines() if r.get("msg") == "configuration reloaded"])
        os.kill(stack.worker_pid, signal.SIGHUP)
        wait_for(lambda: len([r for r in stack.worker_log_lines() if r.get("msg") == "configuration reloaded"]) > reloads,
                 10, "the reload")
        assert signed_put(stack, key, b"new key", credentials=newcomer).status == 200
        keys_file.write_text(original + "S3CTESTBROKENKEY0001 broken-secret-0123456789abcdefghijk nobucket:sometimes\n")
        refused = len([r for r in stack.worker_log_lines() if r.get("msg", "").startswith("configuration reload refused")])
        os.kill(stack.worker_pid, signal.SIGHUP)
        line = wait_for(lambda: [r for r in stack.worker_log_lines()
                                 if r.get("msg", "").startswith("configuration reload refused")][refused:], 10, "the refusal")
        assert "keys" in line[0]["error"] and "broken-secret" not in json.dumps(line[0])
        # The keys in force stay: the newcomer still signs.
        assert signed_put(stack, key, b"still", credentials=newcomer).status == 200
    finally:
        keys_file.write_text(original)
        os.kill(stack.worker_pid, signal.SIGHUP)


@pytest.mark.parametrize("matches", [True, False])
def test_an_unsigned_trailer_checksum_is_checked_before_the_body_is_stored(stack, matches):
    key = unique("unsigned-trailer")
    body = os.urandom(40_000)
    crc = base64.b64encode(zlib.crc32(body if matches else body[:-1]).to_bytes(4, "big")).decode()
    path = f"/objects/private/{key}"
    headers, *_ = sign("PUT", path, WRITER[0], WRITER[1], host=host(stack),
                       payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                       headers={"x-amz-decoded-content-length": str(len(body)), "content-encoding": "aws-chunked",
                                "x-amz-trailer": "x-amz-checksum-crc32"})
    encoded = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode())
    reply = raw_request(stack, "PUT", path, body=encoded, headers=headers)
    if matches:
        assert reply.status == 200, reply.body
        assert stored(stack, "private", key) == body
    else:
        assert reply.status == 400 and s3_error(reply)[0] == "BadDigest"
        assert stored(stack, "private", key) is None
