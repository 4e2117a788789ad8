"""Whole evaluations beside their floors (issue 16), each side a fresh process, timed from outside:

- `axiom eval` of a golden set with its store already built (the ingest is an up-to-date check), the
  persistent embedding cache off, against the floor: a fresh process that imports sentence-transformers, loads
  the model, encodes exactly the texts that evaluation had the model embed (recorded by
  bench/record_embedded.py in an untimed run) and makes one batched ChromaDB query
  (bench/eval_floor_worker.py). Pairs alternate which side goes first.
- the embedding cache: a second evaluation of the same set with another top_k over the cache the first one
  filled: the texts it still had to embed, and its time against the non-embedding floor (the same floor
  process without the encoding).

Sets: the built-in sample set (52 questions over data/) and a 500-question PubMedQA set over its 500
abstracts (built from ../shared/datasets/pubmedqa-pqal-traindev by evaluation/datasets/pubmedqa's own build
script into the bench cache, so its store is built once and reused).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import REPO, Figure

if TYPE_CHECKING:
    from axiom.evaluation.run_documents import Manifest

SAMPLE_DATASET = REPO / "evaluation" / "datasets" / "sample" / "golden.jsonl"
SAMPLE_CORPUS = REPO / "data"
PUBMEDQA_SOURCE = REPO.parent / "shared" / "datasets" / "pubmedqa-pqal-traindev" / "qa.jsonl"
AXIOM = Path(sys.executable).parent / "axiom"


def clean_env() -> dict[str, str]:
    """The environment of every timed process: no LLM, no server, no config from the caller."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "CHROMA_", "AXIOM_", "LLM_", "EMBEDDING_", "EVAL_LLM_"))}


def write_config(path: Path, store: Path, runs: Path, cache_dir: Path | None) -> Path:
    cache = (f"  cache_enabled: true\n  cache_dir: {json.dumps(str(cache_dir))}\n" if cache_dir is not None
             else "  cache_enabled: false\n")
    path.write_text(f"store:\n  path: {json.dumps(str(store))}\nembeddings:\n{cache}"
                    f"evaluation:\n  runs_dir: {json.dumps(str(runs))}\n"
                    f"  span_cache_dir: {json.dumps(str(store.parent / 'span-cache'))}\n")
    return path


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=clean_env())
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stdout


def eval_args(config: Path, dataset: Path, corpus: Path, name: str, *extra: str) -> list[str]:
    return ["--config", str(config), "eval", "--dataset", str(dataset), "--corpus", str(corpus), "--name",
            name,
            "--json", *extra]


def last_run(stdout: str) -> Manifest:
    """The run folder's manifest of an `axiom eval --json` run."""
    from axiom.evaluation.run_folder import read_manifest

    return read_manifest(json.loads(stdout)["run"])


def record(config: Path, dataset: Path, corpus: Path, out: Path, *extra: str) -> dict[str, Any]:
    run([sys.executable, "-m", "bench.record_embedded", str(out), "--",
         *eval_args(config, dataset, corpus, "record", *extra)])
    return json.loads(out.read_text())


def floor_cmd(texts: Path, manifest: Manifest, store: Path, dataset: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.eval_floor_worker", str(texts), "--store", str(store),
            "--collection",
            str(manifest.collection), "--dataset", str(dataset), "--depth", str(manifest.retrieval_depth),
            *extra]


def eval_against_floor(dataset: Path, corpus: Path, home: Path, repeat: int) -> dict[str, Any]:
    """`axiom eval` (store warm, embedding cache off) against its floor, `repeat` alternating pairs."""
    home.mkdir(parents=True, exist_ok=True)
    store, runs = home / "store", home / "runs"
    config = write_config(home / "config.yaml", store, runs, None)
    prepare_s, out = run([str(AXIOM), *eval_args(config, dataset, corpus, "prepare")])  # builds the store
    manifest = last_run(out)
    recorded = record(config, dataset, corpus, home / "texts.json")
    axiom_s, floor_s, ratio = Figure(), Figure(), Figure()
    timings: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    for i in range(repeat):
        walls: dict[str, float] = {}
        for side in (("axiom", "floor") if i % 2 == 0 else ("floor", "axiom")):
            if side == "axiom":
                walls[side], out = run([str(AXIOM), *eval_args(config, dataset, corpus, "timed")])
                timings.append(last_run(out).timings or {})
            else:
                walls[side], out = run(floor_cmd(home / "texts.json", manifest, store, dataset))
                floors.append(json.loads(out.strip().splitlines()[-1]))
        axiom_s.values.append(walls["axiom"])
        floor_s.values.append(walls["floor"])
        ratio.values.append(walls["axiom"] / walls["floor"])
    shutil.rmtree(runs, ignore_errors=True)
    return {"questions": manifest.dataset.items if manifest.dataset is not None else None,
            "texts_embedded": len(recorded["texts"]),
            "encode_calls": len(recorded["calls"]), "prepare_s": prepare_s, "axiom_s": axiom_s.to_dict(),
            "floor_s": floor_s.to_dict(), "axiom_over_floor": ratio.to_dict(), "axiom_timings": timings,
            "floor_timings": floors}


def cache_second_run(dataset: Path, corpus: Path, home: Path, repeat: int) -> dict[str, Any]:
    """A first evaluation (top_k 5) fills a fresh embedding cache; a second with top_k 3 starts each time from
    a copy of that cache: the texts it still embeds, and its time against the non-embedding floor."""
    home.mkdir(parents=True, exist_ok=True)
    store, runs, filled = home / "store", home / "runs", home / "cache-filled"
    shutil.rmtree(filled, ignore_errors=True)
    first = write_config(home / "first.yaml", store, runs, filled)
    first_s, out = run([str(AXIOM), *eval_args(first, dataset, corpus, "fill", "--top-k", "5")])
    manifest = last_run(out)

    def fresh_copy(name: str) -> Path:
        target = home / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(filled, target)
        return target

    second = write_config(home / "second.yaml", store, runs, fresh_copy("cache-second"))
    recorded = record(second, dataset, corpus, home / "texts-second.json", "--top-k", "3")
    axiom_s, floor_s, ratio = Figure(), Figure(), Figure()
    for i in range(repeat):
        walls: dict[str, float] = {}
        for side in (("axiom", "floor") if i % 2 == 0 else ("floor", "axiom")):
            if side == "axiom":
                fresh_copy("cache-second")  # the cache as the first evaluation left it, every time
                walls[side], _ = run([str(AXIOM),
                                      *eval_args(second, dataset, corpus, "second", "--top-k", "3")])
            else:
                walls[side], _ = run(floor_cmd(home / "texts-second.json", manifest, store, dataset,
                                               "--no-encode"))
        axiom_s.values.append(walls["axiom"])
        floor_s.values.append(walls["floor"])
        ratio.values.append(walls["axiom"] / walls["floor"])
    shutil.rmtree(runs, ignore_errors=True)
    return {"first_run_s": first_s, "second_texts_embedded": len(recorded["texts"]),
            "axiom_s": axiom_s.to_dict(),
            "non_embedding_floor_s": floor_s.to_dict(), "axiom_over_floor": ratio.to_dict()}


def pubmedqa_set(cache_dir: Path, source: Path, questions: int = 500) -> tuple[Path, Path]:
    """The 500-question PubMedQA set, built into the bench cache by the built-in set's own build script."""
    out = cache_dir / f"pubmedqa-{questions}"
    build = REPO / "evaluation" / "datasets" / "pubmedqa" / "build_pubmedqa.py"
    run([sys.executable, str(build), "--source", str(source), "--questions", str(questions), "--out",
         str(out)])
    return out / "golden.jsonl", out / "corpus"


def bench_evaluation(cache_dir: Path, *, repeat: int, large_repeat: int,
                     pubmedqa_source: Path = PUBMEDQA_SOURCE,
                     large: bool = True) -> dict[str, Any]:
    home = cache_dir / "eval-floor"
    result: dict[str, Any] = {"sample": eval_against_floor(SAMPLE_DATASET, SAMPLE_CORPUS, home / "sample",
                                                           repeat),
                              "cache": cache_second_run(SAMPLE_DATASET, SAMPLE_CORPUS, home / "cache",
                                                        repeat)}
    if large and pubmedqa_source.is_file():
        dataset, corpus = pubmedqa_set(cache_dir, pubmedqa_source)
        result["large"] = eval_against_floor(dataset, corpus, home / "pubmedqa-500", large_repeat)
    return result


def rows(ev: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of bench/__main__.py for these measures."""
    def fig(f: dict[str, Any], fmt: str = ".3f") -> str:
        return "n/a" if f.get("median") is None else (
            f"{f['median']:{fmt}} (min {f['min']:{fmt}}, max {f['max']:{fmt}}, n={f['n']})")

    out = []
    for key, goal in (("sample", "<= 1.4"), ("large", "<= 1.3")):
        if key in ev:
            m = ev[key]
            out.append((f"`axiom eval`, {m['questions']} questions, store warm, embedding cache off / floor "
                        f"(fresh process: load the model, encode the {m['texts_embedded']} texts it "
                        "embedded, one batched ChromaDB query)",
                        f"{fig(m['axiom_over_floor'])}; {m['axiom_s']['median']:.1f} s vs "
                        f"{m['floor_s']['median']:.1f} s", goal))
    if "cache" in ev:
        c = ev["cache"]
        out.append(("second `axiom eval` of the sample set, top_k 5 -> 3, over the embedding "
                    "cache the first filled / non-embedding floor (fresh process: load the model, "
                    "one batched ChromaDB query)",
                    f"{fig(c['axiom_over_floor'])}; {c['second_texts_embedded']} texts embedded; "
                    f"{c['axiom_s']['median']:.1f} s vs {c['non_embedding_floor_s']['median']:.1f} s",
                    "<= 1.3"))
    return out
