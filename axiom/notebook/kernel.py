"""The warm kernel: one `python3` kernel (jupyter_client) kept alive across notebook executions.

It is started once per run (or per sweep worker) and imports what every notebook imports right away, in the
background; the papermill engine (`axiom.notebook.engine`) resets its user namespace before each notebook, so
a notebook never sees another's variables while imported modules and the loaded embedding model stay.

A kernel inherits the environment of the process that starts it (plus `env`: a Ray worker's, the driver's
settings variables) and starts in `cwd`; what a notebook needs to know of the project (its folder and
settings file) reaches it as the `project_root` and `config` parameters, not through either.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from io import BufferedWriter

    from jupyter_client.manager import AsyncKernelManager

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"
# imported by a new warm kernel before its first notebook (each name guarded: a missing one is the notebook's
# error)
PRELOAD = "\n".join(f"try:\n    import {m}\nexcept Exception:\n    pass" for m in (
    "sentence_transformers", "matplotlib.pyplot", "pandas", "axiom.notebook.session", "axiom.reporting",
    "axiom.evaluation"))


class WarmKernel:
    """One `python3` kernel kept alive across notebook executions (the namespace is reset before each).

    `cwd`: where the kernel process starts (the runner's choice: the project folder; nothing in a session
    depends on it). `env`: variables set in the kernel on top of the inherited environment."""

    def __init__(self, cwd: Path, *, kernel_name: str = KERNEL_NAME, log_path: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.cwd = Path(cwd)
        self.kernel_name = kernel_name
        self.log_path = log_path
        self.env = dict(env or {})
        self.km: AsyncKernelManager | None = None
        self._log_file: BufferedWriter | None = None
        self._preloading: threading.Thread | None = None
        self.start_seconds = 0.0

    def start(self) -> WarmKernel:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        t0 = time.perf_counter()
        km = self.km = AsyncKernelManager(kernel_name=self.kernel_name)
        kwargs: dict[str, Any] = {"cwd": str(self.cwd), "env": {**os.environ, **self.env}}
        if self.log_path is not None:  # the kernel's own stderr (its TCP warning, crashes) goes to a file
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (open for the kernel's lifetime)
            kwargs.update(stdout=self._log_file, stderr=self._log_file)
        run_sync(km.start_kernel)(**kwargs)
        self.start_seconds = time.perf_counter() - t0
        self._preload(km)
        return self

    def _preload(self, km: AsyncKernelManager) -> None:
        """Import what every notebook imports (torch, sentence-transformers, matplotlib: ~8 s) in the new
        kernel while the runner goes on importing papermill and reading the notebooks. A background thread
        sends the request and waits for its reply; the first notebook's cells queue behind it in the
        kernel."""
        from jupyter_client.blocking import BlockingKernelClient

        kc = BlockingKernelClient()
        kc.load_connection_info(km.get_connection_info())

        def send() -> None:
            kc.start_channels()
            try:
                kc.execute(PRELOAD, silent=True, store_history=False, reply=True, timeout=600)
            except Exception as exc:  # a slow or dead kernel: the notebooks will say what is wrong
                log.debug("kernel preload: %s", exc)
            finally:
                kc.stop_channels()

        self._preloading = threading.Thread(target=send, name="kernel-preload", daemon=True)
        self._preloading.start()

    @property
    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        return self.km is not None and bool(run_sync(self.km.is_alive)())

    def ensure_alive(self) -> WarmKernel:
        """Start a new kernel when the last notebook killed this one (so one crash does not fail the rest)."""
        if not self.alive:
            log.warning("the kernel died; starting a new one")
            self.shutdown()
            self.start()
        return self

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        if self.km is not None:
            try:
                run_sync(self.km.shutdown_kernel)(now=False)
            except Exception as exc:  # the kernel may already be gone; nothing else to do
                log.debug("kernel shutdown: %s", exc)
            self.km = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> WarmKernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

