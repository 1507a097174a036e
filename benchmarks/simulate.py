"""Benchmark `qspflow.simulate` against libroadrunner (CVODE) and scipy's LSODA, checked against Radau.

Reference model: `random_network(10, seed=0)` as Odefy's normalized HillCube, with a drug
given orally (100 mg at 0 h and 12 h) whose 2-compartment PK inhibits the production of the
first node. The gut depot is written analytically (`couple_pkpd`), so the model has 12
states: 10 nodes + A_c + A_p. Ten parameters vary ×/÷2 log-uniformly around their nominal
values; t ∈ [0, 20] h, 50 output times, rtol 1e-6, atol 1e-8 for every engine.

Run: `python benchmarks/simulate.py` (a few minutes; the machine's other load shows in the
wall-clock figures). The last line is machine-readable.
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
from sympy.printing.str import StrPrinter

from qspflow import model as model_module
from qspflow.boolean import random_network
from qspflow.convert import boolean_to_ode, couple_pkpd
from qspflow.model import TIME, OdeModel
from qspflow.simulate import compile_model

RTOL, ATOL = 1e-6, 1e-8
TIMES = np.linspace(0.0, 20.0, 50)
REFERENCE_TOLERANCES = {"rtol": 1e-10, "atol": 1e-12}
MAX_ABS_ERR = 1e-5
TARGETS = {"sims_per_s": 30_000, "speedup": 40, "stiff_sims_per_s": 5_000, "peak_mb": 1024}


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


class _L3(StrPrinter):
    """sympy → SBML Level 3 infix formula (libsbml.parseL3Formula)."""

    def _print_Pow(self, expr):
        return f"pow({self._print(expr.base)}, {self._print(expr.exp)})"

    def _print_Piecewise(self, expr):
        parts = []
        for value, condition in expr.args:
            parts += [self._print(value)] if condition == sympy.true else [self._print(value), self._print(condition)]
        return f"piecewise({', '.join(parts)})"

    def _print_And(self, expr):
        return f"and({', '.join(self._print(a) for a in expr.args)})"


def sbml_text(model: OdeModel) -> str:
    """The model as SBML: `qspflow.model.write_sbml` once it exists, else states as rate-rule parameters."""
    if hasattr(model_module, "write_sbml"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.xml"
            model_module.write_sbml(model, path)
            return path.read_text()
    import libsbml

    doc = libsbml.SBMLDocument(3, 2)
    sbml = doc.createModel()
    sbml.setId("reference")
    printer = _L3()
    for name, p in model.parameters.items():
        par = sbml.createParameter()
        par.setId(name), par.setValue(p.value), par.setConstant(True)
    for name in model.states:
        par = sbml.createParameter()
        par.setId(name), par.setValue(float(model.initial[name])), par.setConstant(False)
        rule = sbml.createRateRule()
        rule.setVariable(name)
        math = libsbml.parseL3Formula(printer.doprint(model.rhs[name]))
        if math is None:
            raise RuntimeError(libsbml.getLastParseL3Error())
        rule.setMath(math)
    return libsbml.writeSBMLToString(doc)


def roadrunner_loop(model: OdeModel, varying: list[str], params: np.ndarray) -> tuple[np.ndarray, float]:
    """One RoadRunner instance, reset and re-parameterized per patient; returns (states, seconds)."""
    import roadrunner

    rr = roadrunner.RoadRunner(sbml_text(model))
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    rr.timeCourseSelections = ["time"] + list(model.states)
    ids = list(rr.model.getGlobalParameterIds())
    index = [ids.index(name) for name in varying]
    out = np.empty((len(params), TIMES.size, len(model.states)))
    start = time.perf_counter()
    for i, p in enumerate(params):
        rr.resetAll()
        rr.model.setGlobalParameterValues(index, p)
        out[i] = rr.simulate(float(TIMES[0]), float(TIMES[-1]), TIMES.size)[:, 1:]
    return out, time.perf_counter() - start


# --- the benchmark --------------------------------------------------------------------------


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference-sets", type=int, default=20, help="sets checked against Radau")
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

    rr_values, rr_seconds = roadrunner_loop(model, varying, params)
    errors["libroadrunner"] = error(rr_values[: len(checked)])
    rr_rate = rate(len(params), rr_seconds)

    start = time.perf_counter()
    lsoda = lsoda_loop(compiled, model, params)
    lsoda_rate = rate(len(params), time.perf_counter() - start)
    errors["scipy LSODA"] = error(lsoda[: len(checked)])
    for engine, err in errors.items():
        print(f"max abs error vs Radau (rtol 1e-10; nodes and mg/L), {len(checked)} sets, {engine}: {err:.2e} "
              f"{'ok' if err <= MAX_ABS_ERR else f'above {MAX_ABS_ERR:g}'}")
    print(f"libroadrunner CVODE: {rr_rate:,.0f} sims/s (N = {len(params):,}, one instance, resetAll + "
          f"setGlobalParameterValues per set; SBML from "
          f"{'qspflow.model.write_sbml' if hasattr(model_module, 'write_sbml') else 'a rate-rule writer here'})")
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

    boehm = "skipped: qspflow.model cannot read SBML yet" if not hasattr(model_module, "read_sbml") else "see above"
    print(f"Boehm_JProteomeRes2014 vs libroadrunner: {boehm}")

    n_top = max(results)
    sims, peak = results[n_top]
    max_err = max(errors["qspflow"], stiff_err)
    verdict = [sims >= TARGETS["sims_per_s"], sims / rr_rate >= TARGETS["speedup"], max_err <= MAX_ABS_ERR,
               stiff_rate >= TARGETS["stiff_sims_per_s"], peak <= TARGETS["peak_mb"]]
    print(f"targets (N = {n_top:,}): sims/s ≥ {TARGETS['sims_per_s']:,}, ≥ {TARGETS['speedup']}× libroadrunner, "
          f"error ≤ {MAX_ABS_ERR:g}, stiff ≥ {TARGETS['stiff_sims_per_s']:,}/s, peak ≤ {TARGETS['peak_mb']} MB: "
          f"{'all met' if all(verdict) else 'NOT all met'}")
    print(f"sims_per_s={sims:.0f} speedup_vs_roadrunner={sims / rr_rate:.1f} max_abs_err={max_err:.2e} "
          f"stiff_sims_per_s={stiff_rate:.0f} peak_mb={peak:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
