"""Folders walked by descriptor: nothing under an ingest root is ever reached by re-resolving a path string.

An ingest root (the service's data root, a folder given to `axiom ingest`, the folder of a file given alone)
is opened once as a directory (`RootDir`); from then on every step is one name looked up relative to a
descriptor already held, with `O_NOFOLLOW` (`openat`), so swapping a file or a folder for a symlink (rename,
or `renameat2(RENAME_EXCHANGE)`) at any moment can only make a step fail, never lead out of the root:
- `RootDir.resolve(parts)` resolves a path below the root the way `openat2(RESOLVE_IN_ROOT)` would refuse to
  escape it: one component at a time; a symlink met on the way is read (`readlinkat`) and its target followed
  only while it stays below the root (`..` cannot climb above it, an absolute target must start with the
  root's real path), at most `MAX_LINKS` links;
- `RootDir.open_dir(parts)` opens a folder below the root and `RootDir.open_file(parts)` a file to read,
  through real folders only (any link on the way: ELOOP/ENOTDIR, reported as swapped);
- `RootDir.entries(fd)` lists a folder from its descriptor (`os.scandir(fd)`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from axiom.errors import DocumentError

MAX_LINKS = 40  # symlinks followed while resolving one path (the kernel's own limit)

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# a folder to list (scandir needs a readable descriptor); a folder passed through (search permission is
# enough)
LIST_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
PASS_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
# a file to read: never through a symlink swapped in for it, never blocking on a FIFO swapped in
READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _O_CLOEXEC
LINK_ERRNOS = {errno.ELOOP, errno.EMLINK, errno.ENOTDIR}  # what O_NOFOLLOW / O_DIRECTORY give for a link

# reasons of `resolve` (callers map them to their own words)
MISSING = "does not exist"
OUTSIDE = "symlink points outside the ingest root"
LOOPING = "broken or looping symlink"
NOT_A_FOLDER = "is not a folder"


def _real_path(fd: int, fallback: str | os.PathLike[str]) -> Path:
    """The path the kernel holds for an open folder (what it is now, not what a path string says)."""
    try:
        shown = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return Path(fallback).resolve()
    return (
        Path(shown)
        if shown.startswith("/") and not shown.endswith(" (deleted)")
        else Path(fallback).resolve()
    )


class RootDir:
    """An open folder that paths are resolved and opened beneath. Closes its descriptor on `close()` (or when
    garbage collected); `real` is its real path, for names and metadata only (never opened again)."""

    def __init__(self, fd: int, real: Path) -> None:
        self.fd = fd
        self.real = real

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RootDir:
        """Open a folder given by the user (the path itself may pass through links: it is the trust
        anchor)."""
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        return cls(fd, _real_path(fd, path))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RootDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"RootDir({str(self.real)!r}, fd={self.fd})"

    # -- resolving ----------------------------------------------------------------------------------------
    def relative_parts(self, path: str | os.PathLike[str]) -> tuple[str, ...] | None:
        """`path` (relative to the root, or absolute under its real path) as names below it; None if
        elsewhere."""
        given = PurePosixPath(os.fspath(path))
        if given.is_absolute():
            if not given.is_relative_to(self.real):
                return None
            given = given.relative_to(self.real)
        return tuple(p for p in given.parts if p not in ("", "."))

    def resolve(self, parts: Sequence[str]) -> tuple[tuple[str, ...], os.stat_result]:
        """The real names below the root that `parts` leads to, and what is there (lstat). Raises
        DocumentError (`MISSING`, `OUTSIDE`, `LOOPING`, `NOT_A_FOLDER`) naming the path as given, or OSError
        (a name too long, no permission)."""
        shown = "/".join(parts) or "."
        todo: deque[str] = deque(parts)
        names: list[str] = []
        fds: list[int] = []
        links = 0
        try:
            info = os.fstat(self.fd)
            while todo:
                name = todo.popleft()
                if name in ("", "."):
                    continue
                if name == "..":
                    if not names:
                        raise DocumentError(shown, OUTSIDE)
                    names.pop()
                    os.close(fds.pop())
                    info = os.fstat(fds[-1] if fds else self.fd)
                    continue
                here = fds[-1] if fds else self.fd
                try:
                    info = os.stat(name, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    raise DocumentError(shown, LOOPING if links else MISSING) from None
                if stat.S_ISLNK(info.st_mode):
                    links += 1
                    if links > MAX_LINKS:
                        raise DocumentError(shown, LOOPING)
                    try:
                        target = PurePosixPath(os.readlink(name, dir_fd=here))
                    except OSError as exc:
                        if exc.errno != errno.EINVAL:
                            raise
                        todo.appendleft(name)  # no longer a link: look again (bounded by MAX_LINKS)
                        continue
                    if target.is_absolute():
                        if not target.is_relative_to(self.real):
                            raise DocumentError(shown, OUTSIDE)
                        target = target.relative_to(self.real)
                        names.clear()
                        while fds:
                            os.close(fds.pop())
                    todo.extendleft(reversed(target.parts))
                    continue
                if todo:  # a folder to pass through
                    if not stat.S_ISDIR(info.st_mode):
                        raise DocumentError(shown, NOT_A_FOLDER if not links else LOOPING)
                    try:
                        fds.append(os.open(name, PASS_FLAGS, dir_fd=here))
                    except OSError as exc:
                        if exc.errno not in LINK_ERRNOS:
                            raise
                        # swapped for a link meanwhile: look again (bounded by MAX_LINKS)
                        todo.appendleft(name)
                        links += 1
                        continue
                names.append(name)
            return tuple(names), info
        finally:
            for fd in fds:
                os.close(fd)

    # -- opening ------------------------------------------------------------------------------------------
    def _walk(self, folders: Sequence[str]) -> int:
        """A descriptor on the folder `folders` below the root, through real folders only (caller closes)."""
        fd = os.open(".", PASS_FLAGS, dir_fd=self.fd)
        try:
            for name in folders:
                inner = os.open(name, PASS_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
            return fd
        except BaseException:
            os.close(fd)
            raise

    def open_dir(self, parts: Sequence[str]) -> RootDir:
        """The real folder `parts` below the root, opened for listing (OSError, ELOOP for a link on the
        way)."""
        fd = self._walk(parts[:-1]) if parts else os.open(".", PASS_FLAGS, dir_fd=self.fd)
        try:
            opened = os.open(parts[-1] if parts else ".", LIST_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        return RootDir(opened, self.real.joinpath(*parts))

    def open_file(self, parts: Sequence[str]) -> int:
        """A read-only descriptor on the file `parts` below the root, reached through real folders only."""
        fd = self._walk(parts[:-1])
        try:
            return os.open(parts[-1], READ_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)

    def swapped_part(self, parts: Sequence[str]) -> str | None:
        """For an error message only: 'the file' or 'folder x' if that part of `parts` is a symlink now."""
        for depth in range(1, len(parts) + 1):
            try:
                info = os.stat("/".join(parts[:depth]), dir_fd=self.fd, follow_symlinks=False)
            except OSError:
                return None
            if stat.S_ISLNK(info.st_mode):
                return "the file" if depth == len(parts) else f"folder {'/'.join(parts[:depth])}"
        return None


def entries(fd: int) -> list[os.DirEntry[str]]:
    """The entries of an open folder, sorted by name (listed from the descriptor, never by path)."""
    with os.scandir(fd) as found:
        return sorted(found, key=lambda e: e.name)
