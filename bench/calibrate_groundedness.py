"""Fit and measure the offline groundedness metric against human hallucination labels.

`python -m bench.calibrate_groundedness [--dataset DIR] [--ood DIR] [--folds 5] [--boot 2000] [--out DIR]
[--no-write-model]`

1. Measures (`groundedness_features.measure_answer`) of every answer of RAGTruth QA train (`--dataset`,
   default
   ../shared/datasets/ragtruth-qa-train: 839 questions x 4 LLMs) in its 3 passages, with the packaged MiniLM;
   cached under bench/cache/ (keyed by the data files' sha256 and MEASURES_VERSION), so a rerun only refits.
2. Claim labels: a claim is unsupported when it overlaps a span the annotators marked hallucinated.
3. Grouped 5-fold CV by question id (GroupKFold): per fold, the claim model (logistic) is fitted on the
   training folds' claims, its risks aggregated per answer, then the answer model (logistic over the answer
   features + the aggregated risks) fitted on the training folds' answers; out-of-fold predictions for all.
4. ROC AUC against `human_faithful` [95% bootstrap CI, questions resampled] for groundedness,
   supported_claims, answer length, a cheap-feature baseline like the 11-feature floor, gradient boosting over
   the same features; paired bootstrap of AUC differences; Kendall tau of the 4 models ranked by mean
   groundedness vs. by their human-faithful share.
5. Out of domain: AttributionBench dev (`--ood`; never fitted on) scored by the model refitted on all of
   RAGTruth; CPU ms per answer measured on a sample with cold caches.
6. Refit on all the data, write axiom/evaluation/answer_metrics/groundedness_model.json (plain numbers, the
   training files' sha256, feature names, CV AUC), print a markdown table, write bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from axiom.evaluation.answer_metrics import groundedness_features as gf
from axiom.evaluation.answer_metrics.groundedness import (
    CLAIM_FEATURE_NAMES,
    MODEL_PATH,
    STACKED_FEATURE_NAMES,
    GroundednessModel,
    LogisticModel,
    claim_features,
    score_measures,
    stacked_features,
)
from axiom.local_embedder import LocalEmbedder, set_torch_threads
from bench.common import REPO, write_result

DATASET = REPO.parent / "shared" / "datasets" / "ragtruth-qa-train"
OOD = REPO.parent / "shared" / "datasets" / "attributionbench-dev"
CACHE = REPO / "bench" / "cache"
MODELS = ("llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat", "mistral-7B-instruct")
CLAIM_THRESHOLD = 0.3


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TokenMemo:
    """The model's word pieces with a small memo (the 4 answers of a question share its passages'
    segments)."""

    def __init__(self, inner: LocalEmbedder, size: int = 64) -> None:
        self.inner, self.model_id, self.size, self.memo = inner, inner.model_id, size, {}

    def embed(self, texts):
        return self.inner.embed(texts)

    def token_vectors(self, texts):
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        for text, row in zip(todo, self.inner.token_vectors(todo), strict=True):
            self.memo[text] = row
        out = [self.memo[t] for t in texts]
        while len(self.memo) > self.size:
            self.memo.pop(next(iter(self.memo)))
        return out


def make_embedder() -> TokenMemo:
    return TokenMemo(LocalEmbedder(batch_size=64))


def to_json(m: gf.AnswerMeasures) -> dict[str, Any]:
    return dataclasses.asdict(m)


def from_json(d: dict[str, Any]) -> gf.AnswerMeasures:
    claims = [gf.ClaimMeasures(**{**c, "claim": gf.Claim(**c["claim"])}) for c in d["claims"]]
    return gf.AnswerMeasures(d["answer"], d["context_chars"], claims)


def shard_bounds(n: int, shard: int, shards: int) -> tuple[int, int]:
    """Item range of shard `shard` of `shards` (whole questions: 4 answers each, kept together)."""
    return 4 * round(n / 4 * shard / shards), 4 * round(n / 4 * (shard + 1) / shards)


def measure_all(items: list[tuple[str, list[str]]], cache_file: Path, embedder,
                shards: int = 1) -> tuple[list, float]:
    """Measures of (answer, contexts) items, from `cache_file` when it is there (or from its `shards` part
    files, written by `--measure-shard` processes running side by side); CPU seconds spent computing."""
    if cache_file.is_file():
        return [from_json(d) for d in json.loads(cache_file.read_text())], 0.0
    parts = [cache_file.with_suffix(f".part{k}-of-{shards}.json") for k in range(shards)]
    if shards > 1 and all(p.is_file() for p in parts):
        data = [d for p in parts for d in json.loads(p.read_text())]
        cache_file.write_text(json.dumps(data))
        return [from_json(d) for d in data], float("nan")
    partial = cache_file.with_suffix(".partial.json")  # resumed after an interruption
    done = json.loads(partial.read_text()) if partial.is_file() else []
    t0, out = time.process_time(), [from_json(d) for d in done]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    for i in range(len(out), len(items)):
        out.append(gf.measure_answer(*items[i], embedder))
        if i % 100 == 99:
            partial.write_text(json.dumps([to_json(m) for m in out]))
            print(f"  measured {i + 1}/{len(items)} ({time.process_time() - t0:.0f} s cpu)", flush=True)
    seconds = time.process_time() - t0
    cache_file.write_text(json.dumps([to_json(m) for m in out]))
    partial.unlink(missing_ok=True)
    return out, seconds


def measured_so_far(rows: list[dict[str, Any]], full: Path, shards: int) -> tuple[list, list, float]:
    """The rows and measures the `shards` part (or checkpoint) files hold so far."""
    kept, measures = [], []
    for k in range(shards):
        a, _ = shard_bounds(len(rows), k, shards)
        part = full.with_suffix(f".part{k}-of-{shards}.json")
        found = part if part.is_file() else part.with_suffix(".partial.json")
        data = json.loads(found.read_text()) if found.is_file() else []
        kept += rows[a:a + len(data)]
        measures += [from_json(d) for d in data]
    print(f"partial: {len(kept)} of {len(rows)} answers measured so far")
    return kept, measures, float("nan")


def load_ragtruth(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    golden = {g["id"]: g for g in read_jsonl(root / "golden.jsonl")}
    labels = {(r["id"], r["model"]): r for r in read_jsonl(root / "labels.jsonl")}
    rows = []
    for model in MODELS:
        for r in read_jsonl(root / f"responses-{model}.jsonl"):
            label = labels[(r["id"], model)]
            rows.append({"id": r["id"], "model": model, "answer": r["answer"], "contexts": r["contexts"],
                         "question": golden[r["id"]]["question"], "faithful": bool(label["human_faithful"]),
                         "spans": [(s["start"], s["end"]) for s in label["spans"]]})
    rows.sort(key=lambda r: (r["id"], r["model"]))  # a question's answers together: the passages' memo hits
    files = [root / "golden.jsonl", root / "labels.jsonl", *(root / f"responses-{m}.jsonl" for m in MODELS)]
    return rows, files


def claim_labels(m: gf.AnswerMeasures, spans: list[tuple[int, int]]) -> np.ndarray:
    return np.asarray([any(c.claim.start < e and s < c.claim.end for s, e in spans) for c in m.claims], float)


def fit_logistic(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float = 1.0) -> LogisticModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return LogisticModel(names, mean, scale, lr.coef_[0].copy(), float(lr.intercept_[0]))


class Fitted:
    """The claim-level and answer-level model fitted on some answers."""

    def __init__(self, measures: list, claim_x: list[np.ndarray], claim_y: list[np.ndarray],
                 faithful: np.ndarray,
                 answer_x: np.ndarray, idx: np.ndarray) -> None:
        cx = np.vstack([claim_x[i] for i in idx])
        cy = np.concatenate([claim_y[i] for i in idx])
        self.claim = fit_logistic(cx, cy, CLAIM_FEATURE_NAMES)
        x = self.features(answer_x, claim_x, idx)
        self.answer = fit_logistic(x, faithful[idx], gf.FEATURE_NAMES + STACKED_FEATURE_NAMES)

    def features(self, answer_x: np.ndarray, claim_x: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
        stacked = np.asarray([stacked_features(self.claim.probability(claim_x[i])) for i in idx])
        return np.hstack([answer_x[idx], stacked])

    def model(self) -> GroundednessModel:
        return GroundednessModel(self.claim, self.answer, CLAIM_THRESHOLD, {})


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def bootstrap(y, scores: dict[str, np.ndarray], groups: np.ndarray, n: int, pairs: list[tuple[str, str]]):
    """AUC CIs and paired AUC-difference CIs, resampling questions (all answers of a drawn question)."""
    rng = np.random.default_rng(0)
    uniq = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in uniq}
    draws: dict[str, list[float]] = {k: [] for k in scores}
    for _ in range(n):
        idx = np.concatenate([members[g] for g in rng.choice(uniq, len(uniq))])
        for k, s in scores.items():
            draws[k].append(auc(y[idx], s[idx]))
    ci = {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items()}
    diffs = {}
    for a, b in pairs:
        d = np.asarray(draws[a]) - np.asarray(draws[b])
        diffs[f"{a} - {b}"] = {"diff": auc(y, scores[a]) - auc(y, scores[b]),
                               "ci": (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))}
    return ci, diffs


BASELINE_FEATURES = ("min_sim_sentence", "mean_sim_sentence", "share_window_below_60", "answer_novel_share",
                     "novel_terms", "novel_numbers", "log_chars", "log_claims", "passage_mentions", "refusal")


def cross_validate(rows, measures, folds: int) -> dict[str, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    y = np.asarray([r["faithful"] for r in rows], float)
    groups = np.asarray([r["id"] for r in rows])
    answer_x = np.asarray([gf.answer_features(m) for m in measures])
    claim_x = [claim_features(m) for m in measures]
    claim_y = [claim_labels(m, r["spans"]) for m, r in zip(measures, rows, strict=True)]
    base_cols = [gf.FEATURE_NAMES.index(f) for f in BASELINE_FEATURES]
    out = {k: np.zeros(len(rows)) for k in ("groundedness", "supported_claims", "baseline", "boosting",
                                            "answer_only")}
    for train, test in GroupKFold(n_splits=folds).split(answer_x, y, groups):
        fitted = Fitted(measures, claim_x, claim_y, y, answer_x, train)
        model = fitted.model()
        for i in test:
            result = score_measures(measures[i], model)
            out["groundedness"][i], out["supported_claims"][i] = result.groundedness, result.supported_claims
        base = fit_logistic(answer_x[train][:, base_cols], y[train], BASELINE_FEATURES)
        out["baseline"][test] = base.probability(answer_x[test][:, base_cols])
        only = fit_logistic(answer_x[train], y[train], gf.FEATURE_NAMES)
        out["answer_only"][test] = only.probability(answer_x[test])
        hgb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                             random_state=0)
        hgb.fit(fitted.features(answer_x, claim_x, train), y[train])
        out["boosting"][test] = hgb.predict_proba(fitted.features(answer_x, claim_x, test))[:, 1]
    out["answer_length"] = -answer_x[:, gf.FEATURE_NAMES.index("log_chars")]
    return out


def load_ood(root: Path) -> tuple[list[tuple[str, list[str]]], np.ndarray, list[Path]]:
    labels = {r["id"]: r for r in read_jsonl(root / "labels.jsonl")}
    responses = read_jsonl(root / "responses.jsonl")
    items = [(r["answer"], r["contexts"]) for r in responses]
    y = np.asarray([bool(labels[r["id"]]["human_faithful"]) for r in responses], float)
    return items, y, [root / "responses.jsonl", root / "labels.jsonl"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--ood", type=Path, default=OOD)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--timing-sample", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--no-write-model", action="store_true")
    parser.add_argument("--measure-shard", help="K/N: only measure shard K of N (0-based) into a part file")
    parser.add_argument("--shards", type=int, default=1,
                        help="assemble the measures from this many part files")
    parser.add_argument("--partial", action="store_true",
                        help="fit and measure on the answers the shard processes measured so far")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared machine)")
    args = parser.parse_args(argv)
    from scipy.stats import kendalltau

    set_torch_threads(args.threads)
    rows, files = load_ragtruth(args.dataset)
    hashes = {f.name: sha256(f) for f in files}
    key = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:12]
    embedder = make_embedder()
    full = CACHE / f"groundedness-ragtruth-v{gf.MEASURES_VERSION}-{key}.json"
    if args.partial:  # what the shard processes measured so far: a subset of the questions
        rows, measures, seconds = measured_so_far(rows, full, args.shards)
    else:
        measures, seconds = ([], 0.0) if args.measure_shard else measure_all(
            [(r["answer"], r["contexts"]) for r in rows], full, embedder, args.shards)
    if args.measure_shard:
        k, n = (int(v) for v in args.measure_shard.split("/"))
        a, b = shard_bounds(len(rows), k, n)
        part = CACHE / f"groundedness-ragtruth-v{gf.MEASURES_VERSION}-{key}.part{k}-of-{n}.json"
        measure_all([(r["answer"], r["contexts"]) for r in rows[a:b]], part, embedder)
        return 0
    oof = cross_validate(rows, measures, args.folds)
    y = np.asarray([r["faithful"] for r in rows], float)
    groups = np.asarray([r["id"] for r in rows])
    pairs = [("groundedness", "baseline"), ("groundedness", "answer_length"), ("groundedness", "boosting"),
             ("groundedness", "answer_only")]
    ci, diffs = bootstrap(y, oof, groups, args.boot, pairs)
    aucs = {k: auc(y, s) for k, s in oof.items()}
    by_model = {m: (float(np.mean([r["faithful"] for r in rows if r["model"] == m])),
                    float(np.mean([g for g, r in zip(oof["groundedness"], rows, strict=True)
                                   if r["model"] == m])))
                for m in MODELS}
    tau = float(kendalltau([v[0] for v in by_model.values()], [v[1] for v in by_model.values()]).statistic)

    final = Fitted(measures, [claim_features(m) for m in measures],
                   [claim_labels(m, r["spans"]) for m, r in zip(measures, rows, strict=True)], y,
                   np.asarray([gf.answer_features(m) for m in measures]), np.arange(len(rows))).model()
    ood_items, ood_y, ood_files = load_ood(args.ood)
    ood_key = hashlib.sha256("".join(sha256(f) for f in ood_files).encode()).hexdigest()[:12]
    ood_measures, _ = measure_all(ood_items,
                                  CACHE / f"groundedness-ood-v{gf.MEASURES_VERSION}-{ood_key}.json",
                                  embedder)
    ood_scores = [score_measures(m, final) for m in ood_measures]
    ood = {"groundedness": auc(ood_y, np.asarray([s.groundedness for s in ood_scores])),
           "supported_claims": auc(ood_y, np.asarray([s.supported_claims for s in ood_scores])),
           "n": len(ood_y)}

    cold = LocalEmbedder(batch_size=64)
    cold.embed(["warm up"])
    sample = rows[:: max(1, len(rows) // args.timing_sample)][:args.timing_sample]
    t0 = time.process_time()
    for r in sample:
        score_measures(gf.measure_answer(r["answer"], r["contexts"], cold), final)
    cpu_ms = (time.process_time() - t0) * 1000 / len(sample)

    brier = float(np.mean((oof["groundedness"] - y) ** 2))
    result = {"brier_groundedness": brier, "brier_base_rate": float(y.mean() * (1 - y.mean())),
              "partial": args.partial, "n_answers": len(rows), "n_questions": len(set(groups)),
              "folds": args.folds,
              "auc": aucs, "auc_ci": ci, "paired_differences": diffs, "kendall_tau": tau,
              "by_model": {m: {"human_faithful_share": h, "mean_groundedness": g}
                           for m, (h, g) in by_model.items()},
              "ood_attributionbench_dev": ood, "cpu_ms_per_answer_cold": cpu_ms,
              "measure_cpu_seconds_all_answers": seconds, "training_files_sha256": hashes}
    if not args.no_write_model:
        data = {"about": "groundedness model: fitted by bench/calibrate_groundedness.py on RAGTruth QA train",
                "claim_threshold": CLAIM_THRESHOLD, "claim_model": final.claim.to_dict(),
                "answer_model": final.answer.to_dict(), "training_files_sha256": hashes,
                "measures_version": gf.MEASURES_VERSION, "cv_auc": aucs["groundedness"],
                "cv_auc_ci": ci["groundedness"],
                "cv_auc_others": {k: v for k, v in aucs.items() if k != "groundedness"},
                "cv_answers": len(rows), "cv_questions": len(set(groups)), "partial": args.partial,
                "ood_auc_attributionbench_dev": ood["groundedness"]}
        MODEL_PATH.write_text(json.dumps(data, indent=1) + "\n")
    print("| score | ROC AUC vs human_faithful | 95% CI (questions resampled) |\n|---|---|---|")
    for k in sorted(aucs, key=aucs.get, reverse=True):
        print(f"| {k} | {aucs[k]:.3f} | {ci[k][0]:.3f}-{ci[k][1]:.3f} |")
    for name, d in diffs.items():
        print(f"| {name} (paired) | {d['diff']:+.3f} | {d['ci'][0]:+.3f}-{d['ci'][1]:+.3f} |")
    print(f"\nBrier (out of fold) {brier:.3f} vs {y.mean() * (1 - y.mean()):.3f} for the base rate")
    print(f"Kendall tau (models by mean groundedness vs human share): {tau:.2f}; {by_model}")
    print(f"AttributionBench dev (not fitted on): {ood}; cpu ms/answer (cold): {cpu_ms:.0f}")
    print(write_result(result, args.out, "calibrate_groundedness"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
