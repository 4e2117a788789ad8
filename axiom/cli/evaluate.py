"""The evaluation commands of `axiom`: eval and compare (retrieval on BEIR: `axiom.cli.retrieval_eval`).

    axiom eval [--dataset PATH] [--corpus PATH] [--name NAME] [--retriever R] [--top-k K] [--out DIR]
               [--responses FILE | --endpoint URL [--endpoint-config FILE.yaml]] [--save-responses FILE]
               [--baseline FILE|RUN] [--fail-on-regression] [--save-baseline FILE [--min-delta D]
               [--floor-margin M] [--primary METRIC]...] [--repeat N] [--no-judge] [--json]
    axiom compare RUN_A RUN_B [--top N] [--primary METRIC]... [--labels FILE [--label FIELD]... [--system
    NAME=RUN]...] [--json]

The answers come from Axiom's own pipeline, or from any other RAG system: a responses file (`--responses`) or
a deployed HTTP API (`--endpoint`, mapped by `--endpoint-config`; header values from environment variables).
`--dataset` may be left out with `--responses FILE` whose lines carry their own `question` (production logs):
the items are then those questions, without reference answers (the metrics that need one are n/a).

Exit codes: 0 success, 2 bad usage or malformed dataset, 3 the baseline gate failed (a primary metric's
outcome is `regression`, a metric became unmeasured, or a floor was broken; `non-inferior` and `inconclusive`
pass), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace

from axiom.cli.options import Subparsers, add_retriever
from axiom.cli.output import emit
from axiom.config import TOP_K_RANGE, Settings, log_generator_choice
from axiom.errors import UsageError

log = logging.getLogger("axiom.cli")


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.evaluation.gate import make_baseline, write_baseline
    from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation

    if args.fail_on_regression and not args.baseline:
        raise UsageError("--fail-on-regression needs --baseline FILE")
    endpoint = None
    if args.endpoint or args.endpoint_config:
        from axiom.evaluation.endpoint_config import load_endpoint_config

        endpoint = load_endpoint_config(args.endpoint_config, url=args.endpoint, environ=os.environ)
    if endpoint is None and not args.responses:
        log_generator_choice(settings)
    if args.responses or endpoint is not None:
        _refuse_pipeline_flags(args)
    # --top-k, --retriever and --collection are in `settings` already (settings_for); without --collection
    # the run takes its corpus's own collection
    options = EvaluationOptions(name=args.name, out_dir=args.out, baseline=args.baseline, repeat=args.repeat,
                                judge=not args.no_judge, save_responses=args.save_responses)
    source = AnswerSource(corpus=args.corpus, responses=args.responses, endpoint=endpoint,
                          own_collection=not args.collection)
    record = run_evaluation(settings, args.dataset, source, options)
    if args.save_baseline:
        target = write_baseline(make_baseline(record, floor_margin=args.floor_margin,
                                              min_delta=args.min_delta,
                                              primaries=args.primary), args.save_baseline)
        log.info("baseline written to %s", target)
    emit(args, record.summary(), record.summary_table())
    if args.fail_on_regression and record.gate is not None:
        record.gate.raise_if_failed(record.path)
    return 0


def _refuse_pipeline_flags(args: argparse.Namespace) -> None:
    """--retriever and --collection choose how Axiom's own pipeline retrieves: refused with another system's
    answers (--top-k stays: it fills an endpoint template's {top_k})."""
    given = [flag for flag, value in (("--retriever", args.retriever), ("--collection", args.collection))
             if value]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(f"{', '.join(given)} {verb} to Axiom's own pipeline, "
                         f"not to {'--responses' if args.responses else '--endpoint'}",
                         hint="the system under test retrieves and answers on its own; --corpus only "
                              "adds the evidence metrics")


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.evaluation.compare import compare_runs, comparison_text
    from axiom.evaluation.run_folder import load_run
    from axiom.evaluation.verdict import StatsConfig

    run_a, run_b = load_run(args.run_a), load_run(args.run_b)
    result = compare_runs(run_a, run_b, config=StatsConfig.from_settings(settings.evaluation), top=args.top,
                          primaries=args.primary)
    if args.labels:  # the human-judged difference, prediction-powered from the metrics and the partial labels
        from axiom.evaluation.agreement_data import load_labels, load_systems, system_names
        from axiom.evaluation.bounded_json import finite_json
        from axiom.evaluation.labelled import paired_estimates

        names = system_names(args.system)
        systems = load_systems([args.run_a, args.run_b], names)
        (name_a, scores_a), (name_b, scores_b) = systems.items()
        metrics = [m for m in result.metrics if m in scores_a.columns and m in scores_b.columns]
        result = replace(result, prediction_powered=finite_json(paired_estimates(
            name_a, scores_a, name_b, scores_b, load_labels(args.labels, args.label or ()), metrics)))
    emit(args, result.to_dict(), comparison_text(result))
    return 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a golden set and write a run folder")
    p.add_argument("--dataset",
                   help="golden set (JSONL; only id and question are required in a line); optional with "
                        "--responses FILE whose lines carry their own question")
    p.add_argument("--corpus", help="ingest this file or folder first (into a collection of its own); "
                                    "with --responses or --endpoint nothing is ingested: the files only "
                                    "serve the evidence metrics")
    p.add_argument("--name", default="eval", help="run name (folder suffix)")
    add_retriever(p)
    p.add_argument("--top-k", type=int, dest="top_k", metavar="K",
                   help=f"contexts given to the generator, {TOP_K_RANGE[0]}-{TOP_K_RANGE[1]} "
                        "(default: retrieval.top_k)")
    p.add_argument("--out", help="runs folder (default: evaluation.runs_dir)")
    p.add_argument("--collection",
                   help="collection to evaluate (default: one per corpus, or the configured one)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--responses", metavar="FILE",
                        help="score the answers another RAG system gave, a JSONL file with one object a "
                             "line: id, answer, contexts, optional question, retrieved, retrieved_contexts, "
                             "latency_ms, usage, metadata (instead of running Axiom's pipeline); without "
                             "--dataset the lines' own questions are the items (no reference answers)")
    source.add_argument("--endpoint", metavar="URL",
                        help="ask a deployed RAG system over HTTP, one request per question (instead of "
                             "running Axiom's pipeline); failed calls are unmeasured with their reason")
    p.add_argument("--endpoint-config", metavar="FILE", dest="endpoint_config",
                   help="YAML mapping of the endpoint: request template with {question}, "
                        "headers from environment variables, paths of answer/contexts/retrieved "
                        "in the reply, concurrency, timeout, retries "
                        "(evaluation/endpoints/axiom.yaml maps Axiom's own POST /query)")
    p.add_argument("--save-responses", metavar="FILE", dest="save_responses",
                   help="also write this run's answers as a responses file, to re-score "
                        "them later with --responses")
    p.add_argument("--baseline", help="baseline JSON (or a run folder) to gate against")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 3 on a regression: a primary metric's one-sided test shows a drop of at least "
                        "its min_delta, or a metric became unmeasured, or fell below its optional floor "
                        "(non-inferior and inconclusive primaries pass)")
    p.add_argument("--save-baseline", metavar="FILE", help="write a baseline JSON from this run")
    p.add_argument("--min-delta", type=float, default=0.01, dest="min_delta",
                   help="with --save-baseline: the practical margin of every metric (default 0.01)")
    p.add_argument("--primary", action="append", metavar="METRIC",
                   help="with --save-baseline: a primary metric the gate decides on (repeatable; "
                        "default: ndcg@10, evidence_recall@10 and groundedness or else "
                        "semantic_similarity, when measured)")
    p.add_argument("--floor-margin", "--margin", type=float, default=None, dest="floor_margin",
                   help="with --save-baseline: also an absolute floor this much below each mean (never "
                        "tighter than one question's weight); default: no floors")
    p.add_argument("--repeat", type=int, default=1,
                   help="answer and judge N times (caches bypassed; a sampling generator draws anew): every "
                        "repetition kept in repeats.parquet, each question's mean compared, the run-to-run "
                        "variance in the gate's test")
    p.add_argument("--no-judge", action="store_true",
                   help="offline metrics only, even with an LLM configured")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_eval)

    p = subparsers.add_parser("compare", help="compare two evaluation runs: verdict, paired tests corrected "
                                              "for multiplicity, intervals, minimum detectable effects")
    p.add_argument("run_a", help="run folder A (the reference)")
    p.add_argument("run_b", help="run folder B")
    p.add_argument("--top", type=int, default=5, help="how many most-changed questions to list")
    p.add_argument("--primary", action="append", metavar="METRIC",
                   help="a primary metric, tested one-sided with an outcome (repeatable; default: ndcg@10, "
                        "evidence_recall@10 and groundedness or else semantic_similarity, when compared)")
    p.add_argument("--labels", metavar="FILE",
                   help="human labels of some answers (JSONL: id, model or run, label fields): adds the "
                        "prediction-powered estimate of each label's difference B - A from each metric")
    p.add_argument("--label", action="append", metavar="FIELD",
                   help="with --labels: the label field (repeatable; default: every boolean field)")
    p.add_argument("--system", action="append", metavar="NAME=RUN",
                   help="with --labels: the label group (model/run value) of RUN_A or "
                        "RUN_B (default: run name)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_compare)
