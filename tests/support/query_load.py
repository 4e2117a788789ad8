"""Drive `/query` of a running Axiom service with N concurrent clients for a fixed time (used by the service
load test and the reliability soak)."""

from __future__ import annotations

import asyncio
import time

import httpx

# questions answered by tests/fixtures/corpus (bees, volcanoes, tea)
QUESTIONS = ["How many eggs can a honey bee queen lay in a day?", "Which scientist decoded the waggle dance?",
             "Which volcano is the largest active one by volume?",
             "Which eruption caused the year without a summer?",
             "What plant do green and black tea come from?", "Who discovered tea according to legend?",
             "How long do worker bees live in summer?", "What is the Ring of Fire?"]


async def drive_queries(base: str, key: str, clients: int, seconds: float, *, tag: str | None = None,
                        degraded_is_error: bool = False) -> tuple[list[float], list[str]]:
    """Latencies (s) of every request and the errors seen. With `tag`, each question gets ` (<tag> <n>)`
    added, so no two requests ask the same thing (the query cache cannot answer them)."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker(c: httpx.AsyncClient, n: int) -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            question = QUESTIONS[(i + n) % len(QUESTIONS)] + (f" ({tag} {i})" if tag else "")
            t0 = time.perf_counter()
            try:
                r = await c.post("/query", json={"question": question})
                if r.status_code != 200 or (degraded_is_error and r.json().get("degraded")):
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=120, limits=limits,
                                 trust_env=False) as c:
        await asyncio.gather(*(worker(c, n) for n in range(clients)))
    return latencies, errors
