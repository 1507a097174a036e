"""A dose time set by a PEtab condition table (Weber_BMC2015: PdBu_time = 24 h in two conditions) is a
breakpoint of the compiled simulators: stepping across that switch drove the sensitivity system's step
size to underflow at rtol 1e-8 (4 of 10 local starts of `qspflow calibrate … --seed 1` failed so, three of
them at optima the coarse stage had reached)."""

from __future__ import annotations

import pytest

from qspflow.calibrate.derivatives import GradientProblem
from qspflow.calibrate.objective import BatchProblem

# Scaled parameters (log10) where the coarse stage of a start of that run ended (the fine stage then failed).
COARSE_END = (-305.23027688092225, [
    1.692798791821278, 1.0676695753389096, 0.14071392948643452, 0.009871364257705146, -2.2939575937338965,
    -3.9867685242211257, -2.569654499107874, 6.786135029398389, 7.770117849021311, 6.060562429542127,
    4.466255121932217, 2.1238364564089984, 0.5020098153302056, -2.355285787537149, 0.7054816061029405,
    4.330916197568238, -2.35964479861703, -2.7345560121369052, -2.2292478199826746, 7.98975132116954,
    7.271986591022041, 7.84268208126728, 2.1190007059625855, 6.070109408894127, 6.386763880220654,
    5.178209204117697, 1.831212927245928, 0.4421454126376655, -3.8731427978653543, -4.09447223441218,
    -4.945634752754628, -0.013873208136241193, 0.1305063190084903, -0.8530007361647269, -0.38903425127033336,
    -1.0404349904793153])


def test_the_condition_tables_dose_time_is_a_breakpoint_of_its_experiments(weber):
    assert {e.condition: e.breakpoints for e in weber.experiments} == {"model1_data2": (0.0, 24.0),
                                                                         "model1_data3": (0.0, 24.0)}


@pytest.mark.slow
def test_the_gradient_at_exact_tolerances_is_simulated_across_the_dose_time(weber):
    llh, x = COARSE_END
    evaluation = GradientProblem(BatchProblem(weber, threads=1)).evaluate(x)
    assert evaluation.reason == ""
    assert -evaluation.nll == pytest.approx(llh, abs=1e-6)  # the reference simulation's (LSODA)
