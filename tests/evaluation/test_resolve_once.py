"""`axiom eval --top-k K --retriever R` end to end (a stand-in model, tests/support/slow_embedder.py): the
flags are applied once, by the CLI face, and reach the retriever inside the settings; the run retrieves its
fixed depth with the settings' retriever and gives the generator the settings' top_k."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import axiom.embeddings
from axiom.cli import main
from axiom.config import Settings
from axiom.evaluation.retrieval_metrics import RETRIEVAL_DEPTH
from axiom.pipeline import RAGPipeline
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, clean_env, write_config
from tests.support.slow_embedder import SlowLoadingEmbedder


@pytest.mark.usefixtures("restore_logging")
def test_eval_applies_top_k_and_retriever_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    monkeypatch.setattr(axiom.embeddings, "make_embedder", lambda *a, **k: SlowLoadingEmbedder(0.0))
    applied: list[tuple[str, str]] = []  # (setting, origin) of every override that changed a setting
    with_overrides = Settings.with_overrides

    def counting(self: Settings, overrides: Mapping[str, Any], *, origin: str) -> Settings:
        applied.extend((key, origin) for key, value in overrides.items() if value is not None)
        return with_overrides(self, overrides, origin=origin)

    retrieved: list[dict[str, Any]] = []
    retrieve_batch = RAGPipeline.retrieve_batch

    def recording(self: RAGPipeline, questions: Sequence[str], **kwargs: Any) -> Any:
        retrieved.append({**kwargs, "settings": (self.settings.retrieval.top_k,
                                                 self.settings.retrieval.retriever)})
        return retrieve_batch(self, questions, **kwargs)

    monkeypatch.setattr(Settings, "with_overrides", counting)
    monkeypatch.setattr(RAGPipeline, "retrieve_batch", recording)
    config = write_config(tmp_path / "work")
    code = main(["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus", str(TINY_CORPUS),
                 "--top-k", "1", "--retriever", "bm25", "--no-judge", "--json",
                 "--out", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    # each flag once, by the face (settings_for); nothing below applies it again
    assert sorted(item for item in applied if item[0].startswith("retrieval.")) == [
        ("retrieval.retriever", "--retriever"), ("retrieval.top_k", "--top-k")], applied
    # one batch, the run's fixed depth; the retriever is the settings' (not passed again)
    assert retrieved == [{"top_k": RETRIEVAL_DEPTH, "settings": (1, "bm25")}], retrieved
    run = next((tmp_path / "runs").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["top_k"], manifest["retriever"], manifest["retrieval_depth"]) == (1, "bm25",
                                                                                       RETRIEVAL_DEPTH)
    assert manifest["collection"].startswith("eval"), manifest["collection"]  # the corpus's own
    contexts = pd.read_parquet(run / "results.parquet")["contexts"]
    assert all(len(c) == 1 for c in contexts), list(contexts)  # the generator saw top_k 1 contexts
