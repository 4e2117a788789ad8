"""The benchmark suite still runs: one repetition on the vendored PubMedQA sample (MIT), figures printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_bench_runs_once_on_vendored_beir_data(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "bench", str(REPO / "tests" / "fixtures" / "pubmedqa-beir"),
                          "--repeat", "1", "--ingest-docs", "20", "--search-docs", "20",
                          "--cache-dir", str(tmp_path / "cache"), "--api-requests", "2",
                          # minutes of papermill; the runner is tested in tests/notebooks
                          "--skip", "notebook",
                          # minutes of whole evaluations: tests/bench/test_eval_floor.py
                          "--skip", "evaluation",
                          "--skip", "api-threads",
                          "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    print(out.stdout)
    assert out.returncode == 0, out.stderr[-3000:]
    results = list(tmp_path.glob("*.json"))
    assert len(results) == 1
    data = json.loads(results[0].read_text())
    assert data["documents"] == 60 and data["queries"] == 40  # 40 judged abstracts + 20 others
    ingest = data["ingest"]["runs"][0]
    assert ingest["chunks"] > 60 and ingest["embedded"] == ingest["chunks"]
    assert ingest["reingest_embedded"] == 0  # the unchanged re-ingest embeds nothing
    search = data["search_store"]  # a fresh cache: the searched store was built by this run
    assert data["search_documents"] == 60 and not search["reused"]
    assert search["embedded_now"] == search["chunks"] == ingest["chunks"]
    ret = data["retrieval"]
    assert ret["dense_p50_ms"] > 0 and ret["floor_p50_ms"] > 0
    assert data["machine"]["cores"] >= 1
    assert ret["eval_over_floor"]["n"] == 1 and ret["sweep4_over_eval"]["n"] == 1
    api = data["api"]
    assert api["clients"] == 8 and api["errors"] == 0 and api["ok"] == api["requests"] > 0
    assert api["req_per_s"] > 0 and api["p95_ms"] >= api["p50_ms"] > 0
    for row in ("| full ingest (", "| searched store: 60 documents",
                "| dense retrieval p50 / (encode + raw collection.query) p50 |",
                "| API /query throughput, extractive, 8 concurrent clients |"):
        assert row in out.stdout
