"""Virtual populations of the bundled example study (`resources/example`): speed, memory, surrogate.

The model is the example's true network converted with the example's drug (`qspflow.steps.convert`,
the true parameter values), plus an observable `obs_C_drug = A_c / pk_vc` for the trough
concentration; its outputs go through `qspflow.outputs.OutputModel` (rtol 1e-8), as in the step.
The cohort `vpop_target.tsv` (200 patients; erk_8h, casp3_1h, ctrough_12h under the
`vpop_condition.tsv` condition) is the target. Five parameters vary (those of
`truth/population.tsv`), within ×/÷ 3 of the truth, sampled on log10 scale.

1. Allen (annealed plausible patients, then selection) to 1,000 VPs: wall time, KS fit.
2. Rieger (MH on the data density) on the same target: plausible patients per VP, KS, time.
3. Surrogate prescreen: CANDIDATES uniform draws screened in chunks of CHUNK (memory bounded),
   only the accepted ones simulated: peak RSS, precision, held-out recall, saving.

    python benchmarks/vpop.py [--candidates N] [--threads T]

Last line: `vps=… vp_s=… candidates=… peak_mb=… surrogate_saving=… surrogate_precision=…`.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "resources" / "example"
VARYING = ["pk_cl", "pk_vc", "pd_ec50", "tau_ERK", "tau_Casp3"]
CONDITION = {"dose_drug": 100, "input_EGF": 1, "input_TNFa": 1, "inh_PI3K": 0}
OUTPUTS = [
    {"name": "erk_8h", "kind": "value", "of": "obs_ERK", "time": 8, "condition": CONDITION},
    {"name": "casp3_1h", "kind": "value", "of": "obs_Casp3", "time": 1, "condition": CONDITION},
    {"name": "ctrough_12h", "kind": "value", "of": "obs_C_drug", "time": 12, "condition": CONDITION},
]
PLAUSIBLE = {"erk_8h": [0.0, 0.8], "casp3_1h": [0.1, 0.35], "ctrough_12h": [0.03, 0.2]}
FACTOR = 5.0


def build_problem(folder: Path) -> Path:
    """The example's true model as a PEtab problem in `folder`, with a C_drug observable."""
    from qspflow.steps import in_folder
    from qspflow.steps.models import FILES, convert

    truth = pd.read_csv(EXAMPLE / "truth" / "parameters.tsv", sep="\t")
    values = dict(zip(truth["parameter"], truth["value"].astype(float), strict=True))
    drug = {"target": "MEK", "name": "drug", "effect": "inhibit", "route": "oral", "compartments": 2,
            "interval": 12, "n_doses": 2, "infusion_duration": None,
            "parameters": {k: values[k] for k in ("pk_ka", "pk_cl", "pk_vc", "pk_q", "pk_vp", "pk_f", "pd_emax",
                                                  "pd_ec50", "pd_hill")},
            "estimate": ["pd_emax", "pd_ec50", "pd_hill"]}
    convert(network=EXAMPLE / "truth" / "network.bnet", measurements=EXAMPLE / "measurements.tsv",
            experiments=EXAMPLE / "experiments.tsv", drug=drug, values=values, **in_folder(folder, FILES))
    with open(folder / "petab" / "observables.tsv", "a", encoding="utf-8") as handle:
        handle.write("obs_C_drug\tA_c / pk_vc\t1\tlin\tnormal\n")
    return folder / "petab" / "problem.yaml"


def study(folder: Path, threads: int):
    """(evaluate, space, ranges, target) of the example study."""
    from qspflow import vpop
    from qspflow.outputs import OutputModel, parse_outputs
    from qspflow.petab import load_problem
    from qspflow.steps.vpop import read_target

    problem = load_problem(build_problem(folder))
    truth = {n: problem.model.parameters[n].value for n in VARYING}
    space = vpop.Space.make(VARYING, [truth[n] / FACTOR for n in VARYING], [truth[n] * FACTOR for n in VARYING],
                            ["log10"] * len(VARYING))
    ranges = vpop.Ranges.make(list(PLAUSIBLE), [v[0] for v in PLAUSIBLE.values()], [v[1] for v in PLAUSIBLE.values()])
    model = OutputModel(problem, parse_outputs(OUTPUTS, key="vpop.outputs"), VARYING)

    def evaluate(P: np.ndarray):
        return model.evaluate(P, threads=threads)

    return evaluate, space, ranges, read_target(EXAMPLE / "vpop_target.tsv", list(PLAUSIBLE))


def run_method(evaluate, space, ranges, target, *, method: str, candidates: int, chunks: int, n_vps: int):
    from qspflow import vpop

    options = vpop.make_options(method=method, mh_chains=200)
    start = time.perf_counter()
    found = vpop.generate(evaluate, space, ranges, candidates=candidates, n_chunks=chunks, seed=1, options=options,
                          target=target)
    result = vpop.virtual_population(found, target, space, ranges, seed=1, n_vps=n_vps, options=options)
    seconds = time.perf_counter() - start
    return result, seconds


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1_000_000, help="surrogate-screened candidates")
    parser.add_argument("--chunk", type=int, default=100_000, help="candidates per chunk of the screen")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-vps", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from qspflow import vpop

    with tempfile.TemporaryDirectory() as tmp:
        evaluate, space, ranges, target = study(Path(tmp), args.threads)
    evaluate(np.exp(np.zeros((1, len(VARYING)))))  # compiled already; warm the threads
    print(f"example study: {len(target)} patients, {space.dim} parameters, outputs {list(ranges.names)}")
    truth = pd.read_csv(EXAMPLE / "truth" / "patients.tsv", sep="\t")
    rows = {}
    for method, candidates, chunks in (("allen", 8000, 4), ("rieger", 40000, 2)):
        result, seconds = run_method(evaluate, space, ranges, target, method=method, candidates=candidates,
                                     chunks=chunks, n_vps=args.n_vps)
        s = result.summary()
        fit = result.fit.set_index("output")
        ks_p = {n: fit.loc[n, "ks_p"] for n in ranges.names}
        means = result.params.mean(axis=0) / truth[list(space.names)].mean().to_numpy() - 1
        rows[method] = (s, seconds)
        print(f"{method}: {s['vps']} VPs in {seconds:.1f} s; {s['simulations']} simulations "
              f"({s['simulations'] / max(s['vps'], 1):.1f} per VP), {s['plausible']} "
              f"plausible, {s['plausible_per_vp']:.2f} plausible per VP, summed KS {s['ks_sum']:.3f}; KS p "
              + ", ".join(f"{n} {p:.3f}" for n, p in ks_p.items())
              + "; VP parameter means vs true cohort: "
              + ", ".join(f"{n} {m:+.1%}" for n, m in zip(space.names, means, strict=True)))
    vps, vp_s = rows["allen"][0]["vps"], rows["allen"][1]

    options = vpop.make_options(surrogate=True, pilot=3000, batch=20000)
    n_chunks = max(1, -(-args.candidates // args.chunk))
    start = time.perf_counter()
    found = vpop.generate(evaluate, space, ranges, candidates=args.candidates, n_chunks=n_chunks, seed=2,
                          options=options)
    whole = vpop.combine(found)
    seconds = time.perf_counter() - start
    simulated = whole.simulations
    precision = whole.screened_true / max(whole.accepted, 1)
    saving = whole.candidates / simulated
    print(f"surrogate: {whole.candidates} candidates screened in {n_chunks} chunks in {seconds:.1f} s; "
          f"{simulated} full simulations (pilot {options.pilot} included), {whole.params.shape[0]} plausible; "
          f"precision {precision:.3f}, held-out recall {whole.recall:.3f}, {saving:.1f}x fewer simulations")
    print(f"vps={vps} vp_s={vp_s:.1f} candidates={whole.candidates} peak_mb={peak_mb():.0f} "
          f"surrogate_saving={saving:.2f} surrogate_precision={precision:.3f}")


if __name__ == "__main__":
    sys.exit(main())
