"""Fixtures of the tests on the external reference cases."""

from __future__ import annotations

import pytest

from qspflow.calibrate.spec import CalibrationSpec
from qspflow.petab import load_problem


@pytest.fixture(scope="session")
def weber(cases):
    """Weber_BMC2015's calibration spec (the PEtab problem read and checked)."""
    return CalibrationSpec(load_problem(cases / "petab-collection" / "Weber_BMC2015" / "Weber_BMC2015.yaml"))
