"""The Pyomo polish of a shooting optimum stops after its share of `max_cpu_time`: Fujita_SciSignal2010's
transcription does not converge from the published fit, and its 30 iterations took 82–86 s (a suite run past
its 10 minutes)."""

from __future__ import annotations

import logging

import pytest

from qspflow.calibrate import open_session
from qspflow.calibrate import session as calibrate_session

pytestmark = pytest.mark.slow


def test_a_polish_that_does_not_converge_stops_after_its_share_of_max_cpu_time(cases, caplog):
    problem = cases / "petab-collection" / "Fujita_SciSignal2010" / "Fujita_SciSignal2010.yaml"
    session = open_session(problem, profile=False, max_cpu_time=12.0)  # the polish's share: 2 s, an iteration ≈ 3 s
    spec = session.spec
    llh = spec.simulated_llh(spec.nominal)
    optimum = calibrate_session.StartResult(0, "lhs", spec.nominal, spec.nominal, -llh, llh, "FTOL", True, 0.0,
                                            session.options.n_elements, method="shooting")
    with caplog.at_level(logging.WARNING, logger="qspflow.calibrate"):
        assert session._polish(optimum) is optimum
    assert "the transcription did not converge from the shooting optimum (maxTimeLimit)" in caplog.text
