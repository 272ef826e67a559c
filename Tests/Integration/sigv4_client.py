"""A small SigV4 client for the tests that need what SDKs will not send: a chosen clock, a
tampered request, signed aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, which boto3
never uses). Written from AWS's SigV4 and "Signature Calculations for the Authorization Header:
Transferring Payload in Multiple Chunks" documentation; boto3 and the aws CLI check the common
cases independently.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, day: str, region: str = "us-east-1", service: str = "s3") -> bytes:
    key = _hmac(("AWS4" + secret).encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def timestamp(at: datetime.datetime | None = None) -> str:
    return (at or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def sign(method: str, path: str, key_id: str, secret: str, *, host: str, headers: dict[str, str] | None = None,
         payload_hash: str = EMPTY_SHA256, amz_date: str | None = None, region: str = "us-east-1",
         query: str = "") -> tuple[dict[str, str], str, bytes, str]:
    """Headers for a signed request to ``path`` (already encoded as it goes on the wire):
    (headers, signature, signing key, scope)."""
    amz_date = amz_date or timestamp()
    day = amz_date[:8]
    all_headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    all_headers.update({name.lower(): value for name, value in (headers or {}).items()})
    names = sorted(all_headers)
    canonical_headers = "".join(f"{name}:{' '.join(all_headers[name].split())}\n" for name in names)
    signed_headers = ";".join(names)
    pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                               for k, v in pairs)
    canonical_path = urllib.parse.quote(urllib.parse.unquote(path), safe="/-_.~")
    canonical = "\n".join([method, canonical_path, canonical_query, canonical_headers, signed_headers, payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(secret, day, region)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    out = dict(all_headers)
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed_headers}, "
                            f"Signature={signature}")
    out.pop("host")
    return out, signature, key, scope


def signed_chunks(body: bytes, *, seed: str, key: bytes, amz_date: str, scope: str, chunk_size: int = 8192,
                  tamper_chunk: int | None = None, trailer: dict[str, str] | None = None) -> bytes:
    """``body`` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] chunks, each signed and chained
    from ``seed`` (the request's signature). ``tamper_chunk`` flips a byte in that chunk's data
    after signing it."""
    out = b""
    previous = seed
    pieces = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)] + [b""]
    for index, piece in enumerate(pieces):
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256,
                                    hashlib.sha256(piece).hexdigest()])
        signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        data = piece
        if tamper_chunk == index and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        out += f"{len(piece):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n" * (1 if piece else 0)
        previous = signature
    if trailer is None:
        return out + b"\r\n"
    lines = "".join(f"{name}:{value}\n" for name, value in trailer.items())
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                                hashlib.sha256(lines.encode()).hexdigest()])
    trailer_signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (out + "".join(f"{name}:{value}\r\n" for name, value in trailer.items()).encode()
            + f"x-amz-trailer-signature:{trailer_signature}\r\n\r\n".encode())
