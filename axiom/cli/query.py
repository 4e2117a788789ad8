"""`axiom query QUESTION [--top-k K] [--retriever R] [--collection NAME] [--json]`: an answer with numbered
citations. `--json` prints `Answer.to_dict()`. Its `timings` has the one-off costs of a new process apart from
`retrieve` / `generate` / `total`: `model_load` (the embedding model's lazy load) and `store_connect` (the
store's first connection, which imports chromadb: seconds)."""

from __future__ import annotations

import argparse

from axiom.cli.options import Subparsers, add_retriever
from axiom.cli.output import emit
from axiom.config import TOP_K_RANGE, Settings, log_generator_choice


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.pipeline import RAGPipeline  # lazy: `axiom --help` stays fast

    log_generator_choice(settings)
    pipeline = RAGPipeline.from_settings(settings)
    answer = pipeline.ask(args.question)  # --top-k, --retriever, --collection: in the settings (settings_for)
    text = [answer.answer, ""]
    if answer.degraded:
        text.insert(0, f"[degraded: {answer.degraded_reason}]")
    text += [f"[{c.n}] {c.source}" + (f" p.{c.page}" if c.page is not None else "")
             + f"  (score {c.score:.3f})"
             for c in answer.citations]
    emit(args, answer.to_dict(), "\n".join(text))
    return 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("query", help="answer a question with numbered citations")
    p.add_argument("question", help="the question to answer (quote it)")
    p.add_argument("--top-k", type=int, dest="top_k", metavar="K",
                   help=f"contexts retrieved and given to the generator, {TOP_K_RANGE[0]}-{TOP_K_RANGE[1]} "
                        "(default: retrieval.top_k)")
    add_retriever(p, help="how to retrieve: dense (vectors), bm25 (words) or hybrid (both fused) "
                          "(default: retrieval.retriever)")
    p.add_argument("--collection", help="collection to query (default: AXIOM_COLLECTION / config)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the answer, citations, contexts and timings) on stdout")
    p.set_defaults(handler=cmd_query)
