"""Fixtures for the notebook tests: a clean environment for kernels, one evaluated tiny run shared by the
session (the papermill end-to-end run through `axiom notebooks run`: its executed notebooks are the references
of the nbval run, and its store the one the Jupyter server test queries)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from axiom.config import ENV_VARS
from tests.support.settings import write_config as write_test_config  # every path under the folder given

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
TINY_CORPUS = REPO / "tests" / "fixtures" / "tiny_corpus"
TINY_GOLDEN = REPO / "tests" / "fixtures" / "tiny_golden.jsonl"
ALL_NOTEBOOKS = ("01_ingest", "02_query", "03_evaluate", "04_compare_runs")
KEY_CANARY = "sk-notebook-canary-7f3a9c2e41d8"


@pytest.fixture(scope="session")
def clean_kernel_env() -> Iterator[None]:
    """Kernels inherit the test process's environment: no store, LLM or config variables from outside, and no
    AXIOM_PROJECT_ROOT: the runner gives the notebooks the project folder and settings file as parameters (and
    `make lab` sets the variable itself)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [*ENV_VARS, "AXIOM_CONFIG", "AXIOM_PROJECT_ROOT"]:
            mp.delenv(name, raising=False)
        for name, value in {"RAGAS_DO_NOT_TRACK": "true", "ANONYMIZED_TELEMETRY": "False",
                            "HF_HUB_OFFLINE": "1",
                            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory, clean_kernel_env: None,
             embedder: Any) -> dict[str, Any]:
    """All four notebooks on the tiny corpus through `axiom notebooks run 01 02 03 04` (in-process CLI, one
    warm kernel), after a seed run with top_k=2 so that 04 has two runs to compare."""
    from axiom.cli import main
    from axiom.config import load_settings
    from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation

    root = tmp_path_factory.mktemp("notebooks-e2e")
    config = write_test_config(root)
    store = root / "store-a"
    # the seed run has a store of its own, so that 01_ingest below really ingests (as nbval's fresh run will)
    settings = load_settings(config, environ={}, overrides={"store": {"path": str(root / "store-seed")}})
    t0 = time.perf_counter()
    seed = run_evaluation(settings.with_overrides({"retrieval.top_k": 2}, origin="test"), TINY_GOLDEN,
                          AnswerSource.pipeline(TINY_CORPUS),
                          EvaluationOptions(name="seed", judge=False, embedder=embedder,
                                            out_dir=root / "runs"))
    seed_seconds = time.perf_counter() - t0
    argv = ["--config", str(config), "notebooks", "run", *ALL_NOTEBOOKS, "-p", "corpus", str(TINY_CORPUS),
            "-p", "dataset", str(TINY_GOLDEN), "-p", "chroma_path", str(store), "-p", "judge", "false",
            "--out", str(root / "runs"), "--name", "tiny"]
    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.MonkeyPatch.context() as mp:
        # a key is set (the generator stays extractive): it must not leak
        mp.setenv("OPENAI_API_KEY", KEY_CANARY)
        mp.setenv("LLM_PROVIDER", "extractive")
        code = main(argv)
    assert code == 0, text.getvalue()
    lines = text.getvalue().strip().splitlines()
    folder = Path(lines[-1].removeprefix("run folder: "))
    return {"root": root, "config": config, "store": store, "seed": seed.path, "folder": folder,
            "stdout": text.getvalue(), "runs": root / "runs", "seed_seconds": seed_seconds,
            "metrics": json.loads((folder / "metrics.json").read_text())}
