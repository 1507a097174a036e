"""Benchmark `qspflow.sensitivity`: Sobol (N = 1,024, D = 10, second order: N·(2D + 2) = 22,528
simulations) and Morris on the reference model of `benchmarks/simulate.py`.

The model: `reference_model()` of benchmarks/simulate.py (12 states: a 10-node Odefy HillCube
network and a 2-compartment oral PK, 100 mg at 0 h and 12 h), wrapped as a PEtab problem whose ten
varying parameters are estimated on the log10 scale. Ranges: ×/÷ 2 around the nominal values
(`ranges: factor`), sampled uniformly in log10 space. Four outputs under the condition
{dose_drug: 100}: x05 at 20 h, the AUC of C_drug over [0, 20] h, Cmax of x01 over [0, 20] h and
the time x03 spends above 0.5 in [0, 20] h.

Timed (wall clock, 2 threads): sampling + simulation (`evaluate_chunk`, one chunk) + analysis
(SALib, `bootstrap` 100 resamples) per method; the one-off compilation of the model (numba, cached
on disk) is reported apart. Run: `python benchmarks/sensitivity.py` (about a minute, most of it
the first compilation). Last line: `sobol_s=… sims=… morris_s=…`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numba
import pandas as pd

from qspflow.outputs import OutputModel
from qspflow.petab import PetabProblem
from qspflow.sensitivity import (
    analyze_morris,
    analyze_sobol,
    evaluate_chunk,
    parameter_ranges,
    sample,
    sensitivity_options,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import reference_model  # noqa: E402

THREADS = 2
TARGET_S = 10.0
OUTPUTS = [
    {"name": "x05_20h", "kind": "value", "of": "x05", "time": 20.0, "condition": {"dose_drug": 100.0}},
    {"name": "auc_drug", "kind": "auc", "of": "C_drug", "window": [0.0, 20.0], "condition": {"dose_drug": 100.0}},
    {"name": "cmax_x01", "kind": "cmax", "of": "x01", "window": [0.0, 20.0], "condition": {"dose_drug": 100.0}},
    {"name": "above_x03", "kind": "time_above", "of": "x03", "window": [0.0, 20.0], "threshold": 0.5,
     "condition": {"dose_drug": 100.0}},
]


def reference_problem() -> PetabProblem:
    """The reference model as a PEtab problem: its ten varying parameters estimated (log10)."""
    model, varying = reference_model()
    for name, p in model.parameters.items():
        p.estimate = name in varying  # the others are folded into the compiled model
        if p.estimate:
            p.scale, p.lower, p.upper = "log10", p.value / 10, p.value * 10
    empty = pd.DataFrame(index=pd.Index([], name="conditionId"))
    table = pd.DataFrame(index=pd.Index(list(model.parameters), name="parameterId"))
    return PetabProblem(Path("reference"), model, dict(model.parameters), {}, empty, pd.DataFrame(), pd.DataFrame(),
                        table, {"condition_files": "(none)", "parameter_file": "(none)"})


def main() -> None:
    problem = reference_problem()
    options = sensitivity_options({"outputs": OUTPUTS, "ranges": "factor", "factor": 2.0, "sobol_n": 1024,
                                   "second_order": True, "morris_trajectories": 20, "bootstrap": 100,
                                   "parameters": reference_model()[1]})
    ranges = parameter_ranges(problem, options)
    names = [r.name for r in ranges]
    start = time.perf_counter()
    model = OutputModel(problem, options.outputs, names)
    compile_s = time.perf_counter() - start
    print(f"model: {len(problem.model.states)} states, D = {len(names)}, outputs {[o['name'] for o in OUTPUTS]}; "
          f"compilation (or cache load) {compile_s:.1f} s; threads {THREADS} of {numba.config.NUMBA_NUM_THREADS}")

    timings = {}
    for method in ("sobol", "morris"):
        start = time.perf_counter()
        X = sample(ranges, options, seed=1)[method]
        sampled = time.perf_counter()
        values, failed = evaluate_chunk(model, X, ranges, threads=THREADS)
        simulated = time.perf_counter()
        if method == "sobol":
            table = analyze_sobol(names, values, model.names, options, seed=1)
        else:
            table = analyze_morris(names, X, values, model.names, options, seed=1)
        done = time.perf_counter()
        timings[method] = (done - start, len(X))
        print(f"{method}: {len(X)} simulations, {int(failed.sum())} failed; sample {sampled - start:.2f} s, "
              f"simulate {simulated - sampled:.2f} s ({len(X) / (simulated - sampled):,.0f} sims/s), "
              f"analyze {done - simulated:.2f} s; total {done - start:.2f} s")
        top = table[table["index"].isin(["ST", "mu_star"])].sort_values("value", ascending=False)
        for output in model.names:
            best = top[top["output"] == output].head(3)
            print(f"  {output}: " + ", ".join(f"{r.parameter} {r.value:.3f}" for r in best.itertuples()))
        late = table[table["converged"].eq(False).fillna(False)]
        print(f"  not converged: {len(late)} of {int(table['converged'].notna().sum())} indices with a CI")
    sobol_s, sims = timings["sobol"]
    verdict = "within" if sobol_s <= TARGET_S else "over"
    print(f"Sobol wall time {sobol_s:.2f} s for {sims} simulations: {verdict} the {TARGET_S:g} s target")
    print(f"sobol_s={sobol_s:.2f} sims={sims} morris_s={timings['morris'][0]:.2f}")


if __name__ == "__main__":
    main()
