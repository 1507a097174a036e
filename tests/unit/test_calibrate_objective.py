"""The one measurement density of `qspflow.calibrate.objective` against scipy's distributions, and its
log-σ form (the NLP's) against its σ form (the batch objective's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from qspflow.calibrate.objective import NUMPY, Namespace, measurement_term, noise_term, transformed_residual

MATH = Namespace(log=math.log, log10=math.log10, data_log=math.log, data_log10=math.log10)
VALUE, SIMULATION, SIGMA = 2.5, np.array([1.0, 2.0, 3.5]), np.array([0.3, 0.5, 0.2])


def _scipy(transformation: str, distribution: str) -> np.ndarray:
    """−log p of VALUE under PEtab's definition: the density of the transformed value, times the
    Jacobian of the transformation."""
    transform = {"lin": lambda v: v, "log": np.log, "log10": np.log10}[transformation]
    jacobian = {"lin": 1.0, "log": 1 / VALUE, "log10": 1 / (VALUE * math.log(10))}[transformation]
    density = stats.norm if distribution == "normal" else stats.laplace
    return -(density.logpdf(transform(VALUE), loc=transform(SIMULATION), scale=SIGMA) + math.log(jacobian))


@pytest.mark.parametrize("transformation", ["lin", "log", "log10"])
@pytest.mark.parametrize("distribution", ["normal", "laplace"])
def test_measurement_term_is_the_petab_density(transformation, distribution):
    found = measurement_term(VALUE, SIMULATION, SIGMA, transformation, distribution)
    assert found == pytest.approx(_scipy(transformation, distribution), rel=1e-13)


@pytest.mark.parametrize("transformation", ["lin", "log", "log10"])
@pytest.mark.parametrize("distribution", ["normal", "laplace"])
def test_the_log_sigma_form_is_the_same_density(transformation, distribution):
    expected = measurement_term(VALUE, SIMULATION, SIGMA, transformation, distribution)
    for k, (simulation, sigma) in enumerate(zip(SIMULATION, SIGMA)):
        r, jacobian = transformed_residual(VALUE, float(simulation), transformation, MATH)
        value = noise_term(distribution, jacobian, math.log(sigma), 1 / sigma, sigma**-2, r=r, absolute=abs(r))
        assert value == pytest.approx(expected[k], rel=1e-13)


def test_numpy_namespace_is_numpy():
    r, jacobian = transformed_residual(VALUE, SIMULATION, "log10", NUMPY)
    assert r == pytest.approx(np.log10(VALUE) - np.log10(SIMULATION), rel=1e-15)
    assert jacobian == pytest.approx(math.log(VALUE * math.log(10)), rel=1e-15)
