"""Base images for the container test: the real ones when a registry answers, local stand-ins otherwise.

The product files (Dockerfile, docker-compose.yml) name `python:3.11-slim` and `chromadb/chroma:<version>`.
When `docker pull` cannot reach a registry, this module builds stand-ins and tags them with exactly those
names, so the product files are built and run unchanged:

- `python:3.11-slim`: Debian bookworm (whose python3 is 3.11) made by `mmdebstrap --variant=minbase` with
  python3, python3-venv and `python` -> python3, imported with `docker import`. Test-time only: when the host
  trusts extra CA certificates (an HTTPS proxy), they are copied into this stand-in so pip inside the build
  can reach PyPI; the real base image never gets them, and neither does anything committed.
- `chromadb/chroma:<version>`: FROM the freshly built backend image, whose venv holds chromadb==<version> (the
  PyPI package ships the same Rust server as the official image), running `chroma run --host 0.0.0.0 --port
  8000
  --path /data` as root (the official image persists to /data as well, and has bash, which the compose
  healthcheck uses).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STANDIN_LABEL = "org.axiom-workbench.test-standin"
DEBIAN_SUITE = "bookworm"  # python3 3.11, as python:3.11-slim
HOST_EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")

Log = Callable[[str], None]


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def is_standin(name: str) -> bool:
    out = subprocess.run(["docker", "image", "inspect", "-f",
                          "{{ index .Config.Labels \"" + STANDIN_LABEL + "\" }}",
                          name], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "true"


def try_pull(name: str, timeout: float = 600) -> tuple[bool, str]:
    try:
        out = subprocess.run(["docker", "pull", "--quiet", name], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"docker pull {name} timed out after {timeout:.0f}s"
    lines = (out.stderr or out.stdout).strip().splitlines()
    return out.returncode == 0, lines[-1] if lines else ""


def _run(cmd: list[str], log: Log, timeout: float, **kwargs) -> None:
    log("$ " + " ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({out.returncode}):\n{tail}")


def build_python_standin(tag: str, log: Log) -> None:
    if not shutil.which("mmdebstrap"):
        raise RuntimeError("mmdebstrap is missing: run `bash .ci/docker-engine.sh` (it installs docker.io "
                           "and mmdebstrap), or give the engine access to an image registry")
    certs = sorted(glob.glob(str(HOST_EXTRA_CA_DIR / "*.crt")))
    hook = ("mkdir -p \"$1/usr/local/share/ca-certificates\" && "
            f"cp {HOST_EXTRA_CA_DIR}/*.crt \"$1/usr/local/share/ca-certificates/\" && "
            "chroot \"$1\" update-ca-certificates") if certs else "true"
    with tempfile.TemporaryDirectory(prefix="axiom-standin-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        _run(["mmdebstrap", "--quiet", "--variant=minbase",
              "--include=python3,python3-venv,python-is-python3,ca-certificates",
              f"--customize-hook={hook}", DEBIAN_SUITE, str(rootfs)], log, timeout=900)
        _run(["docker", "import",
              "-c", f"LABEL {STANDIN_LABEL}=true",
              "-c", "ENV LANG=C.UTF-8",
              "-c", 'CMD ["python3"]',
              str(rootfs), tag], log, timeout=300)


# The chromadb PyPI package carries the same Rust server as the official image (`chroma run`). The backend
# image already holds chromadb==<client version> (pinned in pyproject.toml, which a test keeps equal to the
# compose tag), so the stand-in reuses its venv instead of a second multi-minute pip install.
CHROMA_STANDIN_DOCKERFILE = """\
FROM {base}
LABEL {label}=true
USER root
ENV RUST_LOG=warn
EXPOSE 8000
HEALTHCHECK NONE
ENTRYPOINT ["chroma"]
CMD ["run", "--host", "0.0.0.0", "--port", "8000", "--path", "/data"]
"""


def build_chroma_standin(tag: str, base: str, log: Log) -> None:
    """`tag` (chromadb/chroma:<version>) FROM `base`, an image whose venv has chromadb==<version>."""
    match = re.fullmatch(r"[\w./-]+:(\d+\.\d+\.\d+)", tag)
    if not match:
        raise RuntimeError(f"cannot build a ChromaDB stand-in for {tag!r}: the tag "
                           "must be a chromadb version")
    version = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", base, "-c",
                              "import importlib.metadata as m; print(m.version('chromadb'))"],
                             capture_output=True, text=True, timeout=300).stdout.strip()
    if version != match.group(1):
        raise RuntimeError(f"{base} has chromadb {version or '(none)'}, not {match.group(1)}: "
                           f"cannot stand in for {tag}")
    with tempfile.TemporaryDirectory(prefix="axiom-standin-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(
            CHROMA_STANDIN_DOCKERFILE.format(base=base, label=STANDIN_LABEL)
        )
        _run(["docker", "build", "--quiet", "-t", tag, tmp], log, timeout=600, env=_legacy_build_env())


def _legacy_build_env() -> dict[str, str]:
    # The stand-in Dockerfile is plain; the legacy builder needs no buildx plugin.
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def ensure_image(name: str, build_standin: Callable[[], None], log: Log) -> str:
    """Make `name` available locally; returns how it was obtained (for the report)."""
    if image_exists(name):
        return "stand-in (built earlier)" if is_standin(name) else "present"
    started = time.monotonic()
    ok, message = try_pull(name)
    if ok:
        return f"pulled ({time.monotonic() - started:.0f}s)"
    log(f"docker pull {name} failed ({message}); building a local stand-in")
    build_standin()
    return f"stand-in built ({time.monotonic() - started:.0f}s)"
