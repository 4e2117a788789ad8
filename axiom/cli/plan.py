"""`axiom plan --metric M --effect D --from RUN [--alpha A] [--family K] [--power P] [--repeat N] [--json]`:
how many questions (and repetitions of each run) a paired comparison needs to detect a drop of D in metric M
with power P, using RUN's per-question values as the pilot (axiom.evaluation.sensitivity).

The test planned for is the one `axiom compare` and the gate use: the two-sided paired sign-flip test (the
sign test for 0/1 metrics; both by the mid-p) at alpha / K, Holm's first step over K metrics (default: every
metric of the run, as compare corrects). The shape of the differences comes from the run's repetitions when it
was repeated and they differ (two runs of no change, side by side); otherwise from the planning assumption of
two runs correlating at 0.5. The run-to-run variance of a repeated run adds a term that only more repetitions
reduce: the command says how many are needed at least."""

from __future__ import annotations

import argparse
import math
from typing import Any

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings
from axiom.errors import UsageError


def _probability(flag: str, value: float) -> float:
    if math.isnan(value) or not 0.0 < value < 1.0:
        raise UsageError(f"{flag} must be between 0 and 1 (exclusive), got {value}")
    return value


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from axiom.evaluation.repeats import repeat_matrix, run_variance
    from axiom.evaluation.run_folder import load_run
    from axiom.evaluation.sensitivity import pilot_of, questions_needed

    alpha = _probability("--alpha", float(settings.evaluation.alpha if args.alpha is None else args.alpha))
    power = _probability("--power", float(settings.evaluation.power if args.power is None else args.power))
    effect = float(args.effect)
    if math.isnan(effect) or effect <= 0:
        raise UsageError(f"--effect must be a positive change of the metric's mean, got {args.effect}",
                         hint="e.g. --effect 0.02 for a drop of two points of a metric in [0, 1]")
    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"--repeat must be 1 or more, got {args.repeat}")
    run = load_run(args.from_run)
    measured = [m for m in run.metric_names if m in run.results.columns]
    if args.metric not in measured:
        raise UsageError(f"run {run.path} has no per-question values of metric {args.metric!r}",
                         hint="its metrics: " + (", ".join(measured) or "none"))
    family = len(measured) if args.family is None else int(args.family)
    if family < 1:
        raise UsageError(f"--family must be 1 or more, got {args.family}")
    per_question = {q: v for q, v in run.per_question(args.metric).items() if not math.isnan(v)}
    if len(per_question) < 2:
        raise UsageError(f"run {run.path} measured {args.metric} on {len(per_question)} question(s): too few "
                         "to plan from", hint="plan from a run that measured it on more questions")
    ids = list(per_question)
    values = np.asarray([per_question[q] for q in ids], dtype=float)
    reps = run.per_repetition(args.metric)
    matrix = repeat_matrix(reps, ids, values) if reps else None
    pilot = pilot_of(values, matrix, run_variance(matrix)[0] if matrix is not None else 0.0)
    if pilot.sd <= 0 and pilot.source.startswith("planning"):
        raise UsageError(f"{args.metric} is constant ({pilot.mean:g}) on every question of run {run.path}: "
                         "its values say nothing about the variance to plan for",
                         hint="plan from a run where the metric varies, or from one repeated with --repeat")
    from axiom.evaluation.clusters import question_groups

    groups = question_groups(run.results)
    group_count = len({groups.get(q, "\0" + q) for q in ids})
    repeats = args.repeat or max(1, pilot.repetitions)
    level = alpha / family
    need = questions_needed(pilot, effect, level=level, power=power, seed=int(settings.evaluation.seed),
                            repeats=repeats)
    payload: dict[str, Any] = {
        "metric": args.metric, "effect": effect, "power": power, "alpha": alpha, "family": family,
        "level": level, "run": str(run.path), "pilot": {
            "questions": pilot.n, "mean": pilot.mean, "sd": pilot.sd, "binary": pilot.binary,
            "differences": pilot.source, "untied_rate": pilot.untied_rate,
            "discordance": pilot.discordance if pilot.binary else None,
            "repetitions": pilot.repetitions, "run_variance": pilot.run_variance},
        "test": "sign test (mid-p) on discordant pairs" if pilot.binary else "paired sign-flip test",
        "repeats": repeats, "groups": group_count, **need}
    emit(args, payload, _text(payload))
    return 0


def _text(plan: dict[str, Any]) -> str:
    pilot = plan["pilot"]
    lines = [f"plan: a drop of {plan['effect']:g} in {plan['metric']} with {plan['power']:.0%} power, "
             f"{plan['test']} at alpha {plan['alpha']:g} / {plan['family']} metric(s) = {plan['level']:.3g} "
             "(two-sided)",
             f"pilot: {plan['run']}, {pilot['questions']} questions, mean {pilot['mean']:.3f}, sd "
             f"{pilot['sd']:.3f}; differences: {pilot['differences']}"]
    if pilot["run_variance"] > 0:
        lines.append(f"run-to-run variance of a run's mean: {pilot['run_variance']:.3g} (from "
                     f"{pilot['repetitions']} repetitions); at least {plan['min_repeats']} repetition(s) of "
                     f"each run are needed, planned with {plan['repeats']}")
    elif pilot["repetitions"] < 2:
        lines.append("run-to-run noise is not measured (the run was made once): for a stochastic source "
                     "plan from a run made with axiom eval --repeat 3 or more")
    if plan["groups"] < pilot["questions"]:
        lines.append(f"note: the run's questions fall in {plan['groups']} groups; the count below "
                     "treats questions as independent, and compare flips signs by group, so grouped "
                     "questions need more of them (about the design effect times as many; more "
                     "groups, not more questions per group)")
    if plan["questions"] is None:
        reason = (f"the run-to-run noise alone exceeds it with {plan['repeats']} repetition(s): repeat each "
                  f"run at least {plan['min_repeats']} times" if plan["question_effect"] is None
                  else "not reachable with up to 1,000,000 questions")
        lines.append(f"questions needed: none suffice ({reason})")
    else:
        lines.append(f"questions needed: {plan['questions']:,} (this run has {pilot['questions']:,})"
                     + (f", each run repeated {plan['repeats']} times" if plan["repeats"] > 1 else ""))
    return "\n".join(lines)


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("plan", help="how many questions (and repeats) a comparison needs to detect a "
                                           "given drop of a metric, from a run as the pilot")
    p.add_argument("--metric", required=True, help="the metric, as in the run's results (e.g. ndcg@10)")
    p.add_argument("--effect", required=True, type=float, help="the drop of the metric's mean to detect")
    p.add_argument("--from", dest="from_run", required=True, metavar="RUN",
                   help="the run folder used as pilot")
    p.add_argument("--alpha", type=float, help="family-wise level (default: settings evaluation.alpha)")
    p.add_argument("--family", type=int,
                   help="how many metrics are tested together (default: the run's "
                        "metrics, as compare corrects)")
    p.add_argument("--power", type=float, help="the power asked for (default: settings evaluation.power)")
    p.add_argument("--repeat", type=int, help="repetitions of each run (default: as many as the pilot run's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_plan)
