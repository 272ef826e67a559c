"""The shared stack also serves HTTPS (self-signed certificate, verified by the client): one
full round trip through the TLS server block that includes the same shipped snippets."""

from __future__ import annotations

import os
import ssl

import pytest
import requests

from checks import assert_absent
from conftest import assert_json_error, raw_request, unique


def test_round_trip_over_https(stack):
    key = f"{unique('tls')}/data.bin"
    url = f"{stack.tls_base_url}/objects/local/{key}"
    body = os.urandom(200_000)
    # verify= on each call: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
    trust = {"verify": str(stack.cert_path), "timeout": 30}
    with requests.Session() as session:
        put = session.put(url, data=body, headers={"Content-Type": "application/x-tls-test"}, **trust)
        assert put.status_code == 200, put.text
        assert stack.boto3.get_object(Bucket="local", Key=key)["Body"].read() == body

        get = session.get(url, **trust)
        assert get.status_code == 200 and get.content == body
        assert get.headers["Content-Type"] == "application/x-tls-test"

        head = session.head(url, **trust)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(body))

        delete = session.delete(url, **trust)
        assert delete.status_code == 204
    assert_absent(stack, "local", key)


def test_https_errors_are_the_same_json(stack):
    assert_json_error(raw_request(stack, "GET", "/objects/public/../private/x", tls=True), 400, "invalid_object")
    assert_json_error(raw_request(stack, "PUT", "/objects/public/x", body=b"x", tls=True), 403, "forbidden")


def test_https_certificate_is_verified(stack):
    """The client really checks the certificate: without the self-signed one as trust anchor
    the handshake fails (so the tests above did verify it)."""
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{stack.tls_base_url}/health", timeout=10, verify=True)
    context = ssl.create_default_context(cafile=str(stack.cert_path))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
