"""load_settings: defaults, yaml < environment < overrides, and errors that say what is wrong and what is
allowed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from axiom.config import ENV_VARS, Settings, load_settings, log_generator_choice
from axiom.errors import ConfigError
from axiom.generation import ExtractiveGenerator, OpenAIGenerator, make_generator


@pytest.fixture(autouse=True)
def _no_config_yaml_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings reads ./config.yaml when no file is named: run every test from an empty folder."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in [*ENV_VARS, "AXIOM_CONFIG"]:
        monkeypatch.delenv(name, raising=False)


def write_yaml(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    return str(info.value)


# -- defaults and precedence -------------------------------------------------------------------------


def test_defaults_without_any_file_or_environment() -> None:
    s = load_settings(environ={})
    assert s == Settings()
    assert s.store.mode == "embedded"
    assert s.store.path == ".axiom/chroma"
    assert s.store.port == 8000
    assert s.store.collection == "axiom"
    assert (s.chunking.chunk_size, s.chunking.chunk_overlap) == (800, 160)
    assert s.embeddings.provider == "local" and s.embeddings.model == "all-MiniLM-L6-v2"
    assert s.retrieval.retriever == "hybrid" and s.retrieval.top_k == 5
    assert s.generation.provider is None and s.generation.api_key is None
    assert s.generation.resolved_provider == "extractive"


def test_repo_config_yaml_loads_and_every_key_is_applied(repo_root: Path) -> None:
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    settings = load_settings(repo_root / "config.yaml", environ={})
    checked = 0
    for section, values in raw.items():
        for key, value in (values or {}).items():
            got = getattr(getattr(settings, section), key)
            if hasattr(got, "get_secret_value"):
                got = got.get_secret_value()
            elif isinstance(got, list):
                got = [g.get_secret_value() if hasattr(g, "get_secret_value") else g for g in got]
            assert got == value, f"{section}.{key}: yaml {value!r}, settings {got!r}"
            checked += 1
    assert checked >= 40


def test_config_yaml_in_current_folder_is_read_when_none_is_named(tmp_path: Path) -> None:
    write_yaml(Path.cwd(), "store:\n  port: 8100\n")
    assert load_settings(environ={}).store.port == 8100


def test_precedence_overrides_over_environment_over_yaml_over_defaults(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "store:\n  port: 9000\n  path: /from/yaml\n  collection: yamlcoll\n"
                               "generation:\n  provider: extractive\n")
    env = {"CHROMA_PORT": "9100", "LLM_PROVIDER": "openai"}
    only_yaml = load_settings(cfg, environ={})
    assert (only_yaml.store.port, only_yaml.store.path, only_yaml.generation.provider) == (9000, "/from/yaml",
                                                                                             "extractive")
    with_env = load_settings(cfg, environ=env)
    assert with_env.store.port == 9100
    assert with_env.generation.provider == "openai"
    # keys the environment does not name keep their yaml values (sections are merged, not replaced)
    assert with_env.store.path == "/from/yaml" and with_env.store.collection == "yamlcoll"
    with_override = load_settings(cfg, environ=env, overrides={"store": {"port": 9200}})
    assert with_override.store.port == 9200
    assert with_override.store.path == "/from/yaml"
    assert with_override.generation.provider == "openai"


@pytest.mark.parametrize(("name", "value", "section", "key", "expected"), [
    ("CHROMA_PATH", "/data/chroma", "store", "path", "/data/chroma"),
    ("CHROMA_HOST", "chroma.local", "store", "host", "chroma.local"),
    ("CHROMA_PORT", "8123", "store", "port", 8123),
    ("AXIOM_COLLECTION", "docs-v2", "store", "collection", "docs-v2"),
    ("LLM_PROVIDER", "extractive", "generation", "provider", "extractive"),
    ("LLM_MODEL", "llama3", "generation", "model", "llama3"),
    ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1", "generation", "base_url", "http://127.0.0.1:1/v1"),
    ("EMBEDDING_MODEL", "/models/e5", "embeddings", "model", "/models/e5"),
    ("LOG_LEVEL", "DEBUG", "logging", "level", "DEBUG"),
    ("EVAL_LLM_MODEL", "judge-1", "evaluation", "judge_model", "judge-1"),
])
def test_each_environment_variable_sets_its_key(name: str, value: str, section: str, key: str,
                                                expected: object) -> None:
    assert ENV_VARS[name] == (section, key)
    settings = load_settings(environ={name: value})
    assert getattr(getattr(settings, section), key) == expected


def test_server_mode_from_chroma_host() -> None:
    s = load_settings(environ={"CHROMA_HOST": "10.0.0.5", "CHROMA_PORT": "8001"})
    assert s.store.mode == "server"
    assert (s.store.host, s.store.port) == ("10.0.0.5", 8001)


def test_empty_environment_values_are_ignored(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "store:\n  port: 9000\n")
    assert load_settings(cfg, environ={"CHROMA_PORT": "", "LLM_PROVIDER": ""}).store.port == 9000


def test_explicit_environ_is_the_only_environment_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMA_PORT", "8555")
    assert load_settings(environ={}).store.port == 8000
    assert load_settings().store.port == 8555  # environ=None: the process environment


def test_axiom_config_names_the_file_and_an_explicit_path_wins(tmp_path: Path) -> None:
    from_env = write_yaml(tmp_path, "store:\n  port: 9001\n", "env.yaml")
    explicit = write_yaml(tmp_path, "store:\n  port: 9002\n", "explicit.yaml")
    assert load_settings(environ={"AXIOM_CONFIG": str(from_env)}).store.port == 9001
    assert load_settings(explicit, environ={"AXIOM_CONFIG": str(from_env)}).store.port == 9002


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write_yaml(tmp_path, "# nothing here\n"), environ={}) == Settings()


# -- errors: key, origin, bad value, what is allowed ----------------------------------------------------


def test_wrong_type_from_environment_names_variable_value_and_type() -> None:
    msg = config_error(environ={"CHROMA_PORT": "eighty"})
    assert "store.port" in msg
    assert "CHROMA_PORT" in msg
    assert "'eighty'" in msg
    assert "integer" in msg


def test_out_of_range_port_names_the_limit() -> None:
    msg = config_error(environ={"CHROMA_PORT": "70000"})
    assert "store.port" in msg and "CHROMA_PORT" in msg and "70000" in msg
    assert "65536" in msg


def test_wrong_type_from_yaml_names_the_file(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "store:\n  port: hello\n")
    msg = config_error(config_path=cfg, environ={})
    assert "store.port" in msg and str(cfg) in msg and "'hello'" in msg and "integer" in msg


def test_unknown_provider_lists_the_allowed_ones() -> None:
    msg = config_error(environ={"LLM_PROVIDER": "anthropic"})
    assert "generation.provider" in msg
    assert "LLM_PROVIDER" in msg
    assert "anthropic" in msg
    assert "'openai'" in msg and "'extractive'" in msg


def test_unknown_log_level_lists_the_levels() -> None:
    msg = config_error(environ={"LOG_LEVEL": "verbose"})
    assert "logging.level" in msg and "LOG_LEVEL" in msg and "verbose" in msg
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        assert level in msg


def test_unknown_key_is_named_with_its_file(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "store:\n  colection: docs\n")
    msg = config_error(config_path=cfg, environ={})
    assert "unknown setting" in msg
    assert "store.colection" in msg
    assert str(cfg) in msg


def test_unknown_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "store:\n  colection: docs\n")
    msg = config_error(config_path=cfg, environ={})
    assert "collection" in msg.replace("colection", "")
    assert "bm25_dir" in msg


def test_unknown_section_is_named() -> None:
    msg = config_error(environ={}, overrides={"retreival": {"top_k": 3}})
    assert "unknown setting" in msg and "retreival" in msg


def test_negative_chunk_size_names_key_value_and_bound() -> None:
    msg = config_error(environ={}, overrides={"chunking": {"chunk_size": -5}})
    assert "chunking.chunk_size" in msg
    assert "-5" in msg
    assert "greater than 0" in msg


@pytest.mark.parametrize(("size", "overlap"), [(100, 100), (100, 250)])
def test_overlap_not_below_size_is_refused(tmp_path: Path, size: int, overlap: int) -> None:
    cfg = write_yaml(tmp_path, f"chunking:\n  chunk_size: {size}\n  chunk_overlap: {overlap}\n")
    msg = config_error(config_path=cfg, environ={})
    assert "chunk_overlap" in msg and "chunk_size" in msg
    assert f"({overlap})" in msg and f"({size})" in msg
    assert "smaller" in msg


def test_every_problem_is_reported_at_once() -> None:
    msg = config_error(environ={"CHROMA_PORT": "abc", "LLM_PROVIDER": "nope"},
                       overrides={"retrieval": {"top_k": 0}})
    assert "CHROMA_PORT" in msg and "LLM_PROVIDER" in msg and "retrieval.top_k" in msg


def test_invalid_yaml_file_names_file_and_position(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "store:\n  port: [8000\n")
    msg = config_error(config_path=cfg, environ={})
    assert str(cfg) in msg
    assert "not valid YAML" in msg
    assert "line" in msg


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    msg = config_error(config_path=write_yaml(tmp_path, "- store\n- chunking\n"), environ={})
    assert "mapping" in msg and "list" in msg


def test_section_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    msg = config_error(config_path=write_yaml(tmp_path, "store: 5\n"), environ={})
    assert "store" in msg and "5" in msg and "dictionary" in msg


def test_missing_axiom_config_file_names_path_and_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.yaml"
    msg = config_error(environ={"AXIOM_CONFIG": str(missing)})
    assert str(missing) in msg
    assert "does not exist" in msg
    assert "AXIOM_CONFIG" in msg


def test_api_key_is_never_echoed_in_an_error(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "generation:\n  api_key: [sk-leak-123456]\n")
    msg = config_error(config_path=cfg, environ={})
    assert "generation.api_key" in msg
    assert "sk-leak-123456" not in msg


# -- generator choice and redaction -----------------------------------------------------------------


def test_generator_is_openai_when_a_key_is_set(embedder, caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings(environ={"OPENAI_API_KEY": "sk-test-abc"})
    assert s.generation.provider is None
    assert s.generation.resolved_provider == "openai"
    assert isinstance(make_generator(s.generation, embedder), OpenAIGenerator)
    with caplog.at_level(logging.INFO, logger="axiom.config"):
        log_generator_choice(s)
    assert "openai" in caplog.text and "OPENAI_API_KEY" in caplog.text
    assert "sk-test-abc" not in caplog.text


def test_generator_is_extractive_without_a_key(embedder, caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings(environ={})
    assert s.generation.resolved_provider == "extractive"
    assert isinstance(make_generator(s.generation, embedder), ExtractiveGenerator)
    with caplog.at_level(logging.INFO, logger="axiom.config"):
        log_generator_choice(s)
    assert "extractive" in caplog.text


def test_explicit_provider_beats_the_key() -> None:
    s = load_settings(environ={"OPENAI_API_KEY": "sk-test-abc", "LLM_PROVIDER": "extractive"})
    assert s.generation.resolved_provider == "extractive"
    assert load_settings(environ={"LLM_PROVIDER": "openai"}).generation.resolved_provider == "openai"


def test_redacted_masks_the_key_everywhere() -> None:
    s = load_settings(environ={"OPENAI_API_KEY": "sk-very-secret-987"})
    data = s.redacted()
    assert data["generation"]["api_key"] == "***"
    dumped = json.dumps(data)
    assert "sk-very-secret-987" not in dumped
    assert "sk-very-secret-987" not in repr(s) and "sk-very-secret-987" not in str(s)
    assert s.generation.api_key is not None
    assert s.generation.api_key.get_secret_value() == "sk-very-secret-987"
    # everything else survives redaction
    assert data["store"]["path"] == s.store.path
    assert data["chunking"] == {"chunk_size": 800, "chunk_overlap": 160}


def test_redacted_without_key_is_none() -> None:
    assert load_settings(environ={}).redacted()["generation"]["api_key"] is None
