"""The one family of errors Axiom raises.

Every error says what went wrong and what to do about it. Faces (CLI, service, notebooks) map the
classes below to exit codes and HTTP statuses; nothing below the faces swallows an error silently.

    AxiomError                      exit 1
    ├── ConfigError                 exit 2   a setting has a bad value (names the key and what is allowed)
    ├── UsageError                  exit 2   a command was called wrongly
    ├── DocumentError                        a file could not be read (ingest skips it and reports why)
    ├── StoreError                           ChromaDB failed
    │   ├── StoreUnavailableError            ChromaDB cannot be reached
    │   └── EmbeddingMismatchError  exit 2   a collection holds vectors of another embedding model
    ├── EmbeddingError                       the embedding model could not be loaded or called
    ├── LLMError                             the LLM endpoint failed after its retries
    ├── ClusterError                         the Ray cluster cannot be reached, or its workers failed
    ├── DatasetError                exit 2   an evaluation dataset is malformed (lists every bad line)
    ├── EvaluationError                      an evaluation run failed
    ├── NotebookError                        a notebook cell raised or its kernel died (names notebook and
    cell)
    └── RegressionError             exit 3   a metric regressed below its baseline
"""

from __future__ import annotations

from pathlib import Path


class AxiomError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")


class ConfigError(AxiomError):
    exit_code = 2


class UsageError(AxiomError):
    exit_code = 2


class DocumentError(AxiomError):
    """A single file could not be turned into text; `path` names it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class StoreError(AxiomError):
    pass


class StoreUnavailableError(StoreError):
    pass


class EmbeddingMismatchError(StoreError):
    exit_code = 2


class EmbeddingError(AxiomError):
    pass


class LLMError(AxiomError):
    pass


class ClusterError(AxiomError):
    """A distributed run (axiom/distributed/) cannot reach its Ray cluster, or the cluster's workers failed
    beyond Ray's retries."""


class DatasetError(AxiomError):
    """A dataset failed validation; `problems` lists them (with line numbers), `total` how many there are
    (more than listed when a long list was summarised)."""

    exit_code = 2

    def __init__(self, path: str, problems: list[str], *, total: int | None = None) -> None:
        self.path = path
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {self.total} problem(s):\n{listing}")


class EvaluationError(AxiomError):
    pass


class RegressionError(AxiomError):
    exit_code = 3


class NotebookError(AxiomError):
    """A notebook cell raised, or its kernel died. The message names the notebook, the cell and the error."""

    def __init__(self, message: str, *, notebook: str, kept: Path | None, cell: int | None = None,
                 ename: str | None = None, evalue: str | None = None) -> None:
        self.notebook = notebook
        self.kept = kept
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        super().__init__(message)
