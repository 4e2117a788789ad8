"""Out-of-fold groundedness scores of every RAGTruth QA train answer, for the benchmarks that need a
per-answer score with human labels (bench/system_ranking.py, bench/ppi_coverage.py).

The measures come from bench/calibrate_groundedness.py's cache
(bench/cache/groundedness-ragtruth-v<MEASURES_VERSION>-
<data key>.json; measured here, about 330 ms of CPU per answer, only when it is missing), the scores from its
grouped 5-fold cross-validation (`cross_validate`: no answer is scored by a model fitted on its own question,
so these are the numbers BENCHMARKS.md's AUCs and model means are computed from). The scores are cached next
to the measures, keyed by the data files, the measures version and the source of the fitting code, so a change
of any of them refits (about 45 s of CPU). Nothing of the dataset is written into the repository: the cache is
ignored by git.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from axiom.evaluation.answer_metrics import groundedness as groundedness_module
from bench import calibrate_groundedness as cg

SCORES = ("groundedness", "supported_claims", "answer_length", "baseline", "boosting", "answer_only")


def scores_file(dataset: Path, cache: Path, folds: int = 5) -> Path:
    """Where the out-of-fold scores of `dataset` are cached."""
    files = [dataset / "golden.jsonl", dataset / "labels.jsonl",
             *(dataset / f"responses-{m}.jsonl" for m in cg.MODELS)]
    return cache / f"groundedness-oof-v{cg.gf.MEASURES_VERSION}-{_key(files, folds)}.json"


def _key(files: list[Path], folds: int) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(cg.sha256(f).encode())
    for source in (Path(cg.__file__), Path(groundedness_module.__file__), Path(cg.gf.__file__)):
        digest.update(source.read_bytes())
    digest.update(f"folds={folds}".encode())
    return digest.hexdigest()[:12]


def out_of_fold(dataset: Path = cg.DATASET, cache: Path = cg.CACHE, folds: int = 5
                ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The answers (`id`, `model`, `faithful`: no answer or passage text) and their out-of-fold scores,
    aligned."""
    rows, files = cg.load_ragtruth(dataset)
    kept = [{"id": r["id"], "model": r["model"], "faithful": r["faithful"]} for r in rows]
    cached = scores_file(dataset, cache, folds)
    if cached.is_file():
        data = json.loads(cached.read_text())
        if [(r["id"], r["model"]) for r in kept] == [tuple(k) for k in data["answers"]]:
            return kept, {name: np.asarray(values) for name, values in data["scores"].items()}
    hashes = {f.name: cg.sha256(f) for f in files}
    data_key = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:12]
    measures_file = cache / f"groundedness-ragtruth-v{cg.gf.MEASURES_VERSION}-{data_key}.json"
    if not measures_file.is_file():
        print(f"no cached measures at {measures_file}: measuring all {len(rows)} answers (slow)", flush=True)
    measures, _ = cg.measure_all([(r["answer"], r["contexts"]) for r in rows], measures_file,
                                 cg.make_embedder())
    oof = cg.cross_validate(rows, measures, folds)
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"answers": [(r["id"], r["model"]) for r in kept],
                                       "scores": {name: oof[name].tolist() for name in SCORES}}))
    return kept, {name: oof[name] for name in SCORES}
