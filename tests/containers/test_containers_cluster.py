"""compose's `cluster` profile (issue 17): DOCKER_SETUP.md's "A Ray cluster" block run line by line on a real
Docker engine, in a copy of the project (the `stack` fixture of conftest.py). It runs after
test_containers.py, on the same xdist worker (tests/conftest.py's "docker" group), whose builds leave in the
cache the backend layers that the cluster image starts from."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from tests.containers import standins
from tests.containers.stack import (
    REPO,
    STACK_GID,
    STACK_UID,
    Stack,
    base_images,
    owners,
    torch_wheel_build_args,
)


def doc_cluster_lines() -> list[str]:
    """The commands of DOCKER_SETUP.md's "A Ray cluster" block, comments and untested lines left out."""
    text = (REPO / "DOCKER_SETUP.md").read_text(encoding="utf-8")
    block = text.split("## A Ray cluster (profile `cluster`)", 1)[1].split("```bash", 2)[2].split("```", 1)[0]
    lines = []
    for line in block.splitlines():
        if not line.startswith("docker compose") or "(not tested)" in line:
            continue
        lines.append(re.sub(r"\s+#.*$", "", line).strip())
    return lines


def ray_active_nodes(status: str) -> int:
    """Active nodes in `ray status` output."""
    active = status.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return sum(1 for line in active.splitlines() if "node_" in line)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(int(os.environ.get("AXIOM_DOCKER_TEST_TIMEOUT", "2400")))
def test_cluster_profile_runs_a_distributed_ingest(stack: Stack, container_report: list[str]) -> None:
    """DOCKER_SETUP.md's cluster block as written: build the cluster image, bring up the head and two workers,
    `ray status`, `axiom ingest /app/data --ray ray-head:6379` from the head (the encode on the workers'
    actors), a two-point `axiom sweep --ray`, stop. Also: only the dashboard is published, on loopback; a
    driver without the token or with a wrong one is refused; a node without a token does not start; the
    distributed ingest gives the ids and (within 1e-5) the vectors of a local ingest of the same files, and a
    second run
    embeds
    nothing."""
    s = stack
    report = container_report
    started = time.monotonic()
    lines = doc_cluster_lines()
    build_line, up_line, status_line, ingest_line, sweep_line, stop_line = lines
    assert (
        "build ray-head" in build_line and "--scale ray-worker=2" in up_line and "ray status" in status_line
    )
    assert "axiom ingest /app/data --ray ray-head:6379" in ingest_line and "axiom sweep" in sweep_line
    if not (REPO / "requirements" / "cluster.lock.txt").is_file():
        pytest.fail("requirements/cluster.lock.txt is missing: the cluster image "
                    "installs Ray from it (make lock)")

    python_image, chroma_image = base_images()
    standins.ensure_image(python_image, lambda: standins.build_python_standin(python_image, s.log), s.log)
    build_args = torch_wheel_build_args(s, report)
    s.shell(build_line + " " + " ".join(build_args), timeout=2400, timed="cluster_build")
    cluster_image = f"{s.image_name}:cluster"
    info = json.loads(s.run(["docker", "image", "inspect", cluster_image]).stdout)[0]
    assert info["Config"]["User"] in ("1000:1000", "1000", "axiom"), info["Config"]["User"]
    # The cluster image holds chromadb==<client version> too: it can stand in for the ChromaDB image.
    standins.ensure_image(chroma_image,
                          lambda: standins.build_chroma_standin(chroma_image, cluster_image, s.log),
                          s.log)

    # A node without a token refuses to start (exit 64, naming the variable).
    refused = s.dc("--profile", "cluster", "run", "--rm", "--no-deps", "-e", "RAY_AUTH_TOKEN=", "ray-head",
                   check=False, timeout=300)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 64 and "RAY_AUTH_TOKEN is required" in said, said[-2000:]

    s.shell(up_line, timeout=900, timed="cluster_up")
    ps = s.dc("--profile", "cluster", "ps", "--format", "json").stdout
    states = [json.loads(line) for line in ps.splitlines() if line.strip().startswith("{")] or json.loads(ps)
    health = sorted((c["Service"], c.get("Health")) for c in states)
    assert health == [("chromadb", "healthy"), ("ray-head", "healthy"), ("ray-worker", "healthy"),
                      ("ray-worker", "healthy")], health
    status = s.shell(status_line.replace(" exec ", " exec -T "), timeout=300).stdout
    assert ray_active_nodes(status) == 3, status

    # Published: the dashboard on loopback, no other Ray port.
    dashboard = s.dc("--profile", "cluster", "port", "ray-head", "8265").stdout.strip()
    assert dashboard.startswith("127.0.0.1:"), dashboard
    for port in ("6379", "10001"):  # compose prints ":0" (or nothing) for a port that is not published
        unpublished = s.dc("--profile", "cluster", "port", "ray-head", port, check=False).stdout.strip()
        assert unpublished in ("", ":0"), (port, unpublished)

    # A driver without the token, or with a wrong one, is refused.
    connect = "import ray; ray.init(address='ray-head:6379'); print('CONNECTED')"
    for token in ("", "wrong-" + s.ray_token[:20]):
        out = s.dc("--profile", "cluster", "exec", "-T", "-e", f"RAY_AUTH_TOKEN={token}", "ray-head",
                   "python", "-c",
                   connect, check=False, timeout=300)
        assert out.returncode != 0 and "CONNECTED" not in out.stdout, (
            token,
            out.stdout[-1000:],
            out.stderr[-2000:],
        )

    # The distributed ingest, as DOCKER_SETUP.md writes it (+ --json), then a local ingest of the same files
    # into another collection: the same ids, the same vectors within float tolerance.
    ingest = json.loads(s.shell(ingest_line.replace(" exec ", " exec -T ") + " --json", timeout=1200,
                                timed="ray_ingest").stdout.strip().splitlines()[-1])
    assert ingest["chunks_added"] > 0 and ingest["chunks_total"] == ingest["chunks_added"], ingest
    ray_stats = ingest["ray"]
    assert ray_stats["actors"] == 2 and ray_stats["texts"] == ingest["chunks_added"], ray_stats
    workers = {key.split(":")[0] for key in ray_stats["batches_by_worker"]}
    report.append(f"ray ingest: {ingest['chunks_added']} chunks in {ingest['seconds']:.1f}s on "
                  f"{sorted(workers)}; overhead per batch {ray_stats['overhead_seconds_per_batch']}s")
    again = s.exec_json("ray-head", "axiom", "ingest", "/app/data", "--ray", "ray-head:6379", "--json")
    assert again["chunks_added"] == 0 and again["chunks_total"] == ingest["chunks_total"], again
    local = s.exec_json("ray-head", "axiom", "ingest", "/app/data", "--collection", "local-probe", "--json")
    assert local["chunks_total"] == ingest["chunks_total"], local
    compare = (
        "import json, chromadb, numpy as np; from chromadb.config import Settings; c = "
        "chromadb.HttpClient(host='chromadb', port=8000, settings=Settings(anonymized_telemetry=False)); "
        "get = lambda name: c.get_collection(name).get(include=['embeddings']); a, b = get('axiom'), "
        "get('local-probe'); va = dict(zip(a['ids'], a['embeddings'])); vb = dict(zip(b['ids'], "
        "b['embeddings'])); diff = max(float(np.abs(np.asarray(va[i]) - np.asarray(vb[i])).max()) for i in "
        "va) if set(va) == set(vb) else None; print(json.dumps({'same_ids': set(va) == set(vb), 'n': "
        "len(va), 'max_abs_diff': diff}))")
    same = s.exec_json("ray-head", "python", "-c", compare)
    assert same["same_ids"] and same["n"] == ingest["chunks_total"] and same["max_abs_diff"] <= 1e-5, same
    report.append(f"ray vs local ingest: {same}")

    # A two-point sweep on the cluster, as DOCKER_SETUP.md writes it, on the 10-question slice of the golden
    # set.
    runs = s.root / "evaluation" / "runs"
    before = set(runs.iterdir())
    s.shell(sweep_line.replace(" exec ", " exec -T ")
            + " -p dataset evaluation/datasets/container-test/golden.jsonl",
            timeout=1800, timed="ray_sweep")
    new = [d for d in set(runs.iterdir()) - before if d.is_dir() and not d.name.startswith(".")]
    assert len(new) == 1 and (new[0] / "summary.csv").is_file(), new
    sweep = json.loads((new[0] / "sweep.json").read_text(encoding="utf-8"))
    assert len(sweep["ranking"]) == 2, sweep["ranking"]
    report.append(f"ray sweep: {new[0].name}, 2 combinations ranked, {s.times['ray_sweep']:.0f}s")
    written = [new[0], *new[0].rglob("*")]
    wrong = {k: v for k, v in owners(written).items() if v != (STACK_UID, STACK_GID)}
    assert not wrong, f"sweep files on the host not owned by {STACK_UID}:{STACK_GID}: {wrong}"

    s.shell(stop_line, timeout=300, timed="cluster_stop")
    t = s.times
    report.append(f"cluster: build {t['cluster_build']:.0f}s, up --wait (head + 2 workers) "
                  f"{t['cluster_up']:.0f}s, ray ingest {t['ray_ingest']:.0f}s, sweep {t['ray_sweep']:.0f}s, "
                  f"stop {t['cluster_stop']:.0f}s; total {time.monotonic() - started:.0f}s")
