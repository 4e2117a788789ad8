"""A run's options, settings and validated inputs: `EvaluationOptions` (how `run_evaluation` runs and where it
writes), `prepare_settings` (the run's own collection), then step 1 of `run_evaluation` (`runs.py`): the
dataset (and its sources against the corpus files or the collection), a responses file and the baseline,
checked before anything is ingested or written. The answer source (`answered.AnswerSource`) and the options
check themselves when they are made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.config import Settings, StoreSettings
from axiom.errors import DatasetError, UsageError
from axiom.evaluation.answered import Answered, AnswerSource
from axiom.evaluation.datasets import EvalItem, golden_from_responses, load_golden
from axiom.evaluation.gate import load_baseline
from axiom.evaluation.naming import eval_collection
from axiom.evaluation.provenance import corpus_fingerprint
from axiom.evaluation.responses import responses_answers

if TYPE_CHECKING:
    from axiom.embeddings import Embedder
    from axiom.pipeline import RAGPipeline

NO_DATASET = "--dataset is needed unless --responses FILE carries each item's question"


# -- options --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationOptions:
    """How `run_evaluation` runs and where it writes (the settings and the answer source travel apart).

    `name`: the run folder is `<out_dir>/<UTC timestamp>-<name>`, `out_dir` None: `evaluation.runs_dir`.
    `baseline`: a baseline JSON (or run folder) to gate against. `repeat` > 1 answers and scores the questions
    that many times (at least 1, else UsageError). `judge`: the LLM-judged metrics when an LLM is configured.
    `progress` (stderr): None, the CLI's default, shows it except inside a notebook kernel; False never.
    `save_responses`: also write the run's answers as a responses file. `embedder`: an already loaded
    embedding model to reuse (tests, notebooks)."""

    name: str = "eval"
    out_dir: str | Path | None = None
    baseline: str | Path | None = None
    repeat: int = 1
    judge: bool = True
    progress: bool | None = None
    save_responses: str | Path | None = None
    embedder: Embedder | None = None

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise UsageError(f"--repeat must be at least 1, got {self.repeat}")


# -- settings -------------------------------------------------------------------------------------
def prepare_settings(settings: Settings, *, corpus_path: str | Path, model_id: str) -> Settings:
    """The settings of a run over `corpus_path` in its own collection (named from the corpus folder, a hash of
    its absolute path and the embedding model), so that nothing else ingested into the configured collection
    changes the results. Every other setting is the face's, as it resolved them (`Settings.with_overrides`).

    The collection is derived here, not overridden: no input of the user is applied again (the store section
    is validated with its new name, and the settings copied with it)."""
    store = StoreSettings.model_validate({**settings.store.model_dump(),
                                          "collection": eval_collection(corpus_path, model_id)})
    return settings.model_copy(update={"store": store})


@dataclass
class _Inputs:
    """Step 1: the validated inputs (a responses file is read and checked here too)."""

    dataset: Path
    corpus: Path | None
    corpus_info: dict[str, Any] | None
    items: list[EvalItem]
    baseline: dict[str, Any] | None
    responses: Answered | None = None


def _validate(settings: Settings, dataset_path: str | Path | None, source: AnswerSource,
              options: EvaluationOptions) -> _Inputs:
    """The dataset (and its sources against the corpus files), a responses file and the baseline, before
    anything is touched."""
    responses = source.responses
    if dataset_path is None and responses is None:
        raise UsageError(NO_DATASET,
                         hint="a responses line then reads {id, question, answer, contexts, [retrieved]}")
    dataset = Path(dataset_path if dataset_path is not None else str(responses))
    corpus = source.corpus
    if corpus is not None and not corpus.exists():
        raise UsageError(f"corpus {corpus} does not exist")
    corpus_info, known = corpus_fingerprint(corpus, settings) if corpus is not None else (None, None)
    items = (load_golden(dataset, known_sources=known) if dataset_path is not None
             else golden_from_responses(dataset))
    answered = responses_answers(responses, items) if responses is not None else None
    baseline_data = load_baseline(options.baseline) if options.baseline is not None else None
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
