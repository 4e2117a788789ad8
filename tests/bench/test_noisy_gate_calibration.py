"""The calibration under run-to-run noise: its faults hit the share of questions they are given, swap the
ranking or the quoted text and restore what they patched; the whole flow (null pairs, pilots, a faulty level)
runs on the tiny set and reports what the gates said. The benchmark itself runs on PubMedQA
(`python -m bench.noisy_gate_calibration`; `--quick` is its smoke check on a subset)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import binomtest

import axiom.pipeline
from axiom.evaluation.answer_metrics.grounding import masked_answer
from axiom.evaluation.datasets import load_golden
from axiom.pipeline import RAGPipeline
from axiom.retrieval import RETRIEVERS
from axiom.store import ChromaStore
from bench.noisy_faults import FaultyGenerator, Selection, WrongQueryRetriever, faults, partners
from bench.noisy_gate_calibration import Runner, calibrate, regate_and_rerun, render
from bench.noisy_regate import faulty_name, run_folder, same_run, stale_fault_sets
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings


def test_a_selection_hits_its_share_independently_and_reproducibly() -> None:
    questions = [f"question {i}?" for i in range(4000)]
    hit = [q for q in questions if Selection(0.1, seed=7).hits(q)]
    assert binomtest(len(hit), len(questions), 0.1).pvalue > 0.001
    assert hit == [q for q in questions if Selection(0.1, seed=7).hits(q)]  # the same run: the same questions
    other = {q for q in questions if Selection(0.1, seed=8).hits(q)}
    assert len(other & set(hit)) < 0.2 * len(hit)  # another run: another draw (about 10% overlap)
    assert not any(Selection(0.0, 1).hits(q) for q in questions[:100])
    assert all(Selection(1.0, 1).hits(q) for q in questions[:100])


def test_partners_are_a_derangement() -> None:
    questions = ["a", "b", "c", "d"]
    mapping = partners(questions, offset=1)
    assert mapping == {"a": "b", "b": "c", "c": "d", "d": "a"}
    assert sorted(mapping.values()) == questions and all(k != v for k, v in mapping.items())
    with pytest.raises(ValueError, match="itself"):
        partners(questions, offset=4)
    about = {"a": "x.md", "b": "x.md", "c": "y.md", "d": "z.md"}
    assert partners(questions, offset=1, source_of=about) == {"a": "c", "b": "c", "c": "d", "d": "a"}
    with pytest.raises(ValueError, match="no partner"):
        partners(questions, offset=1, source_of=dict.fromkeys(questions, "x.md"))


def test_faults_swap_the_ranking_and_the_quoted_text_and_restore_the_pipeline(
        tmp_path: Path, embedder) -> None:  # noqa: ANN001
    settings = build_settings(tmp_path)
    questions = [item.question for item in load_golden(TINY_GOLDEN)]
    plain = RAGPipeline(settings, embedder, ChromaStore(settings.store))
    plain.ingest([TINY_CORPUS], progress=False)
    reference = plain.retrieve_batch(questions, top_k=3, retriever="hybrid")
    partner = partners(questions, offset=1)
    donor_text = "Penguins of the southern ice shelf huddle in winter. Their chicks hatch in the dark months."
    donor = dict.fromkeys(questions, donor_text)
    original_retriever, original_generator = RETRIEVERS["hybrid"], axiom.pipeline.make_generator
    with faults("hybrid", partner=partner, donor=donor, wrong_ranking=Selection(1.0, 0),
                foreign_quote=Selection(1.0, 0)):
        faulty = RAGPipeline(settings, embedder, ChromaStore(settings.store))
        assert isinstance(faulty.retriever("hybrid"), WrongQueryRetriever)
        swapped = faulty.retrieve_batch(questions, top_k=3, retriever="hybrid")
        assert isinstance(faulty.generator, FaultyGenerator)
        answer = faulty.generator.generate(questions[0], reference[0])
    by_question = dict(zip(questions, reference, strict=True))
    assert [[h.chunk_id for h in hits] for hits in swapped] == \
        [[h.chunk_id for h in by_question[partner[q]]] for q in questions]
    quoted = masked_answer(answer.answer)
    assert "Penguins" in quoted or "chicks" in quoted  # quoted from the donor ...
    assert answer.contexts == list(reference[0])  # ... and reported with the real contexts
    assert not any("Penguins" in h.text for h in answer.contexts)
    assert all(c.source == reference[0][c.n - 1].source for c in answer.citations)
    assert RETRIEVERS["hybrid"] is original_retriever and axiom.pipeline.make_generator is original_generator
    with faults("hybrid", partner=partner, donor=donor, refusal=Selection(1.0, 0)):
        abstaining = RAGPipeline(settings, embedder, ChromaStore(settings.store))
        assert abstaining.retriever("hybrid").__class__ is not WrongQueryRetriever  # only the generator
        refused = abstaining.generator.generate(questions[0], reference[0])
    assert refused.answer.endswith("no relevant source text was found.") and not refused.citations
    assert refused.contexts == list(reference[0])
    everywhere = Selection(1.0, 0)
    with pytest.raises(RuntimeError), faults("hybrid", partner=partner, donor=donor, wrong_ranking=everywhere,
                                             foreign_quote=everywhere):
        raise RuntimeError("boom")
    assert RETRIEVERS["hybrid"] is original_retriever and axiom.pipeline.make_generator is original_generator


@pytest.mark.slow  # ten evaluations with repeats: about 30 s
def test_the_calibration_gates_null_pairs_and_faulty_runs_and_reports_them(tmp_path: Path) -> None:
    messages: list[str] = []
    runner = Runner(TINY_GOLDEN, TINY_CORPUS, tmp_path, temperature=0.05, repeat=2, log=messages.append)
    saved: list[dict] = []
    result = calibrate(runner, pairs=2, levels=[(1.0, 2)], alpha=0.05, log=messages.append, save=saved.append)
    assert len(result["null"]) == 2 and len(result["power"]) == 2 * 2 and saved[-1] is result
    for pair in result["null"]:
        assert set(pair["primaries"]) == {"recall@1", "evidence_recall@10", "groundedness", "rouge_l"}
        assert pair["primaries"]["recall@1"]["delta"] == 0.0  # retrieval is deterministic: the null ties
        assert pair["outcomes"]["groundedness"] in {"regression", "non-inferior", "inconclusive"}
    assert result["full_drop"]["groundedness"] > 0.05  # quoting another document is less grounded
    assert result["full_drop"]["recall@1"] > 0.5  # the wrong question's ranking misses the source
    assert result["full_drop"]["rouge_l"] > 0.1  # an abstention shares next to nothing with the reference
    faulty = result["power"][0]
    assert 0 < faulty["fraction"]["groundedness"] <= 1 and faulty["baseline_pair"] == 1
    report = render(result, ["- header"])
    assert "**Null: the gate failed" in report and "| 1 | groundedness | foreign quote |" in report
    assert sum("gate" in m for m in messages) == 2 + 2 * 2  # every B and faulty run was gated
    assert sum(m.startswith("  pilot-") for m in messages) == 3  # one run per fault
    together = ["wrong ranking", "foreign quote"]
    assert [p["faults"] for p in result["power"]] == [together] * 2 + [["refusal"]] * 2
    messages.clear()
    again = calibrate(runner, pairs=2, levels=[(2.0, 1)], alpha=0.05, log=messages.append,
                      save=saved.append, resumed={k: v for k, v in result.items() if k != "power"})
    assert again["null"] == result["null"] and again["resumed"] and len(again["power"]) == 2
    assert not any(m.startswith(("  a", "  b", "  pilot-")) for m in messages)  # only the faulty runs
    # re-gated by the same code from the run folders: the same gates, the same MDE, nothing to run again
    messages.clear()
    regated = regate_and_rerun(runner, result, level_runs=1, log=messages.append, save=saved.append)
    assert [p["primaries"] for p in regated["null"]] == [p["primaries"] for p in result["null"]]
    assert regated["mde"] == pytest.approx(result["mde"], nan_ok=True)  # nan: the tiny set cannot see a drop
    assert len(regated["power"]) == len(result["power"])
    assert all(p["regated"] for p in regated["power"]) and "run again at the new MDE: nothing" in messages
    assert [p["primaries"] for p in regated["power"]] == [p["primaries"] for p in result["power"]]
    assert "| 1 | groundedness | foreign quote |" in render(regated, ["- header"])


def test_regating_finds_the_run_folders_and_checks_they_are_the_runs_gated(tmp_path: Path) -> None:
    (tmp_path / "20261207T120000Z-noisy-faulty-1-ranking-quote-1").mkdir()
    newer = tmp_path / "20261207T130000Z-noisy-faulty-1-ranking-quote-1"
    newer.mkdir()
    (tmp_path / "20261207T130000Z-noisy-faulty-1-ranking-quote-11").mkdir()
    name = faulty_name(1.0, ["wrong ranking", "foreign quote"], 1)
    assert name == "faulty-1-ranking+quote-1" and run_folder(tmp_path, name) == newer
    with pytest.raises(FileNotFoundError, match="faulty-2"):
        run_folder(tmp_path, "faulty-2-refusal-1")
    saved = {"primaries": {"rouge_l": {"delta": -0.01}, "recall@1": {"delta": None}}}
    same_run(saved, {"primaries": {"rouge_l": {"delta": -0.01}, "recall@1": {"delta": None}}}, "x")
    with pytest.raises(ValueError, match="not the run the result gated"):
        same_run(saved, {"primaries": {"rouge_l": {"delta": -0.02}, "recall@1": {"delta": None}}}, "x")


def test_only_the_fault_sets_aimed_at_a_moved_mde_run_again() -> None:
    targets = {"recall@1": "wrong ranking", "rouge_l": "refusal", "groundedness": "foreign quote"}
    sets = (("wrong ranking", "foreign quote"), ("refusal",))
    moved = {"mde": {"recall@1": 0.031, "rouge_l": 0.027, "groundedness": 0.027},
             "mde_before": {"recall@1": 0.036, "rouge_l": 0.027, "groundedness": 0.027}}
    assert stale_fault_sets(moved, targets, sets) == [("wrong ranking", "foreign quote")]
    assert stale_fault_sets({**moved, "mde_before": moved["mde"]}, targets, sets) == []
