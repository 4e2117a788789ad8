"""The review's high finding, end to end (issue 24): a real `axiom serve` (uvicorn, embedded store) takes
`POST /ingest {"paths": ["doc.txt", "sub"]}` again and again while another process exchanges `doc.txt` and
`sub/` with symlinks out of the data root (`renameat2(RENAME_EXCHANGE)`, tests/core/race_swapper.py). Before
the fix the outside file was stored after 340 requests (file) and 5 (folder). Now: every reply is 200 or a 400
naming the symlink, and `/query` for the secret's own words never returns it."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core import race_swapper
from tests.core.race_swapper import CANARY
from tests.service.conftest import API_KEYS, AxiomServer, client

REQUESTS = 1500
BUDGET_SECONDS = 25.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AxiomServer]:
    workdir = tmp_path_factory.mktemp("svc-race")
    race_swapper.make_tree(workdir)  # workdir/data is the data root (AxiomServer keeps an existing one)
    srv = AxiomServer(workdir, env={"AXIOM_COLLECTION": f"svc_race_{uuid.uuid4().hex[:8]}",
                                    "AXIOM_API_KEYS": API_KEYS[0], "LLM_PROVIDER": "extractive",
                                    "LOG_LEVEL": "WARNING"}).start()
    yield srv
    srv.terminate()


def test_ingest_while_a_file_and_a_folder_are_swapped_for_links_never_stores_the_outside(
        server: AxiomServer, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    statuses: Counter[str] = Counter()
    with client(base_url=server.api, headers={"X-API-Key": API_KEYS[0]}) as api:
        first = api.post("/ingest", json={"paths": ["doc.txt", "sub"]})
        assert first.status_code == 200 and sorted(first.json()["files_ingested"]) == ["doc.txt", "doc.txt"]
        swapper = race_swapper.start(server.data_root, stop, BUDGET_SECONDS + 60)
        try:
            deadline, sent = time.monotonic() + BUDGET_SECONDS, 0
            while sent < REQUESTS and time.monotonic() < deadline:
                sent += 1
                r = api.post("/ingest", json={"paths": ["doc.txt", "sub"]})
                if r.status_code == 400:
                    assert "symlink" in r.json()["message"] or "does not exist" in r.json()["message"], r.text
                    statuses["400"] += 1
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                statuses["200"] += 1
                statuses["skipped"] += len(body["files_skipped"])
                statuses["ingested"] += len(body["files_ingested"])
        finally:
            swaps = race_swapper.finish(swapper, stop)
        print(f"\n{sent} POST /ingest, {swaps} swaps: {dict(statuses)}")
        # the race was live
        assert statuses["200"] > 0 and statuses["400"] + statuses["skipped"] > 0, statuses
        for question in (CANARY.decode(), "the secret that lives outside the data root"):
            r = api.post("/query", json={"question": question, "top_k": 10})
            assert r.status_code == 200, r.text
            body = r.json()  # (the question itself is echoed back: look at what was retrieved and answered)
            assert body["contexts"] and not any("OUTSIDE-CANARY" in c["text"]
                                                for c in body["contexts"]), r.text
            assert "OUTSIDE-CANARY" not in body["answer"], r.text
            assert body["retrieved"] and set(body["retrieved"]) == {"doc.txt"}, r.text
