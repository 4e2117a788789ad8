"""The evaluation floor: datasets, retrieval and answer metrics, runs, comparison, benchmarks.

Public surface (what the CLI, the service and the notebooks call):

    load_golden, load_beir, EvalItem          datasets.py
    evaluate_rankings, golden_retrieval_metrics  retrieval_metrics.py (ranx)
    score_answers                              answer_metrics.py (ragas; imported lazily, it is slow to import)
    run_evaluation, load_run, RunRecord        runs.py
    compare_metrics, verdict_line, StatsConfig   verdict.py (the statistics core: stats.py)
    compare_runs                               compare.py
    load_baseline, make_baseline, gate_run     gate.py
    run_beir                                   benchmark.py
"""

from axiom.evaluation.benchmark import run_beir
from axiom.evaluation.compare import compare_runs
from axiom.evaluation.datasets import BeirData, EvalItem, load_beir, load_golden
from axiom.evaluation.gate import gate_run, load_baseline, make_baseline
from axiom.evaluation.retrieval_metrics import evaluate_rankings, evaluate_run, golden_retrieval_metrics
from axiom.evaluation.runs import RunRecord, load_run, run_evaluation
from axiom.evaluation.verdict import StatsConfig, compare_metrics, verdict_line

__all__ = [
    "BeirData", "EvalItem", "RunRecord", "StatsConfig", "compare_metrics", "compare_runs", "evaluate_rankings",
    "evaluate_run", "gate_run",
    "golden_retrieval_metrics", "load_baseline", "load_beir", "load_golden", "load_run", "make_baseline",
    "run_beir", "run_evaluation", "verdict_line",
]
