"""`RayEmbedder`: the Embedder protocol (`embed(texts) -> ndarray`) with its batches run on Ray actors.

Each actor (`EmbedWorker`) loads the settings' local model once (`axiom.embeddings.LocalEmbedder`: the
packaged MiniLM by default, from the installed package, no download) and then embeds the batches it is sent.
One `embed` call splits its texts into batches of `ray_batch_size`, keeps `IN_FLIGHT_PER_ACTOR` batches queued
on every actor (no actor waits for the driver between two batches) and puts the vectors back in the order of
the texts. `texts_per_call` tells the pipeline how many texts to hand over per call so that every actor gets
several batches (`RAGPipeline._flush` reads it).

Failures: an actor whose process dies is restarted by Ray (`MAX_RESTARTS`, model loaded again) and the calls
it had in flight, the running batch included, are retried on it (`max_task_retries`). A batch that still fails
ends the ingest with ClusterError; what was written before stays, and running the ingest again embeds only
what is missing (chunk ids are content hashes).

Data moved per chunk: its text to the actor (about 1 KB at 800 characters) and its vector back (384 float32,
1.5 KB); the driver writes the vectors to the store. `stats` counts batches, bytes, the actors' busy time and
how long at least two of them were busy at once (`RayStats.to_dict`, shown by `axiom ingest --json`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from axiom.config import EmbeddingSettings, IngestSettings
from axiom.errors import ClusterError
from axiom.local_embedder import LocalEmbedder, set_torch_threads
from axiom.observability import apply_process_defaults

log = logging.getLogger(__name__)

MAX_RESTARTS = 3  # an actor whose process dies is started again this often (then the ingest fails)
IN_FLIGHT_PER_ACTOR = 2  # batches queued on each actor at once
# texts_per_call = actors x batch x this (the idle tail of a call is <= 1 batch)
BATCHES_PER_ACTOR_PER_CALL = 8
ACTOR_START_TIMEOUT = 600.0  # seconds for the actors to be placed and load their model


class EmbedWorker:
    """One Ray actor: the local embedding model of `embeddings`, loaded once when the actor starts."""

    def __init__(self, embeddings: EmbeddingSettings, threads: int) -> None:
        apply_process_defaults()
        t0 = time.perf_counter()
        set_torch_threads(threads)  # the CPUs the actor reserved (not embeddings.torch_threads: the driver's)
        self.model = LocalEmbedder(embeddings.model, batch_size=embeddings.batch_size,
                                   device=embeddings.device)
        # loads it now: a restarted actor is ready before its next batch
        self.dimension = self.model.dimension
        self.load_seconds = time.perf_counter() - t0

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "dimension": self.dimension,
                "load_seconds": self.load_seconds}

    def embed(self, texts: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
        start = time.time()
        vectors = self.model.embed(texts)
        return vectors, {"pid": os.getpid(), "host": socket.gethostname(), "start": start, "end": time.time()}


@dataclass
class RayStats:
    """What the actors did for one RayEmbedder (all calls)."""

    actors: int = 0
    calls: int = 0
    batches: int = 0
    texts: int = 0
    bytes_sent: int = 0
    bytes_returned: int = 0
    call_seconds: float = 0.0  # wall time of the embed calls (driver side)
    load_seconds: list[float] = field(default_factory=list)  # each actor's model load, as it reported it
    batches_by_worker: dict[str, int] = field(default_factory=dict)  # "host:pid" -> batches it returned
    # each batch's (start, end) on its actor
    intervals: list[tuple[float, float]] = field(default_factory=list)

    def record(self, texts: Sequence[str], vectors: np.ndarray, info: dict[str, Any]) -> None:
        self.batches += 1
        self.texts += len(texts)
        self.bytes_sent += sum(len(t.encode("utf-8")) for t in texts)
        self.bytes_returned += int(vectors.nbytes)
        worker = f"{info['host']}:{info['pid']}"
        self.batches_by_worker[worker] = self.batches_by_worker.get(worker, 0) + 1
        self.intervals.append((float(info["start"]), float(info["end"])))

    def busy_seconds(self) -> float:
        return sum(end - start for start, end in self.intervals)

    def parallel_seconds(self) -> float:
        """How long at least two actors were embedding at the same time (actor clocks; one machine: exact)."""
        events = sorted([(s, 1) for s, _ in self.intervals] + [(e, -1) for _, e in self.intervals])
        busy, last, total = 0, 0.0, 0.0
        for when, step in events:
            if busy >= 2:
                total += when - last
            busy += step
            last = when
        return total

    def to_dict(self) -> dict[str, Any]:
        busy = self.busy_seconds()
        return {"actors": self.actors, "calls": self.calls, "batches": self.batches, "texts": self.texts,
                "bytes_sent": self.bytes_sent, "bytes_returned": self.bytes_returned,
                "call_seconds": round(self.call_seconds, 3), "busy_seconds": round(busy, 3),
                "parallel_seconds": round(self.parallel_seconds(), 3),
                # driver-side time per batch beyond the actors' own (scheduling, transfer, idle tails)
                "overhead_seconds_per_batch": round(
                    max(0.0, self.call_seconds * max(self.actors, 1) - busy) / self.batches, 4)
                if self.batches else None,
                "model_load_seconds": [round(s, 2) for s in self.load_seconds],
                "batches_by_worker": dict(sorted(self.batches_by_worker.items()))}


class RayEmbedder:
    """An Embedder whose work runs on `ray_actors` Ray actors (0: one per `ray_cpus_per_actor` CPUs of the
    cluster). The actors start on first use (`warm_up`, which the pipeline times as the model load) and stop
    with `close()`."""

    def __init__(self, ray: ModuleType, embeddings: EmbeddingSettings, ingest: IngestSettings) -> None:
        self._ray = ray
        self._embeddings = embeddings
        self.model_id = embeddings.model  # the collection's model: the same as a local ingest's
        self.batch_size = ingest.ray_batch_size
        self.actors_wanted = ingest.ray_actors
        self.cpus_per_actor = ingest.ray_cpus_per_actor
        self._actors: list[Any] = []  # boundary: Ray actor handles (remote methods by attribute)
        self._dimension: int | None = None
        self._local: LocalEmbedder | None = None  # count_tokens only (no ingest path calls it)
        self.stats = RayStats()

    # -- the actors -------------------------------------------------------------------------------
    def _actor_count(self) -> int:
        cpus = float(self._ray.cluster_resources().get("CPU", 0))
        fits = int(cpus // self.cpus_per_actor)
        wanted = self.actors_wanted or max(1, fits)
        if wanted > fits:
            raise ClusterError(f"the Ray cluster has {cpus:g} CPUs: room for {fits} embedding actor(s) of "
                               f"{self.cpus_per_actor:g} CPU, not {wanted}",
                               hint="lower ingest.ray_actors / ingest.ray_cpus_per_actor, or add nodes")
        return wanted

    def warm_up(self) -> None:
        """Start the actors and wait until each has loaded its model."""
        if self._actors:
            return
        ray = self._ray
        count = self._actor_count()
        remote = ray.remote(num_cpus=self.cpus_per_actor, max_restarts=MAX_RESTARTS,
                            max_task_retries=MAX_RESTARTS)(EmbedWorker)
        threads = max(1, int(self.cpus_per_actor))
        self._actors = [remote.remote(self._embeddings, threads) for _ in range(count)]
        try:
            infos = ray.get([a.info.remote() for a in self._actors], timeout=ACTOR_START_TIMEOUT)
        except Exception as exc:  # GetTimeoutError, the model failing to load (RayActorError / RayTaskError)
            self.close()
            raise ClusterError(f"the {count} embedding actor(s) did not start on the Ray cluster: "
                               f"{type(exc).__name__}: {exc}",
                               hint="the nodes need Axiom and the embedding model installed (the Axiom image)"
                               ) from exc
        self._dimension = int(infos[0]["dimension"])
        self.stats.actors = count
        self.stats.load_seconds = [float(i["load_seconds"]) for i in infos]
        log.info("%d embedding actor(s) ready on %s", count, sorted({i["host"] for i in infos}))

    def close(self) -> None:
        """Stop the actors (their CPUs go back to the cluster)."""
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception as exc:  # the cluster went away already: nothing left to stop
                log.debug("could not stop an embedding actor: %s", exc)
        self._actors = []

    # -- the Embedder protocol --------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        self.warm_up()
        assert self._dimension is not None
        return self._dimension

    @property
    def texts_per_call(self) -> int:
        """How many texts one `embed` call should get: several batches for every actor."""
        self.warm_up()
        return len(self._actors) * self.batch_size * BATCHES_PER_ACTOR_PER_CALL

    def count_tokens(self, text: str) -> int:
        if self._local is None:
            self._local = LocalEmbedder(self._embeddings.model, batch_size=self._embeddings.batch_size,
                                        device=self._embeddings.device)
        return self._local.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.warm_up()
        ray = self._ray
        t0 = time.perf_counter()
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        out: list[np.ndarray | None] = [None] * len(batches)
        # interleaved: a, b, a, b
        free = [actor for _ in range(IN_FLIGHT_PER_ACTOR) for actor in self._actors]
        pending: dict[Any, tuple[int, Any]] = {}  # boundary: Ray object refs -> (batch, actor handle)
        queued = 0
        while queued < len(batches) or pending:
            while free and queued < len(batches):
                actor = free.pop(0)
                pending[actor.embed.remote(batches[queued])] = (queued, actor)
                queued += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index, actor = pending.pop(ref)
                try:
                    vectors, info = ray.get(ref)
                except Exception as exc:  # RayActorError (restarts used up), RayTaskError (the model raised)
                    raise ClusterError(
                        f"embedding batch {index + 1} of {len(batches)} failed on the Ray cluster after its "
                        f"retries: {type(exc).__name__}: {exc}",
                        hint="chunks written before are kept: run the same ingest again to embed the rest",
                    ) from exc
                out[index] = vectors
                free.append(actor)
                self.stats.record(batches[index], vectors, info)
        self.stats.calls += 1
        self.stats.call_seconds += time.perf_counter() - t0
        return np.concatenate([v for v in out if v is not None]).astype(np.float32, copy=False)
