"""A locked install resolves nothing, so no upstream release can break it (issue 24, item 0).

The image build broke without a change here: the pip bundled with the base image's `python -m venv` (23.0.1 in
Debian bookworm's python3-venv, the container test's stand-in base) re-read chromadb's own requirement
`uvicorn[standard]>=0.18.3` as an extra requirement, found uvicorn 0.55.0 on PyPI (the lock pins 0.54.0) and
refused the whole install under --require-hashes. Every install of a lock therefore passes --no-deps (the lock
holds every package; `pip check` after it proves that), and the exact command of the Makefile and of the
Dockerfile is run here with that oldest pip.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The oldest pip that a supported base image bundles into a venv: Debian bookworm's python3-pip-whl (the
# stand-in base of the container test); python:3.11-slim bundles a newer one.
OLDEST_BUNDLED_PIP = "23.0.1"
LOCK_ARG = re.compile(r"-r\s+(\S*lock\.txt)")


def _joined(path: Path) -> str:
    """The file with shell line continuations joined and the Makefile's `NAME := value` variables filled
    in."""
    text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    variables = dict(re.findall(r"^([A-Z_]+)\s*:=\s*(\S+)\s*$", text, re.M))
    return re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m.group(1), m.group(0)), text)


def _lock_installs() -> list[tuple[str, list[str], str]]:
    """(where, pip install arguments, lock file) of every `pip install -r <lock>` in the Makefile and
    Dockerfile."""
    found = []
    for name in ("Makefile", "Dockerfile"):
        for line in _joined(REPO / name).splitlines():
            for part in re.split(r"&&|;|\bthen\b|\bif\b|!", line):
                if "pip install" not in part or not LOCK_ARG.search(part):
                    continue
                words = shlex.split(part.split("pip install", 1)[1].replace("$(", "").replace(")", ""))
                found.append((name, words, LOCK_ARG.search(part).group(1)))
    return found


def test_every_install_of_a_lock_resolves_nothing() -> None:
    installs = _lock_installs()
    places = {where for where, _, _ in installs}
    assert places == {"Makefile", "Dockerfile"}, f"expected lock installs in both files, found {installs}"
    bad = [f"{where}: pip install {' '.join(words)}" for where, words, _ in installs
           if "--no-deps" not in words or "--require-hashes" not in words]
    assert not bad, "a lock must be installed with --no-deps --require-hashes:\n  " + "\n  ".join(bad)
    for name in ("Makefile", "Dockerfile"):
        assert "pip check" in _joined(REPO / name), f"{name}: no `pip check` proves the lock complete"


@pytest.fixture(scope="module")
def oldest_pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("oldest-pip") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "--quiet", f"pip=={OLDEST_BUNDLED_PIP}"], check=True, timeout=600)
    version = subprocess.run([str(pip), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith(f"pip {OLDEST_BUNDLED_PIP} "), version
    return pip


@pytest.mark.slow
def test_the_locks_install_with_the_oldest_bundled_pip(oldest_pip: Path) -> None:
    """The same flags as the Makefile / Dockerfile, as a dry run (every file is fetched and hash-checked).

    lock.txt only: runtime.lock.txt (the image's) is lock.txt's lines without the dev tools and Ray, at the
    same versions and hashes (tests/test_lock.py::test_runtime_lock_is_the_full_lock_without_the_dev_tools),
    so this run fetches and checks every file it names too; a second dry run of it took 67-85 s of a loaded
    `make test` and checked nothing more."""
    lock = "requirements/lock.txt"
    for name in ("lock.txt", "runtime.lock.txt"):  # both files are installed with these flags
        flags = sorted({w for _, words, path in _lock_installs() if Path(path).name == name
                        for w in words if w in ("--no-deps", "--require-hashes")})
        assert flags == ["--no-deps", "--require-hashes"], name
    done = subprocess.run([str(oldest_pip), "install", *flags, "--dry-run", "--ignore-installed", "--quiet",
                           "-r", str(REPO / lock)], capture_output=True, text=True, timeout=900)
    errors = "\n".join(ln for ln in done.stderr.splitlines() if "is ignored" not in ln)
    assert done.returncode == 0, f"pip {OLDEST_BUNDLED_PIP} could not install {lock}:\n{errors[-3000:]}"
