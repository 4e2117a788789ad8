"""Bad input files, through the real `axiom ingest` (a subprocess; as an unprivileged user when the tests run
as root, so that a file without read permission really is unreadable): every bad file is a DocumentError that
names it, the command still exits 0 and reports it, and the store holds exactly the chunks of the good files,
no more, no fewer, also after a second run.

The loader-level cases (each reason string, size limit edges, encodings, link loops) are in
tests/core/test_documents.py; this module adds the end-to-end view: exit code, JSON report, store contents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axiom.chunking import chunk_document
from axiom.cli import main
from axiom.config import load_settings
from axiom.documents import discover, parse, read_bytes, sha256_bytes
from axiom.errors import DocumentError
from tests.core.test_documents import encrypt, make_pdf
from tests.evaluation.helpers import clean_env, write_config
from tests.reliability.conftest import run_cli, store_snapshot
from tests.support.documents import load_documents

pytestmark = pytest.mark.usefixtures("restore_logging")  # main() configures the root logger

LIMIT_MB = 0.05  # 52,428 bytes
LATIN = "Café crème brûlée, naïve Zoë, Ångström, señor, 25° ± 2."
GOOD_PDF_TEXT = ("Lighthouse keepers trimmed the wick every night.", "The Fresnel lens focused the light.")

# name -> (bytes, the start of the skip reason); the permission and link cases are built in the fixture
BAD = {
    "corrupt.pdf": "corrupt PDF (",
    "truncated.pdf": "corrupt PDF (",
    "encrypted.pdf": "encrypted PDF (needs a password)",
    "empty.txt": "file is empty",
    "binary.txt": "binary data (NUL bytes), not text",
    "huge.txt": "file is 60,000 bytes, over max_file_size_mb=0.05 (52,428 bytes)",
    "locked.txt": "permission denied (file is not readable)",
    "loop1.txt": "broken or looping symlink",
    "loop2.txt": "broken or looping symlink",
}
GOOD = ["good.md", "good.pdf", "good.txt", "latin1.txt", "sub/doc.md", "utf16.txt"]


def build_matrix_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    pdf = make_pdf(*GOOD_PDF_TEXT)
    (root / "good.txt").write_text("Keepers logged the weather.\n\nThey painted the tower every spring.")
    (root / "good.md").write_text("# Foghorns\n\nA foghorn sounds when the light cannot be seen.")
    (root / "good.pdf").write_bytes(pdf)
    (root / "latin1.txt").write_bytes(LATIN.encode("latin-1"))
    (root / "utf16.txt").write_bytes(("UTF-16 text about the Pharos of Alexandria. "
                                      + LATIN).encode("utf-16"))
    (root / "sub").mkdir()
    (root / "sub" / "doc.md").write_text("Only one copy of this exists, although a link loops back.")
    (root / "sub" / "back").symlink_to(root)  # a folder link loop: not followed, not ingested twice
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage that is not a pdf body\n%%EOF\n")
    (root / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (root / "encrypted.pdf").write_bytes(encrypt(pdf, "s3cret"))
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 16)
    (root / "huge.txt").write_bytes(b"word " * 12_000)
    (root / "locked.txt").write_text("Nobody may read this.")
    (root / "locked.txt").chmod(0o000)
    (root / "loop1.txt").symlink_to(root / "loop2.txt")
    (root / "loop2.txt").symlink_to(root / "loop1.txt")
    for path in root.rglob("*"):
        if not path.is_symlink() and path.name != "locked.txt":
            path.chmod(0o777 if path.is_dir() else 0o644)
    return root


def expected_ids(root: Path) -> set[str]:
    """Chunk ids of the good files, computed in this process from discovery, the loader and the chunker."""
    files, _ = discover([root], [".txt", ".md", ".pdf"])
    good = [f for f in files if f.source in GOOD]
    assert sorted(f.source for f in good) == GOOD
    ids: set[str] = set()
    for f in good:
        data = read_bytes(f, LIMIT_MB)
        ids |= {c.id for c in chunk_document(parse(f, data, sha256_bytes(data)), 800, 160)}
    return ids


@pytest.mark.parametrize("name", [n for n in BAD if n != "locked.txt"])
def test_each_bad_file_is_a_document_error_naming_it(shared_tmp: Path, name: str) -> None:
    root = build_matrix_folder(shared_tmp / "files")
    files, skipped = discover([root], [".txt", ".md", ".pdf"])
    if name.startswith("loop"):
        assert {s.path: s.reason for s in skipped}[name] == BAD[name]
        return
    file = next(f for f in files if f.source == name)
    with pytest.raises(DocumentError) as info:
        data = read_bytes(file, LIMIT_MB)
        parse(file, data, sha256_bytes(data))
    assert info.value.path == name
    assert info.value.reason.startswith(BAD[name]), info.value.reason
    assert str(info.value).startswith(f"{name}: ")
    assert "\n" not in info.value.reason


def test_cli_ingest_skips_exactly_the_bad_files_and_stores_exactly_the_good_ones(shared_tmp: Path) -> None:
    root = build_matrix_folder(shared_tmp / "files")
    config = write_config(shared_tmp / "work", ingest={"max_file_size_mb": LIMIT_MB})
    config.chmod(0o644)
    config.parent.chmod(0o777)  # the unprivileged ingest writes its store here
    env = {"HOME": str(shared_tmp / "work"), "LOG_LEVEL": "WARNING"}
    first = run_cli(["--config", str(config), "ingest", str(root), "--json"], env=env, as_unprivileged=True)
    assert first.code == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    skipped = {s["path"]: s["reason"] for s in report["files_skipped"]}
    assert set(skipped) == set(BAD), skipped
    for name, reason in BAD.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
    assert sorted(report["files_ingested"]) == GOOD

    clean = expected_ids(root)
    settings = load_settings(config, environ={})
    stored = store_snapshot(settings)
    assert set(stored) == clean  # nothing half-written, nothing of a bad file, nothing missing
    assert report["chunks_total"] == report["chunks_added"] == len(clean)
    assert {row["source"] for row in stored.values()} == set(GOOD)
    assert any("Ångström" in (row["text"] or "") for row in stored.values() if row["source"] == "latin1.txt")
    assert all(not (row["text"] or "").startswith("\ufeff") for row in stored.values())



def ingest_in_process(config: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    """`axiom ingest --json` through the CLI's own `main` (in this process: torch is already imported)."""
    capsys.readouterr()
    code = main(["--config", str(config), "ingest", str(root), "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def test_a_thousand_tiny_files_are_all_ingested_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    root = tmp_path / "many"
    for i in range(1000):
        folder = root / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.txt").write_text(f"Tiny note number {i} about beacon {i * 7 % 13}.")
    config = write_config(tmp_path / "work")
    code, report = ingest_in_process(config, root, capsys)
    assert code == 0
    assert len(report["files_ingested"]) == 1000 and report["files_skipped"] == []
    assert report["chunks_total"] == report["chunks_added"] == 1000
    stored = store_snapshot(load_settings(config, environ={}))
    assert len(stored) == 1000 and len({row["source"] for row in stored.values()}) == 1000
    code, again = ingest_in_process(config, root, capsys)
    assert code == 0 and again["chunks_added"] == again["chunks_removed"] == 0
    assert len(again["files_unchanged"]) == 1000
    assert store_snapshot(load_settings(config, environ={})) == stored


def test_a_one_megabyte_single_line_is_ingested_completely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """1 MB without a line break: chunked by the word rule. chunk_size 20,000 keeps the embedding cost small
    (the model reads 256 tokens of each chunk); the default size is checked for speed in
    tests/core/test_chunking.py."""
    clean_env(monkeypatch)
    root = tmp_path / "line"
    root.mkdir()
    line = " ".join(f"beacon{i % 997}w{i % 89}" for i in range(100_000))
    (root / "one_line.txt").write_text(line[:1_048_576].rsplit(" ", 1)[0])
    assert (root / "one_line.txt").stat().st_size > 1_000_000
    config = write_config(tmp_path / "work", chunking={"chunk_size": 20_000, "chunk_overlap": 500})
    code, report = ingest_in_process(config, root, capsys)
    assert code == 0
    doc = load_documents([root])[0][0]
    assert "\n" not in doc.text
    chunks = chunk_document(doc, 20_000, 500)
    assert report["files_ingested"] == ["one_line.txt"] and report["chunks_total"] == len(chunks) > 50
    stored = store_snapshot(load_settings(config, environ={}))
    assert set(stored) == {c.id for c in chunks}
    assert sum(c.end - c.start for c in chunks) >= len(doc.text)  # every character is in some chunk
