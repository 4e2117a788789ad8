"""Checks of the container and environment files that need no Docker engine (fast, part of every run).

- environment.yml installs exactly the requirements of pyproject.toml, with the same pins.
- docker-compose.yml pins the ChromaDB server image to the version of the chromadb client.
- env.example names every variable the stack reads: the settings' ENV_VARS and every ${VAR} in the compose
  file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from axiom.config import ENV_VARS

REPO = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _by_name(lines: list[str]) -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"{req.name} is listed twice"
        out[name] = req
    return out


def _environment_pip() -> tuple[list[str], list[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    entries = [str(e).strip() for e in pip_sections[0]]
    options = [e for e in entries if e.startswith("-")]
    return [e for e in entries if not e.startswith("-")], options


def test_environment_yml_pins_match_pyproject() -> None:
    project = _pyproject()["project"]
    wanted = _by_name(project["dependencies"] + project["optional-dependencies"]["dev"])
    reqs, options = _environment_pip()
    listed = _by_name(reqs)

    missing = sorted(set(wanted) - set(listed))
    extra = sorted(set(listed) - set(wanted))
    differ = sorted(
        f"{name}: pyproject {wanted[name].specifier or '(any)'} vs environment.yml "
        f"{listed[name].specifier or '(any)'}"
        for name in set(wanted) & set(listed)
        if (SpecifierSet(str(wanted[name].specifier)), wanted[name].extras, wanted[name].marker)
        != (SpecifierSet(str(listed[name].specifier)), listed[name].extras, listed[name].marker)
    )
    assert not (missing or extra or differ), (
        "environment.yml and pyproject.toml disagree:\n"
        + "".join(f"  missing from environment.yml: {m}\n" for m in missing)
        + "".join(f"  not in pyproject.toml: {e}\n" for e in extra)
        + "".join(f"  {d}\n" for d in differ)
    )
    assert any(o in ("--editable .", "-e .")
               for o in options), "environment.yml must install the project itself"


def test_environment_yml_python_matches_requires_python() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\b", d)]
    assert len(pythons) == 1, "environment.yml must pin python once"
    version = pythons[0].split("=", 1)[1].lstrip("=")
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert requires.contains(version + ".0") and requires.contains(version + ".99"), (
        f"environment.yml python={version} vs requires-python {requires}")


def test_environment_yml_torch_is_the_cpu_build() -> None:
    reqs, options = _environment_pip()
    assert any("download.pytorch.org/whl/cpu" in o for o in options), "torch must come from the CPU index"
    torch = _by_name(reqs)["torch"]
    assert [s.operator
            for s in torch.specifier] == ["=="], "an open torch requirement resolves to a CUDA build"


def test_dockerfile_torch_matches_pyproject() -> None:
    pinned = _by_name(_pyproject()["project"]["dependencies"])["torch"].specifier
    match = re.search(r"^ARG TORCH_VERSION=(\S+)", (REPO / "Dockerfile").read_text(encoding="utf-8"), re.M)
    assert match and SpecifierSet(f"=={match.group(1)}") == pinned, f"Dockerfile torch vs pyproject {pinned}"


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def test_chroma_image_matches_the_python_client() -> None:
    image = _compose()["services"]["chromadb"]["image"]
    pinned = _by_name(_pyproject()["project"]["dependencies"])["chromadb"].specifier
    versions = [s.version for s in pinned if s.operator == "=="]
    assert versions, "pyproject.toml must pin chromadb with == so the server image can match it"
    assert image == f"chromadb/chroma:{versions[0]}", f"{image} does not match chromadb=={versions[0]}"


def _env_example_names() -> set[str]:
    text = (REPO / "env.example").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Z][A-Z0-9_]*)=", text, re.M)}


# Set by docker-compose.yml itself (the chromadb service), or meaningless in a container (the embedded store).
NOT_IN_ENV_EXAMPLE = {"CHROMA_HOST": "compose", "CHROMA_PORT": "compose",
                      "CHROMA_PATH": "embedded store only"}


@pytest.mark.parametrize("name", sorted(ENV_VARS))
def test_env_example_names_every_setting(name: str) -> None:
    if NOT_IN_ENV_EXAMPLE.get(name) == "compose":
        assert name in _compose()["x-axiom-environment"], f"docker-compose.yml must set {name}"
    elif name not in NOT_IN_ENV_EXAMPLE:
        assert name in _env_example_names(), f"env.example lacks {name} (a setting in axiom.config.ENV_VARS)"


def test_env_example_names_every_compose_variable() -> None:
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used, "no ${VAR} found in docker-compose.yml"
    missing = sorted(used - _env_example_names())
    assert not missing, f"docker-compose.yml reads {missing} but env.example does not list them"


def test_env_example_has_no_values_for_secrets() -> None:
    values = dict(
        line.split("=", 1) for line in (REPO / "env.example").read_text(encoding="utf-8").splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    for name in ("OPENAI_API_KEY", "AXIOM_API_KEYS", "JUPYTER_TOKEN", "RAY_AUTH_TOKEN"):
        assert values.get(name) == "", f"env.example must not ship a value for {name}"
