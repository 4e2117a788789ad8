"""One evaluation of a golden set in a fresh process, either through papermill (notebooks/03_evaluate.ipynb
via `axiom.notebook.runner.run_notebooks`) or through the Python API (`axiom.evaluation.run_evaluation`), so
the two pay the same interpreter start and imports. Prints one JSON object; the caller times the whole
process.

    python -m bench.notebook_worker {notebook,api} --store DIR --out DIR [--dataset F] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import REPO

DATASET = REPO / "evaluation" / "datasets" / "sample" / "golden.jsonl"
CORPUS = REPO / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("how", choices=("notebook", "api", "prepare"),
                    help="prepare: only ingest the corpus into the collection both evaluations use")
    ap.add_argument("--store", required=True, help="embedded ChromaDB folder (CHROMA_PATH)")
    ap.add_argument("--out", required=True, help="where run folders go")
    ap.add_argument("--dataset", default=str(DATASET))
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--html", action="store_true", help="notebook: also render the HTML report")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from axiom.config import load_settings

    settings = load_settings(REPO / "config.yaml", environ={"CHROMA_PATH": args.store,
                                                            "EMBEDDING_CACHE_ENABLED": "false"})
    extra: dict[str, object] = {}
    if args.how == "notebook":
        from axiom.notebook.runner import run_notebooks

        params = {"corpus": args.corpus, "dataset": args.dataset, "chroma_path": args.store, "judge": False,
                  "name": "bench-notebook"}
        run = run_notebooks(settings, ["03_evaluate"], params, out_dir=args.out, html=args.html)
        run_path = run.run_path
        extra = {"notebook_seconds": sum(n.seconds for n in run.notebooks), "html_seconds": run.html_seconds}
    elif args.how == "prepare":
        from axiom.embeddings import make_embedder
        from axiom.evaluation.runs import prepare_settings
        from axiom.pipeline import RAGPipeline
        from axiom.store import ChromaStore

        embedder = make_embedder(settings.embeddings, settings.generation)
        run_settings = prepare_settings(settings, corpus_path=args.corpus, model_id=embedder.model_id)
        report = RAGPipeline(run_settings, embedder, ChromaStore(run_settings.store)).ingest(
            [args.corpus], prune=True, progress=False)
        run_path = None
        extra = {"chunks": report.chunks_total}
    else:
        from axiom.evaluation import AnswerSource, EvaluationOptions, run_evaluation

        record = run_evaluation(settings, args.dataset, AnswerSource.pipeline(args.corpus),
                                EvaluationOptions(name="bench-api", out_dir=args.out, judge=False))
        run_path = record.path
    print(json.dumps({"how": args.how, "inner_seconds": time.perf_counter() - t0, "run_path": str(run_path),
                      **extra}))


if __name__ == "__main__":
    main()
