#!/usr/bin/env python3
"""Asks the model worker the same request twice -- once answering with the body
itself (mode=stream), once with X-Accel-Redirect (mode=stock or mode=more) -- and
compares status, header lines (as a multiset; Date and Connection left out) and
body bytes. Usage: compare.py [stock|more] ..."""
import hashlib
import http.client
import sys

CASES = [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"Origin": "https://app.example"}),
    ("GET", {"Range": "bytes=0-99"}),
    ("GET", {"Range": "bytes=-100"}),
    ("GET", {"Range": "bytes=299990-"}),
    ("GET", {"Range": "bytes=0-99", "If-Range": '"0123456789abcdef0123456789abcdef"'}),
    ("GET", {"Range": "bytes=0-99", "If-Range": '"stale"'}),
    ("GET", {"Range": "bytes=0-99", "If-Range": "Tue, 01 Jan 2019 00:00:00 GMT"}),
    ("GET", {"Range": "bytes=0-99", "If-Range": "Wed, 02 Jan 2019 00:00:00 GMT"}),
    ("GET", {"Range": "bytes=0-99", "If-Match": '"0123456789abcdef0123456789abcdef"'}),
    ("GET", {"If-Match": '"other"'}),
    ("GET", {"If-Match": "*"}),
    ("GET", {"If-None-Match": '"0123456789abcdef0123456789abcdef"'}),
    ("GET", {"If-None-Match": '"other"'}),
    ("GET", {"If-Modified-Since": "Tue, 01 Jan 2019 00:00:00 GMT"}),
    ("GET", {"If-Modified-Since": "Mon, 31 Dec 2018 00:00:00 GMT"}),
    ("GET", {"If-Unmodified-Since": "Tue, 01 Jan 2019 00:00:00 GMT"}),
    ("GET", {"If-Unmodified-Since": "Sat, 01 Jun 2024 00:00:00 GMT"}),
    ("GET", {"If-Unmodified-Since": "Mon, 31 Dec 2018 00:00:00 GMT"}),
    ("GET", {"Range": "bytes=0-9,20-29"}),
    ("GET", {"Range": "bytes=400000-"}),
    ("HEAD", {"Range": "bytes=0-99"}),
    ("GET", {"Range": "bytes=0-99", "Origin": "https://app.example"}),
    ("GET", {"Accept-Encoding": "gzip"}),
    ("GET", {"Accept-Encoding": "gzip", "Range": "bytes=0-99"}),
]
EXTRA = [("sandbox=1", "GET", {}), ("gone=1", "GET", {}), ("gone=1", "GET", {"Range": "bytes=0-99"})]


def fetch(method, query, headers):
    c = http.client.HTTPConnection("127.0.0.1", 18080, timeout=10)
    c.request(method, "/objects/b/k?" + query, headers=headers)
    r = c.getresponse()
    body = r.read()
    hs = sorted((k.lower(), v) for k, v in r.getheaders() if k.lower() not in ("date", "connection"))
    c.close()
    return r.status, hs, hashlib.sha256(body).hexdigest()[:12], len(body)


def main():
    modes = sys.argv[1:] or ["stock", "more"]
    cases = [("", m, h) for m, h in CASES] + EXTRA
    failures = 0
    for mode in modes:
        print("== mode=%s (compared with mode=stream)" % mode)
        for extra, method, headers in cases:
            q = "&" + extra if extra else ""
            ref = fetch(method, "mode=stream" + q, headers)
            got = fetch(method, "mode=" + mode + q, headers)
            label = "%s %s%s" % (method, " ".join("%s: %s" % kv for kv in headers.items()) or "-", (" [%s]" % extra) if extra else "")
            if ref[0] == got[0] and ref[1] == got[1] and ref[2] == got[2]:
                print("  same  %d len=%-6d %s" % (got[0], got[3], label))
            else:
                failures += 1
                print("  DIFF  %s -> stream %d / %s %d" % (label, ref[0], mode, got[0]))
                for h in sorted(set(ref[1]) - set(got[1])):
                    print("          only in stream: %s: %s" % h)
                for h in sorted(set(got[1]) - set(ref[1])):
                    print("          only in %s:  %s: %s" % (mode, h[0], h[1]))
                if ref[1] == got[1] and sorted(ref[1]) == sorted(got[1]) and len(ref[1]) != len(set(ref[1])):
                    pass
                from collections import Counter
                cr, cg = Counter(ref[1]), Counter(got[1])
                for h in sorted(set(cr) | set(cg)):
                    if cr[h] != cg[h] and cr[h] and cg[h]:
                        print("          count differs (stream %d, %s %d): %s: %s" % (cr[h], mode, cg[h], h[0], h[1]))
                if ref[2] != got[2]:
                    print("          body differs: stream %s (%d) / %s %s (%d)" % (ref[2], ref[3], mode, got[2], got[3]))
    print("%d passed, %d failed" % (len(cases) * len(modes) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
