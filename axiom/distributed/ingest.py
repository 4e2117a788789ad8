"""Distributed ingest: `axiom ingest PATH --ray ADDRESS` (or `ingest.executor: ray` + `ingest.ray_address`).

    with ray_pipeline(settings) as (pipeline, embedder):
        report = pipeline.ingest(paths)

The driver (this process) runs `RAGPipeline.ingest` as a local ingest does: discovery, reading, hashing,
chunking, the incremental skip of unchanged files and the store writes, so chunk ids, the skip and idempotence
are the local ones. Only the embedding moves: the pipeline's embedder is a `RayEmbedder`, whose batches run on
actors of the cluster. A re-run that finds nothing new starts no actor at all.

The store must be a ChromaDB server (`store.host`): an embedded store is a folder on one machine, which the
cluster's other machines, and the other faces that read what this ingest wrote (`axiom serve`, a sweep on the
cluster), cannot share. It is refused before anything is opened. The model must be a local one
(`embeddings.provider: local`): an OpenAI-compatible endpoint needs no cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from axiom.config import Settings
from axiom.distributed.embedder import RayEmbedder
from axiom.distributed.runtime import import_ray, ray_session, require_address
from axiom.errors import UsageError
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore


def check_ray_ingest(settings: Settings) -> str:
    """The cluster address of a Ray ingest with these settings, or the UsageError that says what to change."""
    if settings.store.mode != "server":
        raise UsageError(
            "the ray executor needs a ChromaDB server, but the store is embedded "
            f"(store.path={settings.store.path!r}, store.host is not set): the cluster's workers and the "
            "other faces cannot share a folder on this machine",
            hint="set store.host / store.port (CHROMA_HOST / CHROMA_PORT) to a ChromaDB server, or ingest "
                 "without --ray (ingest.executor: local)")
    if settings.embeddings.provider != "local":
        raise UsageError(
            f"the ray executor runs the local embedding model on the cluster; embeddings.provider is "
            f"{settings.embeddings.provider!r} (an endpoint embeds already)",
            hint="ingest without --ray (ingest.executor: local), or set EMBEDDING_PROVIDER=local")
    return require_address(settings.ingest.ray_address, setting="ingest.ray_address", flag="--ray")


@contextmanager
def ray_pipeline(settings: Settings) -> Iterator[tuple[RAGPipeline, RayEmbedder]]:
    """A pipeline whose ingest embeds on the Ray cluster of the settings; the actors stop and the driver
    disconnects when the block ends. Checks, in this order: Ray is installed, the settings fit (a ChromaDB
    server, a local model, an address), the cluster answers."""
    import_ray()
    address = check_ray_ingest(settings)
    with ray_session(address) as ray:
        embedder = RayEmbedder(ray, settings.embeddings, settings.ingest)
        try:
            yield RAGPipeline(settings, embedder, ChromaStore(settings.store)), embedder
        finally:
            embedder.close()
