"""Cost curves (issue 16, point 4): wall time, CPU time and peak memory of an ingest and of an evaluation as \
the
corpus and the question set grow, each a fresh `axiom` process measured from outside (`os.wait4`: that one
process's own rusage), with a power law and a straight line fitted to each curve so a user can predict the
cost of their corpus.

    .venv/bin/python -m bench.cost_curves [--dataset BEIR_FOLDER] [--docs 1000,2500,5000] [--questions
    50,150,300]

- corpus: every document judged for the selected questions, then the rest in corpus order, up to N documents
  (`title + " " + text`, one `<id>.txt` file each, as `make bench`), ingested by `axiom ingest` into a fresh
  embedded store, the embedding cache off;
- evaluation: `axiom eval` of the first Q test questions over each store (warm: `--collection` names the
  ingested one, so its ingest is an up-to-date check), the embedding cache off, the offline defaults
  (extractive generator, non-LLM metrics). The first evaluation of a store also builds its BM25 index and the
  dataset's located reference spans: the smallest question set goes first and carries that.

BEIR sets have no reference answers. For this cost workload each question's reference (and reference context)
is the last sentence of its first judged document: the answer metrics then have texts of the usual length to
compare. Its answer-quality figures mean nothing; the costs are those of a real evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_DATASET, REPO, write_corpus_files, write_result
from bench.eval_floor import AXIOM, clean_env, write_config

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def measure(cmd: Sequence[str]) -> dict[str, Any]:
    """Run one process; its wall time, its own CPU time (user + system, all threads) and peak RSS, and
    stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, cwd=REPO, env=clean_env())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:5])}... failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout": stdout}


def select_documents(corpus: dict[str, str], judged: list[str], size: int) -> dict[str, str]:
    """The judged documents first (all of them must be searchable), then the rest in corpus order, `size` in
    all."""
    keep = list(dict.fromkeys(d for d in judged if d in corpus))
    if len(keep) > size:
        raise SystemExit(f"cost curves: {len(keep)} documents are judged for the questions, more than {size}")
    keep += [d for d in corpus if d not in set(keep)][:size - len(keep)]
    chosen = set(keep)
    return {d: t for d, t in corpus.items() if d in chosen}


def last_sentence(text: str) -> str:
    sentences = [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
    return sentences[-1] if sentences else text.strip()


def golden_lines(queries: dict[str, str], qrels: dict[str, dict[str, int]], corpus: dict[str, str],
                 qids: Sequence[str]) -> list[str]:
    """A golden set for the cost workload: the question, its judged documents, and as reference the last
    sentence of its first judged document (see the module docstring)."""
    lines = []
    for qid in qids:
        judged = [d for d, score in qrels[qid].items() if score > 0]
        reference = last_sentence(corpus[judged[0]])
        lines.append(json.dumps({"id": qid, "question": queries[qid], "reference": reference,
                                 "relevant_sources": [f"{d}.txt" for d in judged],
                                 "reference_contexts": [reference]}))
    return lines


def fit(points: Sequence[tuple[float, float]]) -> dict[str, float] | None:
    """Least squares in log-log space (cost ~ size ** exponent) and in linear space (cost ~ fixed + per_unit x
    size), over two or more points of distinct sizes."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = np.array([x for x, _ in points], float), np.array([y for _, y in points], float)
    exponent, _ = np.polyfit(np.log(xs), np.log(ys), 1)
    per_unit, fixed = np.polyfit(xs, ys, 1)
    return {"exponent": float(exponent), "fixed": float(fixed), "per_unit": float(per_unit),
            "points": len(points)}


def run_curves(dataset: Path, docs: Sequence[int], questions: Sequence[int], work: Path,
               progress: bool = True) -> dict[str, Any]:
    from axiom.evaluation.datasets import load_beir
    from axiom.evaluation.run_folder import read_manifest

    beir = load_beir(dataset, "test")
    corpus = {d: (v.get("title", "") + " " + v.get("text", "")).strip() for d, v in beir.corpus.items()}
    qids = [q for q in beir.queries if q in beir.qrels][:max(questions)]
    if len(qids) < max(questions):
        raise SystemExit(f"cost curves: {dataset} has {len(qids)} judged test questions, "
                         f"fewer than {max(questions)}")
    judged = [d for q in qids for d, score in beir.qrels[q].items() if score > 0]
    golden: dict[int, Path] = {}
    for q in questions:
        golden[q] = work / f"golden-{q}.jsonl"
        golden[q].write_text("\n".join(golden_lines(beir.queries, beir.qrels, corpus, qids[:q])) + "\n")
    ingests: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    for size in docs:
        folder = work / f"corpus-{size}"
        write_corpus_files(select_documents(corpus, judged, size), folder)
        home = work / f"home-{size}"
        home.mkdir()
        config = write_config(home / "config.yaml", home / "store", home / "runs", None)
        got = measure([str(AXIOM), "--config", str(config), "ingest", str(folder), "--collection", "curve",
                       "--json"])
        report = json.loads(got.pop("stdout"))
        ingests.append({"documents": size, "chunks": report["chunks_total"], "ingest_s": report["seconds"],
                        "model_load_s": report["model_load_seconds"], **got})
        say(f"ingest {size} docs: {report['chunks_total']} chunks, {got['wall_s']:.1f} s, "
            f"{got['peak_rss_mb']:.0f} MB")
        for q in questions:
            got = measure([str(AXIOM), "--config", str(config), "eval", "--dataset", str(golden[q]),
                           "--corpus",
                           str(folder), "--collection", "curve", "--name", f"curve-{size}-{q}", "--json"])
            manifest = read_manifest(json.loads(got.pop("stdout"))["run"])
            evals.append({"documents": size, "questions": q, "timings": manifest.timings,
                          "ingest": manifest.ingest, **got})
            say(f"eval {size} docs x {q} questions: {got['wall_s']:.1f} s, {got['peak_rss_mb']:.0f} MB")
    return {"ingest": ingests, "evaluation": evals, "fits": fits(ingests, evals, docs, questions)}


def fits(ingests: list[dict[str, Any]], evals: list[dict[str, Any]], docs: Sequence[int],
         questions: Sequence[int]
         ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for measure_name in ("wall_s", "cpu_s", "peak_rss_mb"):
        out[f"ingest {measure_name} ~ chunks"] = fit([(r["chunks"], r[measure_name]) for r in ingests])
        for size in docs:
            out[f"eval {measure_name} ~ questions @ {size} docs"] = fit(
                [(r["questions"], r[measure_name]) for r in evals if r["documents"] == size])
        for q in questions:
            out[f"eval {measure_name} ~ documents @ {q} questions"] = fit(
                [(r["documents"], r[measure_name]) for r in evals if r["questions"] == q])
    return {k: v for k, v in out.items() if v is not None}


def table(result: dict[str, Any]) -> str:
    lines = ["| work | documents | chunks | questions | wall s | CPU s | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for r in result["ingest"]:
        lines.append(f"| ingest | {r['documents']:,} | {r['chunks']:,} | — | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    for r in result["evaluation"]:
        lines.append(f"| evaluation | {r['documents']:,} | — | {r['questions']} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| curve | exponent | fixed | per unit |", "|---|---|---|---|"]
    for name, f in result["fits"].items():
        lines.append(f"| {name} | {f['exponent']:.2f} | {f['fixed']:.2f} | {f['per_unit']:.4g} |")
    return "\n".join(lines)


def sizes(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="a BEIR folder (default: SciFact)")
    ap.add_argument("--docs", type=sizes, default=[1000, 2500, 5000], help="corpus sizes (documents)")
    ap.add_argument("--questions", type=sizes, default=[50, 150, 300], help="question-set sizes")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="axiom-curves-") as tmp:
        result = run_curves(args.dataset, args.docs, args.questions, Path(tmp))
    result.update({"dataset": str(args.dataset), "started": started, "seconds": time.perf_counter() - t0})
    path = write_result(result, args.out, f"cost-curves-{started}")
    print(table(result))
    print(f"\nwritten {path} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
