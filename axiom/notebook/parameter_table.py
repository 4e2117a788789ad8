"""Every notebook parameter, declared once: what it overrides in the settings, whether it names a file or
folder, whether it decides what a collection holds, whether the runner sets it itself.

The notebooks' parameters cells (papermill reads literal assignments, so each notebook spells its own
defaults), `session.open_session` / `session.notebook_settings` (their keyword arguments), the runner's path
handling (`parameters.absolute_paths`) and the sweep (what it may vary, how it groups runs by collection) all
read this table or are checked against it (tests/notebooks/test_units.py): a parameter a notebook declares
that is not here, or a keyword of the session that is not here, fails the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NotebookParameter:
    """One notebook parameter.

    `setting`: the settings field it overrides (`Settings.with_overrides` key), None when it is no setting.
    `path`: it names a file or folder (the CLI makes it absolute against its working directory).
    `chunking`: it decides what a collection holds (a sweep's runs that agree on every such parameter share
    one collection). `controlled`: the runner or the sweep sets it for every run (a sweep cannot vary it)."""

    name: str
    setting: str | None = None
    path: bool = False
    chunking: bool = False
    controlled: bool = False


# the parameter through which the runner learns what a notebook produced (NotebookSession.report writes it)
RESULT_PARAMETER = "result_json"

PARAMETERS: tuple[NotebookParameter, ...] = (
    # what is ingested and where (01_ingest, 02_query, 03_evaluate)
    NotebookParameter("corpus", path=True, chunking=True),
    NotebookParameter("chunk_size", setting="chunking.chunk_size", chunking=True),
    NotebookParameter("chunk_overlap", setting="chunking.chunk_overlap", chunking=True),
    NotebookParameter("collection", setting="store.collection", chunking=True),
    NotebookParameter("chroma_path", setting="store.path", path=True, chunking=True),
    NotebookParameter("chroma_host", setting="store.host", chunking=True),
    NotebookParameter("chroma_port", setting="store.port", chunking=True),
    NotebookParameter("prune"),
    # retrieval and answers (02_query, 03_evaluate)
    NotebookParameter("retriever", setting="retrieval.retriever"),
    NotebookParameter("top_k", setting="retrieval.top_k"),
    NotebookParameter("question"),
    # an evaluation run (03_evaluate)
    NotebookParameter("dataset", path=True),
    NotebookParameter("out_dir", path=True, controlled=True),
    NotebookParameter("name", controlled=True),
    NotebookParameter(RESULT_PARAMETER, controlled=True),
    NotebookParameter("baseline", path=True),
    NotebookParameter("judge"),
    NotebookParameter("responses", path=True),
    NotebookParameter("endpoint"),
    NotebookParameter("endpoint_config", path=True),
    NotebookParameter("save_responses", path=True),
    # comparing runs (04_compare_runs) and agreement with people (05_metric_agreement)
    NotebookParameter("runs", path=True),
    NotebookParameter("top"),
    NotebookParameter("labels", path=True),
    NotebookParameter("label"),
    NotebookParameter("systems"),
    NotebookParameter("samples"),
    NotebookParameter("seed"),
)

BY_NAME = {p.name: p for p in PARAMETERS}
# parameter -> the settings field it overrides
SETTING_OF = {p.name: p.setting for p in PARAMETERS if p.setting is not None}
PATH_PARAMETERS = tuple(p.name for p in PARAMETERS if p.path)
CHUNKING_PARAMETERS = tuple(p.name for p in PARAMETERS if p.chunking)
CONTROLLED_PARAMETERS = tuple(p.name for p in PARAMETERS if p.controlled)
