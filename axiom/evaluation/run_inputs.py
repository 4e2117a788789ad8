"""A run's settings and its validated inputs: `prepare_settings` (the run's own collection), then step 1 of
`run_evaluation` (`runs.py`): the arguments, the dataset (and its sources against the corpus files or the
collection), a responses file and the baseline, checked before anything is ingested or written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.config import Settings
from axiom.errors import DatasetError, UsageError
from axiom.evaluation.answered import Answered
from axiom.evaluation.datasets import EvalItem, golden_from_responses, load_golden
from axiom.evaluation.gate import load_baseline
from axiom.evaluation.naming import eval_collection
from axiom.evaluation.provenance import corpus_fingerprint
from axiom.evaluation.responses import responses_answers

if TYPE_CHECKING:
    from axiom.evaluation.endpoint_config import EndpointConfig
    from axiom.pipeline import RAGPipeline

NO_DATASET = "--dataset is needed unless --responses FILE carries each item's question"


# -- settings -------------------------------------------------------------------------------------
def prepare_settings(settings: Settings, *, corpus_path: str | Path, model_id: str) -> Settings:
    """The settings of a run over `corpus_path` in its own collection (named from the corpus folder, a hash of
    its absolute path and the embedding model), so that nothing else ingested into the configured collection
    changes the results. Every other setting is the face's, as it resolved them (`Settings.with_overrides`).
    """
    return settings.with_overrides({"store.collection": eval_collection(corpus_path, model_id)},
                                   origin="the corpus's evaluation collection")


@dataclass
class _Inputs:
    """Step 1: the validated inputs (a responses file is read and checked here too)."""

    dataset: Path
    corpus: Path | None
    corpus_info: dict[str, Any] | None
    items: list[EvalItem]
    baseline: dict[str, Any] | None
    responses: Answered | None = None


def _validate(settings: Settings, dataset_path: str | Path | None, corpus_path: str | Path | None,
              baseline: str | Path | None, repeat: int, *, responses: str | Path | None = None,
              endpoint: EndpointConfig | None = None) -> _Inputs:
    """The arguments, the dataset (and its sources against the corpus files), a responses file and the
    baseline, before anything is touched."""
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    if responses is not None and endpoint is not None:
        raise UsageError("--responses and --endpoint are mutually exclusive: give one source of answers")
    if dataset_path is None and responses is None:
        raise UsageError(NO_DATASET,
                         hint="a responses line then reads {id, question, answer, contexts, [retrieved]}")
    dataset = Path(dataset_path if dataset_path is not None else str(responses))
    corpus = Path(corpus_path) if corpus_path is not None else None
    if corpus is not None and not corpus.exists():
        raise UsageError(f"corpus {corpus} does not exist")
    corpus_info, known = corpus_fingerprint(corpus, settings) if corpus is not None else (None, None)
    items = (load_golden(dataset, known_sources=known) if dataset_path is not None
             else golden_from_responses(dataset))
    answered = responses_answers(responses, items) if responses is not None else None
    baseline_data = load_baseline(baseline) if baseline is not None else None
    return _Inputs(dataset, corpus, corpus_info, items, baseline_data, answered)


def _check_sources_in_collection(pipeline: RAGPipeline, inputs: _Inputs) -> None:
    """Without a corpus, the dataset's relevant sources must be in the collection (when it exists)."""
    if pipeline.store.get_collection() is None:
        return
    stored = {str(c.metadata.get("source", "")) for c in pipeline.store.iter_chunks()}
    collection = pipeline.settings.store.collection
    unknown = [f"line {it.line}: unknown source(s) "
               f"{', '.join(repr(s) for s in it.relevant_sources if s not in stored)} "
               f"(not in collection {collection!r})"
               for it in inputs.items if any(s not in stored for s in it.relevant_sources)]
    if unknown:
        raise DatasetError(str(inputs.dataset), unknown)
