"""Which parameters of real PEtab problems are observation scaling factors (`CalibrationSpec.scalings`):
a factor of the simulated value of each measurement it appears in (lin, normal), and in nothing else."""

from __future__ import annotations

import pytest

from qspflow.calibrate.spec import CalibrationSpec
from qspflow.petab import load_problem

EXPECTED = {
    "Fujita_SciSignal2010": ["scaling_pAkt_tot", "scaling_pEGFR_tot", "scaling_pS6_tot"],
    "Weber_BMC2015": ["scale_yCERTpRN24", "scale_yPI4K3BpRN24", "scale_yPKDpN0", "scale_yPKDpN24",
                      "scale_yPKDpN25"],
    # σ = s · sigma_pErk: the factor is in the noise too, the optimum no longer closed-form
    "Fiedler_BMCSystBiol2016": [],
    # specC17 enters the observables' fractions, not as a factor
    "Boehm_JProteomeRes2014": [],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scaling_factors_of_benchmark_problems(cases, name):
    spec = CalibrationSpec(load_problem(cases / "petab-collection" / name / f"{name}.yaml"))
    assert [spec.names[i] for i in spec.scalings] == EXPECTED[name]
