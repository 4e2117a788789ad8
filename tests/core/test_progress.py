"""Progress on stderr (`axiom.progress`) and what the pipeline reports with it: the ingest counts chunks
embedded, a lazily loaded embedding model is timed apart from the stages, and a root that does not exist is a
usage error.

The pipeline tests use `SlowLoadingEmbedder` (tests/support/slow_embedder.py): a stand-in model whose first
use sleeps like a model load, so what is timed where can be measured without the real model."""

from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from axiom.config import Settings
from axiom.errors import StoreError, UsageError
from axiom.pipeline import RAGPipeline
from axiom.progress import Progress, progress_mode
from axiom.store import ChromaStore
from tests.support.clock import FakeClock
from tests.support.slow_embedder import SlowLoadingEmbedder

REPO = Path(__file__).resolve().parents[2]
TINY_CORPUS = REPO / "tests" / "fixtures" / "tiny_corpus"
LOAD = 2.0  # seconds the stand-in model takes to "load"


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class KernelStream(io.StringIO):
    """Looks like a Jupyter kernel's stderr (ipykernel.iostream.OutStream) to `progress_mode`."""


KernelStream.__module__ = "ipykernel.iostream"


def lines_of(stream: io.StringIO) -> list[str]:
    return [ln for ln in stream.getvalue().splitlines() if ln]


# -- axiom.progress
# ---------------------------------------------------------------------------------------------
def test_plain_lines_every_tenth_and_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    with Progress("eval", unit="question", verb="answered", stream=out, clock=FakeClock()) as progress:
        assert progress.mode == "lines"
        progress.add_total(52)
        for _ in range(52):
            progress.update()
    got = lines_of(out)
    assert "eval: 26/52 questions answered" in got and got[-1] == "eval: 52/52 questions answered", got
    assert 10 <= len(got) <= 11, got  # one line per tenth, not one per question
    assert all(re.fullmatch(r"eval: \d+/52 questions answered", ln) for ln in got), got
    assert capsys.readouterr().out == ""


def test_plain_lines_every_ten_seconds_when_tenths_are_slow() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress("ingest", unit="chunk", verb="embedded", stream=out, clock=clock)
    progress.add_total(1000)
    for _ in range(3):
        clock.now += 11.0
        progress.update()
    progress.update()  # within 10 s of the last line and no new tenth: silent
    assert lines_of(out) == [f"ingest: {n}/1000 chunks embedded" for n in (1, 2, 3)]
    progress.close()
    assert lines_of(out)[-1] == "ingest: 4/1000 chunks embedded"


def test_stages_are_announced_and_timed() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress("eval", unit="question", verb="answered", stream=out, clock=clock)
    with progress.stage("score", "scoring answers (offline metrics)"):
        clock.now += 2.5
    with progress.stage("score", "scoring answers (offline metrics)"):  # again: summed, announced once
        clock.now += 0.5
    assert progress.timings == {"score": 3.0}
    assert lines_of(out) == ["eval: scoring answers (offline metrics)"]


def test_a_bar_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    out = TTY()
    with Progress("ingest", unit="chunk", verb="embedded", stream=out) as progress:
        assert progress.mode == "bar"
        progress.add_total(40)
        progress.update(40)
    text = out.getvalue()
    assert "40/40" in text and "chunk" in text and "chunks embedded" not in text, text
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("given", "stream", "expected"), [
    (False, TTY(), None), (False, io.StringIO(), None),
    (None, TTY(), "bar"), (None, io.StringIO(), "lines"), (None, KernelStream(), None),  # a notebook: off
    # asked for: tqdm.auto
    (True, TTY(), "bar"), (True, io.StringIO(), "lines"), (True, KernelStream(), "bar"),
])
def test_progress_mode(given: bool | None, stream: io.StringIO, expected: str | None) -> None:
    assert progress_mode(given, stream) == expected


def test_each_counts_an_item_done_when_the_next_is_asked_for() -> None:
    out = io.StringIO()
    progress = Progress("eval", unit="question", verb="answered", stream=out, clock=FakeClock())
    seen = []
    for item in progress.each(iter("abc"), 3):
        seen.append((item, progress.n))
    assert seen == [("a", 0), ("b", 1), ("c", 2)] and progress.n == 3
    assert lines_of(out)[-1] == "eval: 3/3 questions answered"


def test_in_a_notebook_the_stage_is_only_the_bars_description() -> None:
    kernel = KernelStream()
    with Progress("ingest", unit="chunk", verb="embedded", enabled=True, stream=kernel) as progress:
        progress.announce("reading 3 file(s)")
        assert kernel.getvalue() == ""  # no stray line in the notebook's output
        progress.add_total(2)
        progress.update(2)
    assert "ingest: reading 3 file(s)" in kernel.getvalue() and "2/2" in kernel.getvalue()


def test_disabled_progress_writes_nothing_but_still_times() -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress("eval", unit="question", verb="answered", enabled=False, stream=out,
                  clock=clock) as progress:
        progress.add_total(3)
        with progress.stage("answer", "answering"):
            clock.now += 1.0
            progress.update(3)
    assert out.getvalue() == "" and progress.timings == {"answer": 1.0}


# -- the pipeline
# -------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_pipeline(make_settings: Callable[..., Settings]) -> Callable[..., RAGPipeline]:
    settings = make_settings()

    def build(embedder: SlowLoadingEmbedder) -> RAGPipeline:
        return RAGPipeline(settings, embedder, ChromaStore(settings.store))

    return build


def test_ingest_progress_counts_chunks_embedded_and_ends_after_the_embedding(
        fake_pipeline: Callable[..., RAGPipeline], capsys: pytest.CaptureFixture[str]) -> None:
    report = fake_pipeline(SlowLoadingEmbedder(0.0, marker=True)).ingest([TINY_CORPUS], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    total = report.chunks_embedded
    assert total > len(report.files_ingested) == 3  # more chunks than files: the count is not the files'
    done = f"ingest: {total}/{total} chunks embedded"
    assert err[-1] == done, err
    last_embed = max(i for i, ln in enumerate(err) if ln.startswith("EMBED "))
    # 100% only once all is embedded
    assert all(i > last_embed for i, ln in enumerate(err) if ln == done), err
    assert not [ln for ln in err if "file" in ln and ln.startswith("ingest:") and "/" in ln], err


def test_ingest_bar_on_a_terminal_counts_chunks(fake_pipeline: Callable[..., RAGPipeline],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    report = fake_pipeline(SlowLoadingEmbedder(0.0)).ingest([TINY_CORPUS])  # progress=None: auto
    total = report.chunks_embedded
    assert f"{total}/{total}" in tty.getvalue() and "chunk" in tty.getvalue(), tty.getvalue()
    assert "file/s" not in tty.getvalue()


def test_ingest_without_progress_writes_nothing(fake_pipeline: Callable[..., RAGPipeline],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    fake_pipeline(SlowLoadingEmbedder(0.0)).ingest([TINY_CORPUS], progress=False)
    assert capsys.readouterr() == ("", "")


def test_first_query_timings_do_not_include_the_model_load(fake_pipeline: Callable[..., RAGPipeline]) -> None:
    fake_pipeline(SlowLoadingEmbedder(0.0)).ingest([TINY_CORPUS], progress=False)
    fresh = fake_pipeline(SlowLoadingEmbedder(LOAD))  # a new process's pipeline: the model is not loaded yet
    answer = fresh.ask("How many eggs can a queen bee lay in a day?")
    timings = answer.timings
    assert timings["model_load"] >= 0.9 * LOAD, timings
    assert timings["retrieve"] < timings["model_load"] and timings["total"] < timings["model_load"], timings
    assert answer.citations
    again = fresh.ask("Which volcano is the largest?")
    assert "model_load" not in again.timings  # loaded once, reported once


def test_a_query_without_a_collection_fails_before_loading_the_model(
        fake_pipeline: Callable[..., RAGPipeline]) -> None:
    lazy = SlowLoadingEmbedder(LOAD)
    with pytest.raises(StoreError, match="does not exist"):
        fake_pipeline(lazy).ask("Anything?")
    assert not lazy.loaded


def test_ingest_seconds_do_not_include_the_model_load(fake_pipeline: Callable[..., RAGPipeline]) -> None:
    pipeline = fake_pipeline(SlowLoadingEmbedder(LOAD))
    t0 = time.perf_counter()
    report = pipeline.ingest([TINY_CORPUS], progress=False)
    wall = time.perf_counter() - t0
    assert pipeline.model_load_seconds >= 0.9 * LOAD
    assert report.seconds <= wall - pipeline.model_load_seconds + 0.05, (report.seconds, wall)
    assert report.seconds < pipeline.model_load_seconds


def test_an_unchanged_ingest_does_not_load_the_model(fake_pipeline: Callable[..., RAGPipeline]) -> None:
    fake_pipeline(SlowLoadingEmbedder(0.0)).ingest([TINY_CORPUS], progress=False)
    lazy = SlowLoadingEmbedder(LOAD)
    pipeline = fake_pipeline(lazy)
    report = pipeline.ingest([TINY_CORPUS], progress=False)
    assert len(report.files_unchanged) == 3 and not lazy.loaded and pipeline.model_load_seconds == 0.0


@pytest.mark.parametrize("with_a_good_one", [False, True])
def test_ingest_of_a_root_that_does_not_exist_is_a_usage_error_and_writes_nothing(
        fake_pipeline: Callable[..., RAGPipeline], tmp_path: Path, with_a_good_one: bool) -> None:
    missing = tmp_path / "no" / "such" / "path"
    pipeline = fake_pipeline(SlowLoadingEmbedder(0.0))
    with pytest.raises(UsageError) as info:
        pipeline.ingest([TINY_CORPUS, missing] if with_a_good_one else [missing], progress=False)
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert info.value.exit_code == 2
    assert pipeline.store.get_collection() is None  # nothing ingested, no collection created
