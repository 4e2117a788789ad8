"""Bounded load on a real `axiom serve` (loopback, real ChromaDB server, extractive answers, hybrid retrieval,
every question new so the cache never answers): N concurrent clients on POST /query for S seconds after a
warm-up, then: zero errors, the service still healthy, and the server's RSS grew by no more than
RSS_GROWTH_BOUND_MB over the measured phase. p50/p95/p99 are printed.

`make test` runs the short variant (50 clients x 10 s); `make soak` the full one (50 clients x 60 s) through
AXIOM_SOAK_CLIENTS / AXIOM_SOAK_SECONDS."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from pathlib import Path

import pytest

from tests.service.conftest import API_KEYS, AxiomServer, client
from tests.support.query_load import drive_queries

CLIENTS = int(os.environ.get("AXIOM_SOAK_CLIENTS", "50"))
SECONDS = float(os.environ.get("AXIOM_SOAK_SECONDS", "10"))
WARMUP_SECONDS = 4.0
# Measured here (docs/RELIABILITY.md): the RSS moves by a few MB to a few tens of MB between the warm-up and
# the end of a 60 s run; more than this means something grows with the number of requests.
RSS_GROWTH_BOUND_MB = 96.0
REPORT = os.environ.get("AXIOM_SOAK_REPORT")  # optional: write the numbers as JSON here

def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def load(base: str, clients: int, seconds: float, tag: str) -> tuple[list[float], list[str], int]:
    latencies, errors = await drive_queries(base, API_KEYS[0], clients, seconds, tag=tag,
                                            degraded_is_error=True)
    return latencies, errors, len(latencies)


@pytest.mark.timeout(900)
def test_bounded_load_holds_with_zero_errors_and_bounded_rss(reliability_server: AxiomServer,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert reliability_server.proc is not None
    pid = reliability_server.proc.pid
    # warm-up at full concurrency: thread pool, tokenizer, BM25 index and query cache reach their working size
    _, warm_errors, _ = asyncio.run(load(reliability_server.api, CLIENTS, WARMUP_SECONDS, "warm-up"))
    assert not warm_errors, warm_errors[:5]
    rss_start = rss_mb(pid)
    samples: list[float] = [rss_start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append(rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        latencies, errors, requests = asyncio.run(load(reliability_server.api, CLIENTS, SECONDS, "load"))
    finally:
        stop.set()
        sampler.join(5)
    elapsed = time.perf_counter() - t0
    rss_end = rss_mb(pid)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    numbers = {"clients": CLIENTS, "seconds": round(elapsed, 1), "requests": requests, "errors": len(errors),
               "req_per_s": round(requests / elapsed, 1), "p50_ms": round(q[49] * 1000),
               "p95_ms": round(q[94] * 1000), "p99_ms": round(q[98] * 1000),
               "max_ms": round(max(latencies) * 1000), "rss_start_mb": round(rss_start, 1),
               "rss_end_mb": round(rss_end, 1), "rss_max_mb": round(max(samples), 1),
               "rss_bound_mb": round(rss_start + RSS_GROWTH_BOUND_MB, 1)}
    with capsys.disabled():
        print("\nload: " + json.dumps(numbers))
    if REPORT:
        Path(REPORT).write_text(json.dumps(numbers, indent=2) + "\n")
    assert not errors, errors[:5]
    assert requests >= CLIENTS  # every client got answers
    assert rss_end <= rss_start + RSS_GROWTH_BOUND_MB, numbers
    with client(base_url=reliability_server.sidecar) as c:
        health = c.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert reliability_server.proc.poll() is None
