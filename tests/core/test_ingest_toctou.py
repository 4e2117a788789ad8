"""Ingest's check/read race (TOCTOU): what `discover` checked is what `read_bytes` reads.

Each test lets `discover` (or the size check inside `read_bytes`) see a harmless regular file, then swaps it
for something else on disk before the read: a symlink out of the root, a FIFO, `/dev/zero`, a folder link,
or a file that keeps growing. Real files in tmp_path, the real `discover` + `read_bytes` (and once the whole
`RAGPipeline.ingest`). The one stand-in is a hook that performs the swap right after the size check
(`os.stat` / `os.fstat` of the file), because that window cannot be hit from outside reliably.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from axiom.documents import discover, read_bytes
from axiom.errors import DocumentError

EXTS = [".txt", ".md", ".pdf"]
CANARY = b"OUTSIDE-CANARY-7f3a the secret that lives outside the data root."
GOOD = b"Lighthouses use Fresnel lenses to throw their beam far out to sea."


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(data root holding doc.txt, a folder outside it holding secret.txt and doc.txt with the canary)."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "doc.txt").write_bytes(GOOD)
    (outside / "secret.txt").write_bytes(CANARY)
    (outside / "doc.txt").write_bytes(CANARY)
    return root, outside


def only_file(root: Path, **kwargs: bool) -> object:
    files, skipped = discover([root], EXTS, **kwargs)
    assert skipped == [] and len(files) == 1, (files, skipped)
    return files[0]


def refused(file: object, limit_mb: float = 1.0) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        data = read_bytes(file, limit_mb)  # type: ignore[arg-type]
        assert CANARY not in data  # the read went through: at least it must not be the outside file
    assert "\n" not in info.value.reason
    return info.value


@contextmanager
def right_after_the_size_check(path: Path, action: Callable[[], None]) -> Iterator[None]:
    """Run `action` once, just after `path`'s size was checked (by `os.stat` of the path, or `os.fstat` of a
    descriptor open on it): the window between a check and the read."""
    inode = os.stat(path).st_ino
    real_stat, real_fstat = os.stat, os.fstat
    fired: list[bool] = []

    def fire(result: os.stat_result) -> os.stat_result:
        if not fired and result.st_ino == inode:
            fired.append(True)
            action()
        return result

    def stat(target, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return fire(real_stat(target, *args, **kwargs))

    def fstat(fd):  # noqa: ANN001, ANN202
        return fire(real_fstat(fd))

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "stat", stat)
    mp.setattr(os, "fstat", fstat)
    try:
        yield
    finally:
        mp.undo()
    assert fired, "the hook never saw the size check"


# -- (a) a checked file replaced by a link out of the root ---------------------------------------------------


def test_file_replaced_by_a_symlink_out_of_the_root_after_discovery_is_refused(
    tree: tuple[Path, Path],
) -> None:
    root, outside = tree
    file = only_file(root)
    (root / "doc.txt").unlink()
    (root / "doc.txt").symlink_to(outside / "secret.txt")
    error = refused(file)
    assert error.path == "doc.txt"
    assert "symlink" in error.reason, error.reason


def test_folder_replaced_by_a_symlink_out_of_the_root_after_discovery_is_refused(
    tree: tuple[Path, Path],
) -> None:
    root, outside = tree
    (root / "doc.txt").unlink()
    (root / "sub").mkdir()
    (root / "sub" / "doc.txt").write_bytes(GOOD)
    file = only_file(root)
    (root / "sub").rename(root.parent / "moved-away")
    (root / "sub").symlink_to(outside)  # sub/doc.txt now resolves to outside/doc.txt
    error = refused(file)
    assert error.path == "sub/doc.txt"
    assert "symlink" in error.reason, error.reason


def test_link_inside_the_root_is_read_at_the_target_discovery_checked(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "alias.txt").symlink_to(root / "doc.txt")
    files, skipped = discover([root], EXTS)
    alias = next(f for f in files if f.source == "alias.txt")
    assert read_bytes(alias, 1.0) == GOOD  # today's behaviour: an in-root link is read
    # re-pointed out of the root after discovery: still the checked target, never the outside file
    (root / "alias.txt").unlink()
    (root / "alias.txt").symlink_to(outside / "secret.txt")
    assert read_bytes(alias, 1.0) == GOOD
    # and the checked target itself swapped for a link out: refused
    (root / "doc.txt").unlink()
    (root / "doc.txt").symlink_to(outside / "secret.txt")
    error = refused(alias)
    assert error.path == "alias.txt" and "symlink" in error.reason, error.reason


def test_following_links_keeps_reading_link_targets_but_not_a_target_swapped_for_a_link(
        tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = tree
    (root / "doc.txt").unlink()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(GOOD)
    (root / "linked.txt").symlink_to(elsewhere)
    file = only_file(root, follow_symlinks=True)
    assert read_bytes(file, 1.0) == GOOD  # follow_symlinks: a link out of the root is read, as before
    elsewhere.unlink()
    elsewhere.symlink_to(outside / "secret.txt")  # the resolved target became a link after discovery
    error = refused(file)
    assert error.path == "linked.txt" and "symlink" in error.reason, error.reason


def test_ingest_skips_a_file_swapped_for_a_symlink_and_stores_none_of_the_outside_text(
        tree: tuple[Path, Path], core_pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    import axiom.pipeline as pipeline_module

    root, outside = tree
    (root / "other.md").write_bytes(b"Fresnel lenses are built from concentric rings of glass prisms.")
    real_find = pipeline_module.find_sources

    def discover_then_swap(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        found = real_find(*args, **kwargs)
        (root / "doc.txt").unlink()
        (root / "doc.txt").symlink_to(outside / "secret.txt")
        return found

    monkeypatch.setattr(pipeline_module, "find_sources", discover_then_swap)
    pipeline = core_pipeline()
    report = pipeline.ingest([root], progress=False)
    assert report.files_ingested == ["other.md"]
    assert [(s.path, "symlink" in s.reason) for s in report.files_skipped] == [("doc.txt", True)]
    texts = [c.text or "" for c in pipeline.store.iter_chunks(with_text=True)]
    assert texts and not any("OUTSIDE-CANARY" in t for t in texts)


# -- (b) FIFOs and devices
# ------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_file_replaced_by_a_fifo_after_discovery_is_refused_promptly(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    file = only_file(root)
    (root / "doc.txt").unlink()
    os.mkfifo(root / "doc.txt")
    t0 = time.monotonic()
    error = refused(file)
    assert time.monotonic() - t0 < 5
    assert error.path == "doc.txt"
    assert "not a regular file" in error.reason and "FIFO" in error.reason, error.reason


@pytest.mark.timeout(20)
def test_fifo_swapped_in_right_after_the_size_check_cannot_block_the_read(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    file = only_file(root)
    doc = root / "doc.txt"

    def swap() -> None:
        doc.unlink()
        os.mkfifo(doc)

    t0 = time.monotonic()
    with right_after_the_size_check(doc, swap):
        try:
            data = read_bytes(file, 1.0)
        except DocumentError:
            data = None
    assert time.monotonic() - t0 < 5
    assert data in (None, GOOD)  # the checked file, or nothing; never a wait on the FIFO
    assert doc.is_fifo()


@pytest.mark.timeout(20)
def test_file_replaced_by_a_symlink_to_dev_zero_is_refused(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    file = only_file(root)
    (root / "doc.txt").unlink()
    (root / "doc.txt").symlink_to("/dev/zero")
    error = refused(file)
    assert "symlink" in error.reason, error.reason


# -- (c) a file that grows past the limit
# ---------------------------------------------------------------------

LIMIT_MB = 0.01  # 10,485 bytes


def test_file_grown_past_the_limit_between_discovery_and_read_is_refused(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    file = only_file(root)
    with open(root / "doc.txt", "ab") as handle:
        handle.write(b"x" * 20_000)
    error = refused(file, LIMIT_MB)
    assert "over max_file_size_mb=0.01" in error.reason, error.reason


def test_file_growing_past_the_limit_after_the_size_check_is_refused_with_a_bounded_read(
        tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = tree
    file = only_file(root)
    doc = root / "doc.txt"
    limit = int(LIMIT_MB * 1024 * 1024)

    def grow() -> None:
        with open(doc, "ab") as handle:
            handle.write(b"y" * (50 * limit))

    real_read, taken = os.read, []

    def counting_read(fd: int, n: int) -> bytes:
        chunk = real_read(fd, n)
        taken.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", counting_read)
    with right_after_the_size_check(doc, grow):
        error = refused(file, LIMIT_MB)
    assert error.path == "doc.txt"
    assert "max_file_size_mb=0.01" in error.reason and "grew" in error.reason, error.reason
    assert sum(taken) <= limit + 1  # read at most one byte past the limit, not the 500 KB that are there
