"""How things are named: the one module that derives ChromaDB collection names and the names of the folders
runs are written to. Every face imports these (the CLI's eval, the notebooks, the sweep, the BEIR benchmark).

Collections (3-512 chars of [a-z0-9._-], ending with the embedding model so that two models never share one):
- `eval_collection(corpus, model)`: `eval-<corpus folder>-<hash of its absolute path>-<model>`, the
  collection of `axiom eval --corpus` and of a notebook given a corpus (01 -> 02 -> 03 share it, ingest once);
- `sweep_collection(corpus, size, overlap, model)`: one per chunking of a sweep that varies the chunking;
- `beir_collection(folder, model)`: a BEIR benchmark's.

Folders (under the runs folder, or a sweep's `--out`), all starting with the UTC time (`utc_stamp`), so that a
listing is in time order:
- `run_folder_name(started, name, n)`: `<stamp>-<name>`, or `<stamp>-<n>-<name>` when another run of that name
  started in the same second (a run folder's name always ends with its run's name);
- `stamped_name(name, suffix)` + `unique_path`: a sweep's folder (`<stamp>-<name>`), the runner's notebook
  folder (`<stamp>-<name>-notebooks`) or kept failure (`<stamp>-<name>-failed`); `-2`, `-3`... when it exists;
- `work_folder_name(kind, name)`: a hidden folder a run is built in before it is renamed into place.

Runs of a sweep: `sweep_run_name(sweep, combination)` is `<sweep name>-<k=v,k=v>` (`combination_label`), the
name its run folder ends with (made file-name-safe there: `sweep-top_k-3`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from axiom.errors import AxiomError

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def safe_name(name: str) -> str:
    """`name` as a file-name-safe label ([A-Za-z0-9._-], at most 80 characters, `run` when nothing is
    left)."""
    cleaned = _NAME_OK.sub("-", name).strip("-.") or "run"
    return cleaned[:80]


def collection_name(prefix: str, label: str, model_id: str, *, salt: str | None = None) -> str:
    """A ChromaDB-safe collection name like `beir-scifact-all-minilm-l6-v2` (3-512 chars, [a-z0-9._-])."""
    parts = [prefix, label] + ([salt] if salt else []) + [model_id.rsplit("/", 1)[-1]]
    name = re.sub(r"[^a-z0-9._-]+", "-", "-".join(parts).lower()).strip("-._")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) > 200:
        name = name[:190] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name if len(name) >= 3 else f"{name}-col"


def _path_hash(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:8]


def eval_collection(corpus: str | os.PathLike[str], model_id: str) -> str:
    """The evaluation collection of a corpus folder: its name, a hash of its absolute path, the model."""
    resolved = Path(corpus).resolve()
    return collection_name("eval", resolved.stem or "corpus", model_id, salt=_path_hash(resolved))


def sweep_collection(corpus: str | os.PathLike[str], chunk_size: object, chunk_overlap: object,
                     model_id: str) -> str:
    """The collection of one chunking of a sweep: `sweep-<corpus>-<hash>-c<size>o<overlap>-<model>`."""
    resolved = Path(corpus).resolve()
    salt = f"{_path_hash(resolved)}-c{chunk_size}o{chunk_overlap}"
    return collection_name("sweep", resolved.stem or "corpus", model_id, salt=salt)


def beir_collection(folder: str | os.PathLike[str], model_id: str) -> str:
    return collection_name("beir", Path(folder).resolve().name, model_id)


def combination_label(combination: Mapping[str, object]) -> str:
    """A sweep combination as `k=v,k=v` (in the grid's order): how a sweep's tables and log lines name it."""
    return ",".join(f"{k}={v}" for k, v in combination.items())


def sweep_run_name(sweep: str, combination: Mapping[str, object]) -> str:
    """The name of a sweep's run of `combination`: `<sweep name>-<k=v,k=v>`."""
    return f"{sweep}-{combination_label(combination)}"


def utc_stamp(when: datetime | None = None) -> str:
    """`when` (default: now) as the UTC timestamp that starts the name of every folder a run writes."""
    return (when or datetime.now(UTC)).strftime(STAMP_FORMAT)


def run_folder_name(started: datetime, name: str, n: int = 1) -> str:
    """The name of a run folder: `<stamp>-<name>`, or `<stamp>-<n>-<name>` for the n-th run of that name to
    start in that second."""
    stamp, label = utc_stamp(started), safe_name(name)
    return f"{stamp}-{label}" if n == 1 else f"{stamp}-{n}-{label}"


def stamped_name(name: str, suffix: str = "") -> str:
    """`<stamp of now>-<name>[-<suffix>]`: a sweep's folder, the runner's notebook or failure folder."""
    return f"{utc_stamp()}-{safe_name(name)}" + (f"-{suffix}" if suffix else "")


def work_folder_name(kind: str, name: str) -> str:
    """A hidden folder, unique to this process and moment, that a run is built in (`.tmp-*`, `.nb-*`)."""
    return f".{kind}-{safe_name(name)}-{os.getpid()}-{time.monotonic_ns()}"


def unique_path(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`... when it exists."""
    if not path.exists():
        return path
    for n in range(2, 1000):
        candidate = path.with_name(f"{path.name}-{n}")
        if not candidate.exists():
            return candidate
    raise AxiomError(f"no free folder name for {path}")
