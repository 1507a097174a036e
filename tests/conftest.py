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


# The longest test modules, longest first (measured, seconds on the idle 2-core machine): started first, so that
# the two workers end together rather than one finishing the container test alone.
LONGEST_FIRST = (
    "tests/workflow/test_container.py",  # the image's first build ~225, the audit in it ~400
    "tests/workflow/test_slurm.py",  # ~600 with the small example's reference run, shared with the container and resume tests
    "tests/workflow/test_example.py",  # ~300: the example's run, reports in a browser, the package
    "tests/unit/test_calibrate_reach.py",  # ~230: Fujita, Bruno, Boehm to their published fits
    "tests/workflow/test_resume.py",  # ~200 (after the reference run)
    "tests/workflow/test_calibrate.py",  # ~160
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first. bin/test runs pytest-xdist with `--dist loadfile --no-loadscope-reorder`:
    each module whole in one of two workers (its module fixtures made once), in this order."""
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
