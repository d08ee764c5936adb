"""Test-wide hooks: everything under tests/integration is marked, and never skipped in CI."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def in_ci() -> bool:
    """True on a CI runner, where integration tests must run, never skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def ci() -> bool:
    """Whether this run is on CI (see :func:`in_ci`)."""
    return in_ci()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``integration``."""
    for item in items:
        if INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """In CI a skipped integration test is a failure: a missing broker must not pass quietly."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and item.get_closest_marker("integration"):
        if hasattr(report, "wasxfail"):
            return
        report.outcome = "failed"
        report.longrepr = f"integration test skipped in CI (CI=true): {report.longrepr}"
