"""`Any` only at real boundaries (issue 28, item 6), enforced on the source of `axiom/`.

Every `Any` outside an import line is one of:
- json: inside `dict[str, Any]`, a JSON document (the values are whatever JSON holds);
- marked: on a line whose trailing comment names the boundary (`# boundary: chromadb metadata`), i.e. a value
  that comes from or goes to JSON or an untyped third-party API (chromadb, ragas, torch, pandas, FastAPI);
- unmarked: anything else, which should be a precise type (a class, a Protocol, a TypeVar, `object`, ...).
The modules in CONVERTED have no unmarked `Any`; the others have not been gone through yet. Run this file
(`python tests/test_any_boundaries.py`) for the counts per module."""

from __future__ import annotations

import io
import re
import tokenize
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "axiom"

JSON_DICT = re.compile(r"dict\[str, Any\]")
MARK = re.compile(r"#.*\bboundary\b")

# modules gone through: every `Any` left in them is a JSON document or a marked boundary
CONVERTED = {
    "axiom/breaker.py",
    "axiom/cli/__init__.py",
    "axiom/cli/__main__.py",
    "axiom/cli/cache.py",
    "axiom/cli/dataset.py",
    "axiom/cli/ingest.py",
    "axiom/cli/metrics.py",
    "axiom/cli/notebooks.py",
    "axiom/cli/options.py",
    "axiom/cli/output.py",
    "axiom/cli/plan.py",
    "axiom/cli/query.py",
    "axiom/cli/retrieval_eval.py",
    "axiom/cli/serve.py",
    "axiom/cli/status.py",
    "axiom/comparison_report.py",
    "axiom/config.py",
    "axiom/config_service.py",
    "axiom/distributed/__init__.py",
    "axiom/distributed/embedder.py",
    "axiom/distributed/ingest.py",
    "axiom/distributed/runtime.py",
    "axiom/distributed/sweep.py",
    "axiom/embedding_cache.py",
    "axiom/embedding_cache_file.py",
    "axiom/embedding_keys.py",
    "axiom/embeddings.py",
    "axiom/evaluation/agreement.py",
    "axiom/evaluation/agreement_data.py",
    "axiom/evaluation/answer_metrics/__init__.py",
    "axiom/evaluation/answer_metrics/groundedness.py",
    "axiom/evaluation/answer_metrics/groundedness_features.py",
    "axiom/evaluation/answer_metrics/grounding.py",
    "axiom/evaluation/answer_metrics/judge.py",
    "axiom/evaluation/answer_metrics/judge_cache.py",
    "axiom/evaluation/answer_metrics/normalise.py",
    "axiom/evaluation/answer_metrics/offline.py",
    "axiom/evaluation/answer_metrics/prices.py",
    "axiom/evaluation/answer_metrics/ragas_adapter.py",
    "axiom/evaluation/answer_metrics/scores.py",
    "axiom/evaluation/answered.py",
    "axiom/evaluation/audit.py",
    "axiom/evaluation/benchmark.py",
    "axiom/evaluation/bounded_json.py",
    "axiom/evaluation/clusters.py",
    "axiom/evaluation/datasets.py",
    "axiom/evaluation/endpoint.py",
    "axiom/evaluation/endpoint_config.py",
    "axiom/evaluation/evidence.py",
    "axiom/evaluation/family.py",
    "axiom/evaluation/labelled.py",
    "axiom/evaluation/metric_support.py",
    "axiom/evaluation/naming.py",
    "axiom/evaluation/outcomes.py",
    "axiom/evaluation/paired_proportions.py",
    "axiom/evaluation/ppi.py",
    "axiom/evaluation/responses.py",
    "axiom/evaluation/retrieval_metrics.py",
    "axiom/evaluation/run_inputs.py",
    "axiom/evaluation/sensitivity.py",
    "axiom/evaluation/span_metrics.py",
    "axiom/evaluation/spans.py",
    "axiom/evaluation/stats.py",
    "axiom/evaluation/system_ranking.py",
    "axiom/evaluation/versus_best.py",
    "axiom/generation.py",
    "axiom/llm.py",
    "axiom/local_embedder.py",
    "axiom/notebook/__init__.py",
    "axiom/notebook/engine.py",
    "axiom/notebook/kernel.py",
    "axiom/notebook/markup.py",
    "axiom/notebook/parameter_table.py",
    "axiom/notebook/parameters.py",
    "axiom/notebook/report_html.py",
    "axiom/notebook/runner.py",
    "axiom/notebook/session.py",
    "axiom/observability.py",
    "axiom/openai_embedder.py",
    "axiom/pipeline.py",
    "axiom/progress.py",
    "axiom/redaction.py",
    "axiom/reporting.py",
    "axiom/retrieval.py",
    "axiom/service/__init__.py",
    "axiom/service/app.py",
    "axiom/service/auth.py",
    "axiom/service/cache.py",
    "axiom/service/limits.py",
    "axiom/service/middleware.py",
    "axiom/service/server.py",
    "axiom/service/state.py",
    "axiom/store.py",
    "axiom/sweep.py",
    "axiom/sweep_summary.py",
    "axiom/types.py",
    "axiom/yaml_mapping.py",
}


def any_uses(source: str) -> Counter[str]:
    """How many `Any` of `source` (outside import statements) are json, marked or unmarked."""
    kinds: Counter[str] = Counter()
    lines = source.splitlines()
    in_import = False
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        starts_import = token.string in {"import", "from"} and token.line.lstrip().startswith(token.string)
        if token.type == tokenize.NAME and starts_import:
            in_import = True
        elif token.type == tokenize.NEWLINE:
            in_import = False
        if token.type != tokenize.NAME or token.string != "Any" or in_import:
            continue
        line = lines[token.start[0] - 1]
        column = token.start[1]
        if any(m.start() <= column < m.end() for m in JSON_DICT.finditer(line)):
            kinds["json"] += 1
        elif MARK.search(line):
            kinds["marked"] += 1
        else:
            kinds["unmarked"] += 1
    return kinds


def counts() -> dict[str, Counter[str]]:
    return {str(path.relative_to(REPO)): any_uses(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_the_counter_tells_json_marked_and_unmarked_apart() -> None:
    source = ("from typing import Any, cast\n"
              "def f(doc: dict[str, Any], x: Any) -> list[Any]:  # boundary: ragas\n"
              "    return cast(Any, doc)\n"
              "def g(y: Any) -> None: ...\n")
    assert any_uses(source) == Counter(json=1, marked=2, unmarked=2)


def test_converted_modules_have_no_unmarked_any() -> None:
    found = counts()
    assert CONVERTED <= set(found)
    unmarked = {path: found[path]["unmarked"] for path in sorted(CONVERTED) if found[path]["unmarked"]}
    assert unmarked == {}


def _row(kinds: Counter[str]) -> str:
    return f"json {kinds['json']:3}  marked {kinds['marked']:3}  unmarked {kinds['unmarked']:3}"


if __name__ == "__main__":
    found = counts()
    total: Counter[str] = Counter()
    for path, kinds in found.items():
        total += kinds
        if kinds:
            print(f"{path:60} {_row(kinds)}{'  (converted)' if path in CONVERTED else ''}")
    print(f"{'total':60} {_row(total)}")
