"""`axiom retrieval-eval beir`: retrieval quality (nDCG, recall, MRR...) on a BEIR folder, and paired tests of
retrievers against the first one. Not a performance benchmark: those are `python -m bench` / `make bench`.

    axiom retrieval-eval beir PATH [--retriever R] [--compare R2,R3] [--split test] [--collection NAME]
    [--json]

`axiom bench beir ...` is the former name: it still works and prints a one-line deprecation note on stderr.
Exit codes: 0 success, 2 bad usage or a malformed BEIR folder, 1 anything else.
"""

from __future__ import annotations

import argparse

from axiom.cli.options import Subparsers, add_retriever
from axiom.cli.output import emit, note
from axiom.config import Settings

COMMAND = "retrieval-eval"
DEPRECATED_ALIAS = "bench"


def cmd_retrieval_eval(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.evaluation.benchmark import bench_text, run_beir

    retrievers = [args.retriever] if args.retriever else []
    if args.compare:
        retrievers += [r.strip() for r in args.compare.split(",") if r.strip()]
    if not retrievers:
        retrievers = [settings.retrieval.retriever]
    result = run_beir(settings, args.path, retrievers=retrievers, split=args.split,
                      collection=args.collection)
    emit(args, result, bench_text(result))
    return 0


def cmd_bench_alias(args: argparse.Namespace, settings: Settings) -> int:
    note(f"`axiom {DEPRECATED_ALIAS} {args.kind}` is deprecated, use `axiom {COMMAND} {args.kind}` "
         "(`make bench` runs the performance benchmarks)")
    return cmd_retrieval_eval(args, settings)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["beir"], help="benchmark format")
    p.add_argument("path", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    add_retriever(p, help="retriever to measure (default: the configured one); the reference of --compare")
    p.add_argument("--compare",
                   help="more retrievers to measure and test against the first, e.g. bm25,hybrid")
    p.add_argument("--split", default="test",
                   help="the qrels split to score, qrels/<split>.tsv (default: test)")
    p.add_argument("--collection", help="collection name (default: beir-<folder>-<model>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(COMMAND,
                              help="retrieval quality on a BEIR folder (nDCG, recall, MRR; retrievers "
                                   "compared with paired tests)")
    _add_arguments(p)
    p.set_defaults(handler=cmd_retrieval_eval)

    p = subparsers.add_parser(DEPRECATED_ALIAS, help=f"deprecated name of `{COMMAND}`")
    _add_arguments(p)
    p.set_defaults(handler=cmd_bench_alias)
