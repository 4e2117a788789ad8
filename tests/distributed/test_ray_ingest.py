"""Distributed ingest (`axiom ingest PATH --ray ADDRESS`, axiom/distributed/) against a real local Ray
cluster: a head node of 1 CPU and a second node of 1 CPU joining it (`tests/support/ray_cluster.py`, token
authentication on), and the session's real ChromaDB server (`chroma_server`). The driver is the `axiom` CLI in
a subprocess, as a user runs it.

- a Ray ingest of `data/` and the tiny corpus stores the same chunk ids, metadata and (within TOLERANCE)
  vectors as a local ingest into an embedded store, with both actors embedding at the same time; a re-run
  embeds nothing and starts no actor;
- a worker process killed (SIGKILL) while it embeds a batch: Ray restarts the actor and retries its batches,
  the ingest completes, and the store holds exactly the chunks (ids and vectors) of a clean local ingest;
- the driver killed (SIGKILL) after part of the corpus was written: running the ingest again embeds exactly
  the missing chunks, and the store then holds exactly the chunks of the clean local ingest;
- an embedded store with --ray is refused, naming the setting, before anything is written;
- without Ray importable, `axiom ingest` works as before and --ray (or AXIOM_INGEST_EXECUTOR=ray) says how to
  install the extra.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from axiom.cli import main
from axiom.config import ENV_VARS, Settings, load_settings
from axiom.embeddings import LocalEmbedder
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.evaluation.helpers import build_settings, clean_env, write_config
from tests.support.chroma_server import ChromaServer
from tests.support.ray_cluster import RayCluster
from tests.support.waiting import poll_until, poll_until_steady

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# The largest difference of one vector component between a Ray ingest (1-thread actors, batches of
# ray_batch_size) and a local ingest (torch's threads, slices of 256) of the same chunks. Measured: see
# test_ray_ingest_matches_a_local_ingest (float32 rounding of the same model on other batch shapes).
TOLERANCE = 1e-5
BASE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "ANONYMIZED_TELEMETRY": "False", "RAGAS_DO_NOT_TRACK": "true", "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost", "PYTHONPATH": str(REPO)}
INSTALL = "pip install 'axiom-workbench[ray]'"


def cli(args: list[str], env: dict[str, str], *, prelude: str = "") -> list[str]:
    code = f"import sys\n{prelude}\nfrom axiom.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return [sys.executable, "-c", code, *[str(a) for a in args]]


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "AXIOM_CONFIG"}
    return {**env, **BASE_ENV, **extra}


def run_cli(args: list[str], env: dict[str, str], *, prelude: str = "", timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(args, env, prelude=prelude), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=clean_environ(env))


def server_settings(root: Path, server: ChromaServer, collection: str,
                    **ingest: Any) -> tuple[Path, Settings]:
    """A config file (every path under `root`) naming the ChromaDB server and `collection`, and its
    settings."""
    config = write_config(root, store={"host": server.host, "port": server.port, "collection": collection},
                          embeddings={"cache_enabled": False}, ingest=ingest)
    return config, load_settings(config, environ={})


def stored(settings: Settings) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Every chunk of the settings' collection: id -> (metadata, vector)."""
    got = ChromaStore(settings.store).require().get(include=["metadatas", "embeddings"])
    assert len(got["ids"]) == len(set(got["ids"])), "duplicate chunk ids"
    return {cid: (dict(meta), np.asarray(vec, dtype=np.float32))
            for cid, meta, vec in zip(got["ids"], got["metadatas"], got["embeddings"], strict=True)}


def max_difference(a: dict[str, tuple[dict[str, Any], np.ndarray]],
                   b: dict[str, tuple[dict[str, Any], np.ndarray]]) -> float:
    assert a.keys() == b.keys()
    for cid in a:  # same file, place, content hash, chunker and file chunk count
        assert a[cid][0] == b[cid][0], (cid, a[cid][0], b[cid][0])
    return float(max(np.abs(a[cid][1] - b[cid][1]).max() for cid in a))


def write_corpus(folder: Path, files: int, seed: int = 7) -> Path:
    """`files` text files of made-up sentences (3-4 chunks each, every chunk text different)."""
    rng = random.Random(seed)
    words = ("protein cell gene model signal tissue dose trial patient response receptor pathway sample "
             "increase reduce measure observe compare binding expression mutation therapy").split()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "."
                     for _ in range(28)]
        (folder / f"doc{i:03d}.txt").write_text(f"Document {i}.\n" + " ".join(sentences), encoding="utf-8")
    return folder


def test_ray_ingest_matches_a_local_ingest_and_a_rerun_embeds_nothing(
        ray_cluster: RayCluster, chroma_server: ChromaServer, make_pipeline: Any, tmp_path: Path,
        tiny_corpus: Path) -> None:
    roots = [REPO / "data", tiny_corpus]
    local: RAGPipeline = make_pipeline()
    local_report = local.ingest(roots, progress=False)
    expected = stored(local.settings)
    assert local_report.chunks_embedded == len(expected) > 50

    # batches of 8: the ~130 chunks make ~17 batches, so both actors get several
    config, settings = server_settings(tmp_path / "ray", chroma_server, f"ray-parity-{uuid.uuid4().hex[:8]}",
                                        ray_batch_size=8)
    args = ["--config", config, "ingest", *roots, "--ray", ray_cluster.address, "--json"]
    done = run_cli(args, {})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["chunks_embedded"] == report["chunks_added"] == len(expected)
    assert sorted(report["files_ingested"]) == sorted(local_report.files_ingested)
    ray = report["ray"]
    assert ray["actors"] == 2 and ray["texts"] == len(expected), ray
    assert len(ray["batches_by_worker"]) == 2 and min(ray["batches_by_worker"].values()) >= 2, ray
    assert ray["parallel_seconds"] > 0, f"the two actors never embedded at the same time: {ray}"

    got = stored(settings)
    assert got.keys() == expected.keys()
    difference = max_difference(got, expected)
    print(f"max abs difference, Ray vs local ingest: {difference:.3g} over {len(got)} vectors")
    assert difference <= TOLERANCE

    again = run_cli(args, {})
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert (second["chunks_embedded"], second["chunks_added"], second["chunks_removed"]) == (0, 0, 0)
    assert sorted(second["files_unchanged"]) == sorted(local_report.files_ingested)
    assert second["ray"]["actors"] == 0, "nothing to embed must start no actor"
    assert second["chunks_total"] == len(expected)


@pytest.fixture(scope="module")
def corpus_and_local(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder
                     ) -> tuple[Path, dict[str, tuple[dict[str, Any], np.ndarray]]]:
    """A made-up corpus of about 240 chunks and what a clean local ingest of it stores (embedded store)."""
    root = tmp_path_factory.mktemp("ray-corpus")
    corpus = write_corpus(root / "corpus", files=60)
    settings = build_settings(root / "local")
    RAGPipeline(settings, embedder, ChromaStore(settings.store)).ingest([corpus], progress=False)
    expected = stored(settings)
    assert len(expected) >= 180
    return corpus, expected


def test_a_worker_killed_mid_ingest_is_retried_and_the_store_is_complete(
        ray_cluster: RayCluster, chroma_server: ChromaServer, corpus_and_local: Any, tmp_path: Path) -> None:
    corpus, expected = corpus_and_local
    config, settings = server_settings(tmp_path / "ray", chroma_server, f"ray-kill-{uuid.uuid4().hex[:8]}",
                                        ray_batch_size=16)
    env = clean_environ({})
    driver = subprocess.Popen(cli(["--config", config, "ingest", corpus, "--ray", ray_cluster.address,
                                   "--json"], env),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # an actor process while it runs a batch (Ray titles it `ray::EmbedWorker.embed`)
        busy = poll_until(lambda: ray_cluster.processes("EmbedWorker.embed"), timeout=180, interval=0.05,
                          message="an embedding actor running a batch")
        before = set(ray_cluster.processes("ray::EmbedWorker"))
        victim = busy[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
    assert driver.returncode == 0, err[-3000:]
    print(f"killed actor pid {victim}; the ingest finished {time.monotonic() - killed_at:.1f} s later")
    report = json.loads(out)
    ray = report["ray"]
    assert report["chunks_embedded"] == report["chunks_added"] == len(expected), report
    assert ray["texts"] == len(expected), "every chunk's vector came back exactly once"
    workers = {int(w.rsplit(":", 1)[1]) for w in ray["batches_by_worker"]}
    restarted = workers - before
    assert restarted, f"no batch came from a restarted actor (workers {workers}, before the kill {before})"
    assert_complete(stored(settings), expected)


def assert_complete(got: dict[str, tuple[dict[str, Any], np.ndarray]],
                    expected: dict[str, tuple[dict[str, Any], np.ndarray]]) -> None:
    """Exactly the chunks of the clean local ingest: no id missing or extra, every file's chunks 0..n-1 once
    each, every vector within TOLERANCE."""
    assert got.keys() == expected.keys(), (len(got), len(expected))
    by_source: dict[str, list[int]] = {}
    for meta, _ in got.values():
        by_source.setdefault(meta["source"], []).append(int(meta["chunk_index"]))
    for source, indexes in by_source.items():
        assert sorted(indexes) == list(range(len(indexes))), source
    assert max_difference(got, expected) <= TOLERANCE


# Small writes (64 chunks: FLUSH_CHUNKS, and 2 batches of 16 per actor per call), so that the store holds part
# of the corpus while the ingest runs.
SMALL_WRITES = ("import axiom.pipeline as pipeline_module\npipeline_module.FLUSH_CHUNKS = 64\n"
                "import axiom.distributed.embedder as "
                "embedder_module\nembedder_module.BATCHES_PER_ACTOR_PER_CALL = 2")


def test_an_interrupted_ray_ingest_is_completed_by_running_it_again(
        ray_cluster: RayCluster, chroma_server: ChromaServer, corpus_and_local: Any, tmp_path: Path) -> None:
    corpus, expected = corpus_and_local
    config, settings = server_settings(tmp_path / "ray", chroma_server, f"ray-rerun-{uuid.uuid4().hex[:8]}",
                                        ray_batch_size=16)
    args = ["--config", config, "ingest", corpus, "--ray", ray_cluster.address, "--json"]
    env = clean_environ({})
    store = ChromaStore(settings.store)
    driver = subprocess.Popen(cli(args, env, prelude=SMALL_WRITES), cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        poll_until(lambda: store.count() > 0 or driver.poll() is not None, timeout=180, interval=0.1,
                   message="the first chunks written")
        assert driver.poll() is None, "the ingest ended before it could be interrupted"
        os.kill(driver.pid, signal.SIGKILL)  # the driver: no clean-up, no last write
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
    written = poll_until_steady(store.count, steady_for=1.0, timeout=60,
                                # writes the server had received
                                message="the store's count to stop changing")
    assert 0 < written < len(expected), written

    done = run_cli(args, {})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["chunks_embedded"] == len(expected) - written, "the re-run embeds exactly what is missing"
    assert report["chunks_total"] == len(expected)
    assert_complete(stored(settings), expected)


def test_an_embedded_store_with_ray_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], restore_logging: None,
                                               tiny_corpus: Path) -> None:
    pytest.importorskip("ray")
    clean_env(monkeypatch)
    config = write_config(tmp_path)
    code = main(["--config", str(config), "ingest", str(tiny_corpus), "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "needs a ChromaDB server" in err and "store.host" in err and "CHROMA_HOST" in err, err
    assert str(tmp_path / "chroma") in err, "the message names the embedded store's folder"
    assert not (tmp_path / "chroma").exists(), "nothing may be written"


def test_an_address_where_no_cluster_answers_fails_fast_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        restore_logging: None,
        tiny_corpus: Path) -> None:
    pytest.importorskip("ray")
    clean_env(monkeypatch)
    # never reached: Ray is checked first
    config = write_config(tmp_path, store={"host": "127.0.0.1", "port": 9})
    t0 = time.monotonic()
    code = main(["--config", str(config), "ingest", str(tiny_corpus), "--ray", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "no Ray cluster answers at 127.0.0.1:9" in err and "ray start --head" in err, err
    assert time.monotonic() - t0 < 15


BLOCK_RAY = "sys.modules['ray'] = None  # as if the extra were not installed: `import ray` raises ImportError"


def test_without_ray_ingest_works_and_ray_says_how_to_install_it(tmp_path: Path, tiny_corpus: Path) -> None:
    config = write_config(tmp_path)
    plain = run_cli(["--config", config, "ingest", tiny_corpus, "--json"], {}, prelude=BLOCK_RAY)
    assert plain.returncode == 0, plain.stderr[-3000:]
    report = json.loads(plain.stdout)
    assert report["chunks_added"] > 0 and "ray" not in report

    for args, env in ((["--ray", "127.0.0.1:6379"], {}),
                      ([], {"AXIOM_INGEST_EXECUTOR": "ray", "AXIOM_RAY_ADDRESS": "127.0.0.1:6379"})):
        refused = run_cli(["--config", config, "ingest", tiny_corpus, *args], env, prelude=BLOCK_RAY)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert "Ray is not installed" in refused.stderr and INSTALL in refused.stderr, refused.stderr
        assert "make install" in refused.stderr
        assert "Traceback" not in refused.stderr
