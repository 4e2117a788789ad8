"""Load `.txt`, `.md` and `.pdf` files into `Document`s; unreadable files are reported, never fatal.

Discovery opens each ingest root once and walks it by descriptor (`axiom.source_tree`); with `within` (the
service's open data root) every requested path is resolved beneath that descriptor too, so nothing is ever
reached by re-resolving a path string, and a file or folder swapped for a link out of the root is refused
whenever the swap happens. `read_bytes` opens each file from its root's descriptor, through real folders only.
With `ingest.follow_symlinks` (the CLI only) links are followed by path, out of the root too, as
configured."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from axiom.errors import DocumentError
from axiom.source_tree import LINK_ERRNOS, LIST_FLAGS, LOOPING, MISSING, OUTSIDE, READ_FLAGS, RootDir, entries
from axiom.types import Document, Page, SkippedFile

log = logging.getLogger(__name__)

# Encodings tried in order for text files. UTF-8 first (with or without BOM), then UTF-16 when a BOM says so,
# then cp1252/Latin-1 for legacy files. Latin-1 decodes any byte string, so binary data is caught beforehand.
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))

_READ_CHUNK = 1 << 20
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))
_OUTSIDE_DATA_ROOT = "is outside the data root"


@dataclass(frozen=True)
class SourceFile:
    """A file found under an ingest root."""

    path: Path  # absolute (for names only: never opened by this path while confined)
    source: str  # relative to root, POSIX separators
    root: Path
    target: Path | None = None  # a symlink's target as discovery resolved (and checked) it: what is read
    confined: bool = True  # read through real folders under `root` only (False when following symlinks)
    # the open ingest root the file is read beneath, and the real names below it that are read
    anchor: RootDir | None = field(default=None, compare=False, repr=False)
    parts: tuple[str, ...] = ()


@dataclass
class Sources:
    """What discovery found: the files, the paths skipped (with reasons), the real paths of the folders
    given."""

    files: list[SourceFile]
    skipped: list[SkippedFile]
    folders: list[Path]


def discover(paths: Iterable[str | os.PathLike[str]], extensions: Iterable[str], *,
             follow_symlinks: bool = False,
             within: RootDir | None = None) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Find the files to ingest under each path (files or folders, recursive), sorted for determinism."""
    found = find_sources(paths, extensions, follow_symlinks=follow_symlinks, within=within)
    return found.files, found.skipped


def find_sources(paths: Iterable[str | os.PathLike[str]], extensions: Iterable[str], *,
                 follow_symlinks: bool = False, within: RootDir | None = None) -> Sources:
    """`discover`, with the folders given. Without `follow_symlinks` each folder (or the folder of a file
    given alone) is opened once and walked by descriptor (`axiom.source_tree`); `within` (the service's open
    data root): every path is resolved beneath it, never by its path string, and symlinks are never followed
    out."""
    exts = {e.lower() for e in extensions}
    found = Sources([], [], [])
    anchors: dict[Path, RootDir] = {}  # the folders of files given alone, opened once each
    for raw in paths:
        if follow_symlinks and within is None:
            _discover_following(Path(raw), exts, found)
            continue
        try:
            anchor, name = _open_given(raw, within, anchors)
        except DocumentError as exc:
            found.skipped.append(SkippedFile(str(raw), exc.reason))
            continue
        except OSError as exc:
            found.skipped.append(SkippedFile(str(raw), f"cannot open: {exc.strerror or exc}"))
            continue
        if name is None:
            found.folders.append(anchor.real)
            _walk(anchor, exts, found)
        elif Path(name).suffix.lower() not in exts:
            found.skipped.append(SkippedFile(str(raw),
                                             f"unsupported file type {Path(name).suffix or '(none)'}; "
                                             f"supported: {', '.join(sorted(exts))}"))
        else:
            found.files.append(SourceFile(anchor.real / name, name, anchor.real, anchor=anchor,
                                          parts=(name,)))
    unique = {(str(f.root), f.source): f for f in found.files}  # a file given twice is ingested once
    found.files = sorted(unique.values(), key=lambda f: (str(f.root), f.source))
    return found


def _open_given(raw: str | os.PathLike[str], within: RootDir | None, anchors: dict[Path, RootDir]
                ) -> tuple[RootDir, str | None]:
    """(the open folder, None) for a folder; (its open folder, its name) for a file."""
    if within is None:  # a path the user gave: it may pass through links (it is where the user points)
        given = Path(raw)
        if not given.exists():
            raise DocumentError(str(raw), MISSING)
        if given.is_dir():
            return RootDir.open(given), None
        real = given.resolve()
        if real.parent not in anchors:
            anchors[real.parent] = RootDir.open(real.parent)
        return anchors[real.parent], real.name
    parts = within.relative_parts(raw)
    if parts is None:
        raise DocumentError(str(raw), _OUTSIDE_DATA_ROOT)
    names, info = within.resolve(parts)
    if stat.S_ISDIR(info.st_mode):
        return within.open_dir(names), None
    folder = within.real.joinpath(*names[:-1])
    if folder not in anchors:
        anchors[folder] = within.open_dir(names[:-1])
    return anchors[folder], names[-1]


def _walk(anchor: RootDir, exts: set[str], found: Sources) -> None:
    """Every file with one of `exts` below the open folder, listed and descended by descriptor; folder links
    are not descended, file links are read at their target when it is below the folder."""

    def visit(fd: int, rel: tuple[str, ...]) -> None:
        for entry in entries(fd):
            if entry.name.startswith("."):
                continue
            here = (*rel, entry.name)
            source = "/".join(here)
            if entry.is_symlink():
                if Path(entry.name).suffix.lower() in exts and not _is_dir(entry):
                    _add_link(anchor, here, found)
            elif entry.is_dir(follow_symlinks=False):
                try:
                    inner = os.open(entry.name, LIST_FLAGS, dir_fd=fd)
                except OSError as exc:
                    reason = ("folder was replaced by a symlink after it was listed; not followed"
                              if exc.errno in LINK_ERRNOS else f"cannot open folder: {exc.strerror}")
                    found.skipped.append(SkippedFile(source, reason))
                    continue
                try:
                    visit(inner, here)
                finally:
                    os.close(inner)
            elif Path(entry.name).suffix.lower() in exts:
                found.files.append(SourceFile(anchor.real.joinpath(*here), source, anchor.real, anchor=anchor,
                                              parts=here))

    visit(anchor.fd, ())


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether a link leads to a folder (classification only, as os.walk does; folder links are not
    walked)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _add_link(anchor: RootDir, here: tuple[str, ...], found: Sources) -> None:
    source = "/".join(here)
    try:
        names, _ = anchor.resolve(here)
    except DocumentError as exc:
        found.skipped.append(SkippedFile(source, OUTSIDE if exc.reason == OUTSIDE else LOOPING))
        return
    except OSError:
        found.skipped.append(SkippedFile(source, LOOPING))
        return
    found.files.append(SourceFile(anchor.real.joinpath(*here), source, anchor.real,
                                  anchor.real.joinpath(*names),
                                  anchor=anchor, parts=names))


def _discover_following(given: Path, exts: set[str], found: Sources) -> None:
    """With `follow_symlinks` (the CLI only; the service never follows): links are followed, out of the root
    too, by path; a folder reached twice is cut (a loop, or a link to a folder already ingested)."""
    if not given.exists():
        found.skipped.append(SkippedFile(str(given), MISSING))
        return
    if given.is_file():
        path = given.resolve()
        if path.suffix.lower() not in exts:
            found.skipped.append(SkippedFile(str(given), f"unsupported file type {path.suffix or '(none)'}; "
                                                         f"supported: {', '.join(sorted(exts))}"))
            return
        found.files.append(SourceFile(path, path.name, path.parent, confined=False))
        return
    root = given.resolve()
    found.folders.append(root)
    visited: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=None):
        base = Path(dirpath)
        real = base.resolve()
        if real in visited:  # a directory link back into the tree would loop forever
            loop = real == root or real in base.parents or real in root.parents
            found.skipped.append(SkippedFile(base.relative_to(root).as_posix(),
                                             "symlink loop" if loop
                                             else "symlink to a folder already ingested"))
            dirnames[:] = []
            continue
        visited.add(real)
        # real folders before links, so a file reached both ways keeps its real path
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")),
                             key=lambda d: ((base / d).is_symlink(), d))
        for name in sorted(filenames):
            path = base / name
            if name.startswith(".") or path.suffix.lower() not in exts:
                continue
            rel = path.relative_to(root).as_posix()
            target = None
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    found.skipped.append(SkippedFile(rel, LOOPING))
                    continue
            found.files.append(SourceFile(path, rel, root, target, confined=False))


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
        raise DocumentError(file.source,
                            f"file grew past max_file_size_mb={max_file_size_mb:g} "
                            f"({limit:,} bytes) while being read")
    if not data:
        raise DocumentError(file.source, "file is empty")
    return data


def _open_checked(file: SourceFile) -> int:
    """A read-only descriptor on the file discovery checked; DocumentError naming the file otherwise."""
    where = file.target or file.path
    anchor, parts, opened_here = file.anchor, file.parts, False
    try:
        if not file.confined:
            return os.open(where, READ_FLAGS)
        if anchor is None:  # a SourceFile made by hand: its root is opened now
            try:
                parts = where.relative_to(file.root).parts
            except ValueError:
                raise DocumentError(file.source, "is not under its ingest root") from None
            if not parts:
                raise DocumentError(file.source, "cannot read file: Is a directory")
            anchor, opened_here = RootDir.open(file.root), True
        return anchor.open_file(parts)
    except PermissionError as exc:
        raise DocumentError(file.source, "permission denied (file is not readable)") from exc
    except OSError as exc:
        if exc.errno in LINK_ERRNOS:
            swapped = (anchor.swapped_part(parts) if anchor is not None
                       else "the file" if where.is_symlink() else None)
            if swapped is not None:
                raise DocumentError(file.source, f"{swapped} was replaced by a symlink after it was checked; "
                                                 "not followed") from exc
        raise DocumentError(file.source, f"cannot read file: {exc.strerror}") from exc
    finally:
        if opened_here and anchor is not None:
            anchor.close()


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
