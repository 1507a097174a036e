"""Virtual populations (`qspflow.vpop`, `qspflow.steps.vpop`) on synthetic models whose answer is known:
outputs a known linear map of log-normal parameters; plausibility g's properties; chunking; bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qspflow import vpop
from qspflow.errors import ConfigError, DataError
from qspflow.steps.vpop import read_chunk, read_target, write_chunk

A = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]])  # invertible: outputs identify parameters
MEDIAN = np.array([1.0, 2.0, 0.5])
SIGMA = np.array([0.3, 0.25, 0.4])
NAMES = ("m1", "m2", "m3")


def linear(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return P @ A.T, np.zeros(P.shape[0], dtype=bool)


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray]:
    """A target cohort of 400 patients: log-normal parameters, their linear outputs."""
    rng = np.random.default_rng(11)
    P = MEDIAN * np.exp(SIGMA * rng.standard_normal((400, 3)))
    return P, linear(P)[0]


def _space() -> vpop.Space:
    return vpop.Space.make(["a", "b", "c"], MEDIAN / 4, MEDIAN * 4, ["log10"] * 3)


def _ranges(lower=(0.5, 0.8, 0.1), upper=(4.0, 4.5, 2.0)) -> vpop.Ranges:
    return vpop.Ranges.make(NAMES, lower, upper)


@pytest.mark.parametrize("method", ["allen", "rieger"])
def test_selected_vp_reproduces_a_known_target_distribution_and_its_parameter_means(cohort, method):
    P_true, target = cohort
    options = vpop.make_options(method=method)
    chunks = vpop.generate(linear, _space(), _ranges(), candidates=12000, n_chunks=3, seed=5, options=options,
                           target=target)
    result = vpop.virtual_population(chunks, target, _space(), _ranges(), seed=5, options=options)
    fit = result.fit.set_index("output")
    for name in NAMES:
        assert fit.loc[name, "ks_p"] >= 0.05, (name, fit.loc[name, "ks_p"])
        assert fit.loc[name, "matches"] == "yes"
    assert result.selection.selected.size >= 200
    true_means = MEDIAN * np.exp(SIGMA**2 / 2)  # of the log-normal population
    np.testing.assert_allclose(result.params.mean(axis=0), true_means, rtol=0.10)
    assert np.all(vpop.plausibility(result.outputs, _ranges()) == 0)


def test_rieger_needs_fewer_plausible_patients_per_vp_than_allen(cohort):
    _, target = cohort
    per_vp = {}
    for method in ("allen", "rieger"):
        options = vpop.make_options(method=method)
        chunks = vpop.generate(linear, _space(), _ranges(), candidates=8000, n_chunks=2, seed=3, options=options,
                               target=target)
        result = vpop.virtual_population(chunks, target, _space(), _ranges(), seed=3, options=options)
        per_vp[method] = result.summary()["plausible_per_vp"]
    assert per_vp["rieger"] < per_vp["allen"]


def test_plausibility_is_zero_exactly_inside_the_ranges_and_grows_quadratically_outside():
    ranges = vpop.Ranges.make(["x", "y"], [0.0, -1.0], [2.0, 1.0])
    inside = np.array([[0.0, -1.0], [2.0, 1.0], [1.0, 0.0], [1.5, 0.99]])
    assert np.all(vpop.plausibility(inside, ranges) == 0)
    # outside by d on one output: (1 + d)² − 1 = d² + 2d (half-width 1)
    for d in (0.1, 0.5, 2.0):
        g = vpop.plausibility(np.array([[2.0 + d, 0.0], [-d, 0.0], [1.0, 1.0 + d]]), ranges)
        np.testing.assert_allclose(g, d**2 + 2 * d)
    # terms add over outputs, and a failed (NaN) output is never plausible
    assert vpop.plausibility(np.array([[3.0, 2.0]]), ranges)[0] == pytest.approx(3.0 + 3.0)
    assert vpop.plausibility(np.array([[np.nan, 0.0]]), ranges)[0] == math.inf


def test_annealing_brings_draws_into_range_and_stays_within_bounds():
    space = _space()
    ranges = _ranges((1.9, 2.9, 0.9), (2.1, 3.1, 1.1))  # narrow: few uniform draws are plausible
    rng = vpop.chunk_rng(0, 0)
    X0 = space.unit_to_scaled(rng.random((300, 3)))
    tracker = vpop._Tracker(linear, space, ranges, 1000)
    before = (tracker(X0)[1] == 0).mean()
    X, M, g = vpop.anneal(tracker, X0, rng, vpop.make_options())
    assert (g == 0).mean() > 0.9 > before
    P = space.to_linear(X)
    assert np.all(P >= space.lower * (1 - 1e-12)) and np.all(P <= space.upper * (1 + 1e-12))
    np.testing.assert_allclose(M, linear(P)[0])


def test_chunks_concatenate_bit_for_bit_and_round_trip_through_files(cohort, tmp_path):
    _, target = cohort
    options = vpop.make_options()
    space, ranges = _space(), _ranges()
    whole = vpop.generate(linear, space, ranges, candidates=900, n_chunks=3, seed=9, options=options)
    for c in range(3):  # separate jobs
        part = vpop.candidate_chunk(linear, space, ranges, chunk=c, n_chunks=3, candidates=900, seed=9,
                                    options=options)
        assert part.params.tobytes() == whole[c].params.tobytes()
        write_chunk(part, space, ranges, tmp_path / f"c{c}.tsv")
        back, columns = read_chunk(tmp_path / f"c{c}.tsv")
        assert columns == [*space.names, *ranges.names]
        assert back.params.tobytes() == part.params.tobytes() and back.outputs.tobytes() == part.outputs.tobytes()
        assert back.simulations == part.simulations
    assert vpop.chunk_sizes(10, 3) == [4, 3, 3]


def test_surrogate_prescreen_saves_simulations_at_high_precision():
    space = _space()
    ranges = _ranges((1.5, 2.0, 0.4), (2.5, 3.0, 0.8))
    options = vpop.make_options(surrogate=True, pilot=4000)
    chunks = vpop.generate(linear, space, ranges, candidates=40000, n_chunks=2, seed=4, options=options)
    whole = vpop.combine(chunks)
    precision = whole.screened_true / whole.accepted
    assert precision >= 0.9
    assert whole.recall >= 0.6  # an axis-aligned classifier on an oblique box, from a pilot of 4,000
    assert whole.candidates / whole.simulations >= 3


def test_unreachable_output_stops_naming_it_and_the_best_g():
    ranges = _ranges((0.5, 0.8, 50.0), (4.0, 4.5, 60.0))  # m3 ≤ 0.2·4 + 2 = 2.8 within the bounds
    options = vpop.make_options(anneal_steps=20)
    with pytest.raises(vpop.VpopError, match=r"vpop\.ranges\.m3.*best g") as err:
        vpop.generate(linear, _space(), ranges, candidates=100, n_chunks=1, seed=0, options=options)
    assert "\n" not in str(err.value)


def test_bad_ranges_and_small_targets_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"vpop\.ranges\.m2.*lower ≤ upper"):
        vpop.Ranges.make(NAMES, [0, 2, 0], [1, 1, 1])
    with pytest.raises(ConfigError, match=r"vpop\.parameters\.b"):
        vpop.Space.make(["a", "b"], [1, 2], [2, 1])
    path = tmp_path / "target.tsv"
    pd.DataFrame({"patient": ["P1", "P2", "P3"], "m1": [1.0, 2.0, 3.0], "m2": [1.0, 2.0, 2.5],
                  "m3": [0.1, 0.2, 0.3]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(DataError, match=r"target.tsv.*at least 10 complete patients.*found '3 patients'") as err:
        read_target(path, list(NAMES))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="column 'm4'"):
        read_target(path, ["m4"])
    with pytest.raises(ConfigError, match=r"vpop\.method"):
        vpop.make_options(method="nested")
    with pytest.raises(ConfigError, match=r"vpop\.unknown"):
        vpop.make_options(unknown=1)


def test_failed_simulations_are_counted_and_never_plausible():
    def flaky(P):
        M, _ = linear(P)
        failed = P[:, 0] > 2.0
        M[failed] = np.nan
        return M, failed

    chunk = vpop.allen_chunk(flaky, _space(), _ranges(), 500, vpop.chunk_rng(1, 0), vpop.make_options())
    assert chunk.failed > 0
    assert np.all(chunk.params[:, 0] <= 2.0)


@pytest.mark.slow
def test_example_study_vp_matches_the_cohort_and_the_staged_jobs_give_the_same_bytes(tmp_path):
    """The bundled example through the steps: `qspflow vpop` in one process, and the chunk jobs plus
    `vpop_select`, give the same files; every output's KS p ≥ 0.05 and `fit.tsv` says so."""
    import sys

    import yaml

    from qspflow.steps import in_folder
    from qspflow.steps.vpop import FILES, vpop_candidates, vpop_folder, vpop_select

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import vpop as bench  # benchmarks/vpop.py: the example's problem and outputs
    finally:
        sys.path.pop(0)
    problem = bench.build_problem(tmp_path / "model")
    truth = {"pk_cl": 10.0, "pk_vc": 50.0, "pd_ec50": 0.2, "tau_ERK": 1.5, "tau_Casp3": 2.8}
    section = {"outputs": bench.OUTPUTS, "ranges": bench.PLAUSIBLE, "n_candidates": 3000, "chunks": 3,
               "n_vps": 500, "parameters": {k: [v / 3, v * 3] for k, v in truth.items()}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"vpop": {"target": str(bench.EXAMPLE / "vpop_target.tsv"), **section}}))
    summary = vpop_folder(problem=problem, spec=spec, out=tmp_path / "one", seed=7, threads=2)
    assert summary["vps"] >= 300
    fit = pd.read_csv(tmp_path / "one" / "fit.tsv", sep="\t").set_index("output")
    for name in bench.PLAUSIBLE:
        assert fit.loc[name, "ks_p"] >= 0.05 and fit.loc[name, "matches"] == "yes"
    results = [tmp_path / f"chunk{c}.tsv" for c in range(3)]
    for c, path in enumerate(results):
        vpop_candidates(problem=problem, estimates=None, target=bench.EXAMPLE / "vpop_target.tsv", chunk=c,
                        n_chunks=3, result=path, seed=7, threads=1, **section)
    staged = in_folder(tmp_path / "staged", FILES)
    (tmp_path / "staged").mkdir()
    vpop_select(candidates=results, target=bench.EXAMPLE / "vpop_target.tsv", seed=7, **staged, **section)
    for name, file in FILES.items():
        assert (tmp_path / "one" / file).read_bytes() == staged[name].read_bytes(), file
