"""The one Ray cluster of the Ray tests (both modules run on one xdist worker: tests/conftest.py's "ray"
group): a head node of 1 CPU and a second node of 1 CPU joining it, started once per session and stopped at
its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notebooks.conftest import clean_kernel_env  # noqa: F401 (the fixture the nodes' environment comes from)
from tests.support.ray_cluster import RayCluster
from tests.support.waiting import WaitError


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    # the nodes (and so the sweep's kernels) inherit the clean environment
    request.getfixturevalue("clean_kernel_env")
    for attempt in range(3):
        # a node's raylet gives its dashboard agent (a Python process) 15 s to report its port, a limit Ray
        # 2.60 does not let us raise: on a busy 2-core machine a node can fail to start, and a new attempt
        # then succeeds
        try:
            cluster = RayCluster(head_cpus=1, worker_cpus=[1]).start()
            break
        except WaitError:
            if attempt == 2:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()
