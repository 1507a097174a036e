"""Calibration of a PEtab problem: global search on the fast simulator, exact local solves by Pyomo,
verification by independent simulation, profile likelihoods, and selection among hypotheses.

`calibrate_problem` runs the stages in order:

1. Global: scatter search (`global_method="ess"`, MEIGO's eSS) or differential evolution ("de")
   on `batch_objective` (the compiled simulator) over the bounds on the parameters' scales; the best
   *distinct* points it evaluated become the local starts. With "none", the starts are a Latin
   hypercube (plain multi-start).
2. Local: each start is solved by Pyomo direct transcription (`qspflow.calibrate.transcription`, Ipopt or
   ripopt; noise parameters held first, then all, within a moving box of `local_box`); the
   solver's termination condition is recorded for every start, and only converged starts count.
3. Verification: the log-likelihood at every converged optimum is recomputed by
   `qspflow.petab.log_likelihood` (tight-tolerance integration). If it differs from the collocation
   value by more than `verify_tolerance`, the discretization is refined (elements doubled) and the
   start re-solved from its optimum, up to `max_refinements` times; the log says so.
4. Profiles (`profile=True`): each estimated parameter is fixed on a path away from the best
   optimum and the others re-optimized, warm-started from the previous point, until the
   log-likelihood falls χ²(1, 0.95)/2 = 1.92 below the optimum or the path hits a bound; the 95 %
   confidence interval ends where the profile crosses that threshold.

Results do not depend on `threads`: every start and every profile is computed the same way whether
it runs in this process or in a worker. The workflow runs the stages as separate Snakemake jobs
through files (`run_global`, one `run_start` per start, `run_conclude`, `run_profiles`), with the
same result. `select_models` (`rank_models`) compares calibrated hypotheses by AICc and BIC.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import chi2

from qspflow.calibrate.search import (
    BatchProblem,
    batch_objective,
    differential_evolution_search,
    distinct_best,
    latin_hypercube,
    scatter_search,
)
from qspflow.calibrate.transcription import CONVERGED, PyomoProblem, check_solver
from qspflow.calibrate.spec import CalibrationSpec, to_linear
from qspflow.errors import ConfigError, DataError, SolverError
from qspflow.io import atomic_path, read_table, write_table, write_text
from qspflow.petab import load_problem, simulate_problem

log = logging.getLogger("qspflow.calibrate")

GLOBAL_METHODS = ("ess", "de", "none")
THRESHOLD = float(chi2.ppf(0.95, 1)) / 2  # profile drop that ends a 95 % confidence interval
CI_SECANT_STEPS = 3  # extra solves that place each CI end on the threshold crossing
EXACT = ".17g"  # floats that are read back (start points, optima) round-trip exactly


@dataclass(frozen=True)
class CalibrationOptions:
    """Every option of `calibrate_problem` (the keys of the workflow's `calibrate:` section).

    starts: local (Pyomo) starts — the best distinct global candidates, or Latin-hypercube points
    with global_method "none". seed: seeds the global search and the Latin hypercube.
    solver: "ipopt" (cyipopt) or "ripopt". global_method: "ess" (scatter search), "de"
    (differential evolution) or "none". global_evaluations, global_time: budget of the global
    search (batch-objective evaluations; seconds). n_elements: collocation elements per
    measurement interval. local_box: half-width of the moving box of a local solve, as a fraction
    of each bound width. max_iter: solver iterations per solve. max_cpu_time: solver seconds per
    local start. verify_tolerance: largest accepted |collocation − simulated| log-likelihood.
    max_refinements: element doublings allowed when it is larger. min_distance: least normalized
    distance between two local starts. profile: compute profiles and CIs. profile_parameters: the
    parameters to profile (empty: every estimated parameter). profile_step: first
    profile step (fraction of the bound width). profile_max_steps: profile steps per side.
    threads: simulator threads and worker processes (results do not depend on it).
    global_time and max_cpu_time are safety caps: when one of them binds, the result depends on the
    speed of the machine.
    """

    starts: int = 5
    seed: int = 0
    solver: str = "ipopt"
    global_method: str = "ess"
    global_evaluations: int = 100_000
    global_time: float = 60.0
    n_elements: int = 4
    local_box: float = 0.1
    max_iter: int = 3000
    max_cpu_time: float = 120.0
    verify_tolerance: float = 1e-3
    max_refinements: int = 2
    min_distance: float = 0.05
    profile: bool = True
    profile_parameters: tuple[str, ...] = ()
    profile_step: float = 0.01
    profile_max_steps: int = 100
    threads: int = 1

    def __post_init__(self) -> None:
        positive_int = ("starts", "global_evaluations", "n_elements", "max_iter", "profile_max_steps", "threads")
        for key in positive_int:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(None, key=key, expected="an integer ≥ 1", found=value)
        for key in ("global_time", "local_box", "max_cpu_time", "verify_tolerance", "min_distance", "profile_step"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(None, key=key, expected="a number > 0", found=value)
        if self.global_method not in GLOBAL_METHODS:
            raise ConfigError(None, key="global_method", expected=f"one of {list(GLOBAL_METHODS)}",
                              found=self.global_method)
        for key in ("seed", "max_refinements"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(None, key=key, expected="an integer ≥ 0", found=value)
        if not isinstance(self.profile, bool):
            raise ConfigError(None, key="profile", expected="true or false", found=self.profile)
        if isinstance(self.profile_parameters, str) or not all(isinstance(p, str) for p in self.profile_parameters):
            raise ConfigError(None, key="profile_parameters", expected="a list of parameter ids",
                              found=self.profile_parameters)
        object.__setattr__(self, "profile_parameters", tuple(self.profile_parameters))


@dataclass
class StartResult:
    """One local start: where it began and ended (scaled), its objective values and status."""

    start: int
    origin: str
    x0: np.ndarray
    x: np.ndarray
    nll: float  # the collocation objective (−log-likelihood) at the end
    llh: float  # the log-likelihood at x by independent simulation
    status: str
    converged: bool
    seconds: float
    n_elements: int
    notes: list[str] = field(default_factory=list)


@dataclass
class CalibrationResult:
    """What `calibrate_problem` found; `write_calibration` writes it.

    `estimates`: parameter, estimate (linear scale), lower_95, upper_95, identifiable.
    `starts`: one row per local start. `profiles`: parameter, value (scaled), llh.
    `fit`: the PEtab simulation table at the best parameters, with the measurements beside.
    `best`: the best parameters on the linear scale; `best_llh` their log-likelihood (simulated).
    """

    estimates: pd.DataFrame
    starts: pd.DataFrame
    profiles: pd.DataFrame
    fit: pd.DataFrame
    best_llh: float
    best: dict[str, float]
    n_params: int
    n_data: int
    options: CalibrationOptions


# -------------------------------------------------------------------------------- sessions


class CalibrationSession:
    """A problem loaded once with its compiled simulator and its NLPs (one per element count).

    `local` is one verified local start, `profile` one parameter's profile: the units of work that
    `calibrate_problem` runs here or in worker processes.
    """

    def __init__(self, problem_yaml: str | Path, options: CalibrationOptions, threads: int = 1) -> None:
        self.options = options
        self.spec = CalibrationSpec(load_problem(problem_yaml))
        self.batch = BatchProblem(self.spec, threads=threads)
        self._nlps: dict[int, PyomoProblem] = {}
        self._optimum: tuple[bytes, int, list, float] | None = None

    def nlp(self, n_elements: int) -> PyomoProblem:
        if n_elements not in self._nlps:
            o = self.options
            self._nlps[n_elements] = PyomoProblem(self.spec, self.batch, n_elements=n_elements, solver=o.solver,
                                                  max_iter=o.max_iter, max_cpu_time=o.max_cpu_time)
        return self._nlps[n_elements]

    def local(self, start: int, origin: str, x0: np.ndarray) -> StartResult:
        """Solve from x0, verify the optimum by simulation, refine the discretization if needed."""
        o, spec = self.options, self.spec
        n = o.n_elements
        began = time.perf_counter()
        notes: list[str] = []
        solution = self.nlp(n).estimate(x0, o.local_box)
        if solution is None:
            return StartResult(start, origin, x0, x0, math.nan, -math.inf, "simulation failed at the start",
                               False, time.perf_counter() - began, n, notes)
        llh = spec.simulated_llh(solution.x)
        for refinement in range(o.max_refinements + 1):
            gap = abs(-solution.nll - llh)
            if not solution.converged or gap <= o.verify_tolerance:
                break
            if refinement == o.max_refinements:
                notes.append(f"start {start}: collocation and simulated log-likelihood still differ by {gap:.3g} "
                             f"with {n} elements per interval")
                break
            notes.append(f"start {start}: collocation log-likelihood {-solution.nll:.8g} and simulated {llh:.8g} "
                         f"differ by {gap:.3g} > {o.verify_tolerance:g}; refining to {2 * n} elements per "
                         "measurement interval and re-solving")
            nlp = self.nlp(2 * n)
            if not nlp.initialize(solution.x):
                notes.append(f"start {start}: the model cannot be simulated at the optimum; not refined")
                break
            n *= 2
            solution = nlp.solve_local(o.local_box)
            llh = spec.simulated_llh(solution.x)
        return StartResult(start, origin, np.asarray(x0, dtype=float), solution.x, solution.nll, llh,
                           solution.status, solution.converged, time.perf_counter() - began, n, notes)

    def profile(self, i: int, best: np.ndarray, n_elements: int) -> tuple[list[tuple[float, float]], float]:
        """The profile of parameter i around the optimum `best`: [(scaled value, llh)], llh at the optimum."""
        o, spec = self.options, self.spec
        nlp = self.nlp(n_elements)
        key = (np.asarray(best, dtype=float).tobytes(), n_elements)
        if self._optimum is None or self._optimum[:2] != key:
            # Re-solved from the same point in every process: the profiles do not depend on `threads`.
            nlp.initialize(best)
            solution = nlp.solve()
            self._optimum = (*key, nlp.snapshot(), -solution.nll)
        _, _, optimum, top = self._optimum
        x_best = float(best[i])
        target = top - THRESHOLD
        width = spec.upper[i] - spec.lower[i]
        points = [(x_best, top)]
        for direction in (-1.0, 1.0):
            nlp.restore(optimum)
            bound = spec.lower[i] if direction < 0 else spec.upper[i]
            value, llh, snapshot = x_best, top, optimum
            step = o.profile_step * width
            smallest, largest = step / 16, step * 16
            for _ in range(o.profile_max_steps):
                if value == bound:
                    break
                trial = float(np.clip(value + direction * step, spec.lower[i], spec.upper[i]))
                solution = nlp.solve({i: trial})
                if not solution.converged:
                    if step <= smallest:
                        break
                    step = max(step / 2, smallest)
                    nlp.restore(snapshot)
                    continue
                new = -solution.nll
                if new < top - 2 * THRESHOLD and step > smallest:  # overshot: resolve the profile finer
                    step = max(step / 2, smallest)
                    nlp.restore(snapshot)
                    continue
                points.append((trial, new))
                if new < target:
                    points += self._secant(nlp, i, (value, llh, snapshot), (trial, new), target)
                    break
                drop = llh - new
                if drop < THRESHOLD / 8:
                    step = min(step * 2, largest)
                elif drop > THRESHOLD / 2:
                    step = max(step / 2, smallest)
                value, llh, snapshot = trial, new, nlp.snapshot()
        return sorted(points), top

    def _secant(self, nlp: PyomoProblem, i: int, inside: tuple, outside: tuple[float, float],
                target: float) -> list[tuple[float, float]]:
        """Extra profile points closing in on where the profile crosses `target` (Illinois method:
        regula falsi that halves the weight of an end kept twice, so neither end stagnates)."""
        (a, fa, snapshot), (c, fc) = inside, outside
        ga, gc = fa - target, fc - target
        replaced = None
        points = []
        for _ in range(CI_SECANT_STEPS):
            trial = a - ga * (c - a) / (gc - ga)
            nlp.restore(snapshot)
            solution = nlp.solve({i: trial})
            if not solution.converged:
                break
            new = -solution.nll
            points.append((trial, new))
            if abs(new - target) < 1e-4:
                break
            if new >= target:
                a, ga, snapshot = trial, new - target, nlp.snapshot()
                gc = gc / 2 if replaced == "inside" else gc
                replaced = "inside"
            else:
                c, gc = trial, new - target
                ga = ga / 2 if replaced == "outside" else ga
                replaced = "outside"
        return points


_WORKER: CalibrationSession | None = None


def _start_worker(problem_yaml: str, options: CalibrationOptions) -> None:
    global _WORKER
    _WORKER = CalibrationSession(problem_yaml, options)


def _work(method: str, *args: object) -> object:
    return getattr(_WORKER, method)(*args)


def _run_tasks(session: CalibrationSession, problem_yaml: str, tasks: Sequence[tuple], threads: int,
               report: Callable[[int, object], None]) -> list:
    """Run `session.<method>(*args)` for each task, in worker processes when threads > 1; in order."""
    results: list = [None] * len(tasks)
    if threads == 1 or len(tasks) == 1:
        for k, (method, *args) in enumerate(tasks):
            results[k] = getattr(session, method)(*args)
            report(k, results[k])
        return results
    # "spawn": forking a process whose numba threads are running is not safe.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(threads, len(tasks)), mp_context=context,
                             initializer=_start_worker, initargs=(str(problem_yaml), session.options)) as pool:
        futures = {pool.submit(_work, *task): k for k, task in enumerate(tasks)}
        for future in as_completed(futures):
            k = futures[future]
            results[k] = future.result()
            report(k, results[k])
    return results


# ------------------------------------------------------------------------------ calibration


def _options(options: Mapping[str, object]) -> CalibrationOptions:
    unknown = sorted(set(options) - set(CalibrationOptions.__dataclass_fields__))
    if unknown:
        raise ConfigError(None, key=unknown[0], expected=f"one of {sorted(CalibrationOptions.__dataclass_fields__)}")
    o = CalibrationOptions(**options)
    check_solver(o.solver)
    return o


def open_session(problem_yaml: str | Path, **options: object) -> CalibrationSession:
    """The problem loaded for calibration with `options` (as `CalibrationOptions`), checked: a bad
    option raises `ConfigError`, a missing solver `SolverError`, a bad problem `PetabError`."""
    o = _options(options)
    session = CalibrationSession(problem_yaml, o, threads=o.threads)
    spec = session.spec
    _profiled(spec, o)  # a bad profile_parameters entry fails now, not after the local solves
    log.info("calibrating %s: %d parameters, %d measurements in %d experiment(s); %s global search, "
             "%d local start(s) with %s", problem_yaml, spec.dimension, spec.n_data, len(spec.experiments),
             o.global_method, o.starts, o.solver)
    return session


def global_starts(session: CalibrationSession) -> pd.DataFrame:
    """The initial points of the local starts (stage 1): start, origin, objective (−llh at the
    point, by the batch simulator), initial:<parameter> (scaled).

    Always `starts` rows: if the global search found fewer distinct points, Latin-hypercube
    points (origin "lhs") fill the rest.
    """
    o, spec = session.options, session.spec
    rng = np.random.default_rng(o.seed)
    points, values = np.empty((0, spec.dimension)), np.empty(0)
    origins: list[str] = []
    if o.global_method != "none":
        search = scatter_search if o.global_method == "ess" else differential_evolution_search
        archive = search(lambda X: batch_objective(session.batch, X), spec.lower, spec.upper, rng=rng,
                         max_evaluations=o.global_evaluations, time_limit=o.global_time)
        chosen = distinct_best(archive.X, archive.f, o.starts, spec.lower, spec.upper, o.min_distance)
        points, values, origins = archive.X[chosen], archive.f[chosen], [o.global_method] * len(chosen)
        log.info("global search: %d evaluations; local starts from its %d best distinct points (−llh %s)",
                 archive.evaluations, len(chosen), ", ".join(f"{f:.6g}" for f in values))
    missing = o.starts - len(points)
    if missing:
        if o.global_method != "none":
            log.info("%d Latin-hypercube point(s) fill the remaining local starts", missing)
        extra = latin_hypercube(missing, spec.lower, spec.upper, rng)
        points = np.vstack([points, extra])
        values = np.concatenate([values, batch_objective(session.batch, extra)])
        origins += ["lhs"] * missing
    frame = pd.DataFrame({"start": range(len(points)), "origin": origins, "objective": values})
    vectors = pd.DataFrame(points, columns=_columns(spec, "initial"))
    return pd.concat([frame, vectors], axis=1)


def _columns(spec: CalibrationSpec, side: str) -> list[str]:
    """The columns `<side>:<parameter>` of a starts table, in parameter order."""
    return [f"{side}:{n}" for n in spec.names]


def _start_points(spec: CalibrationSpec, starts: pd.DataFrame) -> list[tuple[int, str, np.ndarray]]:
    """(start, origin, scaled initial point) of each row of a `global_starts` table."""
    vectors = starts[_columns(spec, "initial")].to_numpy(dtype=float)
    return [(int(k), str(origin), x0) for k, origin, x0 in zip(starts["start"], starts["origin"], vectors)]


def local_start(session: CalibrationSession, starts: pd.DataFrame, start: int) -> StartResult:
    """Local start `start` of a `global_starts` table (stage 2 and 3), with its progress logged."""
    points = {k: (k, origin, x0) for k, origin, x0 in _start_points(session.spec, starts)}
    if start not in points:
        raise ConfigError(None, key="start", expected=f"one of the starts 0..{len(starts) - 1}", found=start)
    result = session.local(*points[start])
    _report_start(result, len(starts))
    return result


def _report_start(result: StartResult, total: int, best_so_far: float | None = None) -> None:
    for note in result.notes:
        log.warning("%s", note)
    best = "" if best_so_far is None else f"; best so far {best_so_far:.8g}"
    log.info("local start %d/%d (%s): %s, llh %.8g (collocation %.8g), %.1f s%s", result.start + 1, total,
             result.origin, result.status, result.llh, -result.nll, result.seconds, best)


def conclude(session: CalibrationSession, starts: Sequence[StartResult]) -> CalibrationResult:
    """The best verified optimum of the local starts, its profiles (stage 4) and the fit.

    Raises `SolverError` when no start converged.
    """
    o, spec = session.options, session.spec
    converged = [s for s in starts if s.converged and math.isfinite(s.llh)]
    if not converged:
        statuses = ", ".join(sorted({s.status for s in starts}))
        raise SolverError(str(spec.problem.path), key="solver", found=o.solver,
                          message=f"no local start converged (statuses: {statuses}); "
                                  "try more starts, a larger max_iter or max_cpu_time")
    best = max(converged, key=lambda s: (s.llh, -s.start))
    at_best = sum(1 for s in converged if best.llh - s.llh < 0.1)
    log.info("best optimum: start %d, llh %.10g (simulated; collocation %.10g, %d elements per interval); "
             "%d of %d starts converged, %d within 0.1 of it", best.start, best.llh, -best.nll, best.n_elements,
             len(converged), len(starts), at_best)

    profiles: dict[int, tuple[list[tuple[float, float]], float]] = {}
    if o.profile:
        indices = _profiled(spec, o)

        def report_profile(k: int, result: tuple) -> None:
            i = indices[k]
            profiles[i] = result
            low, high = confidence_interval(result[0], best.x[i], result[1])
            log.info("profile %d/%d (%s): %d points, 95%% CI [%.6g, %.6g] on its scale", len(profiles),
                     len(indices), spec.names[i], len(result[0]), low, high)

        tasks = [("profile", i, best.x, best.n_elements) for i in indices]
        _run_tasks(session, spec.problem.path, tasks, o.threads, report_profile)
        profiles = dict(sorted(profiles.items()))
        for i, (points_i, top) in profiles.items():
            if max(llh for _, llh in points_i) > top + 1e-3:
                log.warning("the profile of %s reaches a higher log-likelihood (%.8g) than the optimum (%.8g): "
                            "the optimum found is not the best one", spec.names[i],
                            max(llh for _, llh in points_i), top)
    fit = simulate_problem(spec.problem, spec.linear(best.x))
    fit.insert(fit.columns.get_loc("simulation"), "measurement", spec.problem.measurement_table["measurement"])
    return CalibrationResult(_estimates(spec, best, profiles), starts_table(spec, starts),
                             _profiles_table(spec, profiles), fit, best.llh, spec.linear(best.x), spec.dimension,
                             spec.n_data, o)


def _profiled(spec: CalibrationSpec, o: CalibrationOptions) -> list[int]:
    """Indices of the parameters to profile; an id that is not estimated raises `ConfigError`."""
    for name in o.profile_parameters:
        if name not in spec.names:
            raise ConfigError(spec.problem.path, key="profile_parameters", found=name,
                              expected=f"ids of estimated parameters ({', '.join(spec.names)})")
    return [i for i, name in enumerate(spec.names) if not o.profile_parameters or name in o.profile_parameters]


def calibrate_problem(problem_yaml: str | Path, **options: object) -> CalibrationResult:
    """Calibrate a PEtab problem (see the module docstring); keyword options as `CalibrationOptions`.

    Raises `SolverError` when the solver is not installed, `ConfigError` for a bad option,
    `PetabError` for a bad problem, and `SolverError` when no local start converged.
    """
    began = time.perf_counter()
    session = open_session(problem_yaml, **options)
    o = session.options
    candidates = global_starts(session)
    best_so_far = [-math.inf]

    def report_start(k: int, result: StartResult) -> None:
        if result.converged:
            best_so_far[0] = max(best_so_far[0], result.llh)
        _report_start(result, len(candidates), best_so_far[0])

    tasks = [("local", *point) for point in _start_points(session.spec, candidates)]
    starts = _run_tasks(session, problem_yaml, tasks, o.threads, report_start)
    result = conclude(session, starts)
    log.info("calibration done in %.1f s", time.perf_counter() - began)
    return result


# -------------------------------------------------- the stages as files (one Snakemake job each)


def run_global(problem_yaml: str | Path, out: str | Path, **options: object) -> None:
    """Stage 1: the `global_starts` table of a problem, written to `out`."""
    write_table(global_starts(open_session(problem_yaml, **options)), out, float_format=EXACT)


def run_start(problem_yaml: str | Path, global_table: str | Path, start: int, out: str | Path,
              **options: object) -> None:
    """Stages 2–3 for one start of a `run_global` table: a one-row `starts_table` written to `out`."""
    session = open_session(problem_yaml, **options)
    starts = read_table(global_table, required=["start", "origin", *_columns(session.spec, "initial")])
    result = local_start(session, starts, start)
    write_table(starts_table(session.spec, [result]), out, float_format=EXACT)


def run_conclude(problem_yaml: str | Path, start_tables: Sequence[str | Path], out_dir: str | Path,
                 **options: object) -> CalibrationResult:
    """The best of the started runs (and profiles, if `profile`), written by `write_calibration`."""
    session = open_session(problem_yaml, **options)
    result = conclude(session, read_starts(start_tables, session.spec))
    write_calibration(result, out_dir)
    return result


def run_profiles(problem_yaml: str | Path, start_tables: Sequence[str | Path], out_dir: str | Path,
                 **options: object) -> CalibrationResult:
    """Profiles around the best of the started runs: `write_profiles` into out_dir."""
    session = open_session(problem_yaml, **{**options, "profile": True})
    result = conclude(session, read_starts(start_tables, session.spec))
    write_profiles(result, out_dir)
    return result


def confidence_interval(points: Sequence[tuple[float, float]], optimum: float,
                        top: float) -> tuple[float, float]:
    """Ends of the 95 % interval where a profile [(value, llh)] crosses top − 1.92 on either side of
    the optimum (linear interpolation); NaN where it does not cross within the profiled range.
    """
    target = top - THRESHOLD
    ends = []
    for side in (-1, 1):
        path = sorted((p for p in points if side * (p[0] - optimum) >= 0), key=lambda p: side * (p[0] - optimum))
        end = math.nan
        for (a, fa), (c, fc) in itertools.pairwise(path):
            if fa >= target > fc:
                end = a + (target - fa) * (c - a) / (fc - fa)
                break
        ends.append(end)
    return ends[0], ends[1]


def _estimates(spec: CalibrationSpec, best: StartResult, profiles: Mapping[int, tuple]) -> pd.DataFrame:
    rows = []
    for i, (name, scale) in enumerate(zip(spec.names, spec.scales)):
        low = high = math.nan
        identifiable = pd.NA
        if i in profiles:
            points, top = profiles[i]
            low, high = confidence_interval(points, best.x[i], top)
            identifiable = bool(math.isfinite(low) and math.isfinite(high))
        rows.append((name, float(to_linear(scale, best.x[i])), float(to_linear(scale, low)),
                     float(to_linear(scale, high)), identifiable))
    frame = pd.DataFrame(rows, columns=["parameter", "estimate", "lower_95", "upper_95", "identifiable"])
    return frame.astype({"identifiable": "boolean"})


def starts_table(spec: CalibrationSpec, starts: Sequence[StartResult]) -> pd.DataFrame:
    """One row per local start: start, origin, status, objective (collocation −llh), llh (simulated),
    n_elements, initial:<parameter>, final:<parameter> (scaled). No timings: the same inputs give
    the same table (the rule log has the times)."""
    rows = []
    for s in starts:
        row = {"start": s.start, "origin": s.origin, "status": s.status, "objective": float(s.nll),
               "llh": float(s.llh), "n_elements": s.n_elements}
        row.update(zip(_columns(spec, "initial"), map(float, s.x0)))
        row.update(zip(_columns(spec, "final"), map(float, s.x)))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("start").reset_index(drop=True)


def read_starts(paths: Sequence[str | Path], spec: CalibrationSpec) -> list[StartResult]:
    """Local starts from `starts_table` files (one per Snakemake job), by start number."""
    initial, final = _columns(spec, "initial"), _columns(spec, "final")
    results = []
    for path in paths:
        frame = read_table(path, required=["start", "origin", "status", "objective", "llh", "n_elements",
                                           *initial, *final])
        for _, row in frame.iterrows():
            x0 = row[initial].to_numpy(dtype=float)
            x = row[final].to_numpy(dtype=float)
            llh = -math.inf if pd.isna(row["llh"]) else float(row["llh"])
            results.append(StartResult(int(row["start"]), str(row["origin"]), x0, x, float(row["objective"]), llh,
                                       str(row["status"]), str(row["status"]) in CONVERGED, math.nan,
                                       int(row["n_elements"])))
    return sorted(results, key=lambda r: r.start)


def _profiles_table(spec: CalibrationSpec, profiles: Mapping[int, tuple]) -> pd.DataFrame:
    rows = [(spec.names[i], float(v), float(llh)) for i in sorted(profiles) for v, llh in profiles[i][0]]
    return pd.DataFrame(rows, columns=["parameter", "value", "llh"]).astype({"value": float, "llh": float})


# ------------------------------------------------------------------------------------ output


def write_calibration(result: CalibrationResult, out_dir: str | Path) -> None:
    """estimates.tsv, starts.tsv, simulation.tsv (PEtab simulation table at the best parameters),
    summary.tsv, waterfall.png, fit.png in out_dir, and profiles.tsv, profiles.png when profiles
    were computed (each written atomically, canonical text; the PNGs carry no software or date stamp).
    """
    out = Path(out_dir)
    write_table(result.estimates, out / "estimates.tsv")
    write_table(result.starts, out / "starts.tsv", float_format=EXACT)
    write_table(result.fit.drop(columns="measurement"), out / "simulation.tsv")
    options = {k: v for k, v in asdict(result.options).items() if k != "threads"}  # threads change no result
    summary = {"best_llh": result.best_llh, "n_params": result.n_params, "n_data": result.n_data, **options}
    write_text("key\tvalue\n" + "".join(f"{k}\t{_text(v)}\n" for k, v in summary.items()), out / "summary.tsv")
    _save(_waterfall(result.starts), out / "waterfall.png")
    _save(_fit_figure(result.fit), out / "fit.png")
    if result.options.profile:
        write_profiles(result, out)


def write_profiles(result: CalibrationResult, out_dir: str | Path) -> None:
    """estimates.tsv (with the 95 % intervals), profiles.tsv and profiles.png in out_dir."""
    out = Path(out_dir)
    write_table(result.estimates, out / "estimates.tsv")
    write_table(result.profiles, out / "profiles.tsv")
    _save(_profile_figure(result), out / "profiles.png")


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return format(value, ".10g") if isinstance(value, float) else str(value)


def _save(figure: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def _waterfall(starts: pd.DataFrame) -> Figure:
    """Distance of every start's final log-likelihood from the best, best first (symlog axis, so
    that starts at the optimum sit on 0); converged starts filled."""
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    ordered = starts[np.isfinite(starts["llh"])].sort_values(["llh", "start"], ascending=[False, True])
    rank = np.arange(1, len(ordered) + 1)
    gap = (ordered["llh"].max() - ordered["llh"]).to_numpy()
    ok = ordered["status"].isin(CONVERGED).to_numpy()
    ax.plot(rank, gap, color="0.6", linewidth=0.8)
    ax.scatter(rank[ok], gap[ok], color="tab:blue", label="converged", zorder=3)
    ax.scatter(rank[~ok], gap[~ok], facecolor="none", edgecolor="tab:red", label="not converged", zorder=3)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("start (sorted by log-likelihood)")
    ax.set_ylabel("best log-likelihood − log-likelihood")
    ax.set_title(f"Waterfall of {len(starts)} local starts (best llh {ordered['llh'].max():.6f})", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left")
    figure.tight_layout()
    return figure


def _fit_figure(fit: pd.DataFrame) -> Figure:
    """Simulated against measured value, one panel per observable, with the identity line."""
    observables = sorted(fit["observableId"].unique())
    columns = min(3, len(observables))
    rows = math.ceil(len(observables) / columns)
    figure = Figure(figsize=(4 * columns, 3.6 * rows))
    for k, observable in enumerate(observables):
        ax = figure.add_subplot(rows, columns, k + 1)
        part = fit[fit["observableId"] == observable]
        values = pd.concat([part["measurement"], part["simulation"]]).astype(float)
        low, high = float(values.min()), float(values.max())
        ax.plot([low, high], [low, high], color="0.6", linewidth=0.8)
        ax.scatter(part["measurement"], part["simulation"], s=8, color="tab:blue")
        ax.set_title(observable, fontsize=9)
        ax.set_xlabel("measured", fontsize=8)
        ax.set_ylabel("simulated", fontsize=8)
    figure.tight_layout()
    return figure


def _profile_figure(result: CalibrationResult) -> Figure:
    """Profile log-likelihood minus its optimum for each parameter, with the 95 % threshold."""
    names = list(dict.fromkeys(result.profiles["parameter"]))
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(4 * columns, 3 * rows))
    if not names:
        figure.text(0.5, 0.5, "no profiles computed", ha="center", va="center")
        return figure
    top = result.profiles["llh"].max()
    for k, name in enumerate(names):
        ax = figure.add_subplot(rows, columns, k + 1)
        part = result.profiles[result.profiles["parameter"] == name]
        ax.plot(part["value"], part["llh"] - top, marker=".", color="tab:blue")
        ax.axhline(-THRESHOLD, color="tab:red", linestyle="--", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("value (parameter scale)", fontsize=8)
        ax.set_ylabel("Δ log-likelihood", fontsize=8)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------- model selection


def rank_models(results: Mapping[str, tuple[float, int, int]]) -> pd.DataFrame:
    """Rank calibrated hypotheses {name: (log-likelihood, parameters k, data points n)}.

    AICc = 2k − 2·llh + 2k(k+1)/(n−k−1) (infinite when n ≤ k+1), BIC = k·ln n − 2·llh; deltas from the
    best, Akaike weights exp(−ΔAICc/2)/Σ, ranks (1 = best). Rows sorted by AICc, then name.
    """
    if not results:
        raise ConfigError(None, key="results", expected="at least one calibrated model")
    rows = []
    for name, (llh, k, n) in results.items():
        aic = 2 * k - 2 * llh
        aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf
        rows.append((str(name), float(llh), int(k), int(n), aicc, k * math.log(n) - 2 * llh))
    frame = pd.DataFrame(rows, columns=["model", "llh", "n_params", "n_data", "aicc", "bic"])
    frame = frame.sort_values(["aicc", "model"], kind="stable").reset_index(drop=True)
    for criterion in ("aicc", "bic"):
        best = frame[criterion].min()
        frame[f"delta_{criterion}"] = frame[criterion] - best if math.isfinite(best) else math.nan
        frame[f"rank_{criterion}"] = frame[criterion].rank(method="min").astype(int)
    relative = np.exp(-0.5 * frame["delta_aicc"].to_numpy(dtype=float))
    relative[~np.isfinite(relative)] = 0.0
    frame["weight"] = relative / relative.sum() if relative.sum() > 0 else math.nan
    return frame[["model", "llh", "n_params", "n_data", "aicc", "delta_aicc", "weight", "rank_aicc", "bic",
                  "delta_bic", "rank_bic"]]


def read_summary(path: str | Path) -> tuple[float, int, int]:
    """(best log-likelihood, parameters, data points) from a calibration's summary.tsv."""
    table = read_table(path, required=["key", "value"])
    values = dict(zip(table["key"].astype(str), table["value"]))
    try:
        return float(values["best_llh"]), int(values["n_params"]), int(values["n_data"])
    except (KeyError, ValueError) as exc:
        raise DataError(path, key="best_llh, n_params, n_data", expected="numbers (a calibration summary)") from exc


def select_models(summaries: Mapping[str, str | Path], out_dir: str | Path) -> str:
    """Rank the calibrated hypotheses {name: summary.tsv} (`rank_models`); ranking.tsv and best.txt
    in out_dir; returns the best model's name."""
    ranking = rank_models({name: read_summary(path) for name, path in summaries.items()})
    for row in ranking.itertuples():
        log.info("%s: llh %.6f, %d parameters, AICc %.4f (Δ %.4f, weight %.3g), BIC %.4f", row.model, row.llh,
                 row.n_params, row.aicc, row.delta_aicc, row.weight, row.bic)
    return write_ranking(ranking, out_dir)


def write_ranking(ranking: pd.DataFrame, out_dir: str | Path) -> str:
    """ranking.tsv and best.txt (the name of the best model by AICc) in out_dir; returns that name."""
    best = str(ranking["model"].iat[0])
    write_table(ranking, Path(out_dir) / "ranking.tsv")
    write_text(best + "\n", Path(out_dir) / "best.txt")
    return best
