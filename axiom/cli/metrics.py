"""`axiom metrics`: how well metrics agree with people.

    axiom metrics agreement RUN_OR_TABLE... --labels LABELS.jsonl [--label FIELD]... [--system NAME=RUN]...
                            [--samples N] [--seed S] [--json]

RUN_OR_TABLE: a run folder, or a score table (JSONL or CSV: `id`, optional `model`/`run`, metric columns).
LABELS.jsonl: one object a line, `id`, optional `model` or `run`, label fields (booleans: binary labels;
numbers with --label: graded). See `axiom.evaluation.agreement`.
"""

from __future__ import annotations

import argparse

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings
from axiom.errors import UsageError


def cmd_agreement(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.evaluation.agreement import agreement_report, agreement_text
    from axiom.evaluation.agreement_data import system_names
    from axiom.evaluation.bounded_json import finite_json

    if args.samples < 100:
        raise UsageError(f"--samples {args.samples}: at least 100 bootstrap resamples are "
                         "needed for a 95% interval")
    result, _ = agreement_report(args.sources, args.labels, fields=args.label or (),
                                 names=system_names(args.system), samples=args.samples, seed=args.seed)
    emit(args, finite_json(result), agreement_text(result))
    return 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("metrics", help="how well metrics agree with human labels")
    sub = p.add_subparsers(dest="metrics_command", required=True)
    a = sub.add_parser("agreement",
                       help="ROC AUC, best-F1 threshold, kappa or rank correlations of each metric with "
                            "each human label (95% bootstrap over questions), systems ranked by metric vs "
                            "by people, prediction-powered label means")
    a.add_argument("sources", nargs="+", metavar="RUN",
                   help="run folders or score tables (JSONL/CSV: id, optional model or run, metric columns)")
    a.add_argument("--labels", required=True, metavar="FILE",
                   help="JSONL of human labels: id, optional model or run, label fields")
    a.add_argument("--label", action="append", metavar="FIELD",
                   help="label field to use (repeatable; default: every boolean "
                        "field); numeric ones are graded")
    a.add_argument("--system", action="append", metavar="NAME=RUN",
                   help="the label group (labels' model/run value) of a run or table given as RUN "
                        "(default: the run's name)")
    a.add_argument("--samples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(handler=cmd_agreement)
