"""The container test's report: image sizes, build and start-up times, printed at the end of the pytest run
(also for a passing test, whose own output pytest hides) and written as JSON beside the test's temp files."""

from __future__ import annotations

import pytest

REPORT_KEY = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def container_report(pytestconfig: pytest.Config) -> list[str]:
    return pytestconfig.stash.setdefault(REPORT_KEY, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # noqa: ANN001
    lines = config.stash.get(REPORT_KEY, [])
    if lines:
        terminalreporter.section("container test report")
        for line in lines:
            terminalreporter.write_line(line)
