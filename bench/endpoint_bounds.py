"""`python -m bench.endpoint_bounds [--out DIR]`: the real `axiom eval --endpoint` (a subprocess, the whole \
CLI:
model, metrics, run folder) against a loopback stand-in that replies in one hostile way per run, beside an
ordinary run; peak RSS of each subprocess (VmHWM of its own address space, see
tests/reliability/hostile_endpoint.run_measured) and its seconds.

Each hostile run makes the first golden question hostile (the others are answered) and must exit 0 with a run
folder, that question unmeasured with its reason, and a peak RSS at most 1.5x the ordinary run's. Prints a
Markdown table and writes bench/results/endpoint_bounds.json. Takes ~2 minutes a run on a loaded 2-core
machine (the embedding model is loaded for the offline metrics in every run);
tests/reliability/test_hostile_endpoint.py checks the same bound on the endpoint client alone (~30 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from axiom.evaluation.datasets import load_golden
from axiom.evaluation.run_folder import load_run
from bench.common import REPO, write_result
from tests.evaluation.helpers import TINY_GOLDEN, write_config
from tests.reliability.conftest import clean_environ
from tests.reliability.hostile_endpoint import HostileServer, golden_replies, mapping_file, run_measured

HOSTILE = ("endless", "declared", "deep", "number", "drip")
BOUND = 1.5


def one_run(kind: str, work: Path) -> dict[str, Any]:
    items = load_golden(TINY_GOLDEN)
    behaviour = {} if kind == "ordinary" else {items[0].question: kind}
    folder = work / kind
    folder.mkdir(parents=True)
    with HostileServer(golden_replies(items), behaviour) as server:
        run = run_measured(["-m", "axiom.cli", "--config", str(write_config(folder)), "eval", "--dataset",
                            str(TINY_GOLDEN),
                            "--endpoint-config", str(mapping_file(folder, server.url)), "--no-judge",
                            "--name", kind, "--json"], clean_environ(), folder)
    out: dict[str, Any] = {"kind": kind, "exit": run.code, "peak_rss_mib": round(run.peak_rss_mib, 1),
                           "seconds": round(run.seconds, 1), "body_bytes_sent": sum(server.sent.values())}
    if run.code == 0:
        record = load_run(json.loads(run.stdout)["run"])
        rows = record.results.set_index("id")
        out["run_folder"] = record.path.name
        out["first_item"] = rows.loc[items[0].id,
                                     "failure"] if not rows.loc[items[0].id, "answered"] else "answered"
        out["answered"] = int(rows["answered"].sum())
    else:
        out["stderr_tail"] = run.stderr[-2000:]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--kinds", nargs="*", default=list(HOSTILE), choices=HOSTILE)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="endpoint-bounds-") as tmp:
        runs = [one_run(kind, Path(tmp)) for kind in ("ordinary", *args.kinds)]
    ordinary = runs[0]["peak_rss_mib"]
    ok = True
    print("| reply | exit | answered | first question | peak RSS MiB | x ordinary | "
          "seconds | body bytes sent |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        run["rss_over_ordinary"] = round(run["peak_rss_mib"] / ordinary, 3)
        good = run["exit"] == 0 and run["rss_over_ordinary"] <= BOUND and (
            run["kind"] == "ordinary" or run.get("first_item") != "answered")
        ok = ok and good
        print(f"| {run['kind']} | {run['exit']} | {run.get('answered', '-')} | {run.get('first_item', '-')} "
              f"| {run['peak_rss_mib']} | {run['rss_over_ordinary']} | {run['seconds']} | "
              f"{run['body_bytes_sent']:,} |")
    path = write_result({"bound": BOUND, "runs": runs, "passed": ok}, args.out, "endpoint_bounds")
    print(f"\n{'passed' if ok else 'FAILED'}; written to {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
