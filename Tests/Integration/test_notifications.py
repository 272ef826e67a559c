"""POST /notifications through nginx: bucket events invalidate what S3 changed behind our back.

The bodies are the fixtures in ``fixtures/notifications/``, written from AWS's, SNS's, MinIO's
and Ceph RGW's published formats (their sources are in FACTS.md there); a test only fills in
the bucket and key. Objects are changed in moto directly, never through the gateway, so only
the notification can make the new version visible before the TTL.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from pathlib import Path

import pytest

from cache_support import assert_reported, get, start_cache_stack, stats
from conftest import assert_json_error, fcgi_params, fcgi_request, raw_request, unique

FIXTURES = Path(__file__).parent / "fixtures" / "notifications"
TOKEN = "notify-token-0123456789abcdef"


class ConfirmationSink:
    """A stand-in for SNS's ConfirmSubscription endpoint: records the GETs it receives."""

    def __init__(self):
        self.requests: list[str] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                sink.requests.append(self.path)
                body = b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink():
    s = ConfirmationSink()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cached(sink):
    c = start_cache_stack(worker_env={
        "CACHE_TTL": "600", "NOTIFY_TOKEN": TOKEN, "NOTIFY_CONFIRM_SNS": "true",
        "NOTIFY_SNS_ENDPOINTS": f"http://127.0.0.1:{sink.port}/"})
    yield c
    c.stop()


def fixture(name: str, **values: str) -> str:
    text = (FIXTURES / name).read_text()
    for placeholder in ["KEY2", "RAW_OBJECT_NAME", "SUBSCRIBE_URL", "MESSAGE", "BUCKET", "KEY"]:
        if placeholder in values:
            text = text.replace(placeholder, values[placeholder])
    return text


def form_encoded(key: str) -> str:
    """As AWS and MinIO put a key in an event: form-encoded, `/` included (MinIO)."""
    return urllib.parse.quote_plus(key, safe="")


def aws_through_sns(bucket: str, key: str, removed_key: str = "unused") -> str:
    event = fixture("aws-s3-event.json", BUCKET=bucket, KEY=form_encoded(key), KEY2=form_encoded(removed_key))
    # SNS carries the event as a JSON string: the placeholder is replaced by its escaped form.
    return fixture("sns-notification.json", MESSAGE=json.dumps(event)[1:-1])


def notify(stack, body: str | bytes, *, bearer: str | None = TOKEN, query: str = "", headers: dict | None = None):
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if bearer is not None:
        all_headers["Authorization"] = f"Bearer {bearer}"
    data = body if isinstance(body, bytes) else body.encode()
    return raw_request(stack, "POST", f"/notifications{query}", body=data, headers=all_headers)


def read(stack, bucket: str, key: str):
    return get(stack, bucket, urllib.parse.quote(key, safe="/"))


def changed_behind_our_back(stack, key: str, bucket: str = "public") -> None:
    stack.boto3.put_object(Bucket=bucket, Key=key, Body=b"old")
    assert_reported(read(stack, bucket, key), "MISS")
    stack.boto3.put_object(Bucket=bucket, Key=key, Body=b"new")
    stale = read(stack, bucket, key)
    assert stale.body == b"old"
    assert_reported(stale, "HIT")


def test_an_aws_event_through_sns_makes_the_new_version_visible(cached):
    stack = cached.stack
    key = f"{unique('aws')}/red flower+1.jpg"
    changed_behind_our_back(stack, key)
    reply = notify(stack, aws_through_sns("public", key), bearer=None, query=f"?token={TOKEN}",
                   headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"})
    assert reply.status == 200, reply.body
    assert reply.json() == {"events": 2, "applied": 2, "ignored": 0}
    fresh = read(stack, "public", key)
    assert fresh.body == b"new"
    assert_reported(fresh, "MISS")


def test_a_minio_webhook_event_with_a_bearer_token(cached):
    stack = cached.stack
    key = f"{unique('minio')}/dir/my file (1).txt"
    changed_behind_our_back(stack, key)
    body = fixture("minio-webhook.json", BUCKET="public", KEY=form_encoded(key), RAW_OBJECT_NAME=key)
    reply = notify(stack, body)
    assert reply.status == 200 and reply.json() == {"events": 1, "applied": 1, "ignored": 0}, reply.body
    assert read(stack, "public", key).body == b"new"


def test_a_ceph_rgw_event_with_the_token_in_the_query(cached):
    """RGW sends the key as it is, not encoded: a `+` in it must not become a space."""
    stack = cached.stack
    key = f"{unique('ceph')}/a+b%c.txt"
    changed_behind_our_back(stack, key)
    body = fixture("ceph-rgw-event.json", BUCKET="public", KEY=key)
    reply = notify(stack, body, bearer=None, query=f"?token={TOKEN}")
    assert reply.status == 200 and reply.json()["applied"] == 1, reply.body
    assert read(stack, "public", key).body == b"new"


def test_events_for_other_buckets_and_metadata_changes_are_ignored_and_counted(cached):
    stack = cached.stack
    key = unique("ignored")
    before = stats(stack)["notifications"]
    event = json.loads(fixture("aws-s3-event.json", BUCKET="not-served", KEY=key, KEY2=key))
    event["Records"][1]["s3"]["bucket"]["name"] = "public"
    event["Records"][1]["eventName"] = "ObjectTagging:Put"
    reply = notify(stack, json.dumps(event))
    assert reply.status == 200 and reply.json() == {"events": 2, "applied": 0, "ignored": 2}
    after = stats(stack)["notifications"]
    assert after["events_ignored"] == before["events_ignored"] + 2
    assert after["accepted"] == before["accepted"] + 1


def test_the_s3_test_event_is_accepted_and_changes_nothing(cached):
    test_event = fixture("sns-s3-test-event.json", BUCKET="public")
    reply = notify(cached.stack, fixture("sns-notification.json", MESSAGE=json.dumps(test_event)[1:-1]))
    assert reply.status == 200 and reply.json() == {"events": 0, "applied": 0, "ignored": 0}


def test_a_subscription_is_confirmed_at_an_allowed_sns_url_only(cached, sink):
    stack = cached.stack
    url = f"http://127.0.0.1:{sink.port}/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123:t&Token=abc"
    reply = notify(stack, fixture("sns-subscription-confirmation.json", SUBSCRIBE_URL=url))
    assert reply.status == 200, reply.body
    assert reply.json()["confirmed"] is True
    assert sink.requests == ["/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123:t&Token=abc"]
    for elsewhere in [f"http://127.0.0.2:{sink.port}/?Action=ConfirmSubscription&Token=abc",
                      f"http://127.0.0.1:{sink.port}/?Action=Publish"]:
        refused = notify(stack, fixture("sns-subscription-confirmation.json", SUBSCRIBE_URL=elsewhere))
        assert_json_error(refused, 400, "invalid_notification")
    assert len(sink.requests) == 1, "no URL but SNS's own is ever visited"


def test_refusals_are_clear_and_lose_nothing(cached):
    stack = cached.stack
    key = unique("kept")
    stack.boto3.put_object(Bucket="public", Key=key, Body=b"cached")
    get(stack, "public", key)
    body = aws_through_sns("public", key)
    before = stats(stack)["notifications"]

    for reply in [notify(stack, body, bearer="wrong-token-0123456789"), notify(stack, body, bearer=None),
                  notify(stack, body, bearer=None, query="?token=wrong"), notify(stack, body, bearer=TOKEN[:-1])]:
        assert_json_error(reply, 401, "unauthorized")
        assert reply.headers.get("www-authenticate") == "Bearer"
    for malformed in ["{not json", '{"Records": [{"eventName": "ObjectCreated:Put"}]}', "[]", ""]:
        assert_json_error(notify(stack, malformed), 400, "invalid_notification")
    # nginx's bound on the location, answered as JSON.
    assert_json_error(notify(stack, b" " * (1024 * 1024 + 1)), 413, "payload_too_large")
    assert_json_error(raw_request(stack, "GET", "/notifications"), 405, "method_not_allowed")

    after = stats(stack)["notifications"]
    assert after["refused"] >= before["refused"] + 8
    assert after["events_applied"] == before["events_applied"]
    assert_reported(get(stack, "public", key), "HIT")   # nothing was invalidated
    logged = " ".join(json.dumps(line) for line in stack.worker_log_lines())
    assert TOKEN not in logged and "wrong-token" not in logged


def test_the_worker_bounds_the_body_itself(cached):
    """Behind an nginx that allows more (an operator's edit), the worker still refuses: 413."""
    stack = cached.stack
    params = fcgi_params("POST", "/notifications", HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                         CONTENT_LENGTH=str(2 * 1024 * 1024))
    assert_json_error(fcgi_request(stack.socket_path, params, body=b" " * (2 * 1024 * 1024)), 413, "payload_too_large")


def test_without_a_token_the_endpoint_does_not_exist():
    c = start_cache_stack()
    try:
        assert_json_error(notify(c.stack, "{}"), 404, "not_found")
    finally:
        c.stop()
