"""The `axiom` command: ingest, query, status (core) plus the evaluation commands from `axiom.cli_eval`.

Exit codes: 0 success (skipped files are reported, not fatal), 2 bad usage or settings, 3 regression gate
failed, 1 any other failure. `--json` prints exactly one JSON object on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from axiom import __version__
from axiom.config import Settings, load_settings, log_generator_choice
from axiom.errors import AxiomError
from axiom.observability import apply_process_defaults, configure_logging

log = logging.getLogger("axiom.cli")

Handler = Callable[[argparse.Namespace, Settings], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on bad usage; keep that, with our wording
        self.print_usage(sys.stderr)
        print(f"axiom: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print one JSON object (--json) or the human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        print(text)


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings overrides from common flags."""
    out: dict[str, dict[str, Any]] = {}
    if getattr(args, "collection", None):
        out.setdefault("store", {})["collection"] = args.collection
    if getattr(args, "retriever", None):
        out.setdefault("retrieval", {})["retriever"] = args.retriever
    if getattr(args, "top_k", None) is not None and args.top_k > 0:
        out.setdefault("retrieval", {})["top_k"] = args.top_k
    return out


def make_pipeline(settings: Settings):  # noqa: ANN201 (import kept lazy: `axiom --help` stays fast)
    from axiom.pipeline import RAGPipeline

    return RAGPipeline.from_settings(settings)


# -- core commands ----------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = make_pipeline(settings)
    report = pipeline.ingest(args.paths, prune=args.prune, progress=None if not args.json else False)
    lines = [f"ingested {len(report.files_ingested)} file(s), unchanged {len(report.files_unchanged)}, "
             f"skipped {len(report.files_skipped)}; chunks +{report.chunks_added} -{report.chunks_removed}, "
             f"{report.chunks_total} in collection {settings.store.collection!r} ({report.seconds:.2f}s)"]
    lines += [f"  skipped {s.path}: {s.reason}" for s in report.files_skipped]
    emit(args, report.to_dict(), "\n".join(lines))
    return 0


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    log_generator_choice(settings)
    pipeline = make_pipeline(settings)
    answer = pipeline.ask(args.question, top_k=args.top_k, retriever=args.retriever)
    payload = {"answer": answer.answer, "citations": [c.to_dict() for c in answer.citations],
               "contexts": [h.to_dict() for h in answer.contexts], "generator": answer.generator,
               "degraded": answer.degraded, "degraded_reason": answer.degraded_reason, "timings": answer.timings,
               "usage": answer.usage}
    text = [answer.answer, ""]
    if answer.degraded:
        text.insert(0, f"[degraded: {answer.degraded_reason}]")
    text += [f"[{c.n}] {c.source}" + (f" p.{c.page}" if c.page is not None else "") + f"  (score {c.score:.3f})"
             for c in answer.citations]
    emit(args, payload, "\n".join(text))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = make_pipeline(settings).status()
    payload = {k: status[k] for k in ("collection", "chunks", "sources", "embedding_model", "store")}
    payload["location"] = status["location"]
    emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="axiom", description="Axiom Workbench: build and evaluate RAG, offline first.")
    parser.add_argument("--version", action="version", version=f"axiom {__version__}")
    parser.add_argument("--config", help="settings file (default: AXIOM_CONFIG or ./config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("ingest", help="ingest files or folders (txt, md, pdf) into the store")
    p.add_argument("paths", nargs="+", help="files or folders (recursive)")
    p.add_argument("--prune", action="store_true", help="remove chunks of files no longer under the folders")
    p.add_argument("--collection", help="collection name (default: AXIOM_COLLECTION / config)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("query", help="answer a question with numbered citations")
    p.add_argument("question")
    p.add_argument("--top-k", type=int, dest="top_k")
    p.add_argument("--retriever", choices=["dense", "bm25", "hybrid"])
    p.add_argument("--collection")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_query)

    p = sub.add_parser("status", help="what the store holds")
    p.add_argument("--collection")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    for module in ("axiom.cli_eval", "axiom.cli_serve", "axiom.cli_notebooks", "axiom.cli_dataset"):
        try:
            registered = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        registered.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_process_defaults()
    try:
        settings = load_settings(args.config, overrides=settings_overrides(args))
    except AxiomError as exc:
        print(f"axiom: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_logging(settings.logging)
    try:
        return int(args.handler(args, settings))
    except AxiomError as exc:
        log.debug("command failed", exc_info=True)
        print(f"axiom: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("axiom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
