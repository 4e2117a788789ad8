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
                          "--repeat", "1", "--max-docs", "20", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
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
    ret = data["retrieval"]
    assert ret["dense_p50_ms"] > 0 and ret["floor_p50_ms"] > 0
    assert data["machine"]["cores"] >= 1
    assert "| full ingest / model.encode of the same texts |" in out.stdout
