"""A calibration session: one problem loaded once, and the stages that run on it.

1. Global (`CalibrationSession.global_starts`): scatter search (`global_method="ess"`, MEIGO's eSS) or
   differential evolution ("de") on the batch objective (`qspflow.calibrate.objective`) over the
   bounds on the parameters' scales; the best *distinct* points it evaluated become the local starts.
   With "none", the starts are a Latin hypercube (plain multi-start).
2. Local (`local_start`): each start is solved by single shooting (`qspflow.calibrate.shooting`, fides
   with forward sensitivities; the best optimum polished by the transcription in `conclude`) or by Pyomo
   direct transcription (`qspflow.calibrate.transcription`, Ipopt or ripopt, within a moving box of
   `local_box`); the method's exit status is recorded for every start, and only converged starts count.
3. Verification: the log-likelihood at every converged optimum is recomputed by
   `qspflow.petab.log_likelihood` (tight-tolerance integration). If it differs from the collocation
   value by more than `verify_tolerance`, the discretization is refined (elements doubled) and the
   start re-solved from its optimum, up to `max_refinements` times; the log says so.
4. Basin hopping (`hop`): further local starts from the best point so far, part of its coordinates
   moved, until they stop gaining (or their budget ends).
5. `conclude`: the best verified optimum, its profiles (`profile=True`, `qspflow.calibrate.profile`)
   and the fit.

`calibrate_problem` runs them in order in one process (with worker processes when threads > 1);
the workflow runs them as separate jobs on tables (`qspflow.steps.calibration`), with the same result:
every start and every profile is computed the same way whether it runs here or in a worker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from petab.v1 import C

from qspflow import workers as worker_processes
from qspflow.calibrate.derivatives import GradientProblem
from qspflow.calibrate.objective import BatchProblem, ScalingsAtOptimum
from qspflow.calibrate.options import CalibrationOptions, calibration_options
from qspflow.calibrate.profile import confidence_interval, estimates_table, profile_path, profiles_table
from qspflow.calibrate.search import (
    best_local_solves,
    best_of_basins,
    differential_evolution_search,
    scatter_search,
    simulable_latin_hypercube,
)
from qspflow.calibrate.shooting import (
    COARSE_ATOL,
    COARSE_RTOL,
    CONVERGED_FLAGS,
    Abandoned,
    shoot,
    shoot_in_stages,
)
from qspflow.calibrate.solvers import startup_floating_point_environment
from qspflow.calibrate.spec import CalibrationSpec
from qspflow.calibrate.transcription import CONVERGED as TRANSCRIPTION_CONVERGED
from qspflow.calibrate.transcription import PyomoProblem, check_solver, check_transcribable, transcribable
from qspflow.errors import ConfigError, SolverError
from qspflow.petab import load_problem, simulate_problem

log = logging.getLogger("qspflow.calibrate")

GLOBAL_COLUMNS = ("start", "origin", "objective")  # then initial:<parameter>
STARTS_COLUMNS = ("start", "origin", "method", "status", "objective", "llh", "n_elements")  # then initial:, final:
# Local-start statuses that count as converged: Ipopt's termination conditions, fides' exit flags.
CONVERGED = TRANSCRIPTION_CONVERGED + CONVERGED_FLAGS
# The best optimum counts as reached when it converged and this many converged starts end within REACHED_LLH of it
# (with one start: that one): a calibration cannot know the true optimum, but an optimum found
# from several distinct starts is the field's working evidence (the waterfall's first plateau).
REACHED_STARTS, REACHED_LLH = 2, 0.1
# Generators seeded from (seed, stream): the basin hops' and the Latin-hypercube starts' own, so that neither
# depends on how many points the time-capped global search drew from its generator (seeded from seed).
HOP_STREAM, LHS_STREAM = 1, 2
# Basin hopping (`CalibrationSession.hop`): the lag (hop i is drawn from the centre that hops 0..i − HOP_LAG
# left, so up to HOP_LAG hops run at once), the share of coordinates a hop moves, its first step (standard
# deviation, fraction of the bound width), doubled after every HOP_WIDEN hops in a row without progress, and
# the least gain in log-likelihood that counts as progress: an optimum REACHED_LLH away counts as the same one
# (the centre still moves on any gain). With 0.01 the drift along a flat optimum (gains of 0.01–0.02 per hop:
# Weber_BMC2015, seed 2, −297.13 to −297.09 in 28 hops) kept the step at its narrowest until hop_time ended
# the hopping. The lag replaced rounds of 2 hops that waited for their slower hop: one worker of two stood
# idle for 32–35 % of Weber_BMC2015's hop phase (hops of 2–78 s) and 20–23 % of Fujita_SciSignal2010's.
HOP_LAG, HOP_FRACTION, HOP_SCALE, HOP_WIDEN, HOP_GAIN = 4, 0.3, 0.1, 10, REACHED_LLH
# Hop i is abandoned when the centre it was drawn from lies this far below the centre hops 0..i − 2 left: a
# likelihood-ratio test (χ²₁, 95 %: 3.84 / 2) rejects that centre against the new one. Not hops 0..i − 1:
# hop i − 1 runs beside hop i (on two workers they are drawn together), and a sibling's gain must not void a
# hop that may gain more (Fujita_SciSignal2010, seed 2: hop 0 went from −759.8 to −730.1, its sibling to
# −16.59). Why: with the lag, the hops drawn after a large gain still came from the old centre. The same
# run: hops 0 and 1 (121 s each) went from −759.8 to −731.5 and −16.58; hops 2–4, drawn from −759.8 and
# −731.5, then held both workers until hop_time, and the block hop from −16.58 that had reached 53.20 in
# 42 s in another run of the same seed never began.
ABANDON_GAIN = 1.92
# The refinement (`CalibrationSession.refine`): fides stops (FTOL) at the first accepted step that changes the
# objective by less than 1e-8 + 1e-8·|f|, which on a flat ridge comes long before its end: Weber_BMC2015's
# ends at −296.8 to −296.97 (gradient norm 0.2–0.8) went on to its published fit, −296.2017, in 950–1,819
# iterations, 13–32 s, at 1e-10 absolute; the same ends of Boehm_JProteomeRes2014 moved by less than 1e-3.
# The REACHED_STARTS best ends are refined, so that an optimum found there can be confirmed (`reached`).
# A refinement's solve stops this many seconds before the end of refine_time, so that its re-simulation
# has time to verify how far it got (normally < 1 s: Weber_BMC2015's at its published fit 0.23 s).
REFINE_TOLERANCE, REFINE_RESERVE = 1e-10, 5.0
# Ipopt iterations of a polish: from a shooting optimum a transcription that will be kept converges in
# 10–20 (measured: Boehm, Bruno, Sneyd and the example's three models, four starts each); where it
# does not converge (Weber_BMC2015, Fujita_SciSignal2010: not in 200 either) each iteration cost
# Weber 0.45 s, and 200 of them were most of a start's time.
POLISH_ITERATIONS = 30
# A polish's solve may take this share of max_cpu_time (20 s by default): Fujita_SciSignal2010's 30 iterations,
# which end unconverged, took 86 s after its refinements (seed 0: the run 611.7 s, past its 10 minutes), where
# the polishes that are kept took 0.8 s (Boehm), 1.2 s (Bruno) and 13.7 s (Sneyd, on a loaded machine), building
# and verifying included. A share, so that lifting max_cpu_time lifts it too.
POLISH_SHARE = 1 / 6
# A shooting optimum's re-simulation may take as long as its solve, which simulated the model hundreds of
# times, and at least this many seconds: it normally costs less than one of those simulations (Weber_BMC2015
# at its published fit: 0.23 s, a compiled evaluation with sensitivities 0.12 s), and one that takes longer is
# LSODA crawling at rtol 1e-10 and does not end in max_cpu_time either (Weber, seeds 1 and 2: 120 s each, lost).
RESIMULATION_FLOOR = 10.0
POLISH_SLACK = 1e-6  # simulated log-likelihood a polished optimum may lose and still replace shooting's
# A profile point is re-optimized until an iteration gains less than this in log-likelihood: the
# interval ends are read where the profile falls 1.92 with slope ≈ 1.96/σ, so 1e-3 moves them by
# ≈ 5e-4·σ, while the sloppy directions of a QSP model take a dozen more iterations to gain the rest.
PROFILE_TOLERANCE = 1e-3
# Levenberg damping of the profile predictor: the undamped step along a near-singular Fisher
# information runs off along sloppy directions (measured: llh 115 below the point it predicts).
PREDICTOR_DAMPING = 0.1


@dataclass
class StartResult:
    """One local start: where it began and ended (scaled), its objective values and status."""

    start: int
    origin: str
    x0: np.ndarray
    x: np.ndarray
    nll: float  # the local method's objective (−log-likelihood) at the end
    llh: float  # the log-likelihood at x by independent simulation
    status: str
    converged: bool
    seconds: float
    n_elements: int
    notes: list[str] = field(default_factory=list)
    method: str = "transcription"  # the local method that found x: transcription, shooting, shooting+transcription


@dataclass
class CalibrationResult:
    """What a calibration found.

    `estimates`: parameter, estimate (linear scale), lower_95, upper_95, identifiable.
    `starts`: one row per local start (`starts_table`). `profiles`: parameter, value (scaled), llh.
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
    reached: bool = True  # REACHED_STARTS converged starts ended within REACHED_LLH of the best point
    starts_at_best: int = 1

    @property
    def simulation(self) -> pd.DataFrame:
        """The PEtab simulation table at the best parameters (the fit without the measurements)."""
        return self.fit.drop(columns=C.MEASUREMENT)

    @property
    def summary(self) -> pd.DataFrame:
        """key, value (text): best_llh, reached, starts_at_best, n_params, n_data and every option
        but `threads`, which changes no result."""
        options = {k: v for k, v in asdict(self.options).items() if k != "threads"}
        summary = {"best_llh": self.best_llh, "reached": str(self.reached).lower(),
                   "starts_at_best": self.starts_at_best, "n_params": self.n_params, "n_data": self.n_data,
                   **options}
        return pd.DataFrame({"key": list(summary), "value": [_text(v) for v in summary.values()]})


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return format(value, ".10g") if isinstance(value, float) else str(value)


class CalibrationSession:
    """A problem loaded once with its compiled simulator and its NLPs (one per element count).

    `local` is one verified local start, `profile` one parameter's profile: the units of work that
    run here or in worker processes. `global_starts`, `local_start` and `conclude` are the stages
    on tables (a `global_starts` table, `starts_table`s), as the workflow runs them.
    """

    def __init__(self, problem_yaml: str | Path, options: CalibrationOptions, threads: int = 1) -> None:
        self.options = options
        self.spec = CalibrationSpec(load_problem(problem_yaml))
        self._threads = threads
        self._nlps: dict[int, PyomoProblem] = {}
        self._optimum: tuple | None = None  # (best, n_elements, method, warm state, llh) of `profile`
        self._pool: _Workers | None = None  # the worker processes of `workers()`

    @contextlib.contextmanager
    def workers(self) -> Iterator[None]:
        """One pool of `threads` worker processes for every stage run in the block (starts, basin
        hops, profiles), where each stage would otherwise start its own: starting one costs seconds
        (forking, loading the problem and the compiled modules), which they spend at once, while this
        process goes on (the global search)."""
        if self.options.threads == 1:
            yield
            return
        with _pool(self.spec.problem.path, self.options, self.options.threads) as pool:
            for _ in range(self.options.threads):
                pool.submit(_warm_up)
            self._pool = pool
            try:
                yield
            finally:
                self._pool = None

    @functools.cached_property
    def gradient(self) -> GradientProblem:
        """The likelihood with its gradient by forward sensitivities (compiled on first use)."""
        return GradientProblem(self.batch)

    @functools.cached_property
    def batch(self) -> BatchProblem:
        """The compiled simulator, compiled on first use: it takes seconds, and `open_session` checks
        the options against the problem first (a job that needs no simulation never compiles it)."""
        return BatchProblem(self.spec, threads=self._threads)

    def compile_local(self) -> GradientProblem | None:
        """What the local starts simulate, compiled (or loaded from the cache): shooting's sensitivity
        system; None for the transcription, which builds its NLP per start."""
        return self.gradient if self.options.local_method == "shooting" else None

    # ------------------------------------------------------------------- units of work

    def nlp(self, n_elements: int) -> PyomoProblem:
        if n_elements not in self._nlps:
            o = self.options
            self._nlps[n_elements] = PyomoProblem(self.spec, self.batch, n_elements=n_elements, solver=o.solver,
                                                  max_iter=o.max_iter, max_cpu_time=o.max_cpu_time)
        return self._nlps[n_elements]

    def local(self, start: int, origin: str, x0: np.ndarray, end: float | None = None,
              stop: Callable[[], bool] | None = None) -> StartResult:
        """One local start from x0 by the `local_method` of the options; its solves and its re-simulation
        stop at `end` (`time.monotonic()`, the same clock in every process) where that comes before
        their `max_cpu_time`. A shooting solve raises `Abandoned` where `stop()` says so."""
        if self.options.local_method == "shooting":
            return self._shooting(start, origin, x0, end, stop=stop)
        return self._transcription(start, origin, x0, end)

    def hopped(self, start: int, origin: str, x0: np.ndarray, end: float, hop: int) -> StartResult:
        """Basin hop `hop`: `local`, raising `Abandoned` once the calibrating process has abandoned it (in a
        worker process, where it runs while the hops before it are taken: `hop`, `_Workers`)."""
        return self.local(start, origin, x0, end, stop=lambda: _ABANDONED is not None and bool(_ABANDONED[hop]))

    def _seconds(self, end: float | None) -> float:
        """What a solve or a re-simulation may take: `max_cpu_time`, less where `end` comes first."""
        left = math.inf if end is None else end - time.monotonic()
        return max(min(self.options.max_cpu_time, left), 0.0)

    def refined(self, start: int, x0: np.ndarray, end: float | None = None) -> StartResult:
        """A local start (origin "refine") by single shooting from x0 at the problem's own integration
        tolerances to fides' function tolerance REFINE_TOLERANCE, verified by independent simulation."""
        return self._shooting(start, "refine", x0, end, REFINE_TOLERANCE, REFINE_RESERVE)

    def _shooting(self, start: int, origin: str, x0: np.ndarray, end: float | None,
                  tolerance: float | None = None, reserve: float = 0.0,
                  stop: Callable[[], bool] | None = None) -> StartResult:
        """Single shooting (fides) from x0, verified by independent simulation: in stages
        (`shoot_in_stages`; `stop` as `shoot`'s), or to an absolute function `tolerance` at the exact
        integration tolerances, the solve stopping `reserve` seconds before `end`."""
        o, spec = self.options, self.spec
        began = time.perf_counter()
        x0 = np.asarray(x0, dtype=float)
        if tolerance is None:
            shot = shoot_in_stages(self.gradient, x0, spec.lower, spec.upper, max_iter=o.max_iter,
                                   max_time=self._seconds(end), stop=stop)
        else:
            shot = shoot(self.gradient, x0, spec.lower, spec.upper, max_iter=o.max_iter,
                         max_time=max(self._seconds(end) - reserve, 0.0), tolerance=tolerance)
        budget = min(self._seconds(end), max(RESIMULATION_FLOOR, time.perf_counter() - began))
        llh = spec.simulated_llh(shot.x, budget) if math.isfinite(shot.nll) else -math.inf
        result = StartResult(start, origin, x0, shot.x, shot.nll, llh, shot.status, shot.converged,
                             time.perf_counter() - began, o.n_elements, [], "shooting")
        log.info("start %d: shooting %s after %d iterations, llh %.8g, %.1f s", start, shot.status, shot.iterations,
                 llh, result.seconds)
        if math.isfinite(shot.nll) and not math.isfinite(llh):
            result.notes.append(f"start {start}: the independent re-simulation of where it ended failed or ran out "
                                f"of its {budget:.3g} s (the solve's time, at least {RESIMULATION_FLOOR:g} s, within "
                                f"calibrate.max_cpu_time and the end of the basin hops): not used")
        return result

    def _polish(self, result: StartResult) -> StartResult:
        """The Pyomo transcription re-solved from a shooting optimum, kept where it converges, agrees with
        the simulation within `verify_tolerance` and is not worse by the simulation (the log says why not).

        Only the best optimum is polished: the polish refines the result, and on the problems where it
        fails (Fujita_SciSignal2010) its 30 iterations cost each start 20–40 s for nothing. Its solve stops
        after POLISH_ITERATIONS iterations or POLISH_SHARE of `max_cpu_time`."""
        o, spec = self.options, self.spec
        nlp = self.nlp(o.n_elements)
        if not nlp.initialize(result.x):
            return result
        polished = nlp.solve_local(o.local_box, max_iter=POLISH_ITERATIONS, time_limit=POLISH_SHARE * o.max_cpu_time)
        if not polished.converged:
            log.warning("start %d: the transcription did not converge from the shooting optimum (%s); the shooting "
                        "optimum stands", result.start, polished.status)
            return result
        llh = spec.simulated_llh(polished.x, o.max_cpu_time)
        gap = abs(-polished.nll - llh)
        # Kept only where the simulation says it is at least as good: the collocation's own
        # optimum can be a discretization error worse for the ODE than shooting's.
        if gap <= o.verify_tolerance and llh >= result.llh - POLISH_SLACK:
            log.info("start %d: polished by the transcription (%s), llh %.10g", result.start, polished.status, llh)
            return replace(result, x=polished.x, nll=polished.nll, llh=llh, status=polished.status,
                           method="shooting+transcription")
        log.warning("start %d: the transcription's optimum (llh %.8g, collocation %.8g) does not improve on "
                    "shooting's (%.8g); the shooting optimum stands", result.start, llh, -polished.nll, result.llh)
        return result

    def _transcription(self, start: int, origin: str, x0: np.ndarray, end: float | None) -> StartResult:
        """Solve from x0, verify the optimum by simulation, refine the discretization if needed."""
        o, spec = self.options, self.spec
        n = o.n_elements
        began = time.perf_counter()
        notes: list[str] = []
        solution = self.nlp(n).estimate(x0, o.local_box, time_limit=self._seconds(end))
        if solution is None:
            return StartResult(start, origin, x0, x0, math.nan, -math.inf, "simulation failed at the start",
                               False, time.perf_counter() - began, n, notes)
        llh = spec.simulated_llh(solution.x, self._seconds(end))
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
            solution = nlp.solve_local(o.local_box, time_limit=self._seconds(end))
            llh = spec.simulated_llh(solution.x, self._seconds(end))
        return StartResult(start, origin, np.asarray(x0, dtype=float), solution.x, solution.nll, llh,
                           solution.status, solution.converged, time.perf_counter() - began, n, notes)

    def _search_local(self, x0: np.ndarray, space: ScalingsAtOptimum | None = None) -> tuple[np.ndarray, float]:
        """A local solve of the scatter search's local phase: shooting from x0 (where it ended, −llh there);
        x0 and the end in the search's `space` where given, and −llh at the end by it."""
        o, spec = self.options, self.spec
        start = x0 if space is None else space.full(x0)[0]
        shot = shoot_in_stages(self.gradient, start, spec.lower, spec.upper, max_iter=o.max_iter,
                               max_time=o.max_cpu_time)
        log.info("scatter search: local solve %s after %d iterations, −llh %.8g", shot.status, shot.iterations,
                 shot.nll)
        if space is None:
            return shot.x, shot.nll
        end = shot.x[space.free]
        return end, float(space.objective(end)[0])  # as the search scores its points: the factors at their optimum

    def profile(self, i: int, best: np.ndarray, n_elements: int) -> tuple[list[tuple[float, float]], float]:
        """The profile of parameter i around the optimum `best`: [(scaled value, llh)], llh at the optimum.

        The optimum is re-solved from `best` first, the same way in every process, so the profiles
        do not depend on `threads`.
        """
        o, spec = self.options, self.spec
        key = (np.asarray(best, dtype=float).tobytes(), n_elements, o.local_method)
        if o.local_method == "shooting":
            if self._optimum is None or self._optimum[:3] != key:
                shot = shoot_in_stages(self.gradient, np.asarray(best, dtype=float), spec.lower, spec.upper,
                                       max_iter=o.max_iter, max_time=o.max_cpu_time)
                self._optimum = (*key, (shot.x, shot.fim), -shot.nll)

            problem = self.gradient.with_tolerances(COARSE_RTOL, COARSE_ATOL)  # far inside PROFILE_TOLERANCE

            def solve(value: float, warm: tuple) -> tuple[bool, float, tuple]:
                x0 = _predicted(warm, i, value, spec.lower, spec.upper)
                shot = shoot(problem, x0, spec.lower, spec.upper, max_iter=o.max_iter,
                             max_time=o.max_cpu_time, fixed={i: value}, tolerance=PROFILE_TOLERANCE)
                return shot.converged, -shot.nll, (shot.x, shot.fim)
        else:
            nlp = self.nlp(n_elements)
            if self._optimum is None or self._optimum[:3] != key:
                nlp.initialize(best)
                solution = nlp.solve()
                self._optimum = (*key, nlp.snapshot(), -solution.nll)

            def solve(value: float, warm: list) -> tuple[bool, float, list]:
                nlp.restore(warm)
                solution = nlp.solve({i: value})
                return solution.converged, -solution.nll, nlp.snapshot()
        *_, optimum, top = self._optimum
        points = profile_path(solve, float(spec.lower[i]), float(spec.upper[i]), float(best[i]), optimum, top,
                              first_step=o.profile_step, max_steps=o.profile_max_steps)
        return points, top

    # ------------------------------------------------------------------ stages on tables

    def columns(self, side: str) -> list[str]:
        """The columns `<side>:<parameter>` (side "initial" or "final") of a starts table."""
        return [f"{side}:{n}" for n in self.spec.names]

    def global_starts(self) -> pd.DataFrame:
        """The initial points of the local starts (stage 1): start, origin, objective (−llh at the
        point, by the batch simulator), initial:<parameter> (scaled).

        `starts` rows from the global search (if it found fewer basins, Latin-hypercube
        points, origin "lhs", fill the rest), then `random_starts` Latin-hypercube points; every
        Latin-hypercube point one where the model can be simulated, where 20 hypercubes hold one.
        """
        o, spec = self.options, self.spec
        rng = np.random.default_rng(o.seed)
        space = ScalingsAtOptimum(self.batch) if o.optimal_scalings else None
        objective, lower, upper = (space.objective, space.lower, space.upper) if space else (
            self.batch.objective, spec.lower, spec.upper)
        points, values = np.empty((0, len(lower))), np.empty(0)
        origins: list[str] = []
        if o.global_method != "none":
            budget = {"rng": rng, "max_evaluations": o.global_evaluations, "time_limit": o.global_time}
            if o.global_method == "de":
                archive = differential_evolution_search(objective, lower, upper, **budget)
            else:
                local = (functools.partial(self._search_local, space=space)
                         if o.local_phase and o.local_method == "shooting" else None)
                archive = scatter_search(objective, lower, upper, local=local, **budget)
            solves = [archive.local[i] for i in best_local_solves(archive.local, o.starts, lower, upper,
                                                                  o.min_distance)]
            if solves:
                points = np.array([s.x0 for s in solves])
                values = np.array([s.f0 for s in solves])
                origins = [f"{o.global_method}-local"] * len(solves)
                log.info("local phase: local starts repeat its %d best solve(s) (ended at −llh %s)", len(solves),
                         ", ".join(f"{s.f:.6g}" for s in solves))
            if o.starts > len(solves):
                chosen = best_of_basins(objective, archive.X, archive.f, o.starts - len(solves), lower, upper,
                                        o.min_distance)
                points = np.vstack([points, archive.X[chosen]])
                values = np.concatenate([values, archive.f[chosen]])
                origins += [o.global_method] * len(chosen)
                log.info("global search: %d evaluations; local starts from the best points of %d basin(s) (−llh %s)",
                         archive.evaluations, len(chosen), ", ".join(f"{f:.6g}" for f in archive.f[chosen]))
        missing = o.starts - len(points)
        if missing and o.global_method != "none":
            log.info("%d Latin-hypercube point(s) fill the remaining local starts", missing)
        hypercube = np.random.default_rng((o.seed, LHS_STREAM))
        for count in (missing, o.random_starts):  # two hypercubes, in this order: the seed fixes both
            if count:
                extra, f = simulable_latin_hypercube(objective, count, lower, upper, hypercube)
                points, values = np.vstack([points, extra]), np.concatenate([values, f])
                origins += ["lhs"] * count
        if space is not None and len(points):
            points = space.full(points)
        frame = pd.DataFrame({"start": range(len(points)), "origin": origins, "objective": values})
        vectors = pd.DataFrame(points, columns=self.columns("initial"))
        return pd.concat([frame, vectors], axis=1)

    def local_start(self, starts: pd.DataFrame, start: int) -> pd.DataFrame:
        """Stages 2 and 3 for start `start` of a `global_starts` table, its progress logged: a
        one-row `starts_table`."""
        points = {k: (k, origin, x0) for k, origin, x0 in self._start_points(starts)}
        if start not in points:
            raise ConfigError(None, key="start", expected=f"one of the starts 0..{len(starts) - 1}", found=start)
        result = self.local(*points[start])
        _report_start(result, len(starts))
        return self.starts_table([result])

    def hop(self, starts: pd.DataFrame | Sequence[StartResult], began: float) -> list[StartResult]:
        """The local starts (a `starts_table` or results) and after them monotonic basin hopping (Leary 2000) from
        the best point found: local starts (origin "hop") from the centre, the best point so far, with about
        HOP_FRACTION of its coordinates moved by a normal step of HOP_SCALE × their bound width, the step doubled
        after every HOP_WIDEN hops in a row that gained less than HOP_GAIN (a hop that returns to the centre's
        optimum stepped too short: the neighbourhoods of variable neighbourhood search, Mladenović & Hansen 1997);
        every other hop (the odd ones, origin "block-hop") instead draws the coordinates of one of the problem's
        blocks (`CalibrationSpec.blocks`, the parameters of one state's equation), chosen at random, anew uniformly
        within their bounds and keeps the rest. The hops are taken in their order: one that ends better (by its
        re-simulation, converged or not) moves the centre. Hop i is drawn from the centre and step that hops 0..i −
        HOP_LAG left, so that up to HOP_LAG hops run at once and a worker that ends a short hop begins the next one
        while a long one runs. Hop i is abandoned where the centre it was drawn from lies ABANDON_GAIN or more below
        the centre hops 0..i − 2 left: not begun, stopped where it runs (`hopped`), or its end not used, which
        depends on the hops before it only, not on when they ended. No hop is drawn after `hops` hops (abandoned
        ones included), after `hop_stall` taken in a row without such a gain, or `hop_time` seconds after `began`
        (`time.monotonic()`); the hops still running then stop where they are (a hop's solve and re-simulation have
        the time left to that end, at most `max_cpu_time` each), so that a calibration ends within `hop_time` and
        its conclusion.

        Why: the optima of a QSP model lie near each other more often than Latin-hypercube points
        find them. Weber_BMC2015, seed 1: 0 of 21 starts from the search's basins and Latin-hypercube
        points reached the published fit (−296.20; the best −297.68); hops from that optimum reached
        −296.23 after 29 hops, 119 s. Hops from an optimum also confirm it at the cost of a short
        solve. Each hop depends only on the hops before it, whatever `threads`: so does the result.
        Block hops, because an optimum can be wrong in one module's parameters together, by decades, where
        steps of a random 30 % of the coordinates do not reach: Weber_BMC2015, seed 2, ended at −297.09 after 31
        such hops (m31, m33, p31, p33 and s31, the CERT module's, 1–5 decades from the published fit); from
        that optimum 2 of 6 uniform redraws of CERTERa's or CERTTGNa's block went on to −296.25 and −296.28, 0
        of 15 of the other five blocks'; with block hops the run went on from −297.07 to −296.43 by its 20th hop
        (a block hop) and ended at −296.2017.
        """
        o, spec = self.options, self.spec
        found = self._start_results(starts) if isinstance(starts, pd.DataFrame) else list(starts)
        simulated = [s for s in found if math.isfinite(s.llh)]
        if not o.hops or not simulated:
            return found
        rng = np.random.default_rng((o.seed, HOP_STREAM))
        width = spec.upper - spec.lower
        centre = _best(simulated)
        log.info("basin hopping from the best point (start %d, llh %.8g): up to %d hops, until %d in a row gain "
                 "less than %g or %g s have passed", centre.start, centre.llh, o.hops, o.hop_stall, HOP_GAIN,
                 o.hop_time)
        first, end, best = max(s.start for s in found) + 1, began + o.hop_time, centre.llh
        states = [(centre, 0)]  # (centre, hops in a row without progress) after each hop taken
        ended: dict[int, StartResult | None] = {}  # None: abandoned
        drawn = abandoned = 0

        def source(k: int) -> int:
            """The index in `states` of the centre and stall hop k is drawn from."""
            return max(0, k - HOP_LAG + 1)

        def superseded(k: int) -> bool:
            """Whether hop k is abandoned, as far as the hops taken tell: the centre it is drawn from against the
            one hops 0..k − 2 left, or the last one where those have not all been taken (the centre only rises)."""
            return k > 0 and states[min(k - 1, len(states) - 1)][0].llh - states[source(k)][0].llh >= ABANDON_GAIN

        def take() -> None:
            """Take the ended hops in their order; mark the hops drawn from a superseded centre abandoned."""
            nonlocal abandoned, best
            while len(states) - 1 in ended:
                k = len(states) - 1
                result = ended.pop(k)
                centre, stall = states[-1]
                if result is None or superseded(k):
                    abandoned += 1
                    log.info("basin hop %d (start %d) abandoned: drawn from llh %.8g, a centre the hops before hop %d "
                             "raised to %.8g", k, first + k, states[source(k)][0].llh, k - 1, states[k - 1][0].llh)
                    states.append((centre, stall))
                    continue
                found.append(result)
                best = max(best, result.llh)
                # Converged or not, as the first centre: a solve stopped by max_cpu_time can end past every
                # converged one (Weber_BMC2015, seed 2: three hops −309.1 to −306.9, the centre −323.8).
                better = result.llh > centre.llh  # a failed re-simulation's −inf never is
                stall = 0 if better and result.llh - centre.llh >= HOP_GAIN else stall + 1
                states.append((result if better else centre, stall))
            for k in range(len(states) - 1, drawn):
                if superseded(k):
                    runner.abandon(k)

        with _runner(self, o.hops) as runner:
            while True:
                began_drawing = drawn
                while (drawn < o.hops and runner.free and source(drawn) < len(states)
                       and states[source(drawn)][1] < o.hop_stall and time.monotonic() < end):
                    origin, stall = states[source(drawn)]
                    if drawn % 2 and spec.blocks:
                        kind, block = "block-hop", list(spec.blocks[rng.integers(len(spec.blocks))])
                        x0 = origin.x.copy()
                        x0[block] = rng.uniform(spec.lower[block], spec.upper[block])
                    else:
                        kind = "hop"
                        moved = rng.random(spec.dimension) < HOP_FRACTION
                        moved[rng.integers(spec.dimension)] = True  # at least one coordinate
                        step = rng.normal(0.0, HOP_SCALE * 2 ** (stall // HOP_WIDEN), spec.dimension) * width
                        x0 = np.clip(np.where(moved, origin.x + step, origin.x), spec.lower, spec.upper)
                    if superseded(drawn):  # drawn all the same, so that the generator's sequence is the same
                        ended[drawn] = None
                    else:
                        runner.submit(drawn, ("hopped", first + drawn, kind, x0, end, drawn))
                    drawn += 1
                take()
                if runner.busy:
                    for k, result in runner.collect():
                        ended[k] = result
                        if result is not None:
                            _report_start(result, first + o.hops, max(best, result.llh))
                    take()
                elif drawn == began_drawing:
                    break
        if time.monotonic() >= end:
            log.info("basin hopping: calibrate.hop_time (%g s) has passed after %d hops", o.hop_time, drawn)
        centre = states[-1][0]
        log.info("basin hopping: %d hops (%d abandoned), best llh %.8g (start %d)", drawn, abandoned, centre.llh,
                 centre.start)
        return found

    def refine(self, starts: Sequence[StartResult], began: float) -> list[StartResult]:
        """The local starts and after them, with shooting as the local method, the REACHED_STARTS best ends
        (by log-likelihood) refined (`refined`: fides on from there to REFINE_TOLERANCE), in parallel;
        the refinements stop where they are `hop_time` + `refine_time` seconds after `began` (none with
        `refine_time` 0).

        An end whose re-simulation failed or had no time left (a hop that `hop_time` stopped) ranks by its
        method's own log-likelihood: its refinement verifies it or counts for nothing. Fujita_SciSignal2010,
        seed 2: a block hop was at 53.20 (the published fit 53.08) when hop_time stopped it unverified, and the
        best verified end was −16.58.

        Why: fides' own test stops on a ridge long before its end, and basin hopping then crawls along
        it one short hop at a time. Weber_BMC2015, seed 1: hops went −297.56 → −296.99 → −296.91 →
        −296.82 until hop_time ended them (39 hops); five of the seven ends at −296.82 to −296.97 went on
        to the published fit, −296.2017, in 13–32 s each.
        """
        o = self.options
        found = list(starts)
        ranked = sorted((s for s in found if math.isfinite(_evidence(s))), key=lambda s: (-_evidence(s), s.start))
        if o.local_method != "shooting" or not o.refine_time or not ranked:
            return found
        chosen = ranked[:REACHED_STARTS]
        first, end = max(s.start for s in found) + 1, began + o.hop_time + o.refine_time
        log.info("refining the %d best end(s) (start %s, llh %s) to fides' function tolerance %g, until %g s "
                 "after the calibration began", len(chosen), ", ".join(str(s.start) for s in chosen),
                 ", ".join(f"{s.llh:.8g}" if math.isfinite(s.llh) else f"{-s.nll:.8g} unverified" for s in chosen),
                 REFINE_TOLERANCE, o.hop_time + o.refine_time)
        tasks = [("refined", first + k, s.x, end) for k, s in enumerate(chosen)]
        refined = _run_tasks(self, tasks, lambda k, result: _report_start(result, first + len(chosen)))
        return found + refined

    def conclude(self, starts: pd.DataFrame | Sequence[StartResult]) -> CalibrationResult:
        """The best verified optimum of the local starts in a `starts_table` (rows of any order),
        its profiles (if `profile`) and the fit. Raises `SolverError` when no start converged."""
        return self._conclude(self._start_results(starts) if isinstance(starts, pd.DataFrame) else starts)

    def starts_table(self, starts: Sequence[StartResult]) -> pd.DataFrame:
        """One row per local start: start, origin, status, objective (collocation −llh), llh (simulated),
        n_elements, initial:<parameter>, final:<parameter> (scaled). No timings: the same inputs give
        the same table (the log has the times)."""
        rows = []
        for s in starts:
            row = {"start": s.start, "origin": s.origin, "method": s.method, "status": s.status,
                   "objective": float(s.nll), "llh": float(s.llh), "n_elements": s.n_elements}
            row.update(zip(self.columns("initial"), map(float, s.x0)))
            row.update(zip(self.columns("final"), map(float, s.x)))
            rows.append(row)
        return pd.DataFrame(rows).sort_values("start").reset_index(drop=True)

    def _start_points(self, starts: pd.DataFrame) -> list[tuple[int, str, np.ndarray]]:
        """(start, origin, scaled initial point) of each row of a `global_starts` table."""
        vectors = starts[self.columns("initial")].to_numpy(dtype=float)
        return [(int(k), str(origin), x0) for k, origin, x0 in zip(starts["start"], starts["origin"], vectors)]

    def _start_results(self, starts: pd.DataFrame) -> list[StartResult]:
        """The local starts of a `starts_table`, by start number (no timings, no notes)."""
        initial, final = self.columns("initial"), self.columns("final")
        results = []
        for _, row in starts.iterrows():
            x0 = row[initial].to_numpy(dtype=float)
            x = row[final].to_numpy(dtype=float)
            llh = -math.inf if pd.isna(row["llh"]) else float(row["llh"])
            results.append(StartResult(int(row["start"]), str(row["origin"]), x0, x, float(row["objective"]), llh,
                                       str(row["status"]), str(row["status"]) in CONVERGED, math.nan,
                                       int(row["n_elements"]), method=str(row["method"])))
        return sorted(results, key=lambda r: r.start)

    def _conclude(self, starts: Sequence[StartResult]) -> CalibrationResult:
        o, spec = self.options, self.spec
        # The best point found, converged or not: a start stopped by max_iter/max_cpu_time may have got
        # further than every converged one (Fujita_SciSignal2010, seed 2: llh −50.1 against −911.3).
        found = [s for s in starts if math.isfinite(s.llh)]
        if not found:
            statuses = ", ".join(sorted({s.status for s in starts}))
            raise SolverError(str(spec.problem.path), key="calibrate.solver", found=o.solver,
                              message=f"no local start ended at a point the model can be simulated at (statuses: "
                                      f"{statuses}); try more starts or other bounds")
        best = _best(found)
        if o.local_method == "shooting" and o.polish and best.converged and transcribable(spec):
            polished = self._polish(best)
            starts = [polished if s is best else s for s in starts]
            found = [polished if s is best else s for s in found]
            best = polished
        converged = [s for s in found if s.converged]
        at_best = _at_best(found, best)
        reached = _reached(starts, best)
        log.info("best optimum: start %d (%s), llh %.10g (simulated; the local method's %.10g); "
                 "%d of %d starts converged, %d within %g of it", best.start, best.method, best.llh, -best.nll,
                 len(converged), len(starts), at_best, REACHED_LLH)
        if not reached and not best.converged:
            log.warning("reached: false — the best point (llh %.8g) is where start %d stopped without converging "
                        "(%s): a larger max_iter or max_cpu_time may take it further", best.llh, best.start,
                        best.status)
        elif not reached:
            log.warning("reached: false — only one of %d starts ended at the best optimum (llh %.8g): it may not be "
                        "the global one; more starts or a larger global budget may find a better one",
                        len(starts), best.llh)

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
            _run_tasks(self, tasks, report_profile)
            profiles = dict(sorted(profiles.items()))
            for i, (points_i, top) in profiles.items():
                if max(llh for _, llh in points_i) > top + 1e-3:
                    log.warning("the profile of %s reaches a higher log-likelihood (%.8g) than the optimum "
                                "(%.8g): the optimum found is not the best one", spec.names[i],
                                max(llh for _, llh in points_i), top)
        fit = simulate_problem(spec.problem, spec.linear(best.x))
        fit.insert(fit.columns.get_loc(C.SIMULATION), C.MEASUREMENT, spec.problem.measurement_table[C.MEASUREMENT])
        return CalibrationResult(estimates_table(spec, best.x, profiles), self.starts_table(starts),
                                 profiles_table(spec, profiles), fit, best.llh, spec.linear(best.x), spec.dimension,
                                 spec.n_data, o, reached, at_best)


def _predicted(warm: tuple[np.ndarray, np.ndarray | None], i: int, value: float, lower: np.ndarray,
               upper: np.ndarray) -> np.ndarray:
    """The start of a profile point: parameter i moved to `value` and the others moved along the
    damped quadratic model of the previous point ((H_oo + λ·diag H_oo)·Δo = −H_oi·Δi, H its Fisher
    information, λ = `PREDICTOR_DAMPING`), towards where the re-optimized others would be if the
    likelihood were quadratic — a few iterations from there instead of a dozen from the previous
    point (the predictor of integration-based profiles)."""
    x, fim = warm
    predicted = np.array(x, dtype=float)
    predicted[i] = value
    others = np.array([k for k in range(len(x)) if k != i], dtype=int)
    if fim is not None and others.size and np.all(np.isfinite(fim)):
        h = fim[np.ix_(others, others)]
        damped = h + PREDICTOR_DAMPING * np.diag(np.diag(h))
        shift, *_ = np.linalg.lstsq(damped, -fim[others, i] * (value - x[i]), rcond=1e-10)
        predicted[others] = np.clip(predicted[others] + shift, lower[others], upper[others])
    return predicted


def _profiled(spec: CalibrationSpec, o: CalibrationOptions) -> list[int]:
    """Indices of the parameters to profile; an id that is not estimated raises `ConfigError`."""
    _check_estimated(o.profile_parameters, spec.names, spec.problem.path, "ids of estimated parameters")
    return [i for i, name in enumerate(spec.names) if not o.profile_parameters or name in o.profile_parameters]


def _check_estimated(names: Sequence[str], estimated: Sequence[str], source: str | Path | None,
                     expected: str) -> None:
    for name in names:
        if name not in estimated:
            raise ConfigError(source, key="calibrate.profile_parameters", found=name,
                              expected=f"{expected} ({', '.join(estimated)})")


def check_profile_candidates(session: CalibrationSession, candidates: Sequence[str | Path]) -> None:
    """Every `profile_parameters` entry of the session's options is estimated in at least one of the
    `candidates` (PEtab problem YAMLs; the session's own problem may be among them).

    The workflow profiles only the model it selects, known only when every candidate is calibrated;
    an entry that no candidate estimates fails before the search instead. Raises `ConfigError`
    naming it and the parameters the candidates estimate.
    """
    names = session.options.profile_parameters
    if not names or not candidates:
        return
    own = Path(session.spec.problem.path).resolve()
    estimated = dict.fromkeys(session.spec.names) if own in {Path(c).resolve() for c in candidates} else {}
    for path in candidates:
        if Path(path).resolve() != own:
            estimated.update(dict.fromkeys(p.name for p in load_problem(path).parameters.values() if p.estimate))
    if len(candidates) == 1:
        _check_estimated(names, list(estimated), candidates[0], "ids of estimated parameters")
    else:
        _check_estimated(names, sorted(estimated), None,
                         f"ids of parameters estimated in at least one of the {len(candidates)} candidate models")


def _best(found: Sequence[StartResult]) -> StartResult:
    """The best of starts that ended at a finite log-likelihood, converged or not."""
    return max(found, key=lambda s: (s.llh, s.converged, -s.start))


def _evidence(start: StartResult) -> float:
    """The log-likelihood of a start's end by simulation, or by its local method's own where not verified."""
    return start.llh if math.isfinite(start.llh) else -start.nll


def _at_best(starts: Sequence[StartResult], best: StartResult) -> int:
    """Converged starts that ended within REACHED_LLH of `best`."""
    return sum(1 for s in starts if s.converged and best.llh - s.llh < REACHED_LLH)


def _reached(starts: Sequence[StartResult], best: StartResult) -> bool:
    """Whether `best` is confirmed: REACHED_STARTS converged starts (all, if fewer) ended within REACHED_LLH
    of it. `best` itself need not have converged: a refinement stopped by `refine_time` while it still
    gained 4e-5 (Fujita_SciSignal2010, seed 1) is past the converged ends it began from, not elsewhere."""
    return _at_best(starts, best) >= min(REACHED_STARTS, len(starts))


def _report_start(result: StartResult, total: int, best_so_far: float | None = None) -> None:
    for note in result.notes:
        log.warning("%s", note)
    best = "" if best_so_far is None else f"; best so far {best_so_far:.8g}"
    log.info("local start %d/%d (from %s, by %s): %s, llh %.8g (the method's own %.8g), %.1f s%s", result.start + 1,
             total, result.origin, result.method, result.status, result.llh, -result.nll, result.seconds, best)


# ---------------------------------------------------------------------- worker processes

_WORKER: CalibrationSession | None = None
_ABANDONED = None  # in a worker process: its pool's `_Workers.abandoned`


def _start_worker(problem_yaml: str, options: CalibrationOptions, abandoned: object) -> None:
    global _WORKER, _ABANDONED
    _WORKER, _ABANDONED = CalibrationSession(problem_yaml, options), abandoned


def _work(method: str, *args: object) -> object:
    return getattr(_WORKER, method)(*args)


def _warm_up() -> None:
    _WORKER.compile_local()


@contextlib.contextmanager
def _pool(problem_yaml: str | Path, options: CalibrationOptions, workers: int) -> Iterator[_Workers]:
    """Worker processes for the block. A block left by an exception (an error, SIGTERM, Ctrl-C) ends them at
    once: the executor's own exit waits for the solves they run, up to max_cpu_time each."""
    pool = _Workers(problem_yaml, options, workers)
    try:
        yield pool
    except BaseException:
        for process in list((pool._processes or {}).values()):  # public only from Python 3.14 (terminate_workers)
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


class _Workers(ProcessPoolExecutor):
    """Worker processes of a session, and one flag per basin hop in memory they share with this process: set, it
    stops the hop where it runs (`CalibrationSession.hopped`)."""

    def __init__(self, problem_yaml: str | Path, options: CalibrationOptions, workers: int) -> None:
        context = worker_processes.context()
        self.abandoned = context.RawArray("b", max(options.hops, 1))
        super().__init__(max_workers=workers, mp_context=context, initializer=_start_worker,
                         initargs=(str(problem_yaml), options, self.abandoned))


class _Runner:
    """Runs tasks `session.<method>(*args)`, each under a key: in worker processes (`pool`), up to `workers`
    at once, or one at a time in this process when there is no pool."""

    def __init__(self, session: CalibrationSession, pool: _Workers | None, workers: int):
        self.session, self.pool, self.workers = session, pool, workers
        self.running: dict[Future, int] = {}
        self.ended: list[tuple[int, object]] = []
        if pool is not None:
            pool.abandoned[:] = bytes(len(pool.abandoned))  # the hops of an earlier runner

    @property
    def busy(self) -> bool:
        """Whether a task has not been collected yet."""
        return bool(self.running or self.ended)

    @property
    def free(self) -> bool:
        """Whether a task submitted now begins at once."""
        return len(self.running) + len(self.ended) < (self.workers if self.pool else 1)

    def abandon(self, hop: int) -> None:
        """Stop basin hop `hop` where it runs in a worker; in this process hops run one at a time, and a hop is
        abandoned before it begins (`CalibrationSession.hop`)."""
        if self.pool is not None:
            self.pool.abandoned[hop] = 1

    def submit(self, key: int, task: tuple) -> None:
        if self.pool is None:
            method, *args = task
            self.ended.append((key, getattr(self.session, method)(*args)))
        else:
            self.running[self.pool.submit(_work, *task)] = key

    def collect(self) -> list[tuple[int, object]]:
        """(key, result) of the tasks that have ended since the last call, by key; waits for one if none has."""
        if not self.ended:
            ready, _ = wait(self.running, return_when=FIRST_COMPLETED)
            for future in ready:
                key = self.running.pop(future)
                try:
                    self.ended.append((key, future.result()))
                except Abandoned:
                    self.ended.append((key, None))
                except BrokenProcessPool as err:
                    problem_yaml, threads = self.session.spec.problem.path, self.session.options.threads
                    raise SolverError(str(problem_yaml), key="calibrate.threads", found=threads,
                                      message="a worker process ended abruptly (killed, or out of memory); "
                                              "no result was written: run again, with fewer threads if memory ran out"
                                      ) from err
        ended, self.ended = sorted(self.ended, key=lambda item: item[0]), []
        return ended


@contextlib.contextmanager
def _runner(session: CalibrationSession, tasks: int) -> Iterator[_Runner]:
    """A `_Runner` for up to `tasks` tasks: the session's worker processes when its threads > 1 (its
    `workers()` pool, or a pool of its own for this block), else this process."""
    threads = session.options.threads
    if threads == 1 or (tasks == 1 and session._pool is None):
        yield _Runner(session, None, 1)
        return
    with contextlib.ExitStack() as stack:
        pool = session._pool or stack.enter_context(_pool(session.spec.problem.path, session.options,
                                                          min(threads, tasks)))
        yield _Runner(session, pool, threads)


def _run_tasks(session: CalibrationSession, tasks: Sequence[tuple], report: Callable[[int, object], None]) -> list:
    """Run `session.<method>(*args)` for the tasks, in worker processes when the session's threads > 1
    (up to that many at once); each result is reported as it ends, and returned in task order."""
    finished: dict[int, object] = {}
    with _runner(session, len(tasks)) as runner:
        for key, task in enumerate(tasks):
            while not runner.free:
                _collect(runner, finished, report)
            runner.submit(key, task)
        while runner.busy:
            _collect(runner, finished, report)
    return [finished[k] for k in range(len(tasks))]


def _collect(runner: _Runner, finished: dict[int, object], report: Callable[[int, object], None]) -> None:
    for key, result in runner.collect():
        finished[key] = result
        report(key, result)


# ---------------------------------------------------------------------------- entry points


def open_session(problem_yaml: str | Path, **options: object) -> CalibrationSession:
    """The problem loaded for calibration with `options` (as `CalibrationOptions`), checked before any
    simulation: a bad option raises `ConfigError`, a missing solver `SolverError`, a bad problem
    `PetabError`, and with `profile` a `profile_parameters` entry that the problem does not estimate
    `ConfigError` (without it, the entries concern another model: see `check_profile_candidates`)."""
    o = calibration_options(options)
    check_solver(o.solver)
    session = CalibrationSession(problem_yaml, o, threads=o.threads)
    spec = session.spec
    if o.local_method == "transcription":
        check_transcribable(spec)
    if o.profile:
        _profiled(spec, o)
    log.info("calibrating %s: %d parameters, %d measurements in %d experiment(s); %s global search, "
             "%d local start(s) with %s", problem_yaml, spec.dimension, spec.n_data, len(spec.experiments),
             o.global_method, o.starts, o.solver)
    return session


def calibrate_problem(problem_yaml: str | Path, **options: object) -> CalibrationResult:
    """Calibrate a PEtab problem, every stage in this process (worker processes when threads > 1);
    keyword options as `CalibrationOptions`.

    Raises `SolverError` when the solver is not installed, `ConfigError` for a bad option,
    `PetabError` for a bad problem, and `SolverError` when no local start ended at a finite log-likelihood.
    Runs in the floating-point environment of a new process (`startup_floating_point_environment`), so
    that an Ipopt solve the caller ran before does not change the result's last digits.
    """
    with startup_floating_point_environment():
        return _calibrate(problem_yaml, options)


def _calibrate(problem_yaml: str | Path, options: Mapping[str, object]) -> CalibrationResult:
    began = time.monotonic()
    session = open_session(problem_yaml, **options)
    best_so_far = [-math.inf]

    def report_start(k: int, result: StartResult) -> None:
        if result.converged:
            best_so_far[0] = max(best_so_far[0], result.llh)
        _report_start(result, len(candidates), best_so_far[0])

    with session.workers():
        candidates = session.global_starts()
        tasks = [("local", *point) for point in session._start_points(candidates)]
        starts = _run_tasks(session, tasks, report_start)
        result = session.conclude(session.refine(session.hop(starts, began), began))
    log.info("calibration done in %.1f s", time.monotonic() - began)
    return result
