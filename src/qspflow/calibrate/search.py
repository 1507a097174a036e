"""The global stage of a calibration: searches on a batch objective (Latin hypercube, differential
evolution, scatter search with a local phase).

The searches see a function of N scaled parameter vectors at once (in a calibration,
`qspflow.calibrate.objective.BatchProblem.objective`) and, for the scatter search's local phase, a
local solver; they return an `Archive` of every point they evaluated or a local solve ended at,
from which `best_of_basins` picks the starts of the local stage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import differential_evolution
from scipy.stats import qmc

log = logging.getLogger("qspflow.calibrate")

# A failed simulation's objective inside the searches: finite, so that population statistics stay
# defined, and worse than any likelihood a real fit reaches.
FAILED = 1e12
# Restarted searches stop early once this many runs in a row after the first found nothing better
# (Boehm_JProteomeRes2014: its optimum's basin is found in the first or second run; each further
# run costs 4–5 s of its 30).
PATIENCE = 2
# Where on the segment between two points `best_of_basins` looks for a hill, and how many candidates
# per start it tests (each costs one evaluation per probe and chosen point).
HILL_PROBES = (0.25, 0.5, 0.75)
MAX_CANDIDATES = 20
# Latin hypercubes drawn at most for the starts at which the model can be simulated.
RESAMPLE_ROUNDS = 20
# The scatter search's local phase: a local solve after the first iteration of each run and then every
# LOCAL_EVERY iterations (MEIGO's local.n1 = 1; its n2 = 10 on problems whose iterations are cheaper),
# from the child that ranks best on quality and distance from earlier local starts and optima, weighted
# LOCAL_BALANCE to distance (MEIGO's local.balance).
LOCAL_EVERY = 5
LOCAL_BALANCE = 0.5

# A local solver for the search: from a scaled point to where it ended and its objective there.
LocalSolver = Callable[[np.ndarray], tuple[np.ndarray, float]]


# ------------------------------------------------------------------------------ searches


@dataclass(frozen=True)
class LocalSolve:
    """One local solve of a local phase: where it began and ended (scaled; the end is in the archive too)
    and the objective at both."""

    x0: np.ndarray
    f0: float
    x: np.ndarray
    f: float


@dataclass
class Archive:
    """Every point a search evaluated (scaled) and its objective, in evaluation order, and the local solves
    of its local phase (`LocalSolve`), in order."""

    points: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    local: list[LocalSolve] = field(default_factory=list)

    def add(self, X: np.ndarray, f: np.ndarray) -> None:
        self.points.append(np.array(X, dtype=float))
        self.values.append(np.array(f, dtype=float))

    @property
    def X(self) -> np.ndarray:
        return np.vstack(self.points)

    @property
    def f(self) -> np.ndarray:
        return np.concatenate(self.values)

    @property
    def evaluations(self) -> int:
        return sum(len(v) for v in self.values)


class _Budget:
    """Counts evaluations and wall time; records every evaluated point in an archive."""

    def __init__(self, objective: Callable[[np.ndarray], np.ndarray], max_evaluations: int,
                 time_limit: float) -> None:
        self.objective = objective
        self.max_evaluations = max_evaluations
        self.started = time.monotonic()
        self.deadline = self.started + time_limit
        self.archive = Archive()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        f = np.asarray(self.objective(X), dtype=float)
        self.archive.add(X, f)
        return f

    @property
    def exhausted(self) -> bool:
        return self.archive.evaluations >= self.max_evaluations or time.monotonic() >= self.deadline

    def restarts(self, name: str) -> Iterator[int]:
        """Run numbers for a restarted search: until the budget is spent or PATIENCE runs in a row
        did not improve the best value."""
        best, idle, run = math.inf, 0, 0
        while not self.exhausted and idle < PATIENCE:
            run += 1
            yield run
            current = self.best
            improved = run == 1 or current < best - 1e-6 * max(1.0, abs(best))
            idle = 0 if improved else idle + 1
            best = min(best, current)
            log.debug("%s run %d: best −llh so far %.8g, %d evaluations", name, run, best, self.archive.evaluations)
        log.info("%s: %d run(s), %d evaluations in %.1f s, best −llh %.8g", name, run, self.archive.evaluations,
                 time.monotonic() - self.started, best)

    @property
    def best(self) -> float:
        return float(np.min(self.archive.f))


def latin_hypercube(n: int, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n points of a Latin hypercube in the box [lower, upper]."""
    return qmc.scale(qmc.LatinHypercube(d=len(lower), rng=rng).random(n), lower, upper)


def simulable_latin_hypercube(objective: Callable[[np.ndarray], np.ndarray], n: int, lower: np.ndarray,
                              upper: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n Latin-hypercube points and their objective values, where the model could not be simulated
    redrawn from fresh hypercubes (as pyPESTO resamples start points), up to `RESAMPLE_ROUNDS`
    hypercubes: a local start from such a point ends where it began (4 of 5 on Weber_BMC2015)."""
    X = latin_hypercube(n, lower, upper, rng)
    f = objective(X)
    for _ in range(RESAMPLE_ROUNDS - 1):
        failed = ~np.isfinite(f)
        if not failed.any():
            break
        X[failed] = latin_hypercube(int(failed.sum()), lower, upper, rng)
        f[failed] = objective(X[failed])
    return X, f


def differential_evolution_search(objective: Callable[[np.ndarray], np.ndarray], lower: np.ndarray,
                                  upper: np.ndarray, *, rng: np.random.Generator, popsize: int = 15,
                                  max_evaluations: int = 50_000, time_limit: float = 300.0) -> Archive:
    """scipy's differential evolution on the batch objective (one call per generation, no polish),
    restarted from a new population whenever one converges (see `_Budget.restarts`).

    A converged population sits in one basin; on problems with a few deep local optima (Boehm:
    −149.6 beside −138.2) independent restarts are what makes finding the best one likely.
    """
    budget = _Budget(objective, max_evaluations, time_limit)
    population = popsize * len(lower)

    def energies(X_t: np.ndarray) -> np.ndarray:  # scipy passes parameters × population
        return np.minimum(budget(X_t.T), FAILED)

    def stop(intermediate_result) -> bool:  # the argument's name selects scipy's callback signature
        return budget.exhausted

    for _ in budget.restarts("differential evolution"):
        remaining = (max_evaluations - budget.archive.evaluations) // population
        differential_evolution(energies, list(zip(lower, upper)), popsize=popsize, rng=rng, polish=False,
                               vectorized=True, updating="deferred", init="latinhypercube", tol=1e-3,
                               maxiter=max(1, remaining - 1), callback=stop)
    return budget.archive


def scatter_search(objective: Callable[[np.ndarray], np.ndarray], lower: np.ndarray, upper: np.ndarray, *,
                   rng: np.random.Generator, refset_size: int = 10, max_evaluations: int = 50_000,
                   time_limit: float = 300.0, stuck: int = 20, local: LocalSolver | None = None) -> Archive:
    """Enhanced scatter search (Egea, Martí & Banga 2010; MEIGO's eSS), with its local phase when `local`
    is given.

    A diverse Latin-hypercube set seeds a reference set of the best and the most diverse points.
    Each iteration combines every pair of members in hyper-rectangles around the first one (one
    batch; toward the partner if that is better, away from it otherwise), replaces a member by its
    best child when that is better and tries one step beyond it in the same direction
    ("go-beyond"). A member that does not improve for `stuck` iterations is replaced by the candidate
    farthest from the reference set; when the best value stalls that long, the search starts over
    from a new diverse set (see `_Budget.restarts`).

    The local phase (see `LOCAL_EVERY`) puts each local optimum into the archive and, where it is better,
    in place of the worst member, so that later combinations start from local optima
    (Fujita_SciSignal2010 seed 2: its second local solve reached the published basin, where the plain
    search hands every start to another; the README has where it did not help). Each local solve counts
    as one evaluation; the time limit covers it, and `Archive.local` records it.
    """
    budget = _Budget(objective, max_evaluations, time_limit)
    phase = _LocalPhase(local, upper - lower) if local is not None else None
    for _ in budget.restarts("scatter search"):
        _scatter_run(budget, lower, upper, rng, refset_size, stuck, phase)
    if phase is not None:
        log.info("scatter search: %d local solve(s) in its local phase", len(budget.archive.local))
    return budget.archive


@dataclass
class _LocalPhase:
    """The local solver of a scatter search and the bound widths that normalize its distances."""

    solve: LocalSolver
    width: np.ndarray

    def due(self, iteration: int) -> bool:
        return iteration == 1 or iteration % LOCAL_EVERY == 0

    def choose(self, children: np.ndarray, f: np.ndarray, solves: list[LocalSolve]) -> int | None:
        """The child with the best weighted rank of quality and of distance from where the earlier
        `solves` began and ended (None if none could be simulated)."""
        candidates = np.flatnonzero(f < FAILED)
        if not candidates.size:
            return None
        quality = np.argsort(np.argsort(f[candidates], kind="stable"), kind="stable")
        if not solves:
            return int(candidates[np.argmin(quality)])
        visited = np.array([s.x0 for s in solves] + [s.x for s in solves])
        gaps = np.array([np.min(np.linalg.norm((visited - children[c]) / self.width, axis=1)) for c in candidates])
        distance = np.argsort(np.argsort(-gaps, kind="stable"), kind="stable")
        score = (1 - LOCAL_BALANCE) * quality + LOCAL_BALANCE * distance
        return int(candidates[np.argmin(score)])

    def run(self, budget: _Budget, x0: np.ndarray, f0: float) -> tuple[np.ndarray, float]:
        x, f = self.solve(x0)
        x, f = np.array(x, dtype=float), float(f) if math.isfinite(f) else FAILED
        budget.archive.local.append(LocalSolve(np.array(x0, dtype=float), float(f0), x, f))
        budget.archive.add(x[None, :], np.array([f]))
        return x, f


def _scatter_run(budget: _Budget, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator,
                 b: int, stuck: int, phase: _LocalPhase | None) -> None:
    """One scatter search, until the budget is spent or its best value stalls for `stuck` iterations."""
    d = len(lower)
    width = upper - lower
    diverse = latin_hypercube(max(10 * d, 2 * b), lower, upper, rng)
    f_diverse = budget(diverse)
    order = np.argsort(f_diverse, kind="stable")
    chosen = list(order[: b // 2])
    rest = [i for i in order if i not in chosen]
    while len(chosen) < b and rest:
        gaps = [np.min(np.linalg.norm((diverse[chosen] - diverse[i]) / width, axis=1)) for i in rest]
        chosen.append(rest.pop(int(np.argmax(gaps))))
    refset, f_ref = diverse[chosen].copy(), f_diverse[chosen].copy()
    idle = np.zeros(len(refset), dtype=int)
    best, stalled, iteration = float(np.min(f_ref)), 0, 0
    while not budget.exhausted and stalled <= stuck:
        iteration += 1
        order = np.argsort(f_ref, kind="stable")
        refset, f_ref, idle = refset[order], f_ref[order], idle[order]
        n = len(refset)
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        children = np.empty((len(pairs), d))
        for k, (i, j) in enumerate(pairs):
            half = (refset[j] - refset[i]) / 2
            alpha = 1.0 if i < j else -1.0  # i better than j: search around i, away from j
            beta = (abs(j - i) - 1) / max(n - 2, 1)
            c1 = refset[i] - half * (1 + alpha * beta)
            c2 = refset[i] + half * (1 - alpha * beta)
            children[k] = np.clip(c1 + (c2 - c1) * rng.random(d), lower, upper)
        f_children = budget(children)
        parents = np.array([i for i, _ in pairs])
        improved = []
        for i in range(n):
            mine = np.flatnonzero(parents == i)
            k = mine[np.argmin(f_children[mine])]
            if f_children[k] < f_ref[i]:
                improved.append((i, children[k], f_children[k]))
        idle += 1
        if improved:
            beyond = np.array([np.clip(c + (c - refset[i]) * rng.random(d), lower, upper) for i, c, _ in improved])
            f_beyond = budget(beyond)
            for (i, c, fc), z, fz in zip(improved, beyond, f_beyond):
                refset[i], f_ref[i] = (z, fz) if fz < fc else (c, fc)
                idle[i] = 0
        if phase is not None and phase.due(iteration) and not budget.exhausted:
            pick = phase.choose(children, f_children, budget.archive.local)
            if pick is not None:
                x, fx = phase.run(budget, children[pick], f_children[pick])
                worst = int(np.argmax(f_ref))
                if fx < f_ref[worst] and not np.any(np.all(np.isclose(refset, x), axis=1)):
                    refset[worst], f_ref[worst], idle[worst] = x, fx, 0
        for i in np.flatnonzero(idle > stuck):
            if i == int(np.argmin(f_ref)):
                continue
            candidates = latin_hypercube(max(2 * d, 10), lower, upper, rng)
            gaps = [np.min(np.linalg.norm((refset - c) / width, axis=1)) for c in candidates]
            refset[i] = candidates[int(np.argmax(gaps))]
            f_ref[i] = budget(refset[i][None, :])[0]
            idle[i] = 0
        current = float(np.min(f_ref))
        stalled = 0 if current < best - 1e-6 * max(1.0, abs(best)) else stalled + 1
        best = min(best, current)


def best_local_solves(solves: list[LocalSolve], n: int, lower: np.ndarray, upper: np.ndarray,
                      min_distance: float) -> list[int]:
    """Indices of up to n local solves of a local phase, those that ended best first, each begun at least
    `min_distance` from those chosen before (normalized as in `best_of_basins`): the local stage repeats
    them from where they began, so that its table shows each optimum with the distinct starts that found it."""
    width = upper - lower
    chosen: list[int] = []
    for i in sorted(range(len(solves)), key=lambda k: (solves[k].f, k)):
        if len(chosen) == n or not solves[i].f < FAILED:
            break
        if all(np.linalg.norm((solves[i].x0 - solves[k].x0) / width) >= min_distance for k in chosen):
            chosen.append(i)
    return chosen


def best_of_basins(objective: Callable[[np.ndarray], np.ndarray], X: np.ndarray, f: np.ndarray, n: int,
                   lower: np.ndarray, upper: np.ndarray, min_distance: float) -> list[int]:
    """Indices of up to n best finite points, each in a basin of its own.

    Two points share a basin when no point between them is worse than both (the hill-valley test of
    Maree et al. 2018, on `HILL_PROBES` of the segment): a search that converged puts its best
    hundreds of points in one basin, and local starts from them all end at one optimum. Candidates
    closer than `min_distance` to a chosen point (Euclidean, each coordinate divided by its bound
    width) are skipped untested; at most `MAX_CANDIDATES` per start are tested.
    """
    width = upper - lower
    probes = np.array(HILL_PROBES)
    chosen: list[int] = []
    tested = 0
    for i in np.argsort(f, kind="stable"):
        if not f[i] < FAILED or len(chosen) == n or tested == MAX_CANDIDATES * n:
            break
        if any(np.linalg.norm((X[i] - X[k]) / width) < min_distance for k in chosen):
            continue
        if chosen:
            tested += 1
            between = np.vstack([X[k] + probes[:, None] * (X[i] - X[k]) for k in chosen])
            heights = np.nan_to_num(objective(between), nan=np.inf).reshape(len(chosen), len(probes)).max(axis=1)
            if any(h <= max(f[i], f[k]) for h, k in zip(heights, chosen)):
                continue
        chosen.append(int(i))
    return chosen
