"""The notebook commands of `axiom` (registered by axiom.cli):

    axiom notebooks run [NOTEBOOK ...] [--params FILE.yaml] [-p KEY VALUE]... [--out DIR] [--name NAME]
                        [--no-html] [--fresh-kernels] [--cell-timeout S] [--baseline FILE
                        [--fail-on-regression]]
                        [--json]
    axiom sweep --grid KEY=V1,V2 [KEY=V1,V2 ...] [--grid ...] [--params FILE.yaml] [-p KEY VALUE]...
                [--workers N | --ray ADDRESS] [--metric NAME] [--out DIR] [--name NAME] [--html] [--json]

`notebooks run` executes 01_ingest then 03_evaluate by default (or the notebooks named, e.g. `01 02 03 04`)
and prints the run folder last. Parameter values are YAML scalars (`-p top_k 3`, `-p chunk_size null`);
`-p` wins over `--params`. Relative paths given here (corpus, dataset, chroma_path, out_dir, runs, --out) are
relative to the working directory (in a parameters file: to the file); the notebooks' own defaults are
relative to the project root. `sweep --ray ADDRESS` runs each combination as a task on a Ray cluster
(`axiom.distributed.sweep`; needs the ray extra). Exit codes: 0 success, 2 bad usage, 3 the baseline gate
failed, 1 a notebook cell failed (the message names the notebook, the cell and the error, and where the
partially executed notebook is).
"""

from __future__ import annotations

import argparse
from typing import Any

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings


def _params(args: argparse.Namespace) -> dict[str, Any]:
    """--params then -p; relative paths (corpus, dataset, chroma_path, out_dir, runs) against the working
    folder."""
    from pathlib import Path

    from axiom.notebook.parameters import absolute_paths, load_params_file, parse_value

    params: dict[str, Any] = {}
    if args.params:  # paths in a parameters file are relative to the file
        params.update(absolute_paths(load_params_file(args.params), Path(args.params).resolve().parent))
    cli = {key: parse_value(value) for key, value in args.param or []}
    params.update(absolute_paths(cli))
    if args.out:
        args.out = str(Path(args.out).resolve())
    return params


def cmd_notebooks_run(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from axiom.errors import UsageError
    from axiom.evaluation.run_folder import load_run
    from axiom.notebook.runner import run_notebooks

    if args.fail_on_regression and not args.baseline:
        raise UsageError("--fail-on-regression needs --baseline FILE")
    params = _params(args)
    if args.baseline:
        params["baseline"] = str(Path(args.baseline).resolve())
    result = run_notebooks(settings, args.notebooks or None, params, out_dir=args.out, name=args.name,
                           html=not args.no_html, fresh_kernels=args.fresh_kernels,
                           cell_timeout=args.cell_timeout,
                           progress=args.progress, config=args.config)
    lines = [f"{n.notebook}: {n.seconds:.1f}s -> {n.executed.name}" for n in result.notebooks]
    if result.html is not None:
        lines.append(f"HTML report: {result.html.name} ({result.html_seconds:.1f}s)")
    if result.run_path is not None:
        lines.append(load_run(result.run_path).summary_table().rsplit("\n", 1)[0])
    lines.append(f"notebooks ran in {result.seconds:.1f}s")
    lines.append(f"run folder: {result.folder}")
    emit(args, result.to_dict(), "\n".join(lines))
    if args.fail_on_regression:
        gate = load_run(result.run_path).gate if result.run_path is not None else None
        if gate is None:
            raise UsageError("--fail-on-regression: no evaluation run was made (run 03_evaluate)")
        gate.raise_if_failed(result.run_path)
    return 0


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.errors import UsageError
    from axiom.sweep import parse_grid, run_sweep

    if args.ray:  # nothing of Ray is imported without --ray
        from axiom.distributed.runtime import import_ray
        from axiom.distributed.sweep import run_sweep_ray

        import_ray()  # says how to install the extra, before anything is created
        if args.workers != 1:
            raise UsageError("--workers is for local sweeps: with --ray the "
                             "cluster's CPUs set the parallelism")
    grid = parse_grid([item for group in args.grid for item in group])
    if args.ray:
        result = run_sweep_ray(settings, grid, _params(args), address=args.ray, out_dir=args.out,
                               name=args.name,
                               metric=args.metric, html=args.html, config=args.config)
    else:
        result = run_sweep(settings, grid, _params(args), out_dir=args.out, name=args.name,
                           workers=args.workers,
                           metric=args.metric, html=args.html, config=args.config)
    emit(args, result.to_dict(), result.text())
    return 0


def _add_param_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", metavar="FILE.yaml", help="notebook parameters from a YAML mapping")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="one notebook parameter (value parsed as YAML: 3, null, dense, [a, b]); repeatable")
    p.add_argument("--out", help="where run folders go (default: evaluation.runs_dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("notebooks", help="run the notebooks headlessly (papermill)")
    sub = p.add_subparsers(dest="notebooks_command", required=True, parser_class=type(p))
    r = sub.add_parser("run", help="execute notebooks in order into the run folder, with an HTML report")
    r.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                   help="notebooks to run in order, e.g. 01 03 or 01_ingest 02_query "
                        "(default: 01_ingest 03_evaluate)")
    _add_param_options(r)
    r.add_argument("--name",
                   help="run name, the run folder's suffix (default: the `name` parameter, else 'eval')")
    r.add_argument("--no-html", action="store_true", help="skip the HTML report of the evaluation notebook")
    r.add_argument("--fresh-kernels", action="store_true",
                   help="a new kernel per notebook (default: one warm kernel, "
                        "namespace reset between notebooks)")
    r.add_argument("--cell-timeout", type=int, default=None, metavar="SECONDS",
                   help="fail a cell after this long")
    r.add_argument("--progress", action="store_true", help="papermill's progress bar over cells")
    r.add_argument("--baseline", metavar="FILE|RUN",
                   help="baseline JSON (or a run folder) the evaluation is gated on")
    r.add_argument("--fail-on-regression", action="store_true",
                   help="exit 3 when the evaluation regressed against --baseline")
    r.set_defaults(handler=cmd_notebooks_run)

    s = subparsers.add_parser("sweep",
                              help="run the evaluation notebook over a grid of parameters and rank them")
    s.add_argument("--grid", nargs="+", action="append", required=True, metavar="KEY=V1,V2",
                   help="a parameter and its values, e.g. retriever=dense,hybrid top_k=3,5,10; repeatable")
    _add_param_options(s)
    s.add_argument("--name", default="sweep", help="sweep name (folder suffix)")
    s.add_argument("--workers", type=int, default=1,
                   help="kernels running combinations in parallel (default 1)")
    s.add_argument("--metric", default=None,
                   help="metric that ranks the combinations (default: semantic_similarity, else ndcg@10)")
    s.add_argument("--html", action="store_true", help="also write an HTML report per run")
    s.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run each combination as a task on this Ray cluster (HOST:PORT of the head, auto, or "
                        "ray://HOST:10001); needs the ray extra")
    s.set_defaults(handler=cmd_sweep)
