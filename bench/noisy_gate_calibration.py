"""The regression gate under genuine run-to-run noise: false alarms of independent pairs of stochastic runs,
and the power of the printed MDE, measured on real runs (issue 27, item 9).

`python -m bench.noisy_gate_calibration [--dataset DIR] [--work DIR] [--pairs 20] [--repeat 3]
 [--temperature 0.05] [--level-runs N] [--curve 0.5,2 --curve-runs 10] [--quick] [--out FILE] [--json FILE]`

Method (the report's header repeats it):

1. Every run is a real `run_evaluation` of the PubMedQA set (250 questions, 500 abstracts; ingested once into
   an embedded ChromaDB under the work folder), hybrid retrieval, the offline extractive generator
   **sampling** at `--temperature` (a real stochastic source: which sentences it quotes differs between runs),
   offline metrics, `--repeat 3`. Each run has its own `generation.seed`; no two runs share a seed, so no
   repetition is shared. One process and one embedding memo serve all runs (a run's values do not depend on
   it).
2. **Null**: for pair i = 1..`--pairs`, run A_i, `make_baseline(A_i)` with the primaries recall@1 (0/1),
   evidence_recall@10, groundedness and rouge_l (continuous) written as a baseline file, then run B_i with
   that baseline: the gate of `run_evaluation` decides (paired sign-flip test on per-question means with the
   run term of the repetitions, primaries one-sided with Holm over the four, margin min_delta 0.01). A
   failed gate is a false alarm. Retrieval is deterministic, so the retrieval primaries tie on every
   question: the null's noise is the generator's, which is all that differs between re-runs of this pipeline.
3. **The MDE each gate printed** for recall@1, rouge_l and groundedness (median over the null pairs) is the
   target. Three pilot runs fault every question, one fault each (`bench.noisy_faults`): a wrong ranking (the
   retriever answers the next question of the set about another document), a refusal (the generator answers
   "no relevant source text was found") and a foreign quote (the generator quotes the abstract of the question
   7 further on, or the first after it about another document, and reports its real contexts); the mean
   per-question drop against A_1 is the drop of a fully faulted run. The MDE's model of a regression is a
   share of questions losing their whole value: a wrong ranking does that to recall@1, a refusal (nearly) to
   rouge_l; a foreign quote takes about half of groundedness, a softer change the MDE over-states.
4. **Power**: at level L = 1 (the claim) `--level-runs` faulty runs (default `--pairs`) per fault set, and
   at each `--curve` level L (multiples of the MDE) `--curve-runs`, run j gated against baseline A_j: each
   question is hit by each fault of the run independently with probability L * MDE / (the pilot's drop), so
   a run's expected drop is L * MDE. A run carries a wrong ranking and a foreign quote together (neither moves
   the other's metric), or a refusal alone (the other two lower rouge_l as well). Detected: the primary's
   one-sided test rejects (p_drop_adj < alpha, the claim the MDE makes) and, separately, the gate calls it a
   regression (which also needs a drop of at least the margin).

Rates carry 95% Clopper-Pearson intervals. `--quick` (a smoke check, not a measurement): the first 40
questions with their abstracts and 40 others, 2 pairs, 2 repeats, 2 runs per level.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO
from bench.gate_draws import clopper_pearson
from bench.gate_variants import calibration_settings, read_lines, write_quick_set
from bench.noisy_faults import Selection, faults, partners
from bench.noisy_regate import faulty_name, mde_medians, regate, stale_fault_sets

DEFAULT_DATASET = REPO / "evaluation" / "datasets" / "pubmedqa"
DEFAULT_WORK = REPO / "bench" / "cache" / "noisy-gate"
DEFAULT_MARKDOWN = REPO / "bench" / "results" / "noisy_gate_calibration.md"
PRIMARIES = ("recall@1", "evidence_recall@10", "groundedness", "rouge_l")
# metric -> the fault aimed at it: recall@1 (0/1) and rouge_l (continuous) lose their whole value on a hit
# question, the MDE's own model of a regression; groundedness loses part of it (a softer shape)
TARGETS = {"recall@1": "wrong ranking", "rouge_l": "refusal", "groundedness": "foreign quote"}
# the faults a faulty run carries together: none moves another's target (a wrong ranking leaves the answer
# grounded in what was retrieved; a foreign quote leaves the ranking), but both lower rouge_l: a refusal runs
# alone
FAULT_SETS = (("wrong ranking", "foreign quote"), ("refusal",))
RANKING_OFFSET, DONOR_OFFSET = 1, 7
SEED_A, SEED_B, SEED_PILOT, SEED_FAULTY = 10_000, 20_000, 30_000, 40_000


class Runner:
    """Evaluates one configuration of the set per call, all with one embedder (and its memos)."""

    def __init__(self, golden: Path, corpus: Path, work: Path, *, temperature: float, repeat: int,
                 log: Callable[[str], None]) -> None:
        from axiom.embeddings import caching_embedder, make_embedder

        self.golden, self.corpus, self.work, self.repeat, self.log = golden, corpus, work, repeat, log
        self.temperature = temperature
        settings = self.settings(0)
        self.embedder = caching_embedder(settings, make_embedder(settings.embeddings, settings.generation))
        self.retriever = settings.retrieval.retriever
        items = [json.loads(line) for line in read_lines(golden)]
        questions = [it["question"] for it in items]
        source_of = {it["question"]: it["relevant_sources"][0] for it in items}
        self.partner = partners(questions, offset=RANKING_OFFSET, source_of=source_of)
        self.donor = {q: (corpus / source_of[d]).read_text(encoding="utf-8")
                      for q, d in partners(questions, offset=DONOR_OFFSET, source_of=source_of).items()}
        self.seconds: list[float] = []

    def settings(self, seed: int) -> Any:
        return calibration_settings(self.work, generation={"temperature": self.temperature, "seed": seed})

    def run(self, name: str, seed: int, *, baseline: Path | None = None,
            hit: dict[str, Selection] | None = None) -> Any:
        """One run; `hit`: per fault (the values of TARGETS) the questions it hits."""
        from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation

        hit = hit or {}
        options = EvaluationOptions(name=f"noisy-{name}", judge=False, embedder=self.embedder,
                                    repeat=self.repeat, baseline=baseline, progress=False)
        t0 = time.perf_counter()
        with faults(self.retriever, partner=self.partner, donor=self.donor,
                    wrong_ranking=hit.get("wrong ranking"), foreign_quote=hit.get("foreign quote"),
                    refusal=hit.get("refusal")):
            record = run_evaluation(self.settings(seed), self.golden, AnswerSource.pipeline(self.corpus),
                                    options)
        self.seconds.append(time.perf_counter() - t0)
        self.log(f"  {name} (seed {seed}): {self.seconds[-1]:.0f} s"
                 + ("" if record.gate is None else f", gate {'passed' if record.gate.passed else 'FAILED'}"))
        return record


def gate_facts(record: Any) -> dict[str, Any]:
    """What the gate of a run said about each primary, and whether it failed."""
    gate = record.gate
    facts: dict[str, Any] = {"failed": not gate.passed, "failures": list(gate.failures),
                             "verdict": gate.verdict, "outcomes": dict(gate.family.get("outcomes") or {}),
                             "primaries": {}}
    for metric in PRIMARIES:
        st = gate.statistics.get(metric)
        facts["primaries"][metric] = {k: None if st is None else getattr(st, k)
                                      for k in ("n", "a", "b", "delta", "p_drop_adj", "mde", "mde_method",
                                                "drop_bound", "outcome", "interval")}
    return facts


def mean_drop(base: Any, other: Any, metric: str) -> float:
    """The mean per-question drop of `metric` from run `base` to run `other` (questions measured in both)."""
    a, b = base.per_question(metric), other.per_question(metric)
    both = [q for q in a if q in b and math.isfinite(a[q]) and math.isfinite(b[q])]
    return float(np.mean([a[q] - b[q] for q in both])) if both else float("nan")


def calibrate(runner: Runner, *, pairs: int, levels: Sequence[tuple[float, int]], alpha: float,
              log: Callable[[str], None], save: Callable[[dict[str, Any]], None],
              resumed: dict[str, Any] | None = None) -> dict[str, Any]:
    """`levels`: (multiple of the MDE, faulty runs per fault set) in the order run. `save` gets the result so
    far after every run of the power stage (a long calibration cut short keeps what it measured); `resumed`:
    such a result whose null stage and pilots are complete (their baselines still in the work folder): only
    the power stage runs again."""
    if resumed is not None:
        log(f"null stage and pilots from the saved result ({len(resumed['null'])} pairs)")
        baselines = [runner.work / "baselines" / f"pair-{i + 1}.json" for i in range(len(resumed["null"]))]
        missing = [str(b) for b in baselines if not b.is_file()]
        if missing:
            raise FileNotFoundError(f"cannot resume: baselines missing: {missing}")
        return _power(runner, {**resumed, "power": [], "resumed": True}, baselines, levels, log, save)
    null_and_pilots, baselines = _null_and_pilots(runner, pairs, log)
    return _power(runner, {**null_and_pilots, "power": [], "alpha": alpha}, baselines, levels, log, save)


def _null_and_pilots(runner: Runner, pairs: int, log: Callable[[str], None]
                     ) -> tuple[dict[str, Any], list[Path]]:
    from axiom.evaluation.gate import make_baseline, write_baseline

    baselines: list[Path] = []
    first_a = None
    null: list[dict[str, Any]] = []
    log(f"null: {pairs} pairs of independent stochastic runs (repeat {runner.repeat})")
    for i in range(pairs):
        a = runner.run(f"a{i + 1}", SEED_A + i)
        first_a = first_a or a
        path = write_baseline(make_baseline(a, primaries=list(PRIMARIES)),
                              runner.work / "baselines" / f"pair-{i + 1}.json")
        baselines.append(path)
        b = runner.run(f"b{i + 1}", SEED_B + i, baseline=path)
        null.append({"pair": i + 1, **gate_facts(b)})
    mde = mde_medians(null, TARGETS)
    log("printed MDE (median over the null pairs): " + ", ".join(f"{m} {v:.4f}" for m, v in mde.items()))
    log("pilots: every question faulted, one fault at a time")
    full_drop = {}
    for k, (metric, fault) in enumerate(TARGETS.items()):
        pilot = runner.run(f"pilot-{fault.replace(' ', '-')}", SEED_PILOT + k, hit={fault: Selection(1.0, 0)})
        full_drop[metric] = mean_drop(first_a, pilot, metric)
    log("drop of a fully faulted run: " + ", ".join(f"{m} {v:.4f}" for m, v in full_drop.items()))
    return {"null": null, "mde": mde, "full_drop": full_drop}, baselines


def _power(runner: Runner, result: dict[str, Any], baselines: list[Path], levels: Sequence[tuple[float, int]],
           log: Callable[[str], None], save: Callable[[dict[str, Any]], None],
           fault_sets: Sequence[Sequence[str]] = FAULT_SETS, prefix: str = "") -> dict[str, Any]:
    """The faulty runs of `fault_sets` at `levels`; `prefix` names (and seeds) a second series apart."""
    mde, full_drop, power, pairs = result["mde"], result["full_drop"], result["power"], len(baselines)
    metric_of = {fault: m for m, fault in TARGETS.items()}
    save(result)
    for li, (level, level_runs) in enumerate(levels):
        fraction = {m: min(1.0, level * mde[m] / full_drop[m]) for m in TARGETS}
        log(f"level {level:g} x MDE: fractions " + ", ".join(f"{m} {v:.4f}" for m, v in fraction.items()))
        for si, fault_set in enumerate(FAULT_SETS):
            if tuple(fault_set) not in {tuple(s) for s in fault_sets}:
                continue
            for j in range(level_runs):
                seed = SEED_FAULTY + 1000 * li + 100 * si + j + (50_000 if prefix else 0)
                hit = {f: Selection(fraction[metric_of[f]], seed + 300 * k) for k, f in enumerate(fault_set)}
                record = runner.run(prefix + faulty_name(level, fault_set, j + 1), seed,
                                    baseline=baselines[j % pairs], hit=hit)
                aimed = {metric_of[f] for f in fault_set}
                power.append({"level": level, "run": j + 1, "baseline_pair": j % pairs + 1,
                              "faults": list(fault_set), "fraction": fraction, **gate_facts(record),
                              "target": {m: level * mde[m] for m in aimed},
                              "level_of": dict.fromkeys(aimed, level),
                              **({"series": prefix} if prefix else {})})
                save(result)
    return result


def regate_and_rerun(runner: Runner, saved: dict[str, Any], *, level_runs: int, log: Callable[[str], None],
                     save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A complete saved result re-gated by the current code (bench.noisy_regate), and the fault sets aimed at
    a metric whose printed MDE moved run again, `level_runs` runs at the new MDE."""
    from axiom.evaluation.verdict import StatsConfig

    config = StatsConfig.from_settings(runner.settings(0).evaluation)  # as run_evaluation gates a run
    result = regate(saved, runner.work, TARGETS, config=config, facts=gate_facts, log=log)
    stale = stale_fault_sets(result, TARGETS, FAULT_SETS)
    log("run again at the new MDE: " + ("; ".join(" + ".join(s) for s in stale) or "nothing"))
    baselines = [runner.work / "baselines" / f"pair-{i + 1}.json" for i in range(len(result["null"]))]
    return _power(runner, result, baselines, [(1.0, level_runs)], log, save, fault_sets=stale, prefix="mid-")


# -- report ----------------------------------------------------------------------------------------
def rate(k: int, n: int) -> str:
    low, high = clopper_pearson(k, n)
    return f"{k} / {n} = {k / n:.2f} [{low:.2f}, {high:.2f}]" if n else "-"


def _median(values: Sequence[float | None]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{float(np.median(finite)):+.4f}" if finite else "-"


def _level(entry: dict[str, Any], metric: str) -> float:
    """A faulty run's drop for `metric` as a multiple of the printed MDE (re-gated runs: of the new one)."""
    return float(entry.get("level_of", {}).get(metric, entry["level"]))


def render(result: dict[str, Any], header: list[str]) -> str:
    alpha, null, power = result["alpha"], result["null"], result["power"]
    lines = ["# Regression gate under run-to-run noise: false alarms and the power of the printed MDE", "",
             *header, "",
             (__doc__ or "").split("Method (the report's header repeats it):")[1].split("Rates carry")[0]
             .strip(), ""]
    failed = sum(p["failed"] for p in null)
    lines += [f"**Null: the gate failed {rate(failed, len(null))} independent pairs.**", "",
              "| primary | regression | non-inferior | inconclusive | one-sided test rejected | "
              "median delta | median printed MDE | MDE method |", "|---|---|---|---|---|---|---|---|"]
    for m in PRIMARIES:
        rows = [p["primaries"][m] for p in null]
        count = {o: sum(r["outcome"] == o for r in rows)
                 for o in ("regression", "non-inferior", "inconclusive")}
        rejected = sum(r["p_drop_adj"] is not None and r["p_drop_adj"] < alpha for r in rows)
        mdes = [r["mde"] for r in rows if r["mde"] is not None]
        lines.append(f"| {m} | {count['regression']} | {count['non-inferior']} | {count['inconclusive']} | "
                     f"{rate(rejected, len(rows))} | {_median([r['delta'] for r in rows])} | "
                     f"{float(np.median(mdes)) if mdes else float('nan'):.4f} | "
                     f"{rows[0]['mde_method'] or '-'} |")
    lines += ["", "Pilots (every question faulted, one fault at a time): "
              + "; ".join(f"{m} drops {result['full_drop'][m]:.4f} under a {fault}"
                          for m, fault in TARGETS.items())
              + ".", "",
              "**Power**, each fault aimed at its metric's printed MDE times the level (re-gated runs: the "
              "drop they were aimed at over the MDE printed now):", "",
              "| level (x MDE) | primary | fault | share of questions hit | target drop | "
              "median realised drop | one-sided test rejected | gate: regression | runs (re-gated + new) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m, fault in TARGETS.items():
        aimed = [p for p in power if fault in p["faults"]]
        for level in sorted({round(_level(p, m), 3) for p in aimed}):
            runs = [p for p in aimed if round(_level(p, m), 3) == level]
            rows = [p["primaries"][m] for p in runs]
            rejected = sum(r["p_drop_adj"] is not None and r["p_drop_adj"] < alpha for r in rows)
            regressed = sum(r["outcome"] == "regression" for r in rows)
            regated = sum(bool(p.get("regated")) for p in runs)
            target = runs[0].get("target", {}).get(m, runs[0]["level"] * result["mde"][m])
            lines.append(f"| {level:g} | {m} | {fault} | {runs[0]['fraction'][m]:.4f} | {target:.4f} | "
                         f"{_median([-r['delta'] for r in rows if r['delta'] is not None])} | "
                         f"{rate(rejected, len(rows))} | {rate(regressed, len(rows))} | "
                         f"{regated} + {len(runs) - regated} |")
    lines += ["", "Per null pair, the gate's verdict line:", ""]
    lines += [f"- pair {p['pair']}: {'FAILED' if p['failed'] else 'passed'}: {p['verdict']}" for p in null]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noisy_gate_calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="a folder with golden.jsonl, corpus/")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--level-runs", type=int, default=None,
                        help="faulty runs at the printed MDE (default --pairs)")
    parser.add_argument("--curve", type=lambda s: [float(x) for x in s.split(",")], default=[],
                        help="more multiples of the MDE for a power curve, comma-separated (e.g. 0.5,2)")
    parser.add_argument("--curve-runs", type=int, default=10, help="faulty runs per --curve level")
    parser.add_argument("--quick", action="store_true", help="a smoke check on a 40-question subset")
    parser.add_argument("--out", type=Path, default=None, help=f"the report (default {DEFAULT_MARKDOWN})")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--resume", action="store_true",
                        help="take the null stage and the pilots from the work folder's saved result")
    parser.add_argument("--regate", action="store_true",
                        help="gate the saved runs of the work folder's complete result again with the "
                             "current code, and run again (--level-runs, at the new MDE) the fault sets "
                             "aimed at a metric whose printed MDE moved (bench.noisy_regate)")
    args = parser.parse_args(argv)
    golden, corpus = args.dataset / "golden.jsonl", args.dataset / "corpus"
    out = args.out or DEFAULT_MARKDOWN
    if args.quick:
        args.work = args.work / "quick"
        golden, corpus = write_quick_set(golden, corpus, args.work / "data", questions=40, distractors=40)
        args.pairs, args.repeat = 2, 2
        args.level_runs = args.curve_runs = 2
        out = args.out or args.work / "noisy_gate_calibration.md"
    levels = [(1.0, args.level_runs or args.pairs)] + [(x, args.curve_runs) for x in args.curve]
    progress_file = args.work / "noisy_gate_calibration.partial.json"
    args.work.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started, t0 = datetime.now(UTC), time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    runner = Runner(golden, corpus, args.work, temperature=args.temperature, repeat=args.repeat, log=log)
    resumed = json.loads(progress_file.read_text(encoding="utf-8")) if args.resume or args.regate else None
    null_commit = (resumed.get("null_commit") or "not recorded") if resumed is not None else commit

    def save(r: dict[str, Any]) -> None:
        target = progress_file.with_suffix(".regated.json") if args.regate else progress_file
        target.write_text(json.dumps({**r, "null_commit": null_commit}, indent=1, default=float))

    if args.regate and resumed is not None:
        result = regate_and_rerun(runner, resumed, level_runs=args.level_runs or args.pairs, log=log,
                                  save=save)
    else:
        result = calibrate(runner, pairs=args.pairs, levels=levels, alpha=0.05, log=log, resumed=resumed,
                           save=save)
    header = [f"- date: {started:%Y-%m-%d %H:%M} UTC; git commit {commit}; command: `python -m "
              f"bench.noisy_gate_calibration {' '.join(argv if argv is not None else sys.argv[1:])}`",
              f"- set: {len(read_lines(golden))} questions; temperature {args.temperature}, "
              f"repeat {args.repeat}, {args.pairs} null pairs; faulty runs per level (x MDE): "
              + ", ".join(f"{x:g}: {n}" for x, n in levels),
              f"- {len(runner.seconds)} runs, median {np.median(runner.seconds):.0f} s each; total "
              f"{time.perf_counter() - t0:.0f} s"
              + ("" if resumed is None or args.regate else "; the null stage and the pilots resumed from "
                 f"the work folder's saved result (its commit: {null_commit})")
              + ("" if not args.regate else "; every saved run (null pairs and faulty runs) gated again by "
                 "this commit's code, the fault sets aimed at a metric whose printed MDE moved run again at "
                 "the new MDE (bench.noisy_regate)")]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(result, header), encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
