"""The container test's report: image sizes, build and start-up times, printed at the end of the pytest run
(also for a passing test, whose own output pytest hides) and written as JSON beside the test's temp files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CONTAINER_REPORT
from tests.containers.stack import (
    API_KEY,
    CANARY,
    EVAL_QUESTIONS,
    Stack,
    copy_project,
    give_to_stack_user,
    require_engine,
    write_env,
)

CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report  # read by the `stack` fixture's teardown
    return report


@pytest.fixture(scope="session")
def container_report(pytestconfig: pytest.Config) -> list[str]:
    """Lines for the end-of-run "container test report" (tests/conftest.py prints it, from every worker)."""
    return pytestconfig.stash.setdefault(CONTAINER_REPORT, [])


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path, container_report: list[str]) -> Iterator[Stack]:
    require_engine()
    root = tmp_path / "project"
    root.mkdir()
    copy_project(root)
    project = f"axiomtest{uuid.uuid4().hex[:8]}"
    s = Stack(root, project, tmp_path / "docker.log")
    # The evaluation job runs on a slice of the sample golden set: the test is about the plumbing.
    golden = (root / "evaluation/datasets/sample/golden.jsonl").read_text(encoding="utf-8").splitlines()
    subset = root / "evaluation/datasets/container-test/golden.jsonl"
    subset.parent.mkdir(parents=True)
    subset.write_text("\n".join(golden[:EVAL_QUESTIONS]) + "\n", encoding="utf-8")
    write_env(root / ".env", {
        "EVAL_DATASET": str(subset.relative_to(root)),
        "OPENAI_API_KEY": CANARY,
        "LLM_PROVIDER": "extractive",  # the canary key must never be sent anywhere
        "JUPYTER_TOKEN": s.jupyter_token,
        "AXIOM_API_KEYS": API_KEY,
        "LOG_FORMAT": "text",
        "LOG_FILE": "logs/axiom.log",  # the backend writes ./logs/axiom.log on the host, as STACK_UID
        "AXIOM_IMAGE_NAME": s.image_name,
        "RAY_AUTH_TOKEN": s.ray_token,
        **{name: str(port) for name, port in s.ports.items()},
        # `make test`'s one OpenMP thread per process (Makefile, TEST_THREADS), as a user of a shared machine
        # sets it in .env: the containers run beside the other test workers
        **({"OMP_NUM_THREADS": threads} if (threads := os.environ.get("OMP_NUM_THREADS")) else {}),
    })
    # Host folders the containers write to, owned by the containers' user (STACK_UID) as in that user's clone.
    for rel in ("logs", "notebooks", "evaluation/runs", "backups"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel in ("logs", "notebooks", "evaluation"):
        for path in [root / rel, *(root / rel).rglob("*")]:
            give_to_stack_user(path)
    try:
        yield s
    finally:
        # pytest does not throw a test's failure into its fixtures: the call phase's report says how it went
        call = request.node.stash.get(CALL_REPORT, None)
        if call is None or not call.passed:
            s.log("\n==== diagnostics ====\n" + s.diagnostics())
        s.dc("--profile", "eval", "--profile", "cluster", "down", "-v", "--remove-orphans", "--timeout", "45",
             check=False, timeout=300)
        if os.environ.get("AXIOM_KEEP_TEST_IMAGES") != "1":
            tags = [f"{s.image_name}:backend", f"{s.image_name}:jupyter", f"{s.image_name}:cluster"]
            s.run(["docker", "rmi", "--no-prune", *tags], check=False, timeout=300)
        container_report.append(f"log of docker commands: {s.log_path}")
