"""Private folders and files that a library (SQLite) then opens by name, without a check/use window.

A name can only be trusted once nobody else can change what it leads to. So:
- `secure_folder(path)` opens the folder (created 0700 when missing) with O_NOFOLLOW | O_DIRECTORY and checks
  the open descriptor: a real folder, owned by this user, writable by nobody else; and no folder above it is
  writable by every user unless sticky (as /tmp and the image's /app are). Then no other user (bar the owners
  of the folders above, root or the image's own user) can rename, replace or plant anything on the way to a
  file inside: not the folder, not its entries (the file, or SQLite's `-wal`/`-shm` beside it).
- `private_file(folder_fd, name)` opens (or creates, 0600) the file beside that descriptor with O_NOFOLLOW and
  checks the descriptor: a regular file, owned by this user, one link; group/other bits are dropped.
- `opened_by_this_process(identity, path, before)`: after a library opened the file by name, the descriptors
  this process holds on that path (in /proc/self/fd) must all be that same file (st_dev, st_ino): a
  belt-and-braces check on top of the folder checks, which are what closes the window (nobody else can change
  any name on the way, so there is no race to win).

`PrivacyError` says which path is refused and why; callers decide what to do (the embedding cache goes on
without its file).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_NOFOLLOW | _O_CLOEXEC
_FILE_FLAGS = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC
_PROC_FDS = "/proc/self/fd"


class PrivacyError(Exception):
    """A folder or file that others could change (or a link); the message names it and says what to do."""


def _mine(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid()


def secure_folder(path: str | os.PathLike[str]) -> int:
    """A descriptor on `path`, a private folder (made 0700 with its missing parents). Raises PrivacyError."""
    folder = Path(os.path.abspath(path))
    for missing in [*reversed(folder.parents), folder]:
        if not os.path.lexists(missing):
            try:
                missing.mkdir(mode=0o700)
            except FileExistsError:  # made by another process meanwhile: checked below like any other
                continue
            os.chmod(missing, 0o700)  # mkdir's mode is masked by the umask
    for above in folder.parents:
        info = os.stat(above)
        if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
            raise PrivacyError(f"{above} (above {folder}) is writable by every user and not "
                               "sticky; use another folder")
    try:
        fd = os.open(folder, _FOLDER_FLAGS)
    except OSError as exc:
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            raise PrivacyError(f"{folder} is a symlink (folders are opened without following links); give "
                               "the real folder") from None
        raise PrivacyError(f"{folder} cannot be opened as a folder ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    problem = None
    if not _mine(info):
        problem = f"{folder} belongs to another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = (f"{folder} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                   f"make it private: chmod 700 {folder}")
    if problem:
        os.close(fd)
        raise PrivacyError(problem)
    return fd


def private_file(folder_fd: int, name: str, shown: str | os.PathLike[str]) -> int:
    """A read-write descriptor on `name` in the open folder, created 0600, never through a link. Raises
    PrivacyError (`shown` names the file in the message)."""
    try:
        fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=folder_fd)
    except OSError as exc:
        try:
            kind = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
        except OSError:
            kind = 0
        if stat.S_ISLNK(kind):
            raise PrivacyError(f"{shown} is refused: it is a symlink (files are "
                               "opened without following links)"
                               ) from None
        raise PrivacyError(f"{shown} cannot be opened ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"{shown} is refused: it is not a regular file"
    elif not _mine(info):
        problem = f"{shown} is refused: it belongs to another user (uid {info.st_uid})"
    elif info.st_nlink != 1:
        problem = f"{shown} is refused: it has {info.st_nlink} hard links"
    if problem:
        os.close(fd)
        raise PrivacyError(problem)
    if info.st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return fd


def refuse_links_beside(folder_fd: int, names: tuple[str, ...], folder: Path) -> None:
    """Files a library will open by name beside ours (SQLite's -wal, -shm) must be absent or regular files."""
    for name in names:
        try:
            mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
            raise PrivacyError(f"{folder / name} is refused: it is {kind}")


def open_descriptors() -> dict[str, tuple[str, int, int]] | None:
    """This process's descriptors: number -> (what it is open on, st_dev, st_ino); None where there is no
    /proc."""
    try:
        numbers = os.listdir(_PROC_FDS)
    except OSError:
        return None
    found = {}
    for number in numbers:
        try:
            target = os.readlink(f"{_PROC_FDS}/{number}")
            info = os.stat(f"{_PROC_FDS}/{number}")
        except OSError:  # closed meanwhile (the listing's own descriptor, another thread's)
            continue
        found[number] = (target, info.st_dev, info.st_ino)
    return found


def opened_by_this_process(identity: tuple[int, int], real_path: str,
                           before: dict[str, tuple[str, int, int]] | None) -> bool:
    """After a library opened `real_path`: whether this process now holds it open, and every descriptor on
    that path (new ones, or one SQLite kept from an earlier connection and reuses) is the file `identity`
    (st_dev, st_ino). True where there is no /proc (the folder checks are the guarantee then)."""
    after = open_descriptors()
    if before is None or after is None:
        return True
    opened = [(dev, ino) for target, dev, ino in after.values() if target == real_path]
    return bool(opened) and all(found == identity for found in opened)
