"""How often the regression gate fails when nothing changed, and how often it catches a real regression.

`python -m bench.gate_calibration [--dataset DIR] [--work DIR] [--draws N] [--subset N] [--quick] [--json
FILE]`

Method (printed at the top of the table; quoted in evaluation/README.md):

1. Each configuration is evaluated **once** with the real `run_evaluation` on the whole PubMedQA set
   (`evaluation/datasets/pubmedqa`: 250 questions, 500 abstracts): real ingest into an embedded ChromaDB under
   the work folder, hybrid retrieval, the offline extractive generator, the offline metrics (no judge). One
   process, one loaded embedding model. Configurations:
   - **baseline**: the repository's `config.yaml` (hybrid, top_k 5, chunk_size 800, chunk_overlap 160).
   - null variants, where no quality change is expected:
     (a) **re-run**: the same configuration evaluated a second time;
     (b) **shuffled golden**: the golden set's lines in another order (fixed seed);
     (c) **renamed corpus**: every corpus file copied as `doc-<sha1(pmid)[:10]>.txt` (so the files sort,
     ingest, get chunk ids and break ties in another order) and a golden copy whose `relevant_sources` use the
     new names (ids, questions and references unchanged); its own collection;
     (d) **stats seed**: the baseline run against itself; only the statistics seed differs, as in every draw.
   - injected regressions: (i) **top_k 1** (the generator gets one chunk instead of five; retrieval metrics
     are measured 10 deep whatever top_k is, so they cannot move); (ii) **chunk 100**: chunk_size 100,
     chunk_overlap 20 (overlap must stay below the size), its own collection; (iii) **drop best hit**: fault
     injection for that one run: the configured retriever's factory in `axiom.retrieval.RETRIEVERS` is
     wrapped (restored afterwards) so the retriever fetches k + 1 hits and drops the first. It drops the best
     *chunk*; when the best source has another chunk among the next hits, its rank only moves down.
2. Draws: for draw d = 1..N (`--draws`, default 20 per variant) a random subset of `--subset` questions
   (default 200 of 250, without replacement, numpy seed d; the same subsets for every variant) and the
   statistics seed d (`StatsConfig.seed`, other settings from config.yaml: paired sign-flip test, Holm over
   the metrics, alpha 0.05, min_delta 0.01). The baseline is `make_baseline(baseline run)` restricted to the
   subset (per-question values, n and mean); the variant's results are restricted to the same questions and
   its summary means recomputed; then the real `gate_run` decides. A null draw with any gate failure is a
   false alarm; an injected draw that fails the gate is flagged (measured power), with the metrics it named.
3. The table gives per variant the gate failures (null) or the flagged share (injected) with a 95%
   Clopper-Pearson interval, the metrics named (most frequent first), the median delta / median MDE of the
   headline metrics, each configuration's evaluation wall time (ingest included when it embedded); then per
   metric the median MDE over all null draws (what the gate can detect on this set at that n), and per null
   variant how many questions' values differ from the baseline at all on the full set (float noise).

`--quick`: a smoke check, not a measurement: the first 60 questions of the set with a corpus of their 60
abstracts plus 60 others (copied into the work folder), subsets of 48, 3 draws; written under the work folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO
from bench.gate_draws import calibrate
from bench.gate_report import render_markdown
from bench.gate_variants import calibration_settings, evaluate_configurations, read_lines, write_quick_set

DEFAULT_DATASET = REPO / "evaluation" / "datasets" / "pubmedqa"
DEFAULT_WORK = REPO / "bench" / "cache" / "gate-calibration"
DEFAULT_MARKDOWN = REPO / "bench" / "results" / "gate_calibration.md"
QUICK_DRAWS = 3


# -- main ------------------------------------------------------------------------------------------
def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gate_calibration",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="folder holding golden.jsonl and corpus/ (default: the PubMedQA set)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="store, runs and copies (kept)")
    parser.add_argument("--draws", type=int, default=None, help="draws per variant (default 20; --quick 3)")
    parser.add_argument("--subset", type=int, default=None,
                        help="questions per draw (default 200; --quick 48)")
    parser.add_argument("--quick", action="store_true", help="smoke check on 60 questions, 3 draws")
    parser.add_argument("--json", type=Path, default=None, help="also write every draw as JSON here")
    parser.add_argument("--markdown", type=Path, default=None,
                        help=f"where the table goes (default {DEFAULT_MARKDOWN.relative_to(REPO)}; "
                             "--quick: <work>/quick/gate_calibration.md)")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    started = datetime.now(UTC)
    golden, corpus = args.dataset / "golden.jsonl", args.dataset / "corpus"
    if not golden.is_file() or not corpus.is_dir():
        parser.error(f"{args.dataset} must hold golden.jsonl and corpus/")
    work = args.work.resolve()
    if args.quick:
        work = work / "quick"
        golden, corpus = write_quick_set(golden, corpus, work / "set")
    draws = args.draws if args.draws is not None else (QUICK_DRAWS if args.quick else 20)
    questions = len(read_lines(golden))
    subset = args.subset if args.subset is not None else (round(0.8 * questions) if args.quick else 200)
    if draws < 1 or not 1 <= subset <= questions:
        parser.error(f"need --draws >= 1 and 1 <= --subset <= {questions} (the set's questions)")
    markdown = args.markdown or (work / "gate_calibration.md" if args.quick else DEFAULT_MARKDOWN)

    from axiom.embeddings import make_embedder
    from axiom.evaluation.provenance import git_state
    from axiom.evaluation.verdict import StatsConfig
    from bench.common import machine_facts

    settings = calibration_settings(work)
    machine = machine_facts()
    log(f"loading {settings.embeddings.model} ...")
    embedder = make_embedder(settings.embeddings, settings.generation)
    t0 = time.perf_counter()
    records, timing = evaluate_configurations(golden, corpus, work, embedder, log)
    evaluation_seconds = time.perf_counter() - t0
    base_config = StatsConfig.from_settings(settings.evaluation)
    log(f"gate draws: {draws} per variant, {subset} of {questions} questions ...")
    t0 = time.perf_counter()
    calibration = calibrate(records, draws=draws, subset=subset, base_config=base_config, log=log)
    calibration_seconds = time.perf_counter() - t0
    git = git_state()
    command = " ".join(["python -m bench.gate_calibration", *(sys.argv[1:] if argv is None else argv)])
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "git_commit": git.commit,
            "git_dirty": git.dirty, "cores": machine.get("cores"), "cpu": machine.get("cpu"),
            "load_average": [round(x, 2) for x in machine.get("load_average", ())],
            "command": command, "dataset": str(args.dataset),
            "dataset_label": ("PubMedQA, quick subset" if args.quick else args.dataset.name),
            "questions": questions, "corpus_files": sum(1 for p in corpus.iterdir() if p.is_file()),
            "draws": draws, "subset": subset, "quick": args.quick,
            "stats": f"{base_config.describe()}, {base_config.permutations} sign flips, "
                     f"{base_config.bootstrap_samples} bootstrap samples, seed = draw number",
            "evaluation_seconds": evaluation_seconds, "calibration_seconds": calibration_seconds,
            "total_seconds": time.perf_counter() - t_start, "machine": machine,
            "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    result = {"meta": meta, "timing": timing, "calibration": calibration}
    table = render_markdown(result)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(table, encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_ready(result), indent=1, default=str) + "\n", encoding="utf-8")
    print(table)
    log(f"table written to {markdown}; total {meta['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
