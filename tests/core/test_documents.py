"""Loaders: every bad file is skipped with its own reason while the good ones load."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from axiom.chunking import chunk_document
from axiom.documents import SourceFile, decode_text, discover, read_bytes
from axiom.errors import DocumentError
from tests.support.documents import load_documents

REPO = Path(__file__).resolve().parents[2]
EXTS = (".txt", ".md", ".pdf")


def make_pdf(*pages: str) -> bytes:
    """A real PDF with one text page per argument (an empty string gives a page without text)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def encrypt(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-pw")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def reasons(skipped: list) -> dict[str, str]:
    return {s.path: s.reason for s in skipped}


GOOD_TEXT = "A good file about lighthouses.\n\nIt has two paragraphs of ordinary text."


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """One folder holding good files and one of each kind of bad file."""
    root = tmp_path / "mixed"
    root.mkdir()
    good_pdf = make_pdf("First page talks about apples and orchards.", "Second page talks about bananas.")
    (root / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    (root / "good.md").write_text("# Title\n\nSome markdown body text.", encoding="utf-8")
    (root / "good.pdf").write_bytes(good_pdf)
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage that is not a pdf body\n%%EOF\n")
    (root / "no_header.pdf").write_bytes(b"this is plain text with a .pdf name")
    (root / "truncated.pdf").write_bytes(good_pdf[: len(good_pdf) // 2])
    (root / "encrypted.pdf").write_bytes(encrypt(good_pdf, "s3cret"))
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.md").write_bytes(b"  \n\t\r\n \n   ")
    (root / "nul_binary.txt").write_bytes(bytes(range(256)) * 8)
    # binary without any NUL byte: control characters and invalid UTF-8
    (root / "ctrl_binary.txt").write_bytes(bytes(b for b in range(1, 32) if b not in (9, 10, 12, 13)) * 40
                                           + b"\xff\xfe\x81" * 10)
    (root / "huge.txt").write_bytes(b"word " * 4000)  # 20,000 bytes
    return root


EXPECTED_SKIPS = {
    "corrupt.pdf": "corrupt PDF (",
    "no_header.pdf": "corrupt PDF (no %PDF header)",
    "truncated.pdf": "corrupt PDF (",
    "encrypted.pdf": "encrypted PDF (needs a password)",
    "empty.txt": "file is empty",
    "blank.md": "file holds only whitespace",
    "nul_binary.txt": "binary data (NUL bytes), not text",
    "ctrl_binary.txt": "binary data (control characters), not text",
    "huge.txt": "over max_file_size_mb=0.01",
}


def test_bad_files_are_skipped_with_specific_reasons_while_good_ones_load(mixed_folder: Path) -> None:
    docs, skipped = load_documents([mixed_folder], max_file_size_mb=0.01)
    assert sorted(d.source for d in docs) == ["good.md", "good.pdf", "good.txt"]
    got = reasons(skipped)
    assert set(got) == set(EXPECTED_SKIPS)
    for name, expected in EXPECTED_SKIPS.items():
        assert expected in got[name], (name, got[name])
    # a skipped-file reason is one line and JSON-serialisable (it goes into ingest reports)
    json.dumps([s.to_dict() for s in skipped])
    assert all("\n" not in s.reason for s in skipped)


def test_each_bad_file_alone_raises_document_error_naming_it(mixed_folder: Path) -> None:
    for name, expected in EXPECTED_SKIPS.items():
        docs, skipped = load_documents([mixed_folder / name], max_file_size_mb=0.01)
        assert docs == []
        assert [(s.path, expected in s.reason) for s in skipped] == [(name, True)]


def test_truncated_and_corrupt_pdf_reasons_name_the_parser_error(mixed_folder: Path) -> None:
    _, skipped = load_documents([mixed_folder])
    got = reasons(skipped)
    for name in ("corrupt.pdf", "truncated.pdf"):
        # "corrupt PDF (<ExceptionType>: <message>)": the user can tell what pypdf tripped on
        assert got[name].startswith("corrupt PDF (") and ":" in got[name], got[name]


def test_pdf_encrypted_with_an_empty_user_password_is_read(tmp_path: Path) -> None:
    path = tmp_path / "owner_only.pdf"
    path.write_bytes(encrypt(make_pdf("Readable although encrypted for editing."), ""))
    docs, skipped = load_documents([path])
    assert skipped == []
    assert "Readable although encrypted" in docs[0].text


def test_size_limit_is_inclusive_and_reports_size(tmp_path: Path) -> None:
    limit_bytes = int(0.01 * 1024 * 1024)
    (tmp_path / "at_limit.txt").write_bytes(b"a" * limit_bytes)
    (tmp_path / "over_limit.txt").write_bytes(b"a" * (limit_bytes + 1))
    docs, skipped = load_documents([tmp_path], max_file_size_mb=0.01)
    assert [d.source for d in docs] == ["at_limit.txt"]
    assert reasons(skipped) == {"over_limit.txt": "file is 10,486 bytes, over "
                                                  "max_file_size_mb=0.01 (10,485 bytes)"}


def test_size_reason_shows_a_size_above_the_limit(tmp_path: Path) -> None:
    (tmp_path / "just_over.txt").write_bytes(b"a" * (1024 * 1024 + 10_000))
    _, skipped = load_documents([tmp_path], max_file_size_mb=1)
    reason = reasons(skipped)["just_over.txt"]
    shown = int(reason.split("file is ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert shown == 1024 * 1024 + 10_000 > 1024 * 1024, reason


# -- unreadable files --------------------------------------------------------------------------------


@pytest.fixture
def world_traversable_dir() -> Iterator[Path]:
    """pytest's tmp_path lives under a 0700 folder that an unprivileged user cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="axiom-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unreadable_file_is_skipped_as_permission_denied(world_traversable_dir: Path) -> None:
    root = world_traversable_dir
    (root / "readable.txt").write_text("Anyone can read this file.")
    locked = root / "locked.txt"
    locked.write_text("Only the owner could read this, and not even the owner now.")
    locked.chmod(0o000)
    (root / "readable.txt").chmod(0o644)
    if os.access(locked, os.R_OK):
        # Running as root (or with CAP_DAC_OVERRIDE): mode 000 does not stop reads, so run the loader as an
        # unprivileged user in a subprocess. setpriv is util-linux, present on Debian; without it (or as
        # another user that can still read the file) this check is impossible and must fail loudly.
        setpriv = shutil.which("setpriv")
        assert os.geteuid() == 0 and setpriv, "cannot make a file unreadable for this user"
        script = (
            "import json, sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from tests.support.documents import load_documents\n"
            f"docs, skipped = load_documents([{str(root)!r}])\n"
            "print(json.dumps({'docs': [d.source for d in docs], 'skipped': [s.to_dict() for s in "
            "skipped]}))\n"
        )
        proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-c", script], capture_output=True, text=True, timeout=120, cwd="/")
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        docs, skipped = result["docs"], {s["path"]: s["reason"] for s in result["skipped"]}
    else:
        loaded, skipped_files = load_documents([root])
        docs, skipped = [d.source for d in loaded], reasons(skipped_files)
    assert docs == ["readable.txt"]
    assert skipped == {"locked.txt": "permission denied (file is not readable)"}


def test_directory_in_place_of_a_file_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "looks_like.txt"
    folder.mkdir()
    with pytest.raises(DocumentError) as info:
        read_bytes(SourceFile(folder, "looks_like.txt", tmp_path), 20)
    assert info.value.path == "looks_like.txt"
    assert info.value.reason == "cannot read file: Is a directory"


def test_missing_path_and_unsupported_explicit_file_are_reported(tmp_path: Path) -> None:
    odd = tmp_path / "slides.pptx"
    odd.write_text("not supported")
    docs, skipped = load_documents([tmp_path / "missing", odd])
    assert docs == []
    got = reasons(skipped)
    assert got[str(tmp_path / "missing")] == "does not exist"
    assert got[str(odd)].startswith("unsupported file type .pptx; supported: .md, .pdf, .txt")


# -- encodings and text normalisation -------------------------------------------------------------------


LATIN = "Café crème brûlée, naïve Zoë, Ångström, señor, œ-free, 25° ± 2, ½ price."


def test_latin1_text_is_ingested_with_accents_decoded(tmp_path: Path) -> None:
    (tmp_path / "legacy.txt").write_bytes(LATIN.replace("œ", "oe").encode("latin-1"))
    docs, skipped = load_documents([tmp_path])
    assert skipped == []
    assert docs[0].text == LATIN.replace("œ", "oe")


def test_cp1252_specials_are_decoded(tmp_path: Path) -> None:
    text = "“Smart quotes” – en dash, € euro, œuvre"
    (tmp_path / "win.txt").write_bytes(text.encode("cp1252"))
    docs, _ = load_documents([tmp_path])
    assert docs[0].text == text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_text_with_a_bom_is_decoded_and_the_bom_dropped(tmp_path: Path, encoding: str) -> None:
    text = "Grüße aus Köln – ünd ß, 東京."
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    (tmp_path / "bom.txt").write_bytes(bom + text.encode(encoding))
    docs, skipped = load_documents([tmp_path])
    assert skipped == []
    assert docs[0].text == text
    assert not docs[0].text.startswith("\ufeff")


def test_invalid_utf16_after_bom_is_reported() -> None:
    with pytest.raises(DocumentError) as info:
        decode_text(b"\xff\xfe" + "ok".encode("utf-16-le") + b"\x00\xd8", "odd.txt")  # lone surrogate
    assert "invalid utf-16 text" in info.value.reason


def test_crlf_and_cr_line_ends_are_normalised(tmp_path: Path) -> None:
    (tmp_path / "dos.txt").write_bytes(b"line one\r\nline two\r\n\r\nsecond paragraph\rold mac line\r\n")
    docs, _ = load_documents([tmp_path])
    assert docs[0].text == "line one\nline two\n\nsecond paragraph\nold mac line"
    assert "\r" not in docs[0].text
    # the paragraph break survives, so chunking still sees it
    chunks = chunk_document(docs[0], 30, 5)
    assert all("\r" not in c.text for c in chunks)
    assert any(c.text.startswith("second paragraph") or "\n\nsecond paragraph" in c.text for c in chunks)


# -- PDFs --------------------------------------------------------------------------------------------


def test_pdf_page_numbers_are_kept_through_chunking(tmp_path: Path) -> None:
    (tmp_path / "two.pdf").write_bytes(make_pdf("Apples grow in orchards on page one.",
                                                "Bananas grow on plantations on page two."))
    docs, skipped = load_documents([tmp_path])
    assert skipped == []
    (doc,) = docs
    assert [p.number for p in doc.pages] == [1, 2]
    assert "Apples" in doc.pages[0].text and "Bananas" in doc.pages[1].text
    chunks = chunk_document(doc, 200, 20)
    assert {c.page: c.text for c in chunks} == {1: doc.pages[0].text, 2: doc.pages[1].text}


def test_pdf_blank_pages_do_not_shift_page_numbers(tmp_path: Path) -> None:
    (tmp_path / "gap.pdf").write_bytes(make_pdf("Text on the first page.", "", "Text on the third page."))
    docs, _ = load_documents([tmp_path])
    assert [(p.number, p.text) for p in docs[0].pages] == [(1, "Text on the first page."),
                                                            (3, "Text on the third page.")]


def test_pdf_without_any_text_is_skipped_with_ocr_hint(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(make_pdf("", ""))
    docs, skipped = load_documents([tmp_path])
    assert docs == []
    assert "no extractable text" in reasons(skipped)["scan.pdf"]


# -- discovery: folders, extensions, symlinks -------------------------------------------------------------


def test_recursive_folders_hidden_entries_and_extensions(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "deep.md").write_text("Deep inside three folders.")
    (root / "a" / "mid.TXT").write_text("Upper-case extension still counts.")
    (root / "top.txt").write_text("At the top.")
    (root / "notes.docx").write_bytes(b"PK\x03\x04 not supported")
    (root / "README").write_text("no extension")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / ".hidden.txt").write_text("hidden file")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.txt").write_text("hidden folder")
    docs, skipped = load_documents([root])
    assert [d.source for d in docs] == ["a/b/c/deep.md", "a/mid.TXT", "top.txt"]
    assert skipped == []  # unsupported extensions inside a folder are ignored, not reported
    assert all(d.root == str(root.resolve()) for d in docs)


def test_only_the_configured_extensions_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("text file")
    (tmp_path / "b.md").write_text("markdown file")
    docs, _ = load_documents([tmp_path], extensions=[".md"])
    assert [d.source for d in docs] == ["b.md"]


def test_symlink_pointing_outside_the_root_is_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("Private text outside the ingest root.")
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.txt").write_text("Real text inside the root.")
    (root / "escape.txt").symlink_to(outside)
    (root / "inside_alias.txt").symlink_to(root / "real.txt")
    docs, skipped = load_documents([root])
    assert sorted(d.source for d in docs) == ["inside_alias.txt", "real.txt"]
    assert reasons(skipped) == {"escape.txt": "symlink points outside the ingest root"}
    assert all("Private" not in d.text for d in docs)


def test_file_symlink_loop_and_dangling_link_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("A normal file.")
    (tmp_path / "loop1.txt").symlink_to(tmp_path / "loop2.txt")
    (tmp_path / "loop2.txt").symlink_to(tmp_path / "loop1.txt")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "gone.md")
    docs, skipped = load_documents([tmp_path])
    assert [d.source for d in docs] == ["ok.txt"]
    assert reasons(skipped) == {"loop1.txt": "broken or looping symlink",
                                "loop2.txt": "broken or looping symlink",
                                "dangling.md": "broken or looping symlink"}


def test_directory_symlink_loop_is_not_followed_by_default(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "doc.md").write_text("Only one copy of this exists.")
    (root / "sub" / "back").symlink_to(root)
    files, skipped = discover([root], EXTS)
    assert [f.source for f in files] == ["sub/doc.md"]
    assert skipped == []


def test_directory_symlink_loop_is_cut_when_following_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "doc.md").write_text("Only one copy of this exists.")
    (root / "sub" / "back").symlink_to(root)
    files, skipped = discover([root], EXTS, follow_symlinks=True)
    assert [f.source for f in files] == ["sub/doc.md"]
    assert [s.reason for s in skipped] == ["symlink loop"]


def test_directory_symlink_into_the_tree_is_reported_when_following_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub" / "inner").mkdir(parents=True)
    (root / "sub" / "inner" / "doc.md").write_text("Inner document.")
    (root / "alias").symlink_to(root / "sub")
    files, skipped = discover([root], EXTS, follow_symlinks=True)
    assert [f.source for f in files] == ["sub/inner/doc.md"]
    assert [(Path(s.path).name, s.reason)
            for s in skipped] == [("alias", "symlink to a folder already ingested")]


def test_discovery_order_is_deterministic(tmp_path: Path) -> None:
    for name in ["zeta.txt", "alpha.md", "mid/beta.txt", "Mid2/gamma.md"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}")
    first, _ = discover([tmp_path], EXTS)
    second, _ = discover([tmp_path], EXTS)
    assert [f.source for f in first] == [f.source for f in second] == sorted(f.source for f in first)
