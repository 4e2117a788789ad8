"""The evaluation floor: datasets, retrieval and answer metrics, runs, comparison, benchmarks.

Public surface (what the CLI, the service and the notebooks call):

    load_golden, load_beir, EvalItem          datasets.py
    evaluate_rankings, golden_retrieval_metrics  retrieval_metrics.py (ranx)
    score_answers                              answer_metrics/ (a package; ragas, imported lazily, it is slow
                                               to import: only answer_metrics/ragas_adapter.py imports it)
    run_evaluation                             runs.py (running an evaluation: its steps, repeat summary;
    EvaluationOptions                          run_inputs.py: its options, settings and validated inputs)
    AnswerSource                               answered.py (where a run's answers come from: the pipeline,
                                               a responses file or an endpoint)
    load_responses, write_responses            responses.py (another system's answers; --save-responses)
    load_endpoint_config, EndpointConfig       endpoint_config.py (the mapping of a system's HTTP API; the
                                               client, httpx and tenacity: endpoint.py, imported lazily)
    load_run, RunRecord                        run_folder.py (the run record, run-folder I/O, listing runs)
    compare_metrics, verdict_line, StatsConfig   verdict.py (the statistics core: stats.py, with
                                               paired_proportions.py, intervals of 0/1 metrics, and
                                               clusters.py, questions grouped by document)
    compare_runs                               compare.py
    load_baseline, make_baseline, gate_run     gate.py
    run_beir                                   benchmark.py
    agreement_report                           agreement.py (metrics against human labels; scikit-learn, so
                                               imported by its callers: `axiom metrics agreement`, 05
                                               notebook)
    ppi_mean, ppi_paired_difference            ppi.py (prediction-powered estimates; labelled.py joins runs
                                               and labels for them, agreement_data.py reads both)

Internals: naming.py (run-folder labels, collection names), provenance.py (package versions, git state,
corpus and collection hashes for the manifest), summary.py (per-metric summaries and repeat spread of a run),
repeats.py (run-to-run variance of repeated runs in compare and the gate), family.py (the metrics a
comparison counts: primaries, secondaries under max-T, aliases and constants), outcomes.py (regression,
non-inferior or inconclusive per primary metric: what the gate decides on), versus_best.py (a sweep's
combinations each tested against the best), system_ranking.py (systems ranked by a metric against people),
spans.py (reference passages located as spans), span_metrics.py (evidence metrics over spans), audit.py
(dataset audit), answered.py (the answer-source seam: what the pipeline, a responses file or an endpoint
yields per item), evidence.py (a run's evidence metrics), run_docs.py (a run's results table, metrics.json and
manifest.json).

Dependencies point one way: runs -> gate -> run_folder -> naming, and compare / audit -> run_folder; nothing
imports runs but this file. runs imports answer_metrics inside its functions, only because ragas is slow.
"""

from axiom.evaluation.answered import AnswerSource
from axiom.evaluation.benchmark import run_beir
from axiom.evaluation.compare import compare_runs
from axiom.evaluation.datasets import BeirData, EvalItem, load_beir, load_golden
from axiom.evaluation.endpoint_config import EndpointConfig, load_endpoint_config
from axiom.evaluation.gate import gate_run, load_baseline, make_baseline
from axiom.evaluation.responses import load_responses, write_responses
from axiom.evaluation.retrieval_metrics import evaluate_rankings, evaluate_run, golden_retrieval_metrics
from axiom.evaluation.run_folder import RunRecord, load_run
from axiom.evaluation.run_inputs import EvaluationOptions
from axiom.evaluation.runs import run_evaluation
from axiom.evaluation.verdict import StatsConfig, compare_metrics, verdict_line

__all__ = [
    "AnswerSource", "BeirData", "EndpointConfig", "EvalItem", "EvaluationOptions", "RunRecord", "StatsConfig",
    "compare_metrics", "compare_runs",
    "evaluate_rankings",
    "evaluate_run", "gate_run",
    "golden_retrieval_metrics", "load_baseline", "load_beir", "load_endpoint_config", "load_golden",
    "load_responses", "load_run", "make_baseline",
    "run_beir", "run_evaluation", "verdict_line", "write_responses",
]
