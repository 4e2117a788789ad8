"""Every notebook parameter, declared once: what it overrides in the settings, whether it names a file or
folder, whether it changes the chunks or decides what a collection holds, whether the runner sets it itself.

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
    one collection). `rechunks`: it changes the chunks themselves (what is cut, or how), so a sweep that
    varies it gives each combination a collection of its own. `controlled`: the runner or the sweep sets it
    for every run (a sweep cannot vary it)."""

    name: str
    setting: str | None = None
    path: bool = False
    chunking: bool = False
    rechunks: bool = False
    controlled: bool = False


# the parameter through which the runner learns what a notebook produced (NotebookSession.report writes it)
RESULT_PARAMETER = "result_json"
# the parameters through which the runner gives every notebook the project folder (relative paths are
# relative to it) and the settings file of the command (`session.notebook_settings` reads them)
ROOT_PARAMETER = "project_root"
CONFIG_PARAMETER = "config"

PARAMETERS: tuple[NotebookParameter, ...] = (
    # where the notebook works (every notebook; set by the runner, "" when run by hand)
    NotebookParameter(ROOT_PARAMETER, path=True, controlled=True),
    NotebookParameter(CONFIG_PARAMETER, path=True, controlled=True),
    # what is ingested and where (01_ingest, 02_query, 03_evaluate)
    NotebookParameter("corpus", path=True, chunking=True, rechunks=True),
    NotebookParameter("chunk_size", setting="chunking.chunk_size", chunking=True, rechunks=True),
    NotebookParameter("chunk_overlap", setting="chunking.chunk_overlap", chunking=True, rechunks=True),
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
RECHUNKING_PARAMETERS = tuple(p.name for p in PARAMETERS if p.rechunks)
CONTROLLED_PARAMETERS = tuple(p.name for p in PARAMETERS if p.controlled)
