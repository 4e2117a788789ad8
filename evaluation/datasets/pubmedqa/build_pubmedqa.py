"""Build the PubMedQA golden set and corpus from the shared PQA-L train/dev items (stdlib only).

    python evaluation/datasets/pubmedqa/build_pubmedqa.py [--source PATH] [--questions N] [--out DIR]

Reads the 500 PubMedQA PQA-L items that are not in the official test split (`qa.jsonl`, one object a line:
`id` (PMID), `question`, `contexts`, `context_labels`, `long_answer`, `final_decision`, `year`) and writes,
under DIR (default: this script's folder):

- `corpus/<PMID>.txt` for every item: each context section as its own paragraph, in order, then the
  conclusion (`long_answer`) as the last paragraph; paragraphs separated by one blank line, whitespace inside
  a paragraph collapsed to single spaces, UTF-8, ending with a newline, no title. `*.txt` files in `corpus/`
  that this run did not write are deleted.
- `golden.jsonl`: N questions (default 250): the items sorted by the sha256 hex digest of their PMID string
  (UTF-8), first N, in that order. Per item: `id` "pmqa-<PMID>", `question`, `reference` (the conclusion),
  `relevant_sources` ["<PMID>.txt"], `reference_contexts` (the paragraphs labelled exactly RESULTS, as written
  in the corpus file; the last context section when there is none), `metadata` {final_decision, year, pmid}.

The output depends only on the source file and N: re-running gives byte-identical files. Files whose content
is already right are not rewritten (their modification times stay).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "pubmedqa-pqal-traindev" / "qa.jsonl"
DEFAULT_QUESTIONS = 250
EVIDENCE_LABEL = "RESULTS"


class BuildError(Exception):
    """The source file is unusable; the message lists every problem."""


def normalise(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends."""
    return " ".join(text.split())


def read_items(source: Path) -> list[dict]:
    """The source items, validated (every problem reported at once)."""
    problems: list[str] = []
    items: list[dict] = []
    seen: set[str] = set()
    with source.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{source.name} line {number}"
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(item, dict):
                problems.append(f"{where}: not a JSON object")
                continue
            pmid = item.get("id")
            if not isinstance(pmid, str) or not pmid.isascii() or not pmid.isdigit():
                problems.append(f"{where}: 'id' must be a PMID (a string of digits), got {pmid!r}")
                continue
            if pmid in seen:
                problems.append(f"{where}: duplicate id {pmid!r}")
                continue
            seen.add(pmid)
            contexts, labels = item.get("contexts"), item.get("context_labels")
            if not (isinstance(contexts, list) and contexts
                    and all(isinstance(c, str) and c.strip() for c in contexts)):
                problems.append(f"{where}: 'contexts' must be a non-empty list of non-blank strings")
                continue
            if not (isinstance(labels, list) and len(labels) == len(contexts)
                    and all(isinstance(label, str) for label in labels)):
                problems.append(f"{where}: 'context_labels' must be a list of strings as long as 'contexts'")
                continue
            for name in ("question", "long_answer", "final_decision"):
                if not isinstance(item.get(name), str) or not item[name].strip():
                    problems.append(f"{where}: {name!r} must be a non-blank string")
            items.append(item)
    if not items and not problems:
        problems.append(f"{source}: no items")
    if problems:
        raise BuildError("\n".join(problems))
    return items


def abstract_paragraphs(item: dict) -> list[str]:
    return [normalise(c) for c in item["contexts"]] + [normalise(item["long_answer"])]


def evidence(item: dict) -> list[str]:
    """The RESULTS-labelled paragraphs, or the last context section when there is none."""
    contexts = [normalise(c) for c in item["contexts"]]
    found = [c for c, label in zip(contexts, item["context_labels"], strict=True)
             if label.strip().upper() == EVIDENCE_LABEL]
    return found or [contexts[-1]]


def selection_key(item: dict) -> str:
    return hashlib.sha256(item["id"].encode("utf-8")).hexdigest()


def golden_line(item: dict) -> str:
    pmid = item["id"]
    record = {
        "id": f"pmqa-{pmid}",
        "question": normalise(item["question"]),
        "reference": normalise(item["long_answer"]),
        "relevant_sources": [f"{pmid}.txt"],
        "reference_contexts": evidence(item),
        "metadata": {"final_decision": item["final_decision"], "year": item.get("year"), "pmid": pmid},
    }
    return json.dumps(record, ensure_ascii=False)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` (via a temporary file and a rename) unless it already holds exactly that."""
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def build(source: Path, out: Path, questions: int = DEFAULT_QUESTIONS) -> dict:
    items = read_items(source)
    if not 1 <= questions <= len(items):
        raise BuildError(f"--questions must be between 1 and {len(items)}, got {questions}")
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)

    written: set[str] = set()
    changed = 0
    for item in sorted(items, key=lambda it: int(it["id"])):
        name = f"{item['id']}.txt"
        text = "\n\n".join(abstract_paragraphs(item)) + "\n"
        changed += write_if_changed(corpus / name, text.encode("utf-8"))
        written.add(name)
    removed = 0
    for stale in sorted(corpus.glob("*.txt")):
        if stale.name not in written and stale.is_file():
            stale.unlink()
            removed += 1

    chosen = sorted(items, key=selection_key)[:questions]
    golden = "".join(golden_line(item) + "\n" for item in chosen)
    changed += write_if_changed(out / "golden.jsonl", golden.encode("utf-8"))
    return {"corpus_files": len(written), "questions": len(chosen), "files_changed": changed,
            "stale_files_removed": removed, "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="PubMedQA PQA-L train/dev qa.jsonl (default: %(default)s)")
    parser.add_argument("--questions", type=int, default=DEFAULT_QUESTIONS,
                        help="number of golden questions (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="output folder for golden.jsonl and corpus/ (default: this script's folder)")
    args = parser.parse_args(argv)
    try:
        summary = build(args.source, args.out, args.questions)
    except (BuildError, OSError) as exc:
        print(f"build_pubmedqa: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
