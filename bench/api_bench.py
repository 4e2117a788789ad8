"""API `/query` throughput: the real `axiom serve` in a subprocess on loopback ports, driven by N concurrent
httpx clients (one thread and one connection each) sending distinct questions, extractive generator, query
cache off (so every request runs the pipeline). Measures requests per second over the timed phase and the
latency percentiles seen by the clients."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO, percentile
from tests.support.waiting import wait_for_http  # `python -m bench` runs from the repo root: `tests` imports


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(work: Path, store: Path, collection: str, retriever: str, torch_threads: int) -> Path:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    base["store"].update({"path": str(store), "collection": collection, "bm25_dir": str(work / "bm25")})
    base["retrieval"]["retriever"] = retriever
    base["generation"]["provider"] = "extractive"
    base["service"].update({"cache_size": 0, "data_root": str(work / "data"), "torch_threads": torch_threads})
    base["logging"].update({"level": "WARNING"})
    (work / "data").mkdir(parents=True, exist_ok=True)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def bench_api(store: Path, collection: str, questions: list[str], work: Path, *, clients: int = 8,
              requests_per_client: int = 20, retriever: str = "dense", ready_timeout: float = 300.0,
              torch_threads: int = 0) -> dict[str, Any]:
    """Serve a copy of `store` and measure /query under `clients` concurrent clients."""
    import httpx

    work.mkdir(parents=True, exist_ok=True)
    served = work / "store"
    shutil.copytree(store, served)  # the service gets its own copy: no two processes share an embedded store
    config = _config(work, served, collection, retriever, torch_threads)
    key = secrets.token_urlsafe(16)
    api_port, sidecar_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "CHROMA_", "AXIOM_", "LLM_", "EMBEDDING_", "EVAL_LLM_"))}
    env.update({"AXIOM_CONFIG": str(config), "AXIOM_API_KEYS": key, "HF_HUB_OFFLINE": "1",
                "EMBEDDING_CACHE_ENABLED": "false",  # each question is encoded, as the floor would
                "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "ANONYMIZED_TELEMETRY": "False",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    log_path = work / "serve.log"
    t_launch = time.perf_counter()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "axiom.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(api_port), "--sidecar-port", str(sidecar_port)], cwd=work, env=env,
                                stdout=log, stderr=log, start_new_session=True)
    api = f"http://127.0.0.1:{api_port}"
    headers = {"X-API-Key": key}
    try:
        wait_for_http(f"{api}/health", timeout=ready_timeout, process=proc, log=log_path, what="axiom serve")
        startup = time.perf_counter() - t_launch

        # warm-up (not timed): one request per client, with questions the timed phase does not use
        warm, timed_questions = questions[:clients], questions[clients:]
        needed = clients * requests_per_client
        if len(timed_questions) < needed:  # reuse questions only when there are too few (cache is off anyway)
            timed_questions = (timed_questions * (needed // max(1, len(timed_questions)) + 1))
        timed_questions = timed_questions[:needed]
        errors: list[str] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def client_loop(mine: list[str]) -> None:
            with httpx.Client(trust_env=False, timeout=120, headers=headers) as client:
                for q in mine:
                    t0 = time.perf_counter()
                    try:
                        r = client.post(f"{api}/query", json={"question": q, "retriever": retriever})
                        ok = r.status_code == 200
                        problem = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                    except httpx.HTTPError as exc:
                        problem = f"{type(exc).__name__}: {exc}"
                    elapsed = time.perf_counter() - t0
                    with lock:
                        if problem:
                            errors.append(problem)
                        else:
                            latencies.append(elapsed)

        def run_phase(per_client: list[list[str]]) -> float:
            threads = [threading.Thread(target=client_loop, args=(mine,)) for mine in per_client]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - t0

        run_phase([[q] for q in warm])
        latencies.clear()
        warm_errors = list(errors)
        errors.clear()
        wall = run_phase([timed_questions[i::clients] for i in range(clients)])
        return {
            "clients": clients, "requests": len(latencies) + len(errors), "ok": len(latencies),
            "errors": len(errors), "error_samples": errors[:3], "warmup_errors": warm_errors[:3],
            "retriever": retriever, "generator": "extractive", "cache": "off", "torch_threads": torch_threads,
            "wall_s": wall, "req_per_s": len(latencies) / wall if wall > 0 else float("nan"),
            "p50_ms": percentile(latencies, .5) * 1e3, "p95_ms": percentile(latencies, .95) * 1e3,
            "max_ms": max(latencies) * 1e3 if latencies else float("nan"), "startup_s": startup,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
