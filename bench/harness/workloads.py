"""What is measured: the objects (bytes and how a client asks for them) and /health.

Every workload is served under the same path on every server (``/objects/bench/<file>``), so
the only thing that differs between the columns of the table is what answers.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass

BUCKET = "bench"
KiB = 1024
MiB = 1024 * KiB

# Word lists for the JSON documents: an API listing, not one repeated byte, so that gzip's
# ratio (and its cost) is what a real JSON body gives.
_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Niklaus",
          "Leslie", "Margaret", "Dennis", "Sophie", "Tim", "Hedy", "John", "Karen", "Linus", "Shafi"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
         "Wirth", "Lamport", "Hamilton", "Ritchie", "Wilson", "Berners-Lee", "Lamarr", "Backus",
         "Sparck-Jones", "Torvalds", "Goldwasser"]
_CITIES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Quito", "Lyon", "Gdansk", "Austin", "Perth", "Pune"]
_TAGS = ["billing", "beta", "priority", "eu", "us", "apac", "trial", "enterprise", "legacy", "mobile",
         "web", "api", "partner", "internal"]
_WORDS = ("the quick cache serves bytes from memory while the backend sleeps and every request "
          "that misses waits for one fetch of the object before it is stored compressed once").split()


@dataclass(frozen=True)
class Workload:
    """One row of the table."""

    name: str            # row label
    slug: str            # for --only and file names
    file: str            # object key inside the bench bucket ("" for /health)
    content_type: str
    body: bytes
    gzip: bool           # the client sends Accept-Encoding: gzip

    @property
    def path(self) -> str:
        return f"/objects/{BUCKET}/{self.file}" if self.file else "/health"

    @property
    def is_health(self) -> bool:
        return not self.file

    @property
    def request_headers(self) -> dict[str, str]:
        return {"Accept-Encoding": "gzip"} if self.gzip else {}


def realistic_json(size: int, seed: int) -> bytes:
    """A JSON document of about ``size`` bytes (never less): a page of user records with
    ids, names, e-mails, dates, numbers, tags and free text, deterministic for ``seed``."""
    rng = random.Random(seed)
    records: list[dict] = []
    length = len('{"page":1,"count":0,"items":[]}\n')
    while length < size:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        record = {
            "id": rng.randrange(10**6, 10**7),
            "uuid": "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                     0x8000 | rng.getrandbits(14), rng.getrandbits(48)),
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{rng.randrange(100)}@example.com",
            "created_at": "20%02d-%02d-%02dT%02d:%02d:%02dZ" % (rng.randrange(15, 26), rng.randrange(1, 13),
                                                              rng.randrange(1, 29), rng.randrange(24),
                                                              rng.randrange(60), rng.randrange(60)),
            "active": rng.random() < 0.8,
            "balance": round(rng.uniform(-500, 25000), 2),
            "tags": rng.sample(_TAGS, rng.randrange(0, 4)),
            "address": {"city": rng.choice(_CITIES), "zip": "%05d" % rng.randrange(100000)},
            "note": " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 16))),
        }
        records.append(record)
        length += len(json.dumps(record, separators=(",", ":"))) + 1
    document = {"page": 1, "count": len(records), "items": records}
    # Compact, as APIs send it (indentation would only make gzip look better).
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def build_workloads() -> list[Workload]:
    """The five object workloads and /health, in table order."""
    return [
        Workload("1 KiB", "1k", "1k.bin", "application/octet-stream", os.urandom(1 * KiB), gzip=False),
        Workload("100 KiB", "100k", "100k.bin", "application/octet-stream", os.urandom(100 * KiB), gzip=False),
        Workload("1 MiB", "1m", "1m.bin", "application/octet-stream", os.urandom(1 * MiB), gzip=False),
        Workload("JSON 100 KiB, gzip", "json100k", "100k.json", "application/json", realistic_json(100 * KiB, 1),
                 gzip=True),
        Workload("JSON 1 MiB, gzip", "json1m", "1m.json", "application/json", realistic_json(1 * MiB, 2), gzip=True),
        Workload("/health", "health", "", "application/json", b"", gzip=False),
    ]


def gzip_bytes(body: bytes) -> bytes:
    """The precompressed copy nginx's gzip_static serves (level 6, the worker's level too)."""
    return gzip.compress(body, compresslevel=6, mtime=0)
