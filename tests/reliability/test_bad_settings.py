"""Bad settings through the real `axiom` CLI (its `main`, in this process): the exact exit code, one message
naming the setting and where it came from (file or environment variable), and nothing written (no store, no
runs folder). Message wording per key is unit-tested in tests/core/test_config.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from axiom.cli import main
from axiom.config import load_settings
from axiom.errors import ConfigError, EmbeddingMismatchError, StoreUnavailableError
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.core.conftest import RenamedEmbedder
from tests.evaluation.helpers import TINY_CORPUS, clean_env, write_config
from tests.reliability.conftest import store_snapshot, tree
from tests.support.chroma_server import free_port

pytestmark = pytest.mark.usefixtures("restore_logging")  # main() configures the root logger

# (yaml text, environment, the words the message must hold; `{cfg}` is the config file's path)
CASES = {
    "unknown_key": ("chunking:\n  chunk_sise: 500\n", {},
                    ["unknown setting chunking.chunk_sise (from {cfg})", "did you mean 'chunk_size'?"]),
    "wrong_type": ("retrieval:\n  top_k: many\n", {},
                   ["invalid setting retrieval.top_k (from {cfg})='many'", "valid integer"]),
    "wrong_type_env": ("", {"CHROMA_PORT": "eighty"},
                       ["invalid setting store.port (from environment variable CHROMA_PORT)='eighty'"]),
    "negative_chunk_size": ("chunking:\n  chunk_size: -5\n  chunk_overlap: 0\n", {},
                            ["invalid setting chunking.chunk_size (from {cfg})=-5", "greater than 0"]),
    "overlap_equals_size": ("chunking:\n  chunk_size: 100\n  chunk_overlap: 100\n", {},
                            ["invalid setting chunking (from {cfg}): chunk_overlap (100) must be "
                             "smaller than chunk_size (100)"]),
    "overlap_above_size": ("chunking:\n  chunk_size: 100\n  chunk_overlap: 250\n", {},
                           ["chunking (from {cfg}): chunk_overlap (250) must be "
                            "smaller than chunk_size (100)"]),
    "unknown_provider": ("generation:\n  provider: anthropic\n", {},
                         ["invalid setting generation.provider (from {cfg})='anthropic'",
                          "expected 'openai' or 'extractive'"]),
    "unknown_provider_env": ("", {"LLM_PROVIDER": "anthropic"},
                             ["generation.provider (from environment variable LLM_PROVIDER)='anthropic'"]),
    "unknown_embedding_provider": ("embeddings:\n  provider: cohere\n", {},
                                   ["invalid setting embeddings.provider (from {cfg})='cohere'",
                                    "expected 'local' or 'openai'"]),
    "invalid_yaml": ("chunking:\n  chunk_size: [800\n", {},
                     ["config file {cfg} is not valid YAML at line 3, column 1: expected ',' or ']'",
                      "while parsing a flow sequence that starts at line 2, column 15"]),
}


@pytest.mark.parametrize("command", [["ingest", str(TINY_CORPUS)], ["query", "What is a lighthouse?"]])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_setting_exits_2_naming_it_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], case: str,
                                                          command: list[str]) -> None:
    clean_env(monkeypatch)
    text, env, words = CASES[case]
    work = tmp_path / "work"
    base = write_config(work)  # every path under `work`
    cfg = work / "bad.yaml"
    cfg.write_text(text if case == "invalid_yaml" else _merged(base, text))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError):  # the class the CLI maps to exit 2
        load_settings(cfg)
    before = tree(work)
    code = main(["--config", str(cfg), *command])
    err = capsys.readouterr().err
    assert code == 2, err
    for w in words:
        assert w.format(cfg=cfg) in err, (w, err)
    assert err.count("\n") == 1, err  # one message, no traceback
    assert tree(work) == before  # no store, no runs folder, nothing else


def _merged(base: Path, text: str) -> str:
    """The base config with the section in `text` replaced (yaml keys must stay unique)."""
    import yaml

    data = yaml.safe_load(base.read_text())
    for section, values in (yaml.safe_load(text) or {}).items():
        data[section] = {**data.get(section, {}), **values}
    return yaml.safe_dump(data)


@pytest.mark.parametrize("command", [["ingest", str(TINY_CORPUS)], ["status"],
                                     ["query", "What is a lighthouse?"]])
def test_unreachable_chroma_host_exits_1_naming_host_and_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str],
                                                              command: list[str]) -> None:
    clean_env(monkeypatch)
    port = free_port()
    work = tmp_path / "work"
    cfg = write_config(work, store={"timeout_seconds": 2})
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(port))
    settings = load_settings(cfg)
    with pytest.raises(StoreUnavailableError):
        ChromaStore(settings.store).heartbeat()
    before = tree(work)
    t0 = time.perf_counter()
    code = main(["--config", str(cfg), *command])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"cannot reach ChromaDB server 127.0.0.1:{port}" in err and "CHROMA_HOST/CHROMA_PORT" in err, err
    assert elapsed < 30, elapsed
    assert tree(work) == before


def test_collection_of_another_embedding_model_exits_2_and_is_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        embedder) -> None:  # noqa: ANN001
    clean_env(monkeypatch)
    cfg = write_config(tmp_path / "work")
    settings = load_settings(cfg, environ={})
    other = RAGPipeline(settings, RenamedEmbedder(embedder, "other-model-v2"), ChromaStore(settings.store))
    other.ingest([TINY_CORPUS], progress=False)
    before = store_snapshot(settings)
    assert before
    for command in (["ingest", str(TINY_CORPUS)], ["query", "Which volcano is the largest?"]):
        code = main(["--config", str(cfg), *command])
        err = capsys.readouterr().err
        assert code == EmbeddingMismatchError.exit_code == 2, err
        assert ("collection 'axiom' on embedded ChromaDB at" in err
                and "'other-model-v2', not 'all-MiniLM-L6-v2'"
                in err and "AXIOM_COLLECTION" in err), err
    assert store_snapshot(settings) == before  # not a chunk added, changed or removed
