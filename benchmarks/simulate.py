"""Benchmark `qspflow.simulate` against libroadrunner (CVODE) and scipy's LSODA, checked against Radau.

Reference model: `random_network(10, seed=0)` as Odefy's normalized HillCube, with a drug
given orally (100 mg at 0 h and 12 h) whose 2-compartment PK inhibits the production of the
first node. The gut depot is written analytically (`couple_pkpd`), so the model has 12
states: 10 nodes + A_c + A_p. Ten parameters vary ×/÷2 log-uniformly around their nominal
values; t ∈ [0, 20] h, 50 output times, rtol 1e-6, atol 1e-8 for every engine.

Stiff real model: Boehm_JProteomeRes2014 (PEtab benchmark collection; 8 states in two
compartments, nuclear import ~1e5/min against a signal decaying over hours), its SBML read by
`load_problem` with the PEtab nominal values, 1,000 sets of its 9 estimated parameters ×/÷2
log-uniformly around nominal (the 3 noise parameters only enter the noise model, so the 6
kinetic ones are simulated), at the 16 measurement times (0…240 min), qspflow and
libroadrunner (on the original SBML) at the same tolerances, both checked against libroadrunner
at rtol 1e-12, atol 1e-14.

Run: `python benchmarks/simulate.py` (a few minutes; the machine's other load shows in the
wall-clock figures). The last line is machine-readable; the one before it has the Boehm figures.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numba
import numpy as np
import sympy
from scipy.integrate import solve_ivp

from qspflow.boolean import random_network
from qspflow.convert import boolean_to_ode, couple_pkpd
from qspflow.model import TIME, OdeModel
from qspflow.model.sbml import write_sbml
from qspflow.petab import load_problem
from qspflow.simulate import compile_model

RTOL, ATOL = 1e-6, 1e-8
TIMES = np.linspace(0.0, 20.0, 50)
REFERENCE_TOLERANCES = {"rtol": 1e-10, "atol": 1e-12}
MAX_ABS_ERR = 1e-5
TARGETS = {"sims_per_s": 30_000, "speedup": 40, "stiff_sims_per_s": 5_000, "peak_mb": 1024}
BOEHM = (Path(__file__).resolve().parents[2] / "shared" / "cases" / "petab" / "Boehm_JProteomeRes2014"
         / "Boehm_JProteomeRes2014.yaml")
BOEHM_SETS = 1_000
BOEHM_REFERENCE_TOLERANCES = {"rtol": 1e-12, "atol": 1e-14}
# Relative errors are taken where a state is above atol/rtol: below that the error test is absolute
# (Boehm's pApA and pBpB stay ~1e-5, where atol 1e-8 alone allows 1e-3 relative).
BOEHM_MAX_REL_ERR = 1e-5


def reference_model() -> tuple[OdeModel, list[str]]:
    """The 12-state model and its ten varying parameters."""
    net = random_network(10, seed=0)
    model = couple_pkpd(boolean_to_ode(net), target=net.nodes[0], effect="inhibit", compartments=2, route="oral",
                        interval=12.0, n_doses=2)
    model.parameters["dose_drug"].value = 100.0
    model.parameters["pk_f"].value = 0.6
    model.parameters["pd_ec50"].value = 0.5
    model.parameters["pd_emax"].value = 0.9
    edges = [f"k_{net.regulators(node)[0]}_{node}" for node in net.nodes[4:6]]
    varying = [f"tau_{node}" for node in net.nodes[:4]] + edges + ["pk_ka", "pk_cl", "pk_vc", "pd_ec50"]
    return model, varying


def population(model: OdeModel, varying: list[str], n: int, seed: int) -> np.ndarray:
    nominal = np.array([model.parameters[name].value for name in varying])
    return nominal * 2.0 ** np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, len(varying)))


def comparable(model: OdeModel, varying: list[str], params: np.ndarray, values: np.ndarray) -> np.ndarray:
    """States with the drug amounts as concentrations (mg/L), so all are of order 1.

    An absolute error bound only means something on quantities of one scale: the amounts
    reach ~100 mg, where rtol 1e-6 alone allows 1e-4.
    """
    out = values.copy()
    for state, volume in {"A_c": "pk_vc", "A_p": "pk_vp"}.items():
        v = params[:, varying.index(volume)] if volume in varying else model.parameters[volume].value
        out[..., model.states.index(state)] /= np.broadcast_to(v, len(params))[:, None]
    return out


# --- independent references -----------------------------------------------------------------


def _segments(model: OdeModel) -> list[tuple[float, float]]:
    edges = sorted({0.0, float(TIMES[-1]), *(b for b in model.breakpoints() if 0 < b < TIMES[-1])})
    return list(zip(edges[:-1], edges[1:]))


def _solve_segmented(f, jac, y0: np.ndarray, p: np.ndarray, segments, method: str, **options) -> np.ndarray:
    """States at TIMES for parameters p (`f(t, y, p)`), restarting the solver at every breakpoint."""
    out = np.empty((TIMES.size, y0.size))
    y = y0
    for a, b in segments:
        inside = (TIMES >= a) & (TIMES <= b)
        t_eval = np.unique(np.append(TIMES[inside], b))  # b too: the next segment starts there
        sol = solve_ivp(f, (a, b), y, method=method, jac=jac, t_eval=t_eval, args=(p,), **options)
        if not sol.success:
            raise RuntimeError(sol.message)
        out[inside] = sol.y.T[: int(inside.sum())]
        y = sol.y[:, -1]
    return out


def radau_reference(model: OdeModel, varying: list[str], params: np.ndarray) -> np.ndarray:
    """scipy Radau at rtol 1e-10 on numpy functions lambdified from the sympy model (no qspflow code)."""
    states = model.state_symbols
    symbols = [model.symbol(name) for name in varying]
    fixed = {model.symbol(n): p.value for n, p in model.parameters.items() if n not in varying}
    f_expr = sympy.Matrix([sympy.sympify(model.rhs[s]).xreplace(fixed) for s in model.states])
    f = sympy.lambdify([TIME, states, symbols], list(f_expr))
    jac = sympy.lambdify([TIME, states, symbols], f_expr.jacobian(states))
    out = []
    for p in params:
        y0 = np.array([float(sympy.sympify(model.initial[s]).xreplace(fixed).xreplace(dict(zip(symbols, p))))
                       for s in model.states])
        out.append(_solve_segmented(f, jac, y0, p, _segments(model), "Radau", **REFERENCE_TOLERANCES))
    return np.array(out)


# --- scipy LSODA with the compiled right-hand side ------------------------------------------


def lsoda_loop(compiled, model: OdeModel, params: np.ndarray) -> np.ndarray:
    y0 = np.zeros(len(model.states))  # every state of the reference model starts at 0
    return np.array([
        _solve_segmented(compiled.rhs, compiled.jacobian, y0, p, _segments(model), "LSODA", rtol=RTOL, atol=ATOL)
        for p in params
    ])


# --- libroadrunner ----------------------------------------------------------------------------


def roadrunner_loop(sbml: str | Path, states: list[str], varying: list[str], params: np.ndarray, times: np.ndarray,
                    *, rtol: float = RTOL, atol: float = ATOL) -> tuple[np.ndarray, float]:
    """One RoadRunner instance, reset and re-parameterized per set; returns (concentrations, seconds).

    `reset()` puts the species back to their initial values and leaves the parameters, which
    `setGlobalParameterValues` then overwrites; initial values must not depend on `varying`
    (checked by the callers), else `resetAll()` would be needed.
    """
    import roadrunner

    rr = roadrunner.RoadRunner(str(sbml))
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.maximum_num_steps = 100_000
    rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in states]
    ids = list(rr.model.getGlobalParameterIds())
    index = [ids.index(name) for name in varying]
    out = np.empty((len(params), times.size, len(states)))
    start = time.perf_counter()
    for i, p in enumerate(params):
        rr.reset()
        rr.model.setGlobalParameterValues(index, p)
        out[i] = rr.simulate(times=times)[:, 1:]
    return out, time.perf_counter() - start


def check_initial_values_fixed(model: OdeModel, varying: list[str]) -> None:
    used = set().union(*(sympy.sympify(model.initial[s]).free_symbols for s in model.states))
    if used & {model.symbol(name) for name in varying}:
        raise RuntimeError("initial values depend on varying parameters: roadrunner_loop needs resetAll()")


# --- Boehm_JProteomeRes2014: a stiff published model ----------------------------------------


def median_rate(run, n: int, repeats: int) -> float:
    """sims/s of the median of `repeats` timed calls of `run()` (each simulating n sets)."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return rate(n, float(np.median(seconds)))


def load_problem_sbml(yaml_path: Path) -> str:
    """The SBML file name of a one-model PEtab problem."""
    import petab.v1 as petab_v1

    return petab_v1.yaml.load_yaml(yaml_path)["problems"][0]["sbml_files"][0]


def boehm_comparison(yaml_path: Path, threads: int | None, repeats: int) -> dict[str, float]:
    """qspflow vs libroadrunner on Boehm at RTOL/ATOL, both against libroadrunner at rtol 1e-12."""
    problem = load_problem(yaml_path)
    model = problem.model
    estimated = [name for name, p in problem.parameters.items() if p.estimate]
    varying = [name for name in estimated if name in model.parameters]  # the rest are noise parameters
    check_initial_values_fixed(model, varying)
    nominal = np.array([problem.parameters[name].value for name in estimated])
    sample = nominal * 2.0 ** np.random.default_rng(2014).uniform(-1.0, 1.0, size=(BOEHM_SETS, len(estimated)))
    params = np.ascontiguousarray(sample[:, [estimated.index(name) for name in varying]])
    times = np.unique(problem.measurement_table["time"].to_numpy(dtype=float))
    sbml = yaml_path.parent / load_problem_sbml(yaml_path)
    print(f"Boehm_JProteomeRes2014: {len(model.states)} states, {BOEHM_SETS:,} sets of the {len(estimated)} estimated "
          f"parameters ×/÷2 ({len(varying)} kinetic ones simulated: {', '.join(varying)}), "
          f"{times.size} times {times[0]:g}…{times[-1]:g} min")

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        compiled = compile_model(model, varying=varying, cache_dir=cache)
        compile_s = time.perf_counter() - start
    options = dict(rtol=RTOL, atol=ATOL, what="states", threads=threads)
    compiled.simulate(params[:10], times, **options)  # first-call overheads out of the way
    result = compiled.simulate(params, times, **options)
    qsp_rate = median_rate(lambda: compiled.simulate(params, times, **options), len(params), repeats)

    rr_values = roadrunner_loop(sbml, model.states, varying, params, times)[0]
    rr_rate = median_rate(lambda: roadrunner_loop(sbml, model.states, varying, params, times), len(params), repeats)
    reference = roadrunner_loop(sbml, model.states, varying, params, times, **BOEHM_REFERENCE_TOLERANCES)[0]

    controlled = np.abs(reference) >= ATOL / RTOL

    def rel_err(values: np.ndarray) -> float:
        return float((np.abs(values - reference)[controlled] / np.abs(reference[controlled])).max())

    def scaled_err(values: np.ndarray) -> float:  # the integrators' own error measure, on every state
        return float((np.abs(values - reference) / (ATOL + RTOL * np.abs(reference))).max())

    qsp_err, rr_err = rel_err(result.values), rel_err(rr_values)
    print(f"Boehm qspflow: compile {compile_s:.1f} s (empty cache); {qsp_rate:,.0f} sims/s "
          f"({threads or numba.get_num_threads()} threads, median of {repeats}); "
          f"{int(result.stiff.sum())} of {len(params):,} sets found stiff, {int((result.status != 0).sum())} failed")
    print(f"Boehm libroadrunner CVODE (original SBML, one instance, reset + setGlobalParameterValues): "
          f"{rr_rate:,.0f} sims/s (median of {repeats}); qspflow ×{qsp_rate / rr_rate:.1f}")
    print(f"Boehm max rel error vs libroadrunner at rtol {BOEHM_REFERENCE_TOLERANCES['rtol']:g}, atol "
          f"{BOEHM_REFERENCE_TOLERANCES['atol']:g} (all sets; values ≥ atol/rtol = {ATOL / RTOL:g}): "
          f"qspflow {qsp_err:.2e}, libroadrunner {rr_err:.2e}; max |error|/(atol + rtol·|x|) on every state: "
          f"qspflow {scaled_err(result.values):.2f}, libroadrunner {scaled_err(rr_values):.2f}")
    return {"sims_per_s": qsp_rate, "roadrunner_sims_per_s": rr_rate, "max_rel_err": qsp_err}


# --- the benchmark --------------------------------------------------------------------------


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference-sets", type=int, default=20, help="sets checked against Radau")
    parser.add_argument("--boehm", type=Path, default=BOEHM, help="Boehm_JProteomeRes2014's PEtab YAML")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the Boehm batch (median)")
    args = parser.parse_args(argv)

    model, varying = reference_model()
    print(f"model: {len(model.states)} states ({', '.join(model.states)}), {len(model.parameters)} parameters, "
          f"breakpoints {model.breakpoints()}; varying: {', '.join(varying)}")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        compiled = compile_model(model, varying=varying, cache_dir=cache)
        print(f"compile (code generation + numba, empty cache): {time.perf_counter() - start:.1f} s; "
              f"{args.threads or numba.get_num_threads()} threads ({numba.threading_layer()} layer)")
    compiled.simulate(population(model, varying, 100, seed=99), TIMES)  # first-call overheads out of the way
    options = dict(rtol=RTOL, atol=ATOL, what="states", threads=args.threads)

    # Accuracy of every engine on the same sets.
    params = population(model, varying, 1_000, seed=1)
    checked = params[: args.reference_sets]
    reference = radau_reference(model, varying, checked)
    reference = comparable(model, varying, checked, reference)

    def error(values: np.ndarray, sets: np.ndarray = checked, ref: np.ndarray = reference) -> float:
        return float(np.abs(comparable(model, varying, sets, values) - ref).max())

    errors = {"qspflow": error(compiled.simulate(checked, TIMES, **options).values)}

    check_initial_values_fixed(model, varying)
    with tempfile.TemporaryDirectory() as tmp:
        sbml = Path(tmp) / "model.xml"
        write_sbml(model, sbml)
        rr_values, rr_seconds = roadrunner_loop(sbml, model.states, varying, params, TIMES)
    errors["libroadrunner"] = error(rr_values[: len(checked)])
    rr_rate = rate(len(params), rr_seconds)

    start = time.perf_counter()
    lsoda = lsoda_loop(compiled, model, params)
    lsoda_rate = rate(len(params), time.perf_counter() - start)
    errors["scipy LSODA"] = error(lsoda[: len(checked)])
    for engine, err in errors.items():
        print(f"max abs error vs Radau (rtol 1e-10; nodes and mg/L), {len(checked)} sets, {engine}: {err:.2e} "
              f"{'ok' if err <= MAX_ABS_ERR else f'above {MAX_ABS_ERR:g}'}")
    print(f"libroadrunner CVODE: {rr_rate:,.0f} sims/s (N = {len(params):,}, one instance, reset + "
          f"setGlobalParameterValues per set; SBML from qspflow.model.sbml.write_sbml)")
    print(f"scipy LSODA + compiled rhs/Jacobian: {lsoda_rate:,.0f} sims/s (N = {len(params):,})")

    # Throughput, streamed in chunks so memory stays bounded.
    results = {}
    for n in args.sizes:
        params = population(model, varying, n, seed=n)
        tracemalloc.start()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        failed = 0
        final = np.zeros(len(model.states))
        for chunk in compiled.simulate_chunks(params, TIMES, chunk_size=args.chunk_size, **options):
            failed += int((chunk.status != 0).sum())
            final += chunk.values[:, -1].sum(axis=0)  # consume the chunk as a caller would
        seconds = time.perf_counter() - start
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        results[n] = (rate(n, seconds), peak_mb)
        print(f"qspflow N = {n:>7,}: {rate(n, seconds):>9,.0f} sims/s, {seconds:6.2f} s, {failed} failed, "
              f"peak traced {peak_mb:.0f} MB (max RSS grew {rss_mb:.0f} MB), "
              f"×{rate(n, seconds) / rr_rate:.0f} libroadrunner, ×{rate(n, seconds) / lsoda_rate:.0f} LSODA")

    # Stiff population: tau of the first node ÷ 1000 for every 10th set.
    params = population(model, varying, 10_000, seed=7)
    params[::10, varying.index(f"tau_{model.states[0]}")] /= 1000.0
    start = time.perf_counter()
    stiff = compiled.simulate(params, TIMES, **options)
    stiff_rate = rate(len(params), time.perf_counter() - start)
    expected = np.zeros(len(params), dtype=bool)
    expected[::10] = True
    stiff_sets = params[:20:10]
    stiff_ref = comparable(model, varying, stiff_sets, radau_reference(model, varying, stiff_sets))
    stiff_err = error(stiff.values[:20:10], stiff_sets, stiff_ref)
    print(f"stiff population N = {len(params):,}: {stiff_rate:,.0f} sims/s; detected stiff "
          f"{int(stiff.stiff.sum())} (exactly the 1 in 10 with tau ÷ 1000: {np.array_equal(stiff.stiff, expected)}); "
          f"{int((stiff.status != 0).sum())} failed; max abs error vs Radau on 2 stiff sets {stiff_err:.2e}")

    boehm = boehm_comparison(args.boehm, args.threads, args.repeats)

    n_top = max(results)
    sims, peak = results[n_top]
    max_err = max(errors["qspflow"], stiff_err)
    verdict = [sims >= TARGETS["sims_per_s"], sims / rr_rate >= TARGETS["speedup"], max_err <= MAX_ABS_ERR,
               stiff_rate >= TARGETS["stiff_sims_per_s"], peak <= TARGETS["peak_mb"],
               boehm["sims_per_s"] >= boehm["roadrunner_sims_per_s"], boehm["max_rel_err"] <= BOEHM_MAX_REL_ERR]
    print(f"targets (N = {n_top:,}): sims/s ≥ {TARGETS['sims_per_s']:,}, ≥ {TARGETS['speedup']}× libroadrunner, "
          f"error ≤ {MAX_ABS_ERR:g}, stiff ≥ {TARGETS['stiff_sims_per_s']:,}/s, peak ≤ {TARGETS['peak_mb']} MB; "
          f"Boehm ≥ libroadrunner's sims/s, rel error ≤ {BOEHM_MAX_REL_ERR:g}: "
          f"{'all met' if all(verdict) else 'NOT all met'}")
    print(f"boehm_sims_per_s={boehm['sims_per_s']:.0f} "
          f"boehm_roadrunner_sims_per_s={boehm['roadrunner_sims_per_s']:.0f} "
          f"boehm_max_rel_err={boehm['max_rel_err']:.2e}")
    print(f"sims_per_s={sims:.0f} speedup_vs_roadrunner={sims / rr_rate:.1f} max_abs_err={max_err:.2e} "
          f"stiff_sims_per_s={stiff_rate:.0f} peak_mb={peak:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
