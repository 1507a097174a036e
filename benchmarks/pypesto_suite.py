"""pyPESTO + AMICI + fides on six PEtab benchmark problems: the field's standard tool chain, as a yardstick.

What it measures, per problem: the AMICI model build (``compile_s``, timed once, forced afresh) and the
log-likelihood at the nominal parameters (``nominal_llh``, to check against AMICI's published
reference); then, per seed, one multistart local optimization through ``pypesto.optimize.minimize``:
``--starts`` start points drawn uniformly within the full PEtab bounds on the parameter scale by
``numpy.random.default_rng(seed)``, fides with its default options and pyPESTO's default Hessian scheme
(Fisher information, switching to BFGS), AMICI's solver as pyPESTO sets it up (forward sensitivities,
AMICI's default tolerances unless ``--tolerances``), one process. ``seconds`` is the wall clock of that
call alone. ``best_llh`` is minus the best objective value: pyPESTO's AMICI objective is the negative
log-likelihood including the 0.5·log(2πσ²) terms, so it compares directly with AMICI's references
(``nominal_llh`` shows it). A run has ``reached`` the optimum when best_llh ≥ reference − 0.5;
``starts_reached`` counts such starts. Problems with timepoint-specific observable or noise parameter
mappings that AMICI cannot import (Fiedler) are first flattened with
``petab.flatten_timepoint_specific_output_overrides``, as AMICI's own benchmark tests do; this
replicates observables and leaves the likelihood unchanged. A problem whose import fails prints an
``error=`` line and counts all its runs as not reached.

Output: one line per problem with the build and nominal check, one per (problem, seed), one summary per
problem, then ``problems=P reached=R runs=N runs_reached=K median_s=M worst_s=W`` (reached: problems all
of whose runs reached the reference; median and worst over the runs' seconds).

Set-up, outside the repository (Debian 12, Python 3.11, as root); this script must not import qspflow:

    apt-get install -y g++ libopenblas-dev libhdf5-serial-dev
    python3.11 -m venv /tmp/pypesto-venv
    /tmp/pypesto-venv/bin/pip install pypesto amici fides petab

pip builds AMICI from source, with the ``swig`` and ``cmake`` PyPI packages it depends on (in the venv's
bin/). The script points AMICI's model builds at that same swig (environment variable SWIG): a model
wrapped by another swig (Debian 12's 4.1) fails to load ("'SwigPyObject' object has no attribute
'module'").

Run, from the repository root (model builds go to ``--workdir``):

    nice -n 10 /tmp/pypesto-venv/bin/python benchmarks/pypesto_suite.py
    /tmp/pypesto-venv/bin/python benchmarks/pypesto_suite.py --quick   # Boehm, one seed, 2 starts
    /tmp/pypesto-venv/bin/python benchmarks/pypesto_suite.py --problems Fujita_SciSignal2010 --tolerances 1e-8 1e-8
"""

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("SWIG", str(Path(sys.executable).parent / "swig"))

import petab.v1 as petab  # noqa: E402
import pypesto.engine  # noqa: E402
import pypesto.optimize  # noqa: E402
import pypesto.petab  # noqa: E402
import pypesto.startpoint  # noqa: E402
from calibrate_suite import REFERENCES, TOLERANCE  # noqa: E402  (the same problems and references; stdlib only)
from petab.v1.lint import (  # noqa: E402
    measurement_table_has_timepoint_specific_mappings,
    observable_table_has_nontrivial_noise_formula,
)

REPO = Path(__file__).resolve().parent.parent


def build(
    name: str, cases: Path, workdir: Path, tolerances: tuple[float, float] | None
) -> tuple[pypesto.Problem, float, float]:
    """Import the PEtab problem NAME and compile its AMICI model (solver tolerances: (atol, rtol) or defaults).

    Returns the pyPESTO problem, the compile seconds and the log-likelihood at the nominal parameters.
    """
    petab_problem = petab.Problem.from_yaml(cases / name / f"{name}.yaml")
    # AMICI's own test for mappings it cannot import (numeric noise values are fine with a trivial noise formula).
    if measurement_table_has_timepoint_specific_mappings(
        petab_problem.measurement_df,
        allow_scalar_numeric_noise_parameters=not observable_table_has_nontrivial_noise_formula(
            petab_problem.observable_df
        ),
    ):
        petab.flatten_timepoint_specific_output_overrides(petab_problem)
    importer = pypesto.petab.PetabImporter(petab_problem, output_folder=str(workdir / name), model_name=name)
    creator = importer.create_objective_creator()
    start = time.perf_counter()
    model = creator.create_model(force_compile=True, verbose=False)
    compile_s = time.perf_counter() - start
    objective = creator.create_objective(model=model, verbose=False)
    if tolerances:
        objective.amici_solver.set_absolute_tolerance(tolerances[0])
        objective.amici_solver.set_relative_tolerance(tolerances[1])
    problem = importer.create_problem(objective)
    return problem, compile_s, -problem.objective(petab_problem.x_nominal_free_scaled)


def optimize(problem: pypesto.Problem, seed: int, starts: int) -> tuple[np.ndarray, float]:
    """Multistart fides from uniform start points; return each start's llh and the wall-clock seconds."""
    rng = np.random.default_rng(seed)
    problem.startpoint_method = pypesto.startpoint.FunctionStartpoints(
        lambda n_starts, lb, ub, **_: rng.uniform(lb, ub, size=(n_starts, lb.size))
    )
    start = time.perf_counter()
    result = pypesto.optimize.minimize(
        problem,
        optimizer=pypesto.optimize.FidesOptimizer(verbose=logging.WARNING),
        n_starts=starts,
        engine=pypesto.engine.SingleCoreEngine(),
        progress_bar=False,
    )
    seconds = time.perf_counter() - start
    fvals = np.array([run.fval for run in result.optimize_result.list], dtype=float)
    return np.where(np.isfinite(fvals), -fvals, -np.inf), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(REFERENCES), choices=list(REFERENCES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--cases", type=Path, default=REPO.parent / "shared" / "cases" / "petab-collection")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pypesto-amici"))
    parser.add_argument(
        "--tolerances",
        nargs=2,
        type=float,
        metavar=("ATOL", "RTOL"),
        help="AMICI solver tolerances (default: AMICI's, atol 1e-16 and rtol 1e-8)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke check: Boehm, one seed, 2 starts")
    args = parser.parse_args()
    if args.quick:
        args.problems, args.seeds, args.starts = ["Boehm_JProteomeRes2014"], args.seeds[:1], 2

    # Failed integrations are routine during optimization (the objective returns inf/nan for them), and
    # AMICI 1.0 sets its simulation logger to DEBUG on import.
    logging.getLogger("amici.sim.sundials").setLevel(logging.CRITICAL)
    for name in ("amici", "pypesto", "fides"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("petab").setLevel(logging.ERROR)  # flattening drops the (unused) visualization table

    seconds, runs_reached, problems_reached = [], 0, 0
    for name in args.problems:
        reference = REFERENCES[name]
        try:
            problem, compile_s, nominal = build(name, args.cases, args.workdir, args.tolerances)
        except Exception as error:  # a failed import is a result of the benchmark
            print(f"problem={name} error={type(error).__name__}: {error}".replace("\n", " "), flush=True)
            continue
        print(
            f"problem={name} compile_s={compile_s:.1f} nominal_llh={nominal:.6f} "
            f"reference={reference} nominal_diff={nominal - reference:.2e}",
            flush=True,
        )
        best, reached = -np.inf, 0
        for seed in args.seeds:
            llhs, run_s = optimize(problem, seed, args.starts)
            ok = llhs.max() >= reference - TOLERANCE
            best, reached = max(best, llhs.max()), reached + ok
            seconds.append(run_s)
            print(
                f"problem={name} seed={seed} best_llh={llhs.max():.6f} reference={reference} "
                f"reached={str(ok).lower()} seconds={run_s:.1f} "
                f"starts_reached={int((llhs >= reference - TOLERANCE).sum())}/{args.starts}",
                flush=True,
            )
        runs_reached += reached
        problems_reached += reached == len(args.seeds)
        print(
            f"problem={name} runs_reached={reached}/{len(args.seeds)} best_llh={best:.6f} "
            f"reference={reference} compile_s={compile_s:.1f}",
            flush=True,
        )
    median_s = statistics.median(seconds) if seconds else float("nan")
    worst_s = max(seconds, default=float("nan"))
    print(
        f"problems={len(args.problems)} reached={problems_reached} runs={len(args.problems) * len(args.seeds)} "
        f"runs_reached={runs_reached} median_s={median_s:.1f} worst_s={worst_s:.1f}"
    )


if __name__ == "__main__":
    main()
