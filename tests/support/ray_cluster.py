"""Start a real local Ray cluster for tests: a head node (`ray start --head --block`) and, optionally, more
nodes joining it (`ray start --address HEAD --block`), each a child process with its own CPU count.

Network: Ray 2.60 on Linux does not keep a cluster on loopback. `--node-ip-address 127.0.0.1` is replaced by
the address of the interface that routes outwards (`ray._private.services.resolve_ip_for_localhost`; also for
the address a driver connects to: "Connecting to existing Ray cluster at address: <that IP>:PORT"), and its
servers listen on every interface. So this cluster is started with Ray's token authentication (`auth=True`,
the default):
a random token per cluster in `RAY_AUTH_MODE=token` + `RAY_AUTH_TOKEN`, given to every node, and to this
process's environment while the cluster runs (restored by `stop()`), so a driver started from here (in process
or as a child) authenticates; anything else that reaches the ports is refused. `env` is that environment, for
drivers started with an explicit one.

Start-up: each node's `ray start --block` prints "Ray runtime started." once its processes run and (for a
joining node) it has registered with the head; the start waits for that line in the node's log (no `ray
status` polling, which costs a Python start with `import ray` per poll), then checks once that every node is
alive. A node whose `ray start` gave up waiting for its own raylet (a fixed 30 s in Ray, exceeded on a loaded
machine) is started again. Each node gets free ports for the services Ray otherwise puts on fixed ones, so two
clusters can run on one machine.

Stopping: SIGTERM to a `--block` process drains it (up to ~30 s) and stops that node's Ray processes; the head
is stopped last. Never `ray stop`: it ends every Ray process on the machine, not only this cluster's."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support.chroma_server import free_port
from tests.support.waiting import WaitError, poll_until

# a loaded machine (two cores, other tests) starts Ray's Python agents slowly: the raylet waits up to 2 min
# for them
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
           "RAY_agent_register_timeout_ms": "120000",
           "RAY_worker_register_timeout_seconds": "120"}
STARTED = "Ray runtime started."
START_ATTEMPTS = 3
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # per node: enough for tests, far below Ray's default (30% of the RAM)


def ray_executable() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else (shutil.which("ray") or "ray")


def process_tree() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process visible in /proc."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry.name)] = (ppid, cmdline)
    return out


class RayCluster:
    """`with RayCluster(head_cpus=1, worker_cpus=[1]) as cluster: ... cluster.address ...`"""

    def __init__(self, head_cpus: int = 1, worker_cpus: list[int] | None = None, log_dir: Path | None = None,
                 *, auth: bool = True) -> None:
        self.head_cpus = head_cpus
        self.worker_cpus = list(worker_cpus or [])
        self.port = free_port()
        self.host = "127.0.0.1"
        # Ray's unix sockets live under the temp dir: keep its path short (sockets are limited to 107 bytes)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="axr", dir="/tmp"))
        self.log_dir = log_dir or self.temp_dir
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.token = secrets.token_hex(32) if auth else None
        self._saved_env: dict[str, str | None] = {}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment a process talking to this cluster needs (Ray's settings and, with auth, the
        token)."""
        auth = {"RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": self.token} if self.token else {"RAY_AUTH_MODE": "disabled"}
        return {**RAY_ENV, **auth}

    def _start_node(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the process)
        # free ports for what Ray otherwise puts on fixed ones (10001, 8265, 52365, ...): a second cluster on
        # the machine (another test module, a benchmark) would time out starting on them
        ports = [f"--{option}={free_port()}" for option in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
            "metrics-export-port")]
        if "--head" in args:
            ports += [f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}"]
        proc = subprocess.Popen([ray_executable(), "start", "--block", "--disable-usage-stats",
                                 "--node-ip-address", self.host, "--object-store-memory",
                                 str(OBJECT_STORE_BYTES),
                                 *ports, *args],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                start_new_session=True)
        self.nodes.append(proc)
        return proc

    def _started(self, name: str, proc: subprocess.Popen[bytes]) -> bool:
        if proc.poll() is not None:
            raise WaitError(f"Ray node {name} exited with {proc.returncode}: {self._tail(name)}")
        return STARTED in self._log(name)

    def alive_nodes(self) -> int:
        """How many nodes the cluster lists as alive (`ray status`: a Python process, about 3 s)."""
        out = subprocess.run([ray_executable(), "status", "--address", self.address], capture_output=True,
                             text=True, env={**os.environ, **self.env}, timeout=60)
        if out.returncode != 0:
            return 0
        active = out.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return sum(1 for line in active.splitlines() if "node_" in line)

    def _start_until_up(self, args: Callable[[], list[str]], name: str, timeout: float) -> None:
        """Start a node and wait for its "Ray runtime started."; start it again (up to START_ATTEMPTS times)
        when `ray start` gave up on its own raylet: it waits a fixed 30 s for the raylet to register, which a
        loaded two-core machine (Ray's Python agents starting slowly) can exceed."""
        for attempt in range(1, START_ATTEMPTS + 1):
            proc = self._start_node(args(), name)
            try:
                poll_until(lambda p=proc: self._started(name, p), timeout=timeout, interval=0.2,
                           message=lambda: f"Ray node {name} of {self.address} ({self._tail(name)})")
                return
            except WaitError:
                gave_up = proc.poll() is not None and "timed out during startup" in self._log(name)
                if not gave_up or attempt == START_ATTEMPTS:
                    raise
                self.nodes.remove(proc)

    def start(self, timeout: float = 120.0) -> RayCluster:
        self._saved_env = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # drivers started from this process authenticate

        def head_args() -> list[str]:
            self.port = free_port()  # a new one for each attempt
            return ["--head", "--port", str(self.port), "--num-cpus", str(self.head_cpus),
                    "--include-dashboard", "false", "--temp-dir", str(self.temp_dir)]

        try:
            self._start_until_up(head_args, "head", timeout)
            for i, cpus in enumerate(self.worker_cpus):
                self._start_until_up(lambda c=cpus: ["--address", self.address, "--num-cpus", str(c)],
                                     f"worker{i}", timeout)
            want = 1 + len(self.worker_cpus)
            poll_until(lambda: self.alive_nodes() >= want, timeout=timeout, interval=1.0,
                       message=lambda: f"{want} alive Ray nodes on {self.address}")
        except WaitError:
            self.stop()
            raise
        return self

    def _log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _tail(self, name: str) -> str:
        return self._log(name)[-1500:] or "no log"

    def processes(self, needle: str) -> list[int]:
        """Pids of this cluster's processes (descendants of its nodes) whose command line contains `needle`
        (Ray titles a worker process `ray::<ActorClass>.<method>` while it runs that method)."""
        tree = process_tree()
        roots = {p.pid for p in self.nodes}

        def ours(pid: int) -> bool:
            seen = set()
            while pid in tree and pid not in seen:
                if pid in roots:
                    return True
                seen.add(pid)
                pid = tree[pid][0]
            return False

        return sorted(pid for pid, (_, cmd) in tree.items() if needle in cmd and pid not in roots
                      and ours(pid))

    def stop(self) -> None:
        for proc in reversed(self.nodes):  # worker nodes first, the head last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        self.nodes.clear()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
