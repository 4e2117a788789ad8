"""The dependency locks (requirements/lock.txt, requirements/runtime.lock.txt) agree with pyproject.toml, pin
every package with a hash, and the installed .venv is what `make install` promises: the lock's versions.

Fast and offline: no resolver runs here. A pyproject.toml edited without `make lock` fails
`test_lock_header_records_the_current_pyproject` (the header's pyproject-sha256 is recomputed).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
RUNTIME_LOCK = REPO / "requirements" / "runtime.lock.txt"
# the cluster image: runtime + ray extra + ray[default]
CLUSTER_LOCK = REPO / "requirements" / "cluster.lock.txt"
BOTH = pytest.mark.parametrize("lock", [LOCK, RUNTIME_LOCK], ids=lambda p: p.name)
ALL = pytest.mark.parametrize("lock", [LOCK, RUNTIME_LOCK, CLUSTER_LOCK], ids=lambda p: p.name)

# One entry: `name==version \` then one or more `--hash=sha256:...` continuation lines.
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:[ \t]*\\\n[ \t]+--hash=\S+)*)", re.M)


def _lock_script():
    spec = importlib.util.spec_from_file_location("axiom_lock_script", REPO / "requirements" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _entries(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) of every pinned package; fails on a requirement line that is not `==`."""
    text = lock.read_text(encoding="utf-8")
    out: dict[str, tuple[Version, list[str]]] = {}
    for match in ENTRY.finditer(text):
        name = canonicalize_name(match.group(1))
        assert name not in out, f"{lock.name}: {name} is pinned twice"
        out[name] = (Version(match.group(2)), re.findall(r"--hash=(\S+)", match.group(3)))
    logical = [ln for ln in re.sub(r"\\\n", " ", text).splitlines() if ln.strip()
               and not ln.lstrip().startswith("#")]
    assert len(logical) == len(out), (
        f"{lock.name}: every line must be `name==version --hash=sha256:...`; not so: "
        + "; ".join(ln[:80] for ln in logical if not ENTRY.match(ln + "\n"))[:600])
    return out


def _wanted(runtime_only: bool) -> list[Requirement]:
    """What a lock must hold: the runtime lock the dependencies, the full lock also the dev and ray extras."""
    project = _project()
    extras = project["optional-dependencies"]
    lines = project["dependencies"] + ([] if runtime_only else extras["dev"] + extras["ray"])
    return [Requirement(line) for line in lines]


@BOTH
def test_every_pyproject_requirement_is_locked_at_a_version_it_allows(lock: Path) -> None:
    entries = _entries(lock)
    problems = []
    for req in _wanted(runtime_only=lock == RUNTIME_LOCK):
        name = canonicalize_name(req.name)
        if name not in entries:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(entries[name][0], prereleases=True):
            problems.append(f"{req}: the lock has {entries[name][0]}")
    assert not problems, f"{lock.name} disagrees with pyproject.toml (run `make lock`):\n  " + "\n  ".join(
        problems
    )


@ALL
def test_every_lock_entry_has_a_sha256_hash(lock: Path) -> None:
    entries = _entries(lock)
    assert len(entries) > 50, f"{lock.name} has only {len(entries)} entries"
    unhashed = sorted(n for n, (_, hashes) in entries.items()
                      if not any(h.startswith("sha256:") for h in hashes))
    assert not unhashed, f"{lock.name}: no --hash=sha256 for {unhashed}"
    malformed = sorted(n for n, (_, hashes) in entries.items()
                       if not all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes))
    assert not malformed, f"{lock.name}: malformed hashes for {malformed}"


@ALL
def test_lock_header_records_the_current_pyproject(lock: Path) -> None:
    match = re.search(r"^# pyproject-sha256: ([0-9a-f]{64})$", lock.read_text(encoding="utf-8"), re.M)
    assert match, f"{lock.name} has no `# pyproject-sha256:` header line (written by `make lock`)"
    current = _lock_script().pyproject_digest(REPO / "pyproject.toml")
    assert match.group(1) == current, (
        f"{lock.name} was made from another pyproject.toml (its requires-python, dependencies, dev or ray "
        "extra changed since): run `make lock`, then `make install`")


def test_the_digest_moves_with_any_input_of_the_lock(tmp_path: Path) -> None:
    script = _lock_script()
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    base = script.pyproject_digest(REPO / "pyproject.toml")
    edits = [text.replace("\ndependencies = [\n", '\ndependencies = [\n    "tqdm>=0",\n', 1),
             text.replace("\ndev = [\n", '\ndev = [\n    "pytest>=0",\n', 1),
             text.replace("\nray = [\n", '\nray = [\n    "tqdm>=0",\n', 1),
             re.sub(r'^requires-python = "', 'requires-python = ">=3.0,', text, count=1, flags=re.M)]
    for i, edited in enumerate(edits):
        assert edited != text, f"edit {i} matched nothing in pyproject.toml: update this test"
        path = tmp_path / f"pyproject{i}.toml"
        path.write_text(edited, encoding="utf-8")
        assert script.pyproject_digest(path) != base, f"edit {i} did not change the digest"
    path = tmp_path / "comment.toml"
    path.write_text(text.replace("[tool.ruff]", "# a comment\n[tool.ruff]"), encoding="utf-8")
    assert script.pyproject_digest(path) == base, "an edit outside the lock's inputs must not force a re-lock"


@ALL
def test_torch_is_the_published_cpu_build_and_nothing_of_cuda_is_locked(lock: Path) -> None:
    entries = _entries(lock)
    version, hashes = entries["torch"]
    assert version.local == "cpu", f"{lock.name}: torch {version} is not the CPU build"
    published = _lock_script().TORCH_CPU_SHA256.get(str(version))
    assert published and f"sha256:{published}" in hashes, (
        f"{lock.name}: torch {version}'s hashes {hashes} lack the one the PyTorch CPU index publishes")
    cuda = sorted(n for n in entries if n.startswith(("nvidia-", "cuda-", "triton")))
    assert not cuda, f"{lock.name} holds CUDA packages {cuda}: torch resolved to a CUDA build"


def test_runtime_lock_is_the_full_lock_without_the_dev_tools() -> None:
    full, runtime = _entries(LOCK), _entries(RUNTIME_LOCK)
    differ = sorted(f"{n}: {runtime[n][0]} vs {full.get(n, ('missing',))[0]}" for n in runtime
                    if n not in full or full[n] != runtime[n])
    assert not differ, (
        f"runtime.lock.txt must hold lock.txt's versions and hashes (run `make lock`): {differ}"
    )
    dev_only = {canonicalize_name(r.name)
                for r in _wanted(False)} - {canonicalize_name(r.name) for r in _wanted(True)}
    assert not dev_only & set(runtime), (
        f"dev tools or ray in the runtime lock: {sorted(dev_only & set(runtime))}"
    )
    assert "ray" in full and "ray" not in runtime, (
        "lock.txt must hold ray (the ray extra), runtime.lock.txt not"
    )


def test_cluster_lock_is_the_runtime_plus_ray_at_the_full_locks_versions() -> None:
    """The cluster image installs the runtime lock, then what cluster.lock.txt adds (Ray, its dashboard):
    every package both hold must be the same file, and Ray the version (and files) of the ray extra in
    lock.txt."""
    full, runtime, cluster = _entries(LOCK), _entries(RUNTIME_LOCK), _entries(CLUSTER_LOCK)
    differ = sorted(f"{n}: {cluster[n][0]} vs {runtime.get(n, full.get(n, ('missing',)))[0]}" for n in cluster
                    if (n in runtime and runtime[n] != cluster[n]) or (n in full and full[n] != cluster[n]))
    assert not differ, (
        f"cluster.lock.txt must hold lock.txt's versions and hashes (run `make lock`): {differ}"
    )
    assert set(runtime) <= set(cluster), f"cluster.lock.txt lacks {sorted(set(runtime) - set(cluster))}"
    ray = [Requirement(r) for r in _project()["optional-dependencies"]["ray"] if Requirement(r).name == "ray"]
    assert ray and "ray" in cluster and ray[0].specifier.contains(cluster["ray"][0]), cluster.get("ray")
    assert "aiohttp-cors" in cluster, "ray[default] (the dashboard) is not in cluster.lock.txt"
    dev = {canonicalize_name(Requirement(r).name) for r in _project()["optional-dependencies"]["dev"]}
    assert not (dev - set(runtime)) & set(cluster) - {"py-spy"}, "dev tools in the cluster lock"


def test_installed_venv_matches_the_lock() -> None:
    """What `make install` promises: this interpreter's environment holds exactly the locked versions."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("not running in a virtual environment (make install creates .venv)")
    stale = []
    for name, (version, _) in sorted(_entries(LOCK).items()):
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            stale.append(f"{name}: not installed (locked {version})")
            continue
        if installed != version:
            stale.append(f"{name}: installed {installed}, locked {version}")
    assert not stale, f"{sys.prefix} is not the lock (run `make install`):\n  " + "\n  ".join(stale)
