"""What a new user copies in the first hour: env.example and README keep the offline setup offline (no
placeholder OPENAI_API_KEY that would switch the generator and the judge to OpenAI), the README's commands
work as written (full URLs for curl) and name every settings section, and BENCHMARKS.md names the vendored
data."""

from __future__ import annotations

import re

from axiom.config import PIISettings, ServiceSettings, Settings, load_settings
from axiom.evaluation.answer_metrics.judge import judge_config
from tests.evaluation.helpers import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / "env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def test_env_example_is_offline_even_with_a_placeholder_key() -> None:
    env = {k: v for k, v in _env_example().items()
           if k in ("LLM_PROVIDER", "EVAL_LLM_MODEL", "EVAL_LLM_BASE_URL")}
    assert env["LLM_PROVIDER"] == "extractive"
    settings = load_settings(REPO / "config.yaml", environ={**env, "OPENAI_API_KEY": "placeholder"})
    assert settings.generation.resolved_provider == "extractive"
    assert judge_config(settings) is None  # no LLM-judged metrics against api.openai.com with a fake key
    text = (REPO / "env.example").read_text(encoding="utf-8")
    lines = text.split("\nLLM_PROVIDER=", 1)[0].splitlines()
    comment = []
    while lines and lines[-1].startswith("#"):
        comment.insert(0, lines.pop())
    said = " ".join(comment)
    assert "openai" in said and "extractive" in said and "OPENAI_API_KEY" in said, said


def test_readme_does_not_suggest_a_placeholder_key() -> None:
    assert "placeholder" not in README.lower()
    assert "LLM_PROVIDER=extractive" in README


def test_readme_urls_are_complete() -> None:
    """`curl :5000/health` is not a URL for curl: every port in the README follows a host."""
    bare = [m.group(0) for m in re.finditer(r"(?<![\w.\]])(:\d{2,5})\b", README)]
    assert bare == [], bare
    for command in README.replace("\\\n", " ").splitlines():  # continued lines joined
        if command.lstrip().startswith("curl "):
            assert re.search(r"https?://[\w.\[\]:-]+:\d+/", command), command


def test_readme_documents_every_settings_section() -> None:
    config = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for section in Settings.model_fields:
        assert f"`{section}`" in config, section
    for section, model in (("service", ServiceSettings), ("pii", PIISettings)):
        for key in model.model_fields:
            assert f"`{section}.{key}`" in config, f"{section}.{key}"


def test_benchmarks_names_the_vendored_data() -> None:
    text = (REPO / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert (
        "`tests/fixtures/pubmedqa-beir`" in text
        and (REPO / "tests/fixtures/pubmedqa-beir/corpus.jsonl").is_file()
    )
    for path in re.findall(r"`(tests/[\w./-]+)`", text):
        assert (REPO / path).exists(), path
    assert "(`tests/bench`" not in text
