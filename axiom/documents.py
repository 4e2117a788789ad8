"""Load `.txt`, `.md` and `.pdf` files into `Document`s; unreadable files are reported, never fatal."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from axiom.errors import DocumentError
from axiom.types import Document, Page, SkippedFile

log = logging.getLogger(__name__)

# Encodings tried in order for text files. UTF-8 first (with or without BOM), then UTF-16 when a BOM says so,
# then cp1252/Latin-1 for legacy files. Latin-1 decodes any byte string, so binary data is caught beforehand.
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


@dataclass(frozen=True)
class SourceFile:
    """A file found under an ingest root."""

    path: Path  # absolute
    source: str  # relative to root, POSIX separators
    root: Path


def discover(paths: Iterable[str | os.PathLike[str]], extensions: Iterable[str], *, follow_symlinks: bool = False
             ) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Find the files to ingest under each path (files or folders, recursive), sorted for determinism."""
    exts = {e.lower() for e in extensions}
    found: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    for raw in paths:
        given = Path(raw)
        if not given.exists():
            skipped.append(SkippedFile(str(raw), "does not exist"))
            continue
        if given.is_file():
            root = given.resolve().parent
            path = given.resolve()
            if path.suffix.lower() not in exts:
                skipped.append(SkippedFile(str(raw), f"unsupported file type {path.suffix or '(none)'}; "
                                                     f"supported: {', '.join(sorted(exts))}"))
                continue
            found.append(SourceFile(path, path.name, root))
            continue
        root = given.resolve()
        visited: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks, onerror=None):
            base = Path(dirpath)
            real = base.resolve()
            if real in visited:  # a directory link back into the tree would loop forever
                loop = real == root or real in base.parents or real in root.parents
                skipped.append(SkippedFile(base.relative_to(root).as_posix(),
                                           "symlink loop" if loop else "symlink to a folder already ingested"))
                dirnames[:] = []
                continue
            visited.add(real)
            # real folders before links, so a file reached both ways keeps its real path
            dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")),
                                 key=lambda d: ((base / d).is_symlink(), d))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = base / name
                if path.suffix.lower() not in exts:
                    continue
                rel = path.relative_to(root).as_posix()
                if path.is_symlink():
                    try:
                        target = path.resolve(strict=True)
                    except (OSError, RuntimeError):
                        skipped.append(SkippedFile(rel, "broken or looping symlink"))
                        continue
                    if not follow_symlinks and root not in target.parents:
                        skipped.append(SkippedFile(rel, "symlink points outside the ingest root"))
                        continue
                found.append(SourceFile(path, rel, root))
    unique = {(str(f.root), f.source): f for f in found}  # a file given twice is ingested once
    return sorted(unique.values(), key=lambda f: (str(f.root), f.source)), skipped


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(file: SourceFile, max_file_size_mb: float) -> bytes:
    """Read a file's bytes, refusing files over the size limit. Raises DocumentError."""
    try:
        size = file.path.stat().st_size
    except OSError as exc:
        raise DocumentError(file.source, f"cannot stat file: {exc.strerror}") from exc
    limit = int(max_file_size_mb * 1024 * 1024)
    if size > limit:
        raise DocumentError(file.source, f"file is {size:,} bytes, over max_file_size_mb={max_file_size_mb:g} "
                                         f"({limit:,} bytes)")
    if size == 0:
        raise DocumentError(file.source, "file is empty")
    try:
        return file.path.read_bytes()
    except PermissionError as exc:
        raise DocumentError(file.source, "permission denied (file is not readable)") from exc
    except OSError as exc:
        raise DocumentError(file.source, f"cannot read file: {exc.strerror}") from exc


def decode_text(data: bytes, source: str) -> str:
    """Decode text bytes: UTF-8 / UTF-16 (with BOM) / legacy single-byte encodings. Rejects binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DocumentError(source, f"invalid {encoding} text at byte {exc.start}") from exc
    if b"\x00" in data[:8192]:
        raise DocumentError(source, "binary data (NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    control = sum(1 for b in data[:8192] if b < 32 and b not in (9, 10, 12, 13))
    if control > max(1, len(data[:8192]) // 100):
        raise DocumentError(source, "binary data (control characters), not text")
    try:
        text = data.decode("cp1252")
        log.info("%s: not UTF-8, decoded as cp1252", source)
        return text
    except UnicodeDecodeError:
        log.info("%s: not UTF-8, decoded as latin-1", source)
        return data.decode("latin-1")


def _pdf_pages(data: bytes, source: str) -> list[Page]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # pypdf raises several types for unsupported crypto
                raise DocumentError(source, f"encrypted PDF ({exc})") from exc
            if not ok:
                raise DocumentError(source, "encrypted PDF (needs a password)")
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                pages.append(Page(number, text))
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentError(source, f"corrupt PDF ({type(exc).__name__}: {exc})") from exc
    if not pages:
        raise DocumentError(source, "PDF has no extractable text (scanned images need OCR)")
    return pages


def parse(file: SourceFile, data: bytes, content_hash: str) -> Document:
    """Turn a file's bytes into a Document. Raises DocumentError with the reason."""
    if file.path.suffix.lower() == ".pdf":
        if not data.startswith(b"%PDF"):
            raise DocumentError(file.source, "corrupt PDF (no %PDF header)")
        pages = tuple(_pdf_pages(data, file.source))
    else:
        text = decode_text(data, file.source).replace("\r\n", "\n").replace("\r", "\n").strip()
        if not text:
            raise DocumentError(file.source, "file holds only whitespace")
        pages = (Page(None, text),)
    return Document(source=file.source, pages=pages, content_hash=content_hash, root=str(file.root))


def load_documents(paths: Iterable[str | os.PathLike[str]], *, max_file_size_mb: float = 20.0,
                   extensions: Iterable[str] = (".txt", ".md", ".pdf")
                   ) -> tuple[list[Document], list[SkippedFile]]:
    """Load every readable file under `paths`; return the documents and the skipped files with reasons."""
    files, skipped = discover(paths, extensions)
    docs: list[Document] = []
    for file in files:
        try:
            data = read_bytes(file, max_file_size_mb)
            docs.append(parse(file, data, sha256_bytes(data)))
        except DocumentError as exc:
            skipped.append(SkippedFile(exc.path, exc.reason))
    return docs, skipped


