"""The configurations the gate calibration evaluates (`bench.gate_calibration`): the variants, the data copies
they read (shuffled golden, renamed corpus, the `--quick` subset), the drop-best-hit fault injection, and
evaluating each configuration once with the real `run_evaluation`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.common import REPO

if TYPE_CHECKING:
    from axiom.config import Settings
    from axiom.embeddings import Embedder
    from axiom.evaluation.run_folder import RunRecord
    from axiom.types import Hit

SHUFFLE_SEED = 20240601
QUICK_QUESTIONS, QUICK_DISTRACTORS = 60, 60

NULL, INJECTED = "null", "injected"
# name, kind, what it is (the configuration evaluated is the key into the records)
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("rerun", NULL, "(a) the same configuration evaluated again"),
    ("shuffled", NULL, "(b) golden lines shuffled"),
    ("renamed", NULL, "(c) corpus files renamed and reordered"),
    ("stats-seed", NULL, "(d) the baseline run itself; only the statistics seed varies"),
    ("top_k-1", INJECTED, "(i) top_k 5 -> 1"),
    ("chunk-100", INJECTED, "(ii) chunk_size 800 -> 100 (overlap 160 -> 20)"),
    ("drop-best-hit", INJECTED, "(iii) the retriever drops its best hit"),
)


# -- data preparation ------------------------------------------------------------------------------
def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_if_changed(path: Path, text: str) -> Path:
    """Write text unless the file already holds it (keeps mtimes, so a kept work folder is not churned)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def write_shuffled_golden(golden: Path, target: Path, *, seed: int = SHUFFLE_SEED) -> Path:
    """A copy of the golden set with its lines in a seeded random order (same items, same bytes per line)."""
    lines = read_lines(golden)
    random.Random(seed).shuffle(lines)
    return write_if_changed(target, "\n".join(lines) + "\n")


def renamed_source(source: str) -> str:
    """`22186742.txt` -> `doc-<first 10 hex of sha1("22186742")>.txt`."""
    stem, _, ext = source.rpartition(".")
    return f"doc-{hashlib.sha1(stem.encode('utf-8')).hexdigest()[:10]}.{ext}"


def write_renamed_corpus(corpus: Path, golden: Path, out_corpus: Path, out_golden: Path) -> dict[str, str]:
    """Copy every corpus file under a new name (`renamed_source`) and write a golden copy whose
    `relevant_sources` use the new names; everything else of each item is kept. Returns old -> new name.
    Files of out_corpus that are not part of the mapping are removed (ingest prunes them)."""
    mapping: dict[str, str] = {}
    out_corpus.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in corpus.iterdir() if p.is_file()):
        new = renamed_source(path.name)
        if new in mapping.values():
            raise ValueError(f"renaming collision on {new} ({path.name})")
        mapping[path.name] = new
        write_if_changed(out_corpus / new, path.read_text(encoding="utf-8"))
    keep = set(mapping.values())
    for stale in out_corpus.iterdir():
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    lines = []
    for line in read_lines(golden):
        item = json.loads(line)
        if "relevant_sources" in item:
            item["relevant_sources"] = [mapping[s] for s in item["relevant_sources"]]
        lines.append(json.dumps(item, ensure_ascii=False))
    write_if_changed(out_golden, "\n".join(lines) + "\n")
    return mapping


def write_quick_set(golden: Path, corpus: Path, out: Path, *, questions: int = QUICK_QUESTIONS,
                    distractors: int = QUICK_DISTRACTORS) -> tuple[Path, Path]:
    """The first `questions` items and a corpus of their sources plus `distractors` other files (by name)."""
    lines = read_lines(golden)[:questions]
    wanted = {s for line in lines for s in json.loads(line).get("relevant_sources", [])}
    others = [p.name for p in sorted(corpus.iterdir()) if p.is_file() and p.name not in wanted][:distractors]
    names = wanted | set(others)
    out_corpus = out / "corpus"
    out_corpus.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        write_if_changed(out_corpus / name, (corpus / name).read_text(encoding="utf-8"))
    for stale in out_corpus.iterdir():
        if stale.is_file() and stale.name not in names:
            stale.unlink()
    return write_if_changed(out / "golden.jsonl", "\n".join(lines) + "\n"), out_corpus


# -- fault injection -------------------------------------------------------------------------------
class DropBestHit:
    """A retriever that fetches k + 1 hits from the wrapped one and returns all but the first."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        if hasattr(inner, "retrieve_vectors"):  # the pipeline reuses question vectors when it can
            self.retrieve_vectors = self._retrieve_vectors

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.inner.retrieve(query, k + 1)[1:]

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return [hits[1:] for hits in self.inner.retrieve_batch(queries, k + 1)]

    def _retrieve_vectors(self, queries: Sequence[str], vectors: Any, k: int) -> list[list[Hit]]:
        return [hits[1:] for hits in self.inner.retrieve_vectors(queries, vectors, k + 1)]


@contextmanager
def drop_best_hit(name: str) -> Iterator[None]:
    """For the duration of the block, retrievers built under `name` drop their best hit. Only pipelines
    created inside the block are affected (a pipeline keeps the retrievers it built)."""
    with wrapped_retriever(name, DropBestHit):
        yield


@contextmanager
def wrapped_retriever(name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """For the duration of the block, every retriever built under `name` is `wrap(the retriever)`; the
    factory is restored after it (also on an error)."""
    from axiom.retrieval import RETRIEVERS

    original = RETRIEVERS[name]

    def factory(store: Any, embedder: Any, cfg: Any, built: dict[str, Any]) -> Any:
        return wrap(original(store, embedder, cfg, built))

    RETRIEVERS[name] = factory
    try:
        yield
    finally:
        RETRIEVERS[name] = original


# -- configurations --------------------------------------------------------------------------------
def calibration_settings(work: Path, **overrides: Any) -> Settings:
    """config.yaml with every path under the work folder, offline (extractive generator)."""
    from axiom.config import load_settings

    base: dict[str, Any] = {
        "store": {"path": str(work / "chroma"), "bm25_dir": str(work / "bm25")},
        "evaluation": {"runs_dir": str(work / "runs"), "judge_cache_dir": str(work / "judge-cache"),
                       "span_cache_dir": str(work / "span-cache")},
        "embeddings": {"cache_dir": str(work / "embedding-cache")},
        "generation": {"provider": "extractive"},
        "logging": {"format": "text", "level": "WARNING"},
    }
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return load_settings(REPO / "config.yaml", environ={}, overrides=base)


def own_collection(corpus: Path, label: str, model_id: str) -> str:
    from axiom.evaluation.naming import collection_name

    salt = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
    return collection_name("gatecal", f"{corpus.name}-{label}", model_id, salt=salt)


@dataclasses.dataclass
class Configuration:
    key: str
    label: str
    run: Callable[[], RunRecord]


def stage_seconds(record: RunRecord) -> dict[str, float]:
    """Where a run's time went: ingest, the retrieval batch, generation (sum over questions), and the rest
    (scoring, writing the folder)."""
    total = float(record.manifest.seconds or 0.0)
    ingest = float((record.manifest.ingest or {}).get("seconds") or 0.0)
    retrieval = float(record.metrics.latency.get("retrieval_batch_seconds") or 0.0)
    generation = float(np.nansum(record.results["generation_seconds"])) if len(record.results) else 0.0
    return {"ingest": round(ingest, 1), "retrieval": round(retrieval, 1), "generation": round(generation, 1),
            "rest": round(total - ingest - retrieval - generation, 1)}


def evaluate_configurations(golden: Path, corpus: Path, work: Path, embedder: Embedder,
                            log: Callable[[str],
                                          None]) -> tuple[dict[str, RunRecord], dict[str, dict[str, Any]]]:
    """Run every configuration once. Returns the records and per configuration its timing facts."""
    from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation

    settings = calibration_settings(work)
    small = calibration_settings(work, chunking={"chunk_size": 100, "chunk_overlap": 20})
    shuffled = write_shuffled_golden(golden, work / "data" / "golden-shuffled.jsonl")
    renamed_corpus, renamed_golden = work / "data" / "corpus-renamed", work / "data" / "golden-renamed.jsonl"
    write_renamed_corpus(corpus, golden, renamed_corpus, renamed_golden)
    retriever = settings.retrieval.retriever

    def evaluate(s: Settings, g: Path, c: Path, name: str, own_collection: bool = True) -> RunRecord:
        return run_evaluation(s, g, AnswerSource.pipeline(c, own_collection=own_collection),
                              EvaluationOptions(name=f"gatecal-{name}", judge=False, embedder=embedder))

    def with_fault() -> RunRecord:
        with drop_best_hit(retriever):
            return evaluate(settings, golden, corpus, "drop-best-hit")

    configurations = [
        Configuration("baseline", "baseline (config.yaml)",
                      lambda: evaluate(settings, golden, corpus, "baseline")),
        Configuration("rerun", "re-run", lambda: evaluate(settings, golden, corpus, "rerun")),
        Configuration("shuffled", "shuffled golden",
                      lambda: evaluate(settings, shuffled, corpus, "shuffled")),
        Configuration("renamed", "renamed corpus",
                      lambda: evaluate(settings, renamed_golden, renamed_corpus, "renamed")),
        Configuration("top_k-1", "top_k 1",
                      lambda: evaluate(calibration_settings(work, retrieval={"top_k": 1}), golden, corpus,
                                       "top_k-1")),
        Configuration("chunk-100", "chunk 100/20",
                      lambda: evaluate(small.with_overrides(
                          {"store.collection": own_collection(corpus, "chunk100", embedder.model_id)},
                          origin="gate variant chunk-100"), golden, corpus, "chunk-100",
                          own_collection=False)),
        Configuration("drop-best-hit", "drop best hit", with_fault),
    ]
    records: dict[str, RunRecord] = {}
    timing: dict[str, dict[str, Any]] = {}
    for conf in configurations:
        log(f"evaluating {conf.label} ...")
        t0 = time.perf_counter()
        record = conf.run()
        seconds = time.perf_counter() - t0
        ingest = record.manifest.ingest or {}
        index = record.manifest.index or {}
        timing[conf.key] = {"label": conf.label, "seconds": round(seconds, 1),
                            "ingest_seconds": ingest.get("seconds"),
                            "chunks_embedded": ingest.get("chunks_embedded"),
                            "chunks": index.get("chunks"), "collection": record.manifest.collection,
                            "run": str(record.path), "questions": int(len(record.results)),
                            "stages": stage_seconds(record)}
        log(f"  {conf.label}: {seconds:.1f} s (ingest {ingest.get('seconds')} s, "
            f"{ingest.get('chunks_embedded')} chunks embedded, {index.get('chunks')} in the index)")
        records[conf.key] = record
    records["stats-seed"] = records["baseline"]
    timing["stats-seed"] = {"label": "(baseline run)", "seconds": 0.0, "run": timing["baseline"]["run"]}
    return records, timing

