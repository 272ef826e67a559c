"""The nginx servers that answer the benchmark, added to the stack's own nginx.

They run in the SAME nginx instance as the s3cache server (one master, ``worker_processes``
= nproc), so every column of the table shares the same workers, event loop settings and
kernel limits: the only difference between two columns is what answers a request. (A second
nginx would compete for the same two cores with its own workers and could be tuned
differently by accident.) The runs happen one after another, never at the same time.

Every benchmark server has ``access_log off``: per-request logging in nginx is the same cost
in every column and would only blur the differences. The worker's own request log is part
of the product and stays at its configured level (LOG_LEVEL, default info).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATIC, PROXY_CACHE, RESPONDER, S3CACHE = "static", "proxy_cache", "C libfcgi", "s3cache"
# A second worker with the file tier off (CACHE_DIR empty): every hit from memory, as before
# issue 9. Only when the BenchStack is asked for it (``heap_worker=True``).
S3CACHE_HEAP = "s3cache-heap"
TARGETS = (STATIC, PROXY_CACHE, RESPONDER, S3CACHE)
# The worker targets: /stats tells their hits.
WORKER_TARGETS = (S3CACHE, S3CACHE_HEAP)
# The bare C responder answers only these rows: it is the transport's ceiling, not a cache.
RESPONDER_ROWS = ("1k", "health")


@dataclass(frozen=True)
class Ports:
    static: int
    proxy_cache: int
    responder: int
    s3cache: int
    s3cache_heap: int = 0

    def of(self, target: str) -> int:
        return {STATIC: self.static, PROXY_CACHE: self.proxy_cache, RESPONDER: self.responder,
                S3CACHE: self.s3cache, S3CACHE_HEAP: self.s3cache_heap}[target]


def responder_fastcgi(shipped: str) -> str:
    """The shipped ``s3cache-fastcgi.conf`` pointed at the C responder's upstream: the same
    parameters, keep-alive, buffers and timeouts, so that the two columns differ only in what
    answers. The error pages name locations of the s3cache snippets and are left out."""
    lines = []
    for line in shipped.splitlines():
        if line.strip().startswith("error_page"):
            continue
        lines.append(line.replace("fastcgi_pass s3cache;", "fastcgi_pass bench_responder;"))
    text = "\n".join(lines) + "\n"
    if "fastcgi_pass bench_responder;" not in text:
        raise ValueError("the shipped s3cache-fastcgi.conf has no 'fastcgi_pass s3cache;' to point elsewhere")
    return text


def heap_fastcgi(shipped: str) -> str:
    """The shipped ``s3cache-fastcgi.conf`` pointed at the heap-only worker's upstream (as
    ``responder_fastcgi`` does for the C responder)."""
    return responder_fastcgi(shipped).replace("fastcgi_pass bench_responder;", "fastcgi_pass bench_s3cache_heap;")


def heap_config(port: int, socket: Path, snippet: Path, keepalive: int | None) -> str:
    """The heap-only worker's upstream (the shipped keep-alive) and server: objects and /stats."""
    keepalive_line = "" if keepalive is None else f"\n        keepalive {keepalive};"
    return f"""
    # (e) s3cache with the file tier off: a second worker (CACHE_DIR empty) behind the same
    #     FastCGI settings and keep-alive as the shipped upstream. Every hit from memory.
    upstream bench_s3cache_heap {{
        server unix:{socket};{keepalive_line}
        keepalive_requests 1000;
        keepalive_timeout 30s;
    }}
    server {{
        listen 127.0.0.1:{port};
        access_log off;
        location ^~ /objects/ {{
            include {snippet};
        }}
        location = /stats {{
            include {snippet};
        }}
        location = /health {{
            include {snippet};
        }}
    }}
"""


def http_config(ports: Ports, *, static_root: Path, proxy_cache_dir: Path, moto_port: int,
                proxy_gzip_level: int | None, health_body: str, responder_socket: Path,
                responder_snippet: Path, keepalive: int | None) -> str:
    """The extra ``http {}`` text: the comparison servers (static ceiling, proxy_cache, the bare
    C libfcgi responder) and s3cache.

    ``proxy_gzip_level`` None leaves proxy_cache's ``gzip_comp_level`` at nginx's default (1,
    the cheapest): what ``gzip on`` gives an operator, and the kindest setting for nginx here.
    """
    keepalive_line = "" if keepalive is None else f"\n        keepalive {keepalive};"
    level_line = "" if proxy_gzip_level is None else f"\n            gzip_comp_level {proxy_gzip_level};"
    return f"""
    # ---- bench/run: comparison servers -------------------------------------------------
    # (a) The ceiling: the same bytes as files on tmpfs. JSON is also there precompressed
    #     (.gz, level 6) for gzip_static, the best nginx can do for a client that accepts gzip.
    server {{
        listen 127.0.0.1:{ports.static};
        access_log off;
        # What an operator serving static files has (Debian's nginx.conf: sendfile on);
        # tcp_nopush off because NOTES.md measured it holding back kept-alive responses.
        sendfile on;
        tcp_nopush off;
        types {{
            application/octet-stream bin;
            application/json json;
        }}
        default_type application/octet-stream;
        location /objects/ {{
            root {static_root};
            gzip_static on;
        }}
        # The /health row's ceiling: nginx answering the worker's JSON by itself, so the
        # /health ratio shows what the FastCGI round trip to the worker costs.
        location = /health {{
            default_type application/json;
            add_header Cache-Control no-store;
            return 200 '{health_body}';
        }}
    }}

    # (b) What an operator would otherwise pick: proxy_cache in front of the same S3 (moto),
    #     path-style URLs, anonymous GETs (the bench bucket has a public-read policy).
    #     Compressible types are gzipped per response (gzip on), as nginx can only do; the level
    #     is nginx's default unless bench/run --proxy-gzip-level says otherwise.
    proxy_cache_path {proxy_cache_dir} levels=1:2 keys_zone=bench_proxy:10m max_size=1g inactive=1d use_temp_path=off;
    upstream bench_moto {{
        server 127.0.0.1:{moto_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{ports.proxy_cache};
        access_log off;
        sendfile on;
        tcp_nopush off;
        location /objects/ {{
            # /objects/bench/k -> /bench/k on moto
            proxy_pass http://bench_moto/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:{moto_port};
            proxy_cache bench_proxy;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
            gzip on;
            gzip_types application/json;
            gzip_proxied any;
            gzip_vary on;{level_line}
        }}
    }}

    # (c) The transport's ceiling: a bare C libfcgi responder (responder.c) behind the shipped
    #     FastCGI settings, with the shipped upstream's keep-alive.
    upstream bench_responder {{
        server unix:{responder_socket};{keepalive_line}
        keepalive_requests 1000;
        keepalive_timeout 30s;
    }}
    server {{
        listen 127.0.0.1:{ports.responder};
        access_log off;
        location / {{
            include {responder_snippet};
        }}
    }}

    # (d) s3cache exactly as shipped: the operator's include of the locations snippet.
    server {{
        listen 127.0.0.1:{ports.s3cache};
        server_name localhost;
        access_log off;
        include snippets/s3cache-locations.conf;
    }}
"""
