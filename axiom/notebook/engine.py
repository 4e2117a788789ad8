"""The papermill side: the only module of axiom that imports papermill.

Importing it imports papermill (without the slow `rfc3987_syntax` grammar, see `_papermill_import`) and
registers, once (a module is imported once), the papermill engine that runs a notebook in an already started
`WarmKernel` after resetting its user namespace. `execute_notebook` runs one notebook, in a warm kernel or
in a new one papermill starts, and turns a failure into a NotebookError naming the notebook, the cell and
the error; `notebook_parameters` reads what a notebook declares in its `parameters` cell.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.errors import NotebookError
from axiom.notebook.kernel import KERNEL_NAME

if TYPE_CHECKING:
    from axiom.notebook.kernel import WarmKernel


@contextmanager
def _papermill_import() -> Iterator[None]:
    """Import papermill without building the grammar of `rfc3987_syntax` on the way.

    papermill -> nbformat -> jsonschema imports rfc3987_syntax when it is installed (jupyter_server brings
    it), and that module compiles a lark grammar at import: 1.5-5 s here, more than the rest of papermill. It
    only serves jsonschema's "iri" format checks, which nbformat never asks for; hiding it while jsonschema is
    first imported makes jsonschema skip that checker in this process.
    """
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        yield
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import fails: the checker is skipped
    try:
        yield
    finally:
        if sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]


with _papermill_import():
    import papermill
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.exceptions import PapermillExecutionError
    from papermill.utils import merge_kwargs, remove_args

ENGINE_NAME = "axiom-warm-kernel"
# run in the warm kernel before each notebook: a clean namespace and execution counts from 1, as in a new
# kernel, and no figure left open by the previous notebook; imported modules stay
RESET = ("get_ipython().reset(new_session=True, aggressive=False)\n"
         "import matplotlib.pyplot as _plt; _plt.close('all'); del _plt")


class WarmClient(PapermillNotebookClient):
    def papermill_execute_cells(self) -> None:
        self.wait_for_reply(self.kc.execute(RESET, silent=True, store_history=False))
        super().papermill_execute_cells()


class WarmKernelEngine(NBClientEngine):
    """A papermill engine that runs a notebook in an already started kernel (passed as `km`)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any,  # boundary: papermill's NotebookExecutionManager
                                 kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None,  # boundary: papermill's stream (or None)
                                 stderr_file: Any = None,  # boundary: papermill's stream (or None)
                                 start_timeout: int = 60, execution_timeout: int | None = None,
                                 **kwargs: Any) -> Any:  # boundary: papermill's keywords; nbformat notebook
        kwargs = remove_args(["input_path"], **kwargs)
        safe = remove_args(["timeout", "startup_timeout"], **kwargs)
        final = merge_kwargs(safe, timeout=execution_timeout or kwargs.get("timeout"),
                             startup_timeout=start_timeout, kernel_name=kernel_name, log_output=log_output,
                             stdout_file=stdout_file, stderr_file=stderr_file)
        client = WarmClient(nb_man, **final)
        try:
            return client.execute()
        finally:
            if client.kc is not None:  # the kernel stays (we own it); its client for this run goes
                client.kc.stop_channels()


papermill_engines.register(ENGINE_NAME, WarmKernelEngine)


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its `parameters` cell), with their defaults as written."""
    return {k: v.get("default") for k, v in papermill.inspect_notebook(str(path)).items()}


def _source_cell_number(executed: Path, cell_index: int) -> int:
    """1-based number of the failing cell in the committed notebook (papermill inserts an injected-parameters
    cell, and on error a message cell at the top, into the executed copy)."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # unreadable partial notebook: the executed-copy index is the best we have
        return cell_index + 1
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in nb.cells]
    if tags and "papermill-error-cell-tag" in tags[0] and nb.cells[0].cell_type == "markdown":
        tags = tags[1:]
    injected = sum(1 for t in tags[:cell_index] if "injected-parameters" in t)
    return cell_index + 1 - injected


def execute_notebook(source: Path, executed: Path, parameters: dict[str, Any], *, kernel: WarmKernel | None,
                     cwd: Path, progress: bool, log_output: bool, cell_timeout: int | None,
                     on_fail: Callable[[], Path]) -> None:
    """Execute `source` into `executed` (saved as the cells run), in `kernel` or, when None, in a new kernel.

    On failure `on_fail()` keeps what ran and returns that folder, which the NotebookError names."""
    extra: dict[str, Any] = {}
    if kernel is not None:
        extra = {"engine_name": ENGINE_NAME, "km": kernel.km}
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name=KERNEL_NAME,
                                   progress_bar=progress, log_output=log_output, cwd=str(cwd),
                                   request_save_on_cell_execute=True, execution_timeout=cell_timeout, **extra)
    except PapermillExecutionError as exc:
        cell = _source_cell_number(executed, exc.cell_index)
        kept = on_fail()
        first = next((line for line in str(exc.source).splitlines() if line.strip()), "")
        raise NotebookError(
            f"{source.name}: cell {cell} (In [{exc.exec_count}]) raised {exc.ename}: {exc.evalue}\n"
            f"  cell starts: {first.strip()[:120]}\n"
            f"  the partially executed notebook is kept at {kept / executed.name}",
            notebook=source.name, kept=kept / executed.name, cell=cell, ename=exc.ename, evalue=exc.evalue,
        ) from None
    except Exception as exc:  # kernel died, timed out, could not start: not a cell's own error
        kept = on_fail()
        raise NotebookError(
            f"{source.name}: execution failed: {type(exc).__name__}: {exc}\n"
            f"  what ran is kept in {kept}", notebook=source.name, kept=kept,
        ) from exc
