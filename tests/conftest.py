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
