"""Shared fixtures: the repository root and the external reference cases in ../shared/cases."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cases_dir() -> Path:
    for candidate in (ROOT.parent / "shared" / "cases", ROOT / ".." / "shared" / "cases"):
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError("../shared/cases not found beside the repository")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cases() -> Path:
    return _cases_dir()


@pytest.fixture(scope="session")
def example() -> Path:
    return ROOT / "resources" / "example"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (bin/test runs two workers, `--dist loadgroup`) each test module runs whole in
    one worker, so that its module fixtures are made once; and the modules that compare with the small
    example's reference run (tests/workflow/small.py, memoized per process) share one worker and one run."""
    for item in items:
        module = item.module
        group = "small-reference" if "reference_run" in vars(module) else module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
