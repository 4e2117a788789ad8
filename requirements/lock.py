"""Refresh the dependency locks from pyproject.toml (`make lock`; stdlib only, uv from the dev extra).

    python requirements/lock.py [--upgrade] [--find-links DIR_OR_URL]...

Writes two files, each pinning every package (direct and transitive) with the sha256 of its files, for CPython
3.11 on Linux x86_64 (manylinux_2_28):

- requirements/lock.txt          [project.dependencies] + the dev and ray extras: what `make install` (and CI)
                                 installs;
- requirements/runtime.lock.txt  [project.dependencies] only, at the versions of lock.txt: what the image installs
                                 (no dev tools, no Ray: `pip install 'axiom-workbench[ray]'` adds it);
- requirements/cluster.lock.txt  [project.dependencies] + the ray extra + `ray[default]` (Ray's dashboard) at the
                                 ray extra's version, at the versions of lock.txt: what the cluster image adds
                                 (Dockerfile target `cluster`).

Both are installed with `pip install --require-hashes -r FILE`: pip refuses a file whose hash is not listed.
Without --upgrade the pins already in the files are kept wherever they still fit pyproject.toml.

torch is locked as the CPU build (`torch==X+cpu`). PyPI does not serve it (its Linux torch is the CUDA build), so
uv needs a --find-links that holds it: a folder with the wheel, or the PyTorch CPU index's torch page. The hash
uv writes for it is the hash of the file it found (of every file on the page, for a page); the refresh refuses
the lock unless the hash the PyTorch CPU index publishes for the cp311 manylinux_2_28_x86_64 wheel is among them
(TORCH_CPU_SHA256 below, to be extended when torch moves).

Each lock's header records `pyproject-sha256`, the digest of the inputs (requires-python, dependencies, the dev
and ray extras): tests/test_lock.py recomputes it, so a pyproject.toml edited without `make lock` fails the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "lock.txt"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock.txt"
CLUSTER_LOCK = ROOT / "requirements" / "cluster.lock.txt"
PYTHON_VERSION = "3.11"  # any 3.11.x: uv keeps only releases that support 3.11.0 and later
PYTHON_PLATFORM = "x86_64-manylinux_2_28"  # glibc >= 2.28, as torch's CPU wheel

# sha256 of torch's CPU wheels for CPython 3.11 on Linux x86_64 as published by https://download.pytorch.org/whl/cpu
# (torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl). Checked before a refresh writes a lock.
TORCH_CPU_SHA256 = {
    "2.13.0+cpu": "6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b",
}


def project_inputs(pyproject: Path = PYPROJECT) -> dict:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return {
        "requires-python": project["requires-python"],
        "dependencies": project["dependencies"],
        "dev": project["optional-dependencies"]["dev"],
        "ray": project["optional-dependencies"]["ray"],
    }


def pyproject_digest(pyproject: Path = PYPROJECT) -> str:
    """sha256 of the lock's inputs in pyproject.toml (order and spelling count: any edit means re-lock)."""
    canonical = json.dumps(project_inputs(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def torch_pin(project: dict) -> str:
    pins = [r for r in project["dependencies"] if re.match(r"torch\s*==", r)]
    if len(pins) != 1:
        raise SystemExit("pyproject.toml must pin torch with == (an open torch resolves to a CUDA build)")
    return pins[0].split("==", 1)[1].strip() + "+cpu"


def ray_dashboard_pin(project: dict) -> str:
    """`ray[default]==X` for the ray extra's `ray[...]==X`: the cluster image's nodes also run Ray's dashboard."""
    pins = [r for r in project["ray"] if re.match(r"ray(\[[^\]]*\])?\s*==", r)]
    if len(pins) != 1:
        raise SystemExit("the ray extra of pyproject.toml must pin ray with == (the cluster lock adds its dashboard)")
    return "ray[default]==" + pins[0].split("==", 1)[1].strip()


def header(what: str, digest: str, torch: str) -> str:
    return "\n".join([
        f"# Axiom Workbench dependency lock: {what}.",
        "# Every package, direct and transitive, is pinned with the sha256 of its files: install with",
        "#   pip install --require-hashes -r <this file>",
        f"# Target: CPython {PYTHON_VERSION} (any 3.11.x), Linux {PYTHON_PLATFORM.replace('-', ' ')}.",
        "# Do not edit: `make lock` writes it (`make lock UPGRADE=1` moves every pin to the newest that fits).",
        f"# torch=={torch} is the CPU build. PyPI does not serve it: pip finds it through TORCH_INDEX_URL",
        "# (https://download.pytorch.org/whl/cpu) or a find-links folder holding the wheel. Its hash is the one the",
        f"# PyTorch CPU index publishes for the cp311 manylinux_2_28_x86_64 wheel ({TORCH_CPU_SHA256[torch][:12]}...).",
        "# tests/test_lock.py checks this file against pyproject.toml (pyproject-sha256: its requires-python,",
        "# dependencies, dev and ray extras) and the installed .venv against this file.",
        f"# pyproject-sha256: {digest}",
        "",
    ])


def compile_lock(out: Path, extra_args: list[str], find_links: list[str], upgrade: bool) -> None:
    cmd = [sys.executable, "-m", "uv", "pip", "compile", str(PYPROJECT.relative_to(ROOT)),
           "--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM,
           "--generate-hashes", "--no-header", "--quiet", "-o", str(out.relative_to(ROOT)), *extra_args]
    for link in find_links:
        cmd += ["--find-links", link]
    if upgrade:
        cmd.append("--upgrade")
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def locked_hashes(text: str, name: str) -> tuple[str, list[str]]:
    match = re.search(rf"^{re.escape(name)}==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]+)+)", text, re.M | re.I)
    if not match:
        raise SystemExit(f"{name} is missing from the lock")
    return match.group(1), re.findall(r"sha256:([0-9a-f]{64})", match.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest release that fits")
    parser.add_argument("--find-links", action="append", default=[], metavar="DIR_OR_URL",
                        help="where uv finds the CPU build of torch (a folder or a page of links); repeatable")
    args = parser.parse_args()

    inputs = project_inputs()
    torch = torch_pin(inputs)
    if torch not in TORCH_CPU_SHA256:
        raise SystemExit(f"no published sha256 known for torch {torch}: add it to TORCH_CPU_SHA256 in {__file__} "
                         "from the PyTorch CPU index, after checking it against the wheel you lock")
    digest = pyproject_digest()

    with tempfile.TemporaryDirectory() as tmp:
        constraint = Path(tmp) / "torch-cpu.txt"
        constraint.write_text(f"torch=={torch}\n", encoding="utf-8")
        compile_lock(LOCK, ["--extra", "dev", "--extra", "ray", "-c", str(constraint)], args.find_links,
                     args.upgrade)
    # The runtime set at exactly the versions (and hashes) of the full lock.
    compile_lock(RUNTIME_LOCK, ["-c", str(LOCK.relative_to(ROOT))], args.find_links, upgrade=False)
    # The cluster image's set: the runtime, the ray extra and Ray's dashboard, at the full lock's versions.
    with tempfile.TemporaryDirectory() as tmp:
        dashboard = Path(tmp) / "ray-dashboard.txt"
        dashboard.write_text(ray_dashboard_pin(inputs) + "\n", encoding="utf-8")
        compile_lock(CLUSTER_LOCK, ["--extra", "ray", str(dashboard), "-c", str(LOCK.relative_to(ROOT))],
                     args.find_links, upgrade=False)

    for path, what in ((LOCK, "pyproject.toml's dependencies + dev and ray extras (make install)"),
                       (RUNTIME_LOCK, "pyproject.toml's dependencies only, as in lock.txt (the image)"),
                       (CLUSTER_LOCK, "pyproject.toml's dependencies + ray extra + ray[default], as in lock.txt "
                                      "(the cluster image)")):
        body = path.read_text(encoding="utf-8")
        version, hashes = locked_hashes(body, "torch")
        if version != torch or TORCH_CPU_SHA256[torch] not in hashes:
            path.unlink()
            raise SystemExit(f"{path.name}: torch {version} with hashes {hashes} is not the published CPU wheel "
                             f"{torch} {TORCH_CPU_SHA256[torch]}; lock removed. Point --find-links at the real wheel.")
        # uv names the constraint files in its `# via` notes: the torch one is a temporary file, and in the runtime
        # lock every package would be `via -c requirements/lock.txt`. Neither says why a package is there. The
        # cluster lock's dashboard pin is a temporary requirements file: named as what it is.
        body = re.sub(r"^    #   -c \S+\n", "", body, flags=re.M)
        body = re.sub(r"-r \S*ray-dashboard\.txt", "ray[default] (the cluster image's dashboard)", body)
        path.write_text(header(what, digest, torch) + body, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}: {len(re.findall(r'^[A-Za-z0-9]', body, re.M))} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
