"""The dataset commands of `axiom` (registered by axiom.cli):

    axiom dataset audit DATASET [--corpus PATH] [--against OTHER] [--runs DIR] [--near-duplicate 0.95]
    [--json]

`audit` checks that every item can be used (its relevant sources are in the corpus, its reference contexts are
found in it), and reports duplicate questions, leakage from another set, coverage of the sources and the
saturation of the last run on this dataset. Exit codes: 0 every item usable, 2 an item is unusable (or the
dataset is malformed, or bad usage), 1 anything else.
"""

from __future__ import annotations

import argparse

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.evaluation.audit import audit_dataset

    report = audit_dataset(args.dataset, settings=settings, corpus=args.corpus, against=args.against,
                           runs_dir=args.runs, near_duplicate=args.near_duplicate)
    emit(args, report.to_dict(), report.text())
    return 0 if report.usable else 2


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("dataset", help="work with golden datasets")
    sub = p.add_subparsers(dest="dataset_command", required=True, parser_class=type(p))
    a = sub.add_parser("audit", help="check a golden set: unusable items, duplicates, leakage, coverage, "
                                     "saturation of the last run")
    a.add_argument("dataset", help="golden set (JSONL)")
    a.add_argument("--corpus",
                   help="corpus file or folder (default: the sources of the configured collection; "
                        "reference contexts are only located with a corpus)")
    a.add_argument("--against", metavar="OTHER", help="another golden set to check for leaked questions")
    a.add_argument("--runs", help="runs folder to look for the last run in (default: evaluation.runs_dir)")
    a.add_argument("--near-duplicate", type=float, default=0.95, dest="near_duplicate", metavar="COSINE",
                   help="question pairs with at least this embedding cosine are near "
                        "duplicates (default 0.95)")
    a.add_argument("--collection", help="collection whose sources are checked when no --corpus is given")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(handler=cmd_audit)
