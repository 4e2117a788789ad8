"""Shared helpers for the benchmarks: timing statistics, BEIR reading, result tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "scifact"
QUICK_DATASET = REPO.parent / "shared" / "datasets" / "scifact-sample"


@dataclass
class Figure:
    """One measured figure: repetitions, and their median / min / max."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def to_dict(self) -> dict[str, Any]:
        if not self.values:
            return {"median": None, "min": None, "max": None, "n": 0}
        return {"median": self.median, "min": min(self.values), "max": max(self.values),
                "n": len(self.values)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def write_corpus_files(corpus: dict[str, str], folder: Path) -> None:
    """One `<doc id>.txt` per document; a file already holding the right text is left alone (so a kept corpus
    folder is not rewritten on every run)."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, text in corpus.items():
        path = folder / f"{doc_id}.txt"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def machine_facts() -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "python": platform.python_version(), "platform": platform.platform(),
                             "torch": torch.__version__, "load_average": os.getloadavg()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        facts["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                             if line.startswith("model name")), None)
        meminfo = Path("/proc/meminfo").read_text().split()
        facts["memory_gb"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 ** 2, 1)
    except (OSError, ValueError, StopIteration):
        pass
    try:
        import chromadb
        import sentence_transformers

        facts["chromadb"] = chromadb.__version__
        facts["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        pass
    return facts


def write_result(result: dict[str, Any], out: Path, name: str) -> Path:
    """Stamp the machine's facts and load on a benchmark's result and write it as out/<name>.json."""
    result["load_after"] = os.getloadavg()
    result["machine"] = machine_facts()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
