"""Ingest beneath an open data root while another process swaps a file and a folder for symlinks out of it
(issue 24's high finding): `renameat2(RENAME_EXCHANGE)` of `doc.txt` with a link to outside/secret.txt and of
`sub/` with a link to the outside folder, thousands of times a second (tests/core/race_swapper.py, its own
process). The reader does what `POST /ingest` does for `{"paths": ["doc.txt", "sub"]}`: discovery beneath the
root's descriptor (`find_sources(..., within=root)`), then `read_bytes` of each file found. Over thousands of
tries, bounded in time, nothing outside the root is ever read, and both states of each name are met (the race
is live: some tries read the real file, some are refused)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from axiom.documents import find_sources, read_bytes
from axiom.errors import DocumentError
from axiom.source_tree import RootDir
from tests.core import race_swapper
from tests.core.race_swapper import CANARY, GOOD, GOOD_SUB

EXTS = [".txt", ".md"]
TRIES = 10_000  # per name
BUDGET_SECONDS = 25.0


def test_swapping_a_file_or_a_folder_for_a_link_out_never_reads_outside_the_root(tmp_path: Path) -> None:
    data, _ = race_swapper.make_tree(tmp_path)
    stop = tmp_path / "stop"
    seen: dict[str, Counter[str]] = {"doc.txt": Counter(), "sub": Counter()}
    with RootDir.open(data) as root:
        swapper = race_swapper.start(data, stop, BUDGET_SECONDS + 30)
        try:
            deadline = time.monotonic() + BUDGET_SECONDS
            tries = 0
            while tries < TRIES and time.monotonic() < deadline:
                tries += 1
                for name, outcome in seen.items():
                    found = find_sources([name], EXTS, within=root)
                    outcome["skipped"] += len(found.skipped)
                    for file in found.files:
                        try:
                            text = read_bytes(file, 1.0)
                        except DocumentError:
                            outcome["refused at read"] += 1
                            continue
                        assert CANARY not in text, (name, file)
                        assert text in (GOOD, GOOD_SUB), (name, file, text[:80])
                        outcome["read"] += 1
        finally:
            swaps = race_swapper.finish(swapper, stop)
    print(f"\n{tries} tries per name, {swaps} swaps: {dict(seen['doc.txt'])} (file), "
          f"{dict(seen['sub'])} (folder)")
    assert tries >= 500, f"only {tries} tries in {BUDGET_SECONDS}s"
    assert swaps >= tries, (swaps, tries)
    for name, outcome in seen.items():
        assert outcome["read"] > 0, (name, outcome)  # the real file was read
        assert outcome["skipped"] + outcome["refused at read"] > 0, (name, outcome)  # and the link was met
    assert (data / "doc.txt").read_bytes() == GOOD and (data / "sub" / "doc.txt").read_bytes() == GOOD_SUB


def test_ingest_under_the_swaps_stores_nothing_from_outside(tmp_path: Path,
                                                            core_pipeline) -> None:  # noqa: ANN001
    data, _ = race_swapper.make_tree(tmp_path)
    stop = tmp_path / "stop"
    pipeline = core_pipeline()
    ingested: Counter[str] = Counter()
    with RootDir.open(data) as root:
        pipeline.ingest(["doc.txt", "sub"], progress=False, within=root)  # the model loads outside the race
        swapper = race_swapper.start(data, stop, 60)
        try:
            deadline, runs = time.monotonic() + 15.0, 0
            while runs < 600 and time.monotonic() < deadline:
                runs += 1
                report = pipeline.ingest(["doc.txt", "sub"], progress=False, within=root)
                ingested.update(report.files_ingested)
                ingested["skipped"] += len(report.files_skipped)
        finally:
            swaps = race_swapper.finish(swapper, stop)
    print(f"\n{runs} ingests, {swaps} swaps: {dict(ingested)}")
    texts = [c.text or "" for c in pipeline.store.iter_chunks(with_text=True)]
    assert texts and not any("OUTSIDE-CANARY" in t for t in texts), texts
    hits = pipeline.retrieve(CANARY.decode(), top_k=5)
    assert all("OUTSIDE-CANARY" not in h.text for h in hits)
    assert ingested["skipped"] > 0 and runs >= 50, (runs, ingested)
