"""What the container tests share: the project copy, the `.env` they write, the Docker engine check, and
`Stack`, which runs docker / compose commands in the copy and logs them (the `stack` fixture is in
conftest.py)."""

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
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CANARY = f"sk-test-canary-{uuid.uuid4().hex[:12]}"
API_KEY = f"axiom-test-key-{uuid.uuid4().hex}"  # >= 16 characters, as axiom serve requires
EVAL_QUESTIONS = 10
# The host user the stack runs as: neither the image's 1000 nor root (issue #6: compose on any host UID).
STACK_UID, STACK_GID = 4321, 4321
DEFAULT_PORTS = {"AXIOM_SIDECAR_HOST_PORT": 5000, "AXIOM_API_HOST_PORT": 8000, "CHROMA_HOST_PORT": 8001,
                 "JUPYTER_HOST_PORT": 8888, "AXIOM_RAY_DASHBOARD_HOST_PORT": 8265}


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def compose_base() -> list[str]:
    """`docker compose` when the plugin works, else the venv's standalone Compose v2 binary."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    standalone = VENV_BIN / "docker-compose"
    if standalone.exists():
        return [str(standalone)]
    pytest.fail("no Compose v2: neither `docker compose` nor the venv's docker-compose "
                "(dev extras) is installed")


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
    """Hand a host path to the containers' user (STACK_UID), as a clone owned by that user would be: chown as
    root, else (a non-root developer) open the mode; what the containers create there is theirs either way."""
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


class Stack:
    """Runs docker / compose commands in the project copy, logging everything to one file."""

    def __init__(self, root: Path, project: str, log_path: Path) -> None:
        self.root = root
        self.project = project
        self.image_name = project  # AXIOM_IMAGE_NAME: this run's images never replace a developer's
        self.log_path = log_path
        self.compose = compose_base()
        # AXIOM_UID / AXIOM_GID from the shell, as in DOCKER_SETUP.md: AXIOM_UID=$(id -u) AXIOM_GID=$(id -g)
        # docker ...
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
            out = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.log(f"TIMEOUT after {timeout}s\n{exc.stdout or ''}\n{exc.stderr or ''}")
            raise AssertionError(
                f"`{shlex.join(args)}` timed out after {timeout:.0f}s; log: {self.log_path}"
            ) from None
        took = time.monotonic() - started
        if timed:
            self.times[timed] = took
        self.log(f"[exit {out.returncode} after {took:.1f}s]\n{out.stdout}\n{out.stderr}")
        if check and out.returncode != 0:
            tail = "\n".join((out.stdout + "\n" + out.stderr).strip().splitlines()[-40:])
            raise AssertionError(f"`{shlex.join(args)}` exited "
                                 f"{out.returncode}:\n{tail}\n(full log: {self.log_path})")
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
        status = self.exec_json("axiom-backend", "axiom", "status", "--collection", collection, "--json",
                                timeout=300)
        return int(status["chunks"])

    def up(self, label: str) -> None:
        self.dc("up", "-d", "--wait", "--wait-timeout", "600", timeout=900, timed=label)

    def diagnostics(self) -> str:
        parts = []
        for args in (["--profile", "cluster", "ps", "-a"],
                     ["--profile", "cluster", "logs", "--no-color", "--tail", "60"]):
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
