"""Load `.txt`, `.md` and `.pdf` files into `Document`s; unreadable files are reported, never fatal."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from axiom.errors import DocumentError
from axiom.types import Document, Page, SkippedFile

log = logging.getLogger(__name__)

# Encodings tried in order for text files. UTF-8 first (with or without BOM), then UTF-16 when a BOM says so,
# then cp1252/Latin-1 for legacy files. Latin-1 decodes any byte string, so binary data is caught beforehand.
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))

# Reading opens the file once and checks the open descriptor, so what is checked is what is read (no check/read
# race): O_NOFOLLOW refuses a symlink swapped in for a checked file, O_NONBLOCK keeps a FIFO from blocking the
# open. Folders on the way are opened with O_PATH where it exists: a lookup needs only search permission, as a
# path walk does.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _O_CLOEXEC
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | _O_NOFOLLOW | _O_CLOEXEC
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK, errno.ENOTDIR}  # what O_NOFOLLOW / O_DIRECTORY give for a link
_READ_CHUNK = 1 << 20
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class SourceFile:
    """A file found under an ingest root."""

    path: Path  # absolute
    source: str  # relative to root, POSIX separators
    root: Path
    target: Path | None = None  # a symlink's target as discovery resolved (and checked) it: what is read
    confined: bool = True  # read through real folders under `root` only (False when following symlinks)


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
            found.append(SourceFile(path, path.name, root, confined=not follow_symlinks))
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
                target = None
                if path.is_symlink():
                    try:
                        target = path.resolve(strict=True)
                    except (OSError, RuntimeError):
                        skipped.append(SkippedFile(rel, "broken or looping symlink"))
                        continue
                    if not follow_symlinks and root not in target.parents:
                        skipped.append(SkippedFile(rel, "symlink points outside the ingest root"))
                        continue
                found.append(SourceFile(path, rel, root, target, confined=not follow_symlinks))
    unique = {(str(f.root), f.source): f for f in found}  # a file given twice is ingested once
    return sorted(unique.values(), key=lambda f: (str(f.root), f.source)), skipped


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(file: SourceFile, max_file_size_mb: float) -> bytes:
    """Read a file's bytes, refusing files over the size limit. Raises DocumentError.

    What is read is what discovery checked: the file is opened once, without following a symlink swapped in
    for it (a link discovery resolved is read at its checked target) and, unless symlinks are followed, only
    through real folders under its root; without blocking. Only a regular file is read; its size is checked on
    the open descriptor and at most limit + 1 bytes are read, so a file that grows meanwhile is refused too.
    """
    limit = int(max_file_size_mb * 1024 * 1024)
    fd = _open_checked(file)
    try:
        info = os.fstat(fd)
        _require_regular(file, info.st_mode)
        if info.st_size > limit:
            raise DocumentError(file.source, f"file is {info.st_size:,} bytes, over max_file_size_mb="
                                             f"{max_file_size_mb:g} ({limit:,} bytes)")
        if info.st_size == 0:
            raise DocumentError(file.source, "file is empty")
        data = _read_at_most(fd, limit + 1, file.source)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise DocumentError(file.source, f"file grew past max_file_size_mb={max_file_size_mb:g} ({limit:,} bytes) "
                                         "while being read")
    if not data:
        raise DocumentError(file.source, "file is empty")
    return data


def _open_checked(file: SourceFile) -> int:
    """A read-only descriptor on the file discovery checked; DocumentError naming the file otherwise."""
    where = file.target or file.path
    try:
        if file.confined and os.open in os.supports_dir_fd:
            return _open_under(file.root, where, file.source)
        return os.open(where, _READ_FLAGS)
    except PermissionError as exc:
        raise DocumentError(file.source, "permission denied (file is not readable)") from exc
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            swapped = _symlink_on_the_way(file.root if file.confined else where.parent, where)
            if swapped is not None:
                raise DocumentError(file.source, f"{swapped} was replaced by a symlink after it was checked; "
                                                 "not followed") from exc
        raise DocumentError(file.source, f"cannot read file: {exc.strerror}") from exc


def _open_under(root: Path, where: Path, source: str) -> int:
    """Open `where` by walking down from `root`, refusing a symlink at every step (openat + O_NOFOLLOW)."""
    try:
        parts = where.relative_to(root).parts
    except ValueError:
        raise DocumentError(source, "is not under its ingest root") from None
    if not parts:
        raise DocumentError(source, "cannot read file: Is a directory")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], _READ_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def _symlink_on_the_way(base: Path, where: Path) -> str | None:
    """For the error message only: 'the file' or 'folder x' if that part of `where` below `base` is a link now."""
    try:
        parts = where.relative_to(base).parts
    except ValueError:
        return None
    for depth in range(1, len(parts) + 1):
        if Path(base, *parts[:depth]).is_symlink():
            return "the file" if depth == len(parts) else f"folder {'/'.join(parts[:depth])}"
    return None


def _require_regular(file: SourceFile, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise DocumentError(file.source, f"cannot read file: {os.strerror(errno.EISDIR)}")
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "an unknown kind of file")
    raise DocumentError(file.source, f"not a regular file ({kind}); only regular files are read")


def _read_at_most(fd: int, most: int, source: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total < most:
        try:
            chunk = os.read(fd, min(_READ_CHUNK, most - total))
        except OSError as exc:
            raise DocumentError(source, f"cannot read file: {exc.strerror}") from exc
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


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
