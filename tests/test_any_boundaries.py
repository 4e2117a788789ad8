"""`Any` only at real boundaries (issue 28, item 6), enforced on the source of `axiom/`.

Every `Any` outside an import line is one of:
- json: inside `dict[str, Any]`, a JSON document (the values are whatever JSON holds);
- marked: on a line whose trailing comment names the boundary (`# boundary: chromadb metadata`), i.e. a value
  that comes from or goes to JSON or an untyped third-party API (chromadb, ragas, torch, pandas, FastAPI);
- unmarked: anything else, which should be a precise type (a class, a Protocol, a TypeVar, `object`, ...).
No module has an unmarked `Any`. Run this file (`python tests/test_any_boundaries.py`) for the counts per
module."""

from __future__ import annotations

import io
import re
import tokenize
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "axiom"

JSON_DICT = re.compile(r"dict\[str, Any\]")
MARK = re.compile(r"#.*\bboundary\b")


def any_uses(source: str) -> Counter[str]:
    """How many `Any` of `source` (outside import statements) are json, marked or unmarked."""
    kinds: Counter[str] = Counter()
    lines = source.splitlines()
    in_import = False
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        starts_import = token.string in {"import", "from"} and token.line.lstrip().startswith(token.string)
        if token.type == tokenize.NAME and starts_import:
            in_import = True
        elif token.type == tokenize.NEWLINE:
            in_import = False
        if token.type != tokenize.NAME or token.string != "Any" or in_import:
            continue
        line = lines[token.start[0] - 1]
        column = token.start[1]
        if any(m.start() <= column < m.end() for m in JSON_DICT.finditer(line)):
            kinds["json"] += 1
        elif MARK.search(line):
            kinds["marked"] += 1
        else:
            kinds["unmarked"] += 1
    return kinds


def counts() -> dict[str, Counter[str]]:
    return {str(path.relative_to(REPO)): any_uses(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_the_counter_tells_json_marked_and_unmarked_apart() -> None:
    source = ("from typing import Any, cast\n"
              "def f(doc: dict[str, Any], x: Any) -> list[Any]:  # boundary: ragas\n"
              "    return cast(Any, doc)\n"
              "def g(y: Any) -> None: ...\n")
    assert any_uses(source) == Counter(json=1, marked=2, unmarked=2)


def test_no_module_has_an_unmarked_any() -> None:
    found = counts()
    assert len(found) > 100 and sum(k["json"] + k["marked"] for k in found.values()) > 0  # read the package
    unmarked = {path: kinds["unmarked"] for path, kinds in found.items() if kinds["unmarked"]}
    assert unmarked == {}, "type these precisely, or mark a real boundary with `# boundary: <which>`"


def _row(kinds: Counter[str]) -> str:
    return f"json {kinds['json']:3}  marked {kinds['marked']:3}  unmarked {kinds['unmarked']:3}"


if __name__ == "__main__":
    found = counts()
    total: Counter[str] = Counter()
    for path, kinds in found.items():
        total += kinds
        if kinds:
            print(f"{path:60} {_row(kinds)}")
    print(f"{'total':60} {_row(total)}")
