#!/usr/bin/env python3
"""Minimal FastCGI responder (raw sockets, one thread per connection) that
mimics an s3cache worker answering with X-Accel-Redirect.

Query parameters of the client request steer the response:
  (parameters are read from REQUEST_URI)
  loc=<name>     internal location prefix to redirect to (default "internal")
  file=<name>    file name under that location (default "obj.bin")
  noaccel=1      answer with the body itself (normal worker response)
  status=<line>  value of the Status header (default "200 OK")
  cl=<n>         Content-Length to send (default: S3 object length = file size)
  noct=1         omit Content-Type
  ce=<v>         send Content-Encoding: v
  nolm=1 / noetag=1  omit Last-Modified / ETag
  extra=<Name:Value> one extra header (URL-encoded)
  ct=<type>      Content-Type value; xar=<uri> literal X-Accel-Redirect value
  accel_limit/accel_charset/accel_buffering/accel_expires=<v>  X-Accel-* headers
  fbomit=1       in that fallback, leave out the headers nginx already copied
  fbfile=<name>  file streamed when nginx comes back with HTTP_X_S3CACHE_ACCEL_FALLBACK
Every request's params are logged to stderr.
"""
import os
import socket
import struct
import sys
import threading
import urllib.parse

FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST = 1, 2, 3
FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 4, 5, 6
FCGI_KEEP_CONN = 1

DATA_DIR = os.environ.get("DATA_DIR", os.path.join(os.path.dirname(__file__), "data"))

S3_ETAG = '"0123456789abcdef0123456789abcdef"'
S3_LAST_MODIFIED = "Tue, 01 Jan 2019 00:00:00 GMT"


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_record(sock):
    hdr = recv_exact(sock, 8)
    version, rtype, req_id, clen, plen, _ = struct.unpack("!BBHHBB", hdr)
    content = recv_exact(sock, clen) if clen else b""
    if plen:
        recv_exact(sock, plen)
    return rtype, req_id, content


def encode_record(rtype, req_id, content):
    out = b""
    if not content:
        return struct.pack("!BBHHBB", 1, rtype, req_id, 0, 0, 0)
    for i in range(0, len(content), 65535):
        part = content[i:i + 65535]
        out += struct.pack("!BBHHBB", 1, rtype, req_id, len(part), 0, 0) + part
    return out


def write_record(sock, rtype, req_id, content):
    # split into <= 65535-byte records
    if not content:
        sock.sendall(struct.pack("!BBHHBB", 1, rtype, req_id, 0, 0, 0))
        return
    for i in range(0, len(content), 65535):
        part = content[i:i + 65535]
        sock.sendall(struct.pack("!BBHHBB", 1, rtype, req_id, len(part), 0, 0) + part)


def parse_params(data):
    params = {}
    i = 0
    while i < len(data):
        lens = []
        for _ in range(2):
            b = data[i]
            if b >> 7:
                lens.append(struct.unpack("!I", data[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lens.append(b)
                i += 1
        k = data[i:i + lens[0]].decode("latin-1"); i += lens[0]
        v = data[i:i + lens[1]].decode("latin-1"); i += lens[1]
        params[k] = v
    return params


def build_response(params):
    # Read the steering parameters from the original request (REQUEST_URI), which
    # survives internal redirects; QUERY_STRING is $args and changes with them.
    ru = params.get("REQUEST_URI", "")
    q = dict(urllib.parse.parse_qsl(ru.split("?", 1)[1] if "?" in ru else "", keep_blank_values=True))
    if "mode" in q:
        if params.get("S3CACHE_FILE_MISSING"):
            q["mode"] = "stream"
        return real_response(params, q)
    if params.get("HTTP_X_S3CACHE_ACCEL_FALLBACK"):
        q["noaccel"] = "1"
        q["file"] = q.get("fbfile", q.get("file", "obj.bin"))
    loc = q.get("loc", "internal")
    fname = q.get("file", "obj.bin")
    path = os.path.join(DATA_DIR, fname)
    size = os.path.getsize(path) if os.path.exists(path) else 0
    h = [("Status", q.get("status", "200 OK"))]
    if "noct" not in q:
        h.append(("Content-Type", q.get("ct", "application/x-s3-object")))
    h.append(("Content-Length", q.get("cl", str(size))))
    if "noetag" not in q:
        h.append(("ETag", S3_ETAG))
    if "nolm" not in q:
        h.append(("Last-Modified", S3_LAST_MODIFIED))
    h += [
        ("Cache-Control", "public, max-age=60"),
        ("Expires", "Wed, 01 Jan 2031 00:00:00 GMT"),
        ("Content-Disposition", 'attachment; filename="object.dat"'),
        ("Vary", "Accept-Encoding"),
        ("Accept-Ranges", "bytes"),
        ("X-Cache", "HIT"),
        ("Cache-Status", "s3cache; hit"),
        ("X-Custom", "from-worker"),
        ("Set-Cookie", "w=1; Path=/"),
        ("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ("Server", "s3cache-worker"),
    ]
    if "ce" in q:
        h.append(("Content-Encoding", q["ce"]))
    if "extra" in q:
        k, v = q["extra"].split(":", 1)
        h.append((k.strip(), v.strip()))
    body = b""
    if "noaccel" in q and params.get("HTTP_X_S3CACHE_ACCEL_FALLBACK"):
        h.append(("X-Fallback", "1"))
    if "noaccel" in q:
        with open(path, "rb") as f:
            body = f.read()
        if params.get("REQUEST_METHOD") == "HEAD":
            body = b""
    else:
        h.append(("X-Accel-Redirect", q.get("xar", "/%s/%s" % (loc, fname))))
        for k in ("accel_limit", "accel_charset", "accel_buffering", "accel_expires"):
            if k in q:
                h.append(("X-Accel-" + {"accel_limit": "Limit-Rate", "accel_charset": "Charset",
                                        "accel_buffering": "Buffering", "accel_expires": "Expires"}[k], q[k]))
    if params.get("HTTP_X_S3CACHE_ACCEL_FALLBACK") and "fbomit" in q:
        # nginx still holds the headers it copied for the X-Accel-Redirect
        # (ngx_http_upstream_headers_in[] entries with redirect = 1).
        copied = {"cache-control", "expires", "content-disposition", "set-cookie", "accept-ranges"}
        h = [kv for kv in h if kv[0].lower() not in copied]
    head = "".join("%s: %s\r\n" % kv for kv in h) + "\r\n"
    return head.encode("latin-1") + body


# ---------------------------------------------------------------------------
# "mode=" requests: a small model of the s3cache worker's read path, answering
# either with the body itself (mode=stream) or with X-Accel-Redirect following
# the rules in FINDINGS.md (mode=stock: add_header config; mode=more:
# headers-more config). compare.sh asks the same thing in both ways and diffs.
# ---------------------------------------------------------------------------
import email.utils

REAL_FILE = "files/ab/abcdef0123456789"          # the cached object, no extension
REAL_CT = "text/plain; charset=utf-8"


def _http_date(value):
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except Exception:
        return None


def _etag_list(value):
    return [t.strip() for t in value.split(",") if t.strip()]


def real_response(params, q):
    method = params.get("REQUEST_METHOD", "GET")
    path = os.path.join(DATA_DIR, REAL_FILE)
    length = os.path.getsize(path)
    etag, lm = S3_ETAG, S3_LAST_MODIFIED
    lm_ts = _http_date(lm)
    hdr = lambda name: params.get("HTTP_" + name.upper().replace("-", "_"))
    # headers every answer about the object carries (CachedResponder.commonHeaders etc.)
    common = [("Last-Modified", lm), ("Cache-Control", "max-age=300"),
              ("Content-Disposition", 'inline; filename="report.txt"'), ("Content-Language", "en"),
              ("Expires", "Wed, 01 Jan 2031 00:00:00 GMT")]
    if q.get("sandbox"):
        common = [kv for kv in common if kv[0] != "Content-Disposition"]
    vary = "Accept-Encoding, Origin" if hdr("Origin") else "Accept-Encoding"
    common.append(("Vary", vary))
    added = [("X-Cache", "HIT"), ("Cache-Status", "s3cache; hit")]
    if q.get("sandbox"):
        added += [("Content-Disposition", "attachment"), ("Content-Security-Policy", "sandbox")]
    if hdr("Origin"):
        added += [("Access-Control-Allow-Origin", hdr("Origin")),
                  ("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Range, Last-Modified, X-Cache, Cache-Status")]
    nosniff = [("X-Content-Type-Options", "nosniff")]

    def out(status, headers, body=b""):
        lines = [("Status", status)] + nosniff + headers
        if params.get("S3CACHE_FILE_MISSING"):
            # nginx still holds what it copied for the X-Accel-Redirect (redirect = 1 in
            # ngx_http_upstream_headers_in[]); sending them again would double them.
            copied = {"cache-control", "expires", "content-disposition", "set-cookie", "accept-ranges"}
            lines = [kv for kv in lines if kv[0].lower() not in copied]
        return "".join("%s: %s\r\n" % kv for kv in lines).encode("latin-1") + b"\r\n" + (b"" if method == "HEAD" else body)

    # preconditions, RFC 9110 13.2.2 order
    im, ius, inm, ims = hdr("If-Match"), hdr("If-Unmodified-Since"), hdr("If-None-Match"), hdr("If-Modified-Since")
    if im is not None:
        if not (im.strip() == "*" or etag in [t for t in _etag_list(im) if not t.startswith("W/")]):
            return out("412 Precondition Failed", [("Content-Type", "application/json")] + added, b"{}")
    elif ius is not None and _http_date(ius) is not None and lm_ts > _http_date(ius):
        return out("412 Precondition Failed", [("Content-Type", "application/json")] + added, b"{}")
    if inm is not None:
        if inm.strip() == "*" or etag in [t[2:] if t.startswith("W/") else t for t in _etag_list(inm)]:
            return out("304 Not Modified", [("ETag", etag)] + common + added)
    elif ims is not None and _http_date(ims) is not None and lm_ts <= _http_date(ims):
        return out("304 Not Modified", [("ETag", etag)] + common + added)

    # range: one range only, If-Range by strong ETag or exact date
    rng, partial = hdr("Range"), None
    if rng and rng.startswith("bytes=") and "," not in rng:
        ir = hdr("If-Range")
        ok = ir is None or (ir.startswith('"') and ir == etag) or (not ir.startswith(('"', "W/")) and _http_date(ir) == lm_ts)
        spec = rng[6:].strip()
        a, _, b = spec.partition("-")
        try:
            if ok and a == "" and b:
                n = int(b)
                partial = (max(0, length - n), length - 1) if n > 0 else "unsatisfiable"
            elif ok and a:
                start = int(a)
                end = min(int(b), length - 1) if b else length - 1
                partial = (start, end) if start < length and start <= end else "unsatisfiable"
        except ValueError:
            partial = None
    if partial == "unsatisfiable":
        return out("416 Range Not Satisfiable", [("Content-Type", "application/json"), ("Content-Range", "bytes */%d" % length)] + added, b"{}")

    whole = [("Content-Type", REAL_CT), ("Content-Length", str(length)), ("ETag", etag), ("Accept-Ranges", "bytes")] + common + added
    mode = q.get("mode")
    # stock nginx re-checks If-Match against the file and always fails it: stream those
    if mode == "stock" and im is not None and im.strip() != "*":
        mode = "stream"
    if mode in ("stock", "more"):
        prefix = "/_s3cache_files" if mode == "stock" else "/_s3cache_more"
        which = "range" if partial else "whole"
        target = REAL_FILE if not q.get("gone") else "files/00/evicted"
        return out("200 OK", whole + [("X-Accel-Redirect", "%s/%s/%s" % (prefix, which, target))])
    with open(path, "rb") as f:
        data = f.read()
    if partial:
        start, end = partial
        return out("206 Partial Content", [("Content-Type", REAL_CT), ("Content-Length", str(end - start + 1)),
                   ("Content-Range", "bytes %d-%d/%d" % (start, end, length)), ("ETag", etag),
                   ("Accept-Ranges", "bytes")] + common + added, data[start:end + 1])
    return out("200 OK", whole, data)


def handle(conn):
    try:
        while True:
            req = {}
            params_buf = b""
            keep = False
            while True:
                rtype, rid, content = read_record(conn)
                if rtype == FCGI_BEGIN_REQUEST:
                    role, flags = struct.unpack("!HB", content[:3])
                    keep = bool(flags & FCGI_KEEP_CONN)
                elif rtype == FCGI_PARAMS:
                    if content:
                        params_buf += content
                    else:
                        req = parse_params(params_buf)
                elif rtype == FCGI_STDIN:
                    if not content:
                        break
            sys.stderr.write("REQ [conn %s] %s %s hdrs=%s\n" % (conn.getpeername()[1],
                req.get("REQUEST_METHOD"), req.get("REQUEST_URI"),
                {k: v for k, v in req.items() if k.startswith("HTTP_")}))
            sys.stderr.flush()
            out = build_response(req)
            if "splitwrites" in req.get("REQUEST_URI", ""):
                # three separate writes: headers, end of stdout, end of request
                write_record(conn, FCGI_STDOUT, rid, out)
                write_record(conn, FCGI_STDOUT, rid, b"")
                write_record(conn, FCGI_END_REQUEST, rid, struct.pack("!IB3x", 0, 0))
            else:
                # the whole response in one write, as a buffered writer would
                conn.sendall(encode_record(FCGI_STDOUT, rid, out) + encode_record(FCGI_STDOUT, rid, b"")
                             + encode_record(FCGI_END_REQUEST, rid, struct.pack("!IB3x", 0, 0)))
            if not keep:
                break
    except EOFError:
        sys.stderr.write("EOF [conn %s]\n" % (conn.getpeername()[1],))
        sys.stderr.flush()
    finally:
        conn.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 19001
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    sys.stderr.write("fcgi worker on %d, data %s\n" % (port, DATA_DIR))
    sys.stderr.flush()
    while True:
        c, _ = s.accept()
        sys.stderr.write("ACCEPT %s\n" % (_,))
        sys.stderr.flush()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
