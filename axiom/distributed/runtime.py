"""The one door to Ray: `import_ray()` and `ray_session(address)`.

`import_ray()` imports Ray on first use; without the optional extra it raises the UsageError that says how to
install it, so a command that does not ask for Ray never imports it (and works without it).

`ray_session(address)` connects this process as a driver to an existing cluster and disconnects afterwards.
The address is the head's `HOST:PORT` (the driver then runs on a machine that is a node of the cluster, as Ray
requires), `auto` (the cluster started on this machine with `ray start`), or `ray://HOST:PORT` (Ray Client,
for a driver outside the cluster). Ray's own settings stay Ray's: its token authentication is configured by
the environment of every node and of the driver (`RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` or
`RAY_AUTH_TOKEN_PATH`; README "Beyond one machine: Ray" says why to turn it on).
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from types import ModuleType

from axiom.errors import ClusterError, UsageError

log = logging.getLogger(__name__)

INSTALL_HINT = ("install the optional extra: pip install 'axiom-workbench[ray]' (from a checkout, "
                "`make install` installs it)")
NAMESPACE = "axiom"  # Ray namespace of Axiom's jobs (named actors, if any, live there)


def import_ray() -> ModuleType:
    """The `ray` module, or a UsageError saying how to install the extra."""
    try:
        import ray
    except ImportError as exc:  # not installed (or blocked: sys.modules["ray"] = None)
        raise UsageError("Ray is not installed: the ray executor (--ray ADDRESS, "
                         "ingest.executor: ray) needs it",
                         hint=INSTALL_HINT) from exc
    return ray


def require_address(address: str | None, *, setting: str, flag: str) -> str:
    """The cluster address to connect to, or a UsageError naming the setting and the flag that give one."""
    if address and address.strip():
        return address.strip()
    raise UsageError(f"no Ray cluster address: {setting} is not set",
                     hint=f"pass {flag} HEAD_HOST:PORT (or set AXIOM_RAY_ADDRESS); start a cluster with "
                          "`ray start --head` (README \"Beyond one machine: Ray\")")


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when nothing listens at a `HOST:PORT` address (Ray itself retries for
    a minute or more before it gives up); `auto` and `ray://` addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address}: {exc.strerror or exc}",
                           hint="start one with `ray start --head --port PORT` (README \"Beyond one "
                                "machine: Ray\"), or fix --ray / AXIOM_RAY_ADDRESS") from exc


@contextmanager
def ray_session(address: str) -> Iterator[ModuleType]:
    """Connect to the Ray cluster at `address` for the duration of the block; yields the `ray` module.

    A process already connected (a driver inside a driver, a Ray task) keeps its connection and is not
    disconnected afterwards."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    check_reachable(address)
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError, ray's AuthenticationError...
        raise ClusterError(
            f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: {exc}",
            hint="check --ray / AXIOM_RAY_ADDRESS (the head's HOST:PORT, run from a node of the cluster, or "
                 "ray://HOST:10001); a cluster started with RAY_AUTH_MODE=token needs the same "
                 "RAY_AUTH_MODE and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) here") from exc
    log.info("connected to the Ray cluster at %s (%s CPUs)", address, ray.cluster_resources().get("CPU", 0))
    # Ray's driver prints the cluster's error messages ("(raylet) A worker died ...") on sys.stdout from a
    # thread of its own: while connected they go to stderr, so stdout keeps exactly what the command prints
    # (--json: one object)
    try:
        with redirect_stdout(sys.stderr):
            yield ray
    finally:
        with redirect_stdout(sys.stderr):
            ray.shutdown()
