"""The reference simulation (`qspflow.petab.log_likelihood`, which verifies every optimum) at points of
Weber_BMC2015 where scipy's LSODA alone crawled or could not confirm the preequilibration's steady state:
the compiled simulator's log-likelihood there (recorded by `qspflow calibrate … --seed 2`) is the answer.
"""

from __future__ import annotations

import pytest

from qspflow.petab import reference

# Scaled parameters (log10) where two of the seed's local starts ended, and fides' −llh there.
CRAWLED = (-300.58542133632665, [
    -0.7382741814215903, 0.9427284113392351, 0.31185174277367006, -3.999133535329911, -2.0128391420058773,
    -3.99991373323624, -3.899032156774357, 7.18203674895683, 4.320916315091864, 6.8057242430559395,
    3.0303048071411967, 0.6421656150739888, -1.7070030592839502, 0.08142220860896898, 0.8912983362488528,
    2.0334960262909854, -2.6676183405712646, -3.6922057188851753, -4.0811904085026365, 7.999997675450468,
    7.328891878928734, 1.2614391229345423, -0.5743217071546082, 4.951284957123033, 6.398672360361053,
    4.52205343130106, 2.905432350076525, 0.45377881897125444, -2.8805500311899594, -2.994934275251738,
    -4.099240652549061, -0.014013497634476473, 0.03298608007155046, -0.9045262150496521, -0.3824550797099409,
    -1.1055351397448776])
NOISY_RATE = (-300.8683187096318, [
    -0.7147938493906981, 1.0054368704498668, -2.4074459206342866, -3.9994216745405717, -3.072703329010057,
    -3.984427694332286, -3.6543394277546226, 4.732743705071067, 3.0775820617533896, 7.7508343526441745,
    9.602179058263578, -1.2945205531398583, -2.1918744889601087, -1.9136406561180241, 3.215765294131767,
    0.8015319407589603, 0.18001920874760535, -4.999985704426068, 3.8203686258145133, 6.532780903350519,
    7.2853813907879195, 1.6589103076292064, 1.39865654459853, 4.968391951748616, 3.8733175203178076,
    3.6587651518993978, 2.530496533363827, 2.832371877826324, -2.471120231181441, -2.929599771428585,
    -4.023251974274041, -0.01330972840947809, 0.03404550444011593, -0.903705471323009, -0.3795531470562906,
    -1.1064668166780194])


def test_a_segment_where_lsoda_crawls_is_integrated_by_bdf(weber, monkeypatch):
    llh, x = CRAWLED
    assert weber.simulated_llh(x, 10.0) == pytest.approx(llh, abs=1e-6)
    # LSODA alone crawled here on the machine that recorded the point (still in the preequilibration after
    # 60 s) and is through in 0.6 s on another (other last bits from LAPACK): a cap every segment reaches
    # hands them all to BDF, whose answer must be the same
    monkeypatch.setattr(reference, "LSODA_EVALUATIONS", 50)
    assert weber.simulated_llh(x, 10.0) == pytest.approx(llh, abs=1e-6)


def test_a_steady_state_is_confirmed_where_x_no_longer_moves_though_its_rate_is_cancellation_noise(weber):
    # |dx/dt| ≈ 1e-10 at x ≈ 1490 from fluxes of 1e4: rate × t fails the tolerance at every horizon to 1e12,
    # while x moves by 5e-13 from 1e6 to 1e7
    llh, x = NOISY_RATE
    assert weber.simulated_llh(x, 10.0) == pytest.approx(llh, abs=1e-6)
