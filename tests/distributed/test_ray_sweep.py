"""`axiom sweep --ray`: on a real local Ray cluster (a head node with 1 CPU and a second node joining it with
1 CPU, `ray start` child processes on loopback), a two-point sweep of the tiny corpus gives the same ranked
summary as the local sweep of the same grid, with its run folders in the sweep folder the driver named (the
nodes share this filesystem, so the workers write there directly); with copy-back forced, the run folder comes
back from the worker as an archive and lands in the same place; a task whose worker process is killed is run
again by Ray and the sweep completes. Without Ray, `--ray` says how to install it and the local sweep imports
nothing of Ray. The Ray drivers are the `axiom` CLI in a subprocess, as a user runs it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from axiom.cli import main
from tests.notebooks.conftest import TINY_CORPUS, TINY_GOLDEN, write_test_config
from tests.support.ray_cluster import RayCluster
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

GRID = "top_k=1,3"
TIMING = ("seconds", "run", "texts embedded", "embedding cache hits")  # differ from run to run, by design
INSTALL = "pip install 'axiom-workbench[ray]'"
REPO = Path(__file__).resolve().parents[2]
DRIVER_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "PYTHONPATH": str(REPO)}
# what a worker without the shared folder does
COPY_BACK = ("import functools, axiom.distributed.sweep as s\n"
             "s.run_sweep_ray = functools.partial(s.run_sweep_ray, copy_back=True)")


def sweep_args(root: Path, grid: str = GRID, name: str = "k") -> list[str]:
    """`axiom sweep --grid ...` on the tiny corpus with settings (store, caches) of its own under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    return ["--config", str(write_test_config(root)), "sweep", "--grid", grid, "-p", "corpus",
            str(TINY_CORPUS),
            "-p", "dataset", str(TINY_GOLDEN), "--out", str(root / "sweeps"), "--name", name, "--json"]


def local_sweep(root: Path) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(sweep_args(root))
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def driver(args: list[str], prelude: str = "") -> list[str]:
    """The `axiom` CLI in a new process, as a user runs it (the Ray driver); `prelude` runs first."""
    return [sys.executable, "-c",
            f"import sys\n{prelude}\nfrom axiom.cli import main\nsys.exit(main(sys.argv[1:]))",
            *args]


def ray_sweep(args: list[str], prelude: str = "") -> dict[str, Any]:
    done = subprocess.run(driver(args, prelude), capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, **DRIVER_ENV})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def sweeps(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same grid swept locally and on the cluster, each with a fresh store, so both really ingest."""
    base = tmp_path_factory.mktemp("ray-sweep")
    return {"local": local_sweep(base / "local"),
            "ray": ray_sweep([*sweep_args(base / "ray"), "--ray", ray_cluster.address]),
            "base": base}


def test_the_ray_sweep_ranks_exactly_as_the_local_sweep(sweeps: dict[str, Any]) -> None:
    local, ray = sweeps["local"], sweeps["ray"]
    assert local["executor"] == "local" and ray["executor"].startswith("ray 127.0.0.1:")
    a = pd.read_csv(Path(local["folder"]) / "summary.csv")
    b = pd.read_csv(Path(ray["folder"]) / "summary.csv")
    assert list(a.columns) == list(b.columns)
    compared = [c for c in a.columns if c not in TIMING]
    assert {"rank", "combination", "top_k", "semantic_similarity", "ndcg@10",
            "chunks embedded"} <= set(compared)
    pd.testing.assert_frame_equal(a[compared], b[compared], check_exact=True)
    assert list(b["rank"]) == [1, 2] and set(b["top_k"]) == {1, 3}
    assert list(b.sort_values("top_k")["chunks embedded"]) == [6, 0]  # the leader ingested on the cluster
    assert a["semantic_similarity"].notna().all()
    assert ray["metric"] == local["metric"] == "semantic_similarity"
    assert ray["workers"] == 2  # the two nodes' CPUs
    print("ray sweep:", ray["wall_seconds"], "s; local:", local["wall_seconds"], "s; nodes:",
          [r["node"] for r in ray["runs"]])


def test_the_ray_run_folders_are_where_the_driver_said(sweeps: dict[str, Any]) -> None:
    folder = Path(sweeps["ray"]["folder"])
    assert folder.parent == sweeps["base"] / "ray" / "sweeps"
    assert {"summary.csv", "summary.md", "summary.png", "sweep.json", "runs", "kernels"} <= {
        p.name for p in folder.iterdir()}
    assert not (folder / ".axiom-sweep-token").exists()
    for r in sweeps["ray"]["runs"]:
        run = Path(r["run"])
        assert run.parent == folder / "runs" and (run / "03_evaluate.ipynb").is_file()
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["top_k"] == r["combination"]["top_k"]
        # the driver's config
        assert manifest["store"] == f"embedded ChromaDB at {sweeps['base'] / 'ray' / 'chroma'}"
        assert r["node"] and "/" in r["node"] and r["error"] is None
    assert all(r["node"] is None for r in sweeps["local"]["runs"])


def test_copy_back_brings_the_run_folder_to_the_driver(sweeps: dict[str, Any],
                                                       ray_cluster: RayCluster) -> None:
    """A worker that does not see the sweep folder (forced here) sends the run folder back as an archive."""
    result = ray_sweep([*sweep_args(sweeps["base"] / "copied", "top_k=3", "copy"), "--ray",
                        ray_cluster.address],
                       prelude=COPY_BACK)
    folder = Path(result["folder"])
    (run,) = result["runs"]
    assert run["error"] is None and run["node"]
    path = Path(run["run"])
    assert path.parent == folder / "runs" and folder.parent == sweeps["base"] / "copied" / "sweeps"
    assert {"03_evaluate.ipynb", "manifest.json", "metrics.json",
            "results.parquet"} <= {p.name for p in path.iterdir()}
    assert (folder / "kernels" / "run-0.log").is_file()
    local = pd.read_csv(Path(sweeps["local"]["folder"]) / "summary.csv").set_index("top_k")
    copied = pd.read_csv(folder / "summary.csv").set_index("top_k")
    for metric in ("semantic_similarity", "ndcg@10", "chrf"):
        assert copied.loc[3, metric] == local.loc[3, metric], metric


def test_a_task_whose_worker_dies_is_retried(sweeps: dict[str, Any], ray_cluster: RayCluster) -> None:
    """The worker process running a combination is killed (SIGKILL) once its kernel has started: Ray runs the
    task again and the sweep completes with the metrics of the local sweep."""
    root = sweeps["base"] / "killed"
    proc = subprocess.Popen(driver([*sweep_args(root, "top_k=3", "killed"), "--ray", ray_cluster.address]),
                            cwd=REPO, env={**os.environ, **DRIVER_ENV}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        pids = poll_until(lambda: ray_cluster.processes("ray::sweep_task"), timeout=180, interval=0.2,
                          message="a running sweep task")
        poll_until(lambda: list((root / "sweeps").glob("*/kernels/run-0.log")), timeout=120, interval=0.2,
                   message="the task's kernel log")
        poll_until(lambda: ray_cluster.processes("ipykernel_launcher"), timeout=120, interval=0.2,
                   message="the task's kernel process")  # the worker has started its kernel: kill it now
        os.kill(pids[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err[-3000:]
    result = json.loads(out)
    (run,) = result["runs"]
    assert run["error"] is None and (Path(run["run"]) / "metrics.json").is_file()
    assert pids[0] not in ray_cluster.processes("ray::sweep_task")
    local = pd.read_csv(Path(sweeps["local"]["folder"]) / "summary.csv").set_index("top_k")
    retried = pd.read_csv(Path(result["folder"]) / "summary.csv").set_index("top_k")
    assert retried.loc[3, "semantic_similarity"] == local.loc[3, "semantic_similarity"]


def test_ray_flag_without_ray_says_how_to_install(tmp_path: Path) -> None:
    """With `ray` unimportable, `--ray` fails with the install command (exit 2) before creating anything, and
    the local sweep path imports nothing of Ray (an unknown parameter is reported as ever)."""
    config = write_test_config(tmp_path)
    common = ["--config", str(config), "sweep", "--grid", GRID, "-p", "corpus", str(TINY_CORPUS), "--out",
              str(tmp_path / "sweeps")]
    blocked = ("import sys; sys.modules['ray'] = None\nfrom axiom.cli import main\nimport "
               "axiom.distributed.sweep\n"
               "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", blocked, *common, "--ray", "127.0.0.1:6379"],
                          capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert INSTALL in done.stderr, done.stderr
    assert not (tmp_path / "sweeps").exists()
    local = ("import sys\nfrom axiom.cli import main\ncode = main(sys.argv[1:])\n"
             "assert 'ray' not in sys.modules, 'ray was imported'\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", local, *common, "-p", "no_such_parameter", "1"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown parameter 'no_such_parameter'" in done.stderr and "ray was imported" not in done.stderr
