"""The worker's access log: one JSON line per request on stdout, with the fields Gateway.log
writes (method, bucket, key, status, duration_ms, bytes_sent, remote_addr, user_agent,
request_id, cache, error) holding the right values for that request."""

from __future__ import annotations

import gzip
import re
import time
from urllib.parse import quote

from conftest import fcgi_params, fcgi_request, raw_request, unique

REQUEST_FIELDS = {"time", "level", "msg", "method", "status", "duration_ms", "bytes_sent", "remote_addr",
                  "user_agent", "request_id"}


def logged(stack, predicate, timeout: float = 5.0) -> dict:
    return stack.wait_for_log(predicate, timeout=timeout)


def request_with_agent(stack, method: str, target: str, **options):
    """``raw_request`` with a User-Agent no other request uses; returns (reply, agent, elapsed)."""
    agent = f"log-test/{unique('ua')}"
    headers = {"User-Agent": agent, **options.pop("headers", {})}
    started = time.monotonic()
    reply = raw_request(stack, method, target, headers=headers, **options)
    return reply, agent, time.monotonic() - started


def record_for(stack, agent: str) -> dict:
    record = logged(stack, lambda line: line.get("user_agent") == agent)
    missing = REQUEST_FIELDS - record.keys()
    assert not missing, f"log line lacks {missing}: {record}"
    assert record["msg"] == "request"
    return record


def test_get_is_logged_with_its_values(stack):
    key = f"{unique('log')}/file.bin"
    body = b"logged body\x00\xff" * 100
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="application/octet-stream")
    reply, agent, elapsed = request_with_agent(stack, "GET", f"/objects/public/{key}")
    assert reply.status == 200 and reply.body == body
    record = record_for(stack, agent)
    assert record["method"] == "GET"
    assert record["bucket"] == "public" and record["key"] == key
    assert record["status"] == 200
    assert record["bytes_sent"] == len(body)
    assert record["remote_addr"] == "127.0.0.1"
    assert record["cache"] == reply.headers["x-cache"] == "MISS"
    assert record["level"] == "info" and "error" not in record
    assert isinstance(record["duration_ms"], (int, float)) and 0 <= record["duration_ms"] <= elapsed * 1000 + 1
    assert re.fullmatch(r"[0-9a-f]{32}", record["request_id"]), record["request_id"]


def test_head_put_delete_and_refusals_are_logged(stack):
    key = f"{unique('log')}/doc.txt"
    target = f"/objects/local/{key}"
    put, put_agent, _ = request_with_agent(stack, "PUT", target, body=b"twelve bytes")
    head, head_agent, _ = request_with_agent(stack, "HEAD", target)
    delete, delete_agent, _ = request_with_agent(stack, "DELETE", target)
    refused, refused_agent, _ = request_with_agent(stack, "PUT", f"/objects/public/{key}", body=b"no")
    missing, missing_agent, _ = request_with_agent(stack, "GET", target)
    assert (put.status, head.status, delete.status, refused.status, missing.status) == (200, 200, 204, 403, 404)

    expected = [
        (put_agent, "PUT", "local", 200, len(put.body)),
        (head_agent, "HEAD", "local", 200, 0),
        (delete_agent, "DELETE", "local", 204, 0),
        (refused_agent, "PUT", "public", 403, len(refused.body)),
        (missing_agent, "GET", "local", 404, len(missing.body)),
    ]
    for agent, method, bucket, status, sent in expected:
        record = record_for(stack, agent)
        assert (record["method"], record["bucket"], record["key"], record["status"], record["bytes_sent"]) == \
            (method, bucket, key, status, sent), record
    assert "forbidden" in record_for(stack, refused_agent)["error"]


def test_bytes_sent_counts_what_went_out_compressed(stack):
    key = f"{unique('log')}/data.json"
    body = b'{"compressible": "yes, very"}\n' * 500
    stack.boto3.put_object(Bucket="public", Key=key, Body=body, ContentType="application/json")
    assert raw_request(stack, "GET", f"/objects/public/{key}").body == body      # now cached, gzip inside
    reply, agent, _ = request_with_agent(stack, "GET", f"/objects/public/{key}", headers={"Accept-Encoding": "gzip"})
    assert reply.headers.get("content-encoding") == "gzip"
    assert gzip.decompress(reply.body) == body
    record = record_for(stack, agent)
    assert record["cache"] == "HIT"
    assert record["bytes_sent"] == len(reply.body) < len(body)


def test_requests_without_an_object_are_logged_without_bucket_and_key(stack):
    invalid, invalid_agent, _ = request_with_agent(stack, "GET", "/objects/public/../private/x")
    health, health_agent, _ = request_with_agent(stack, "GET", "/health")
    assert (invalid.status, health.status) == (400, 200)
    invalid_record = record_for(stack, invalid_agent)
    assert invalid_record["status"] == 400 and "bucket" not in invalid_record and "key" not in invalid_record
    assert "invalid_object" in invalid_record["error"]
    health_record = record_for(stack, health_agent)
    assert health_record["path"] == "/health" and health_record["bytes_sent"] == len(health.body)


def test_exactly_one_line_per_request(stack):
    agent = f"log-test/{unique('count')}"
    targets = ["/objects/public/hello.txt", "/health", f"/objects/public/{unique('missing')}", "/objects/other/x",
               "/objects/public/%2e%2e/x"] * 4
    for target in targets:
        raw_request(stack, "GET", target, headers={"User-Agent": agent})

    def matching():
        return [record for record in stack.worker_log_lines() if record.get("user_agent") == agent]

    deadline = time.monotonic() + 5
    while len(matching()) < len(targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)   # room for a duplicate line to show up
    lines = matching()
    assert len(lines) == len(targets)
    assert [record.get("status") for record in lines] == [200, 200, 404, 403, 400] * 4


def test_log_lines_stay_single_json_lines(stack):
    """Line breaks, quotes and U+2028 in logged values are escaped: one parseable line each."""
    agent = 'evil\n{"level":"info","msg":"forged"}\r\t"quoted" \\ \u2028 end'
    key = f'{unique("log")}/quote"back\\slash\u2028line'
    params = fcgi_params("GET", f"/objects/public/{quote(key)}", HTTP_USER_AGENT=agent)
    reply = fcgi_request(stack.socket_path, params)
    assert reply.status == 404
    record = logged(stack, lambda line: line.get("key") == key)
    assert record["user_agent"] == agent
    assert not [line for line in stack.worker_log_lines() if "_unparsed" in line or line.get("msg") == "forged"]
    raw_lines = stack.worker_log_path().read_text().splitlines()
    assert sum(1 for line in raw_lines if "forged" in line) == 1


def test_secret_is_never_logged(stack):
    assert stack.secret_key not in stack.worker_output()
