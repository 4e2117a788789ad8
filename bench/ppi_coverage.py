"""Coverage and width of the prediction-powered 95% interval on human-labelled answers (RAGTruth QA, train).

`python -m bench.ppi_coverage [--dataset DIR] [--predictor groundedness|content-words] [--cache DIR]
[--subsets N]
[--sizes 50,100,200] [--seed S] [--json FILE]`

Method (the table's header repeats it):

1. Data: `../shared/datasets/ragtruth-qa-train` (839 questions, the answers of 4 LLMs, each labelled by
   people:
   `human_faithful` = no hallucinated span). Nothing of it is copied into the repository.
2. Predictor (the "metric", `--predictor`): `groundedness` (default), the out-of-fold groundedness score of
   every answer (bench/groundedness_scores.py: grouped 5-fold cross-validation on this same set, from the
   cached measures; an answer's score comes from a model fitted on the other folds' questions, some of which
   are in a labelled subset, a weak dependence PPI's theory assumes away), or `content-words`, a cheap offline
   score:
   the answer's share of content words (lower-cased alphanumeric tokens of 3+ characters outside a short
   stop-word list) found among the words of its passages. PPI's validity does not depend on the metric, only
   its width does.
3. Target: per model the human-faithful share over all 839 answers, and the paired difference 70b - 7b over
   the 839 questions (the true values, computed from every label).
4. For each size n and each of `--subsets` random subsets of n questions (numpy seed, without replacement),
   pretend only those carry labels: the PPI estimate (lam 1), the power-tuned PPI++ estimate and the classical
   interval of the n labels alone, and the finite-set form of PPI++ (`finite=True`: the target is the mean of
   exactly these 839 answers, so the interval carries the finite-population correction; the labels-alone
   interval has none and over-covers as n / 839 grows, as do the superpopulation PPI intervals); coverage =
   share of subsets whose interval holds the true value, with its 95% Clopper-Pearson interval; width = mean
   interval width, and its ratio to the labels-alone width.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from axiom.evaluation.ppi import classical_mean, ppi_mean
from bench.common import REPO

DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "ragtruth-qa-train"
MODELS = ("llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat", "mistral-7B-instruct")
PAIR = ("llama-2-7b-chat", "llama-2-70b-chat")  # A, B: the estimate is B - A
STOP = frozenset("the and for are but not you all any can had her was one our out has him his how its may "
                 "new now see who did get let say she too use that with have this will your from they been "
                 "were said each which their there what about would these other into more some than then "
                 "them only also such based provided passage passages information according".split())
WORD = re.compile(r"[a-z0-9]+")


def content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if len(w) >= 3 and w not in STOP]


def content_word_share(answer: str, contexts: list[str]) -> float:
    words = content_words(answer)
    if not words:
        return 0.0
    known = set(content_words(" ".join(contexts)))
    return sum(w in known for w in words) / len(words)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def content_word_scores(dataset: Path) -> dict[str, dict[str, float]]:
    return {model: {str(r["id"]): content_word_share(str(r.get("answer") or ""),
                                                     list(r.get("contexts") or []))
                    for r in _jsonl(dataset / f"responses-{model}.jsonl")} for model in MODELS}


def groundedness_scores(dataset: Path, cache: Path) -> dict[str, dict[str, float]]:
    from bench.groundedness_scores import out_of_fold

    rows, scores = out_of_fold(dataset, cache)
    out: dict[str, dict[str, float]] = {model: {} for model in MODELS}
    for row, score in zip(rows, scores["groundedness"], strict=True):
        out[row["model"]][str(row["id"])] = float(score)
    return out


PREDICTORS = {"groundedness": "out-of-fold groundedness (grouped 5-fold CV on this set)",
              "content-words": "content-word share of the answer in its passages"}


def load(dataset: Path, predictor: str = "content-words", cache: Path | None = None
         ) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Question ids, and per model the human labels and the metric, aligned on the ids."""
    labels: dict[tuple[str, str], float] = {(str(r["model"]), str(r["id"])): float(bool(r["human_faithful"]))
                                            for r in _jsonl(dataset / "labels.jsonl")}
    scores = groundedness_scores(dataset, cache or REPO / "bench" / "cache") if predictor == "groundedness" \
        else content_word_scores(dataset)
    ids = sorted(set.intersection(*(set(s) for s in scores.values())))
    ids = [q for q in ids if all((m, q) in labels for m in MODELS)]
    human = {m: np.array([labels[(m, q)] for q in ids]) for m in MODELS}
    metric = {m: np.array([scores[m][q] for q in ids]) for m in MODELS}
    return ids, human, metric


def measure(human: np.ndarray, metric: np.ndarray, n: int, subsets: int, seed: int) -> dict[str, Any]:
    truth = float(human.mean())
    rows: dict[str, list[tuple[bool, float]]] = {"ppi": [], "ppi++": [], "ppi++ finite": [],
                                                 "labels alone": []}
    for s in range(subsets):
        chosen = np.random.default_rng([seed, n, s]).choice(human.size, n, replace=False)
        y, yhat = human[chosen], metric[chosen]
        for name, est in (("ppi", ppi_mean(y, yhat, metric, lam=1.0)),
                          ("ppi++", ppi_mean(y, yhat, metric, lam=None)),
                          ("ppi++ finite", ppi_mean(y, yhat, metric, lam=None, finite=True)),
                          ("labels alone", classical_mean(y))):
            rows[name].append((est.ci_low <= truth <= est.ci_high, est.width))
    out: dict[str, Any] = {"truth": truth, "n": n, "subsets": subsets}
    for name, cells in rows.items():
        hits = sum(c for c, _ in cells)
        ci = binomtest(hits, len(cells)).proportion_ci(0.95, method="exact")
        out[name] = {"coverage": hits / len(cells), "coverage_ci": [ci.low, ci.high],
                     "mean_width": float(np.mean([w for _, w in cells]))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--predictor", choices=sorted(PREDICTORS), default="groundedness")
    parser.add_argument("--cache", type=Path, default=REPO / "bench" / "cache",
                        help="the groundedness measures' and scores' cache "
                             "(bench/calibrate_groundedness.py's)")
    parser.add_argument("--subsets", type=int, default=500)
    parser.add_argument("--sizes", default="50,100,200")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    ids, human, metric = load(args.dataset, args.predictor, args.cache)
    targets = {m: (human[m], metric[m]) for m in MODELS}
    a, b = PAIR
    targets[f"{b} - {a}"] = (human[b] - human[a], metric[b] - metric[a])
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"PPI coverage on {args.dataset.name}: {len(ids)} questions; metric = "
          f"{PREDICTORS[args.predictor]}; {args.subsets} random labelled subsets per size; 95% "
          "intervals; coverage with its Clopper-Pearson 95% interval; width = mean interval width "
          "(ratio to the labels-alone width)\n")
    print("| target | true | n | PPI coverage | PPI width (ratio) | PPI++ coverage | PPI++ width (ratio) "
          "| PPI++ finite-set coverage | its width (ratio) | labels-alone coverage | labels-alone width "
          "| metric corr. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for target, (y, yhat) in targets.items():
        corr = float(np.corrcoef(y, yhat)[0, 1])
        for n in sizes:
            r = measure(y, yhat, n, args.subsets, args.seed)
            r["target"], r["metric_correlation"] = target, corr
            results.append(r)
            base = r["labels alone"]["mean_width"]

            def cov(name: str, r: dict[str, Any] = r) -> str:
                c = r[name]
                return f"{c['coverage']:.3f} [{c['coverage_ci'][0]:.3f}, {c['coverage_ci'][1]:.3f}]"

            print(f"| {target} | {r['truth']:.3f} | {n} | {cov('ppi')} | {r['ppi']['mean_width']:.3f} "
                  f"({r['ppi']['mean_width'] / base:.2f}) | {cov('ppi++')} | {r['ppi++']['mean_width']:.3f} "
                  f"({r['ppi++']['mean_width'] / base:.2f}) | {cov('ppi++ finite')} | "
                  f"{r['ppi++ finite']['mean_width']:.3f} ({r['ppi++ finite']['mean_width'] / base:.2f}) | "
                  f"{cov('labels alone')} | {base:.3f} | {corr:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
