"""The one YAML-mapping loader (axiom/yaml_mapping.py) and its three users: config.yaml, an endpoint mapping
and a notebook parameters file are read without following links, with a size bound, parsed safely, must hold a
mapping, and every bad file is the caller's typed error naming the file (and the line of bad YAML)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from axiom.config import load_settings
from axiom.errors import AxiomError, ConfigError, UsageError
from axiom.evaluation.endpoint_config import load_endpoint_config
from axiom.notebook.parameters import load_params_file
from axiom.yaml_mapping import MAX_YAML_BYTES, load_yaml_mapping, parse_yaml_value

# (loader, the error class it raises, the words naming its kind of file)
LOADERS: dict[str, tuple[Callable[[Path], Any], type[AxiomError], str]] = {
    "config": (lambda path: load_settings(path, environ={}), ConfigError, "config file"),
    "endpoint": (lambda path: load_endpoint_config(path, environ={}), ConfigError, "endpoint config"),
    "params": (load_params_file, UsageError, "parameters file"),
}


def test_a_mapping_is_read_and_an_empty_file_is_empty(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("top_k: 3\nnested: {a: [1, 2]}\n")
    assert load_yaml_mapping(good, what="test file") == {"top_k": 3, "nested": {"a": [1, 2]}}
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_mapping(tmp_path / "empty.yaml", what="test file") == {}
    assert parse_yaml_value("3") == 3 and parse_yaml_value("[a, b]") == ["a", "b"]
    assert parse_yaml_value("[unclosed") == "[unclosed"  # not YAML: the text itself


@pytest.mark.parametrize("loader", list(LOADERS))
def test_every_bad_file_is_the_callers_typed_error_naming_the_file(tmp_path: Path, loader: str) -> None:
    load, error, what = LOADERS[loader]
    real = tmp_path / "real.yaml"
    real.write_text("a: 1\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    cases = {
        "bad.yaml": ("a: [1\n", "is not valid YAML at line 2, column 1: expected ',' or ']'"),
        "list.yaml": ("- a\n- b\n", "must hold a mapping"),
        "latin1.yaml": (b"a: caf\xe9\n", "is not UTF-8 text (byte 6)"),
        "big.yaml": ("a: " + "x" * MAX_YAML_BYTES + "\n", f"is larger than {MAX_YAML_BYTES} bytes"),
        "python.yaml": ("a: !!python/object/apply:os.system [echo hi]\n", "is not valid YAML at line 1"),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(error) as info:
            load(path)
        assert f"{what} {path} " in info.value.message and words in info.value.message, info.value.message
        assert "\n" not in info.value.message  # one line, whatever PyYAML said
    with pytest.raises(error) as info:
        load(link)
    assert f"{what} {link} is a symlink" in info.value.message, info.value.message
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(error, match="is a folder") if loader != "config" else pytest.raises(error):
        load(folder)  # (load_settings says first that no config *file* is there)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(error):  # refused at once: never blocks waiting for a writer
        load(fifo)


def test_missing_files_say_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for load, error, what in LOADERS.values():
        with pytest.raises(error, match=f"{what} {missing} does not exist"):
            load(missing)
