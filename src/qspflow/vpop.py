"""Virtual populations: plausible patients, Allen/Rieger selection, a surrogate prescreen, fit metrics.

Everything here works on a plain evaluator `evaluate(P) -> (M, failed)`: `P` is an (n, d) array of
parameter values (linear scale, the columns of a `Space`), `M` the (n, k) outputs (columns of the
`Ranges`), `failed` a boolean (n,) array of sets whose simulation failed (their rows of M are
ignored; they are counted, never plausible). `qspflow.steps.vpop` wires a PEtab problem's
outputs (`qspflow.outputs`) into such an evaluator; the tests use synthetic maps.

- Plausible patients (Allen, Rieger & Musante 2016): parameters drawn uniformly within bounds on
  their PEtab scale, then g(p) = Σ_i max((M_i − c_i)² − (u_i − c_i)², 0), c_i = (l_i + u_i)/2,
  is minimized by simulated annealing; p is plausible when g(p) = 0. The annealing is our own and
  vectorized: every chain of a chunk proposes one move per iteration and all proposals are
  simulated in one batch (the compiled simulator spreads a batch over cores; scipy's
  dual_annealing would call it one set at a time, thousands of calls per patient). Iterations are
  bounded (`anneal_steps`); an output that no simulated set ever reached stops with an error.
- Selection (Allen 2016): inclusion probability min(1, α·f_data(M)/f_plausible(M)) with Gaussian
  KDEs, acceptance by a uniform draw; α minimizes the summed per-output KS statistics averaged
  over repeated draws (among the α that give at least `n_vps` expected VPs).
- Rieger et al. 2018 (`method="rieger"`): Metropolis–Hastings chains in parameter space that
  target f_data(M(p))·[g(p) = 0], started from annealed plausible patients; their accepted
  states form a plausible population already close to the data, so far fewer plausible patients
  are needed per selected VP. The same Allen selection follows (f_plausible is estimated from
  whatever population was generated, so the selection stays correct).
- Surrogate prescreen (Myers et al. 2023, `surrogate=True`): a gradient-boosting classifier
  (scikit-learn) is trained on a pilot of full simulations of uniform draws; a probability
  threshold is chosen on a held-out part of the pilot for the target precision; only candidates
  it accepts are simulated in full.

Candidates come in chunks; chunk c's random stream comes from `derive_seed(seed, "vpop", c)`, so
chunks run as separate jobs concatenate to exactly what `generate` gives in one process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from qspflow import options as opt
from qspflow.errors import ConfigError, DataError, QspflowError
from qspflow.seeds import derive_seed

log = logging.getLogger(__name__)

Evaluator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

METHODS = ("allen", "rieger")
SCALES = ("lin", "log", "log10")
MIN_TARGET = 10  # patients of a target below which no density estimate is attempted
KDE_POINTS = 4000  # plausible patients (at most) behind f_plausible; more only slow the KDE down


class VpopError(QspflowError):
    """A virtual population that cannot be made from the given model, ranges or target."""


# ---------------------------------------------------------------------------------------------
# Parameter space and plausible ranges
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """The varied parameters: names, linear bounds and PEtab scales (sampling is uniform on the scale)."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    scales: tuple[str, ...]

    @classmethod
    def make(cls, names: Sequence[str], lower: Sequence[float], upper: Sequence[float],
             scales: Sequence[str] | None = None, key: str = "vpop.parameters") -> Space:
        names = tuple(names)
        lo = np.asarray(lower, dtype=float)
        hi = np.asarray(upper, dtype=float)
        scales = tuple(scales) if scales is not None else ("lin",) * len(names)
        if not names:
            raise ConfigError(None, key=key, expected="at least one parameter to vary")
        for i, name in enumerate(names):
            if scales[i] not in SCALES:
                raise ConfigError(None, key=f"{key}.{name}", expected=f"a scale in {list(SCALES)}", found=scales[i])
            if not (np.isfinite(lo[i]) and np.isfinite(hi[i]) and lo[i] < hi[i]):
                raise ConfigError(None, key=f"{key}.{name}", expected="bounds [lower, upper] with lower < upper",
                                  found=f"[{lo[i]:g}, {hi[i]:g}]")
            if scales[i] != "lin" and lo[i] <= 0:
                raise ConfigError(None, key=f"{key}.{name}", expected=f"a lower bound > 0 on {scales[i]} scale",
                                  found=lo[i])
        return cls(names, lo, hi, scales)

    @property
    def dim(self) -> int:
        return len(self.names)

    def _scaled_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.to_scaled(self.lower[None, :])[0], self.to_scaled(self.upper[None, :])[0]

    def to_scaled(self, P: np.ndarray) -> np.ndarray:
        out = np.array(P, dtype=float, copy=True)
        for i, s in enumerate(self.scales):
            if s == "log":
                out[:, i] = np.log(out[:, i])
            elif s == "log10":
                out[:, i] = np.log10(out[:, i])
        return out

    def to_linear(self, X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=float, copy=True)
        for i, s in enumerate(self.scales):
            if s == "log":
                out[:, i] = np.exp(out[:, i])
            elif s == "log10":
                out[:, i] = 10.0 ** out[:, i]
        return out

    def unit_to_scaled(self, U: np.ndarray) -> np.ndarray:
        lo, hi = self._scaled_bounds()
        return lo + U * (hi - lo)

    def scaled_to_unit(self, X: np.ndarray) -> np.ndarray:
        lo, hi = self._scaled_bounds()
        return (X - lo) / (hi - lo)


@dataclass(frozen=True)
class Ranges:
    """Plausible ranges [l_i, u_i] of the outputs."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def make(cls, names: Sequence[str], lower: Sequence[float], upper: Sequence[float],
             key: str = "vpop.ranges") -> Ranges:
        names = tuple(names)
        lo = np.asarray(lower, dtype=float)
        hi = np.asarray(upper, dtype=float)
        if not names:
            raise ConfigError(None, key=key, expected="a plausible range for at least one output")
        for i, name in enumerate(names):
            if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
                raise ConfigError(None, key=f"{key}.{name}", expected="finite [lower, upper]",
                                  found=f"[{lo[i]:g}, {hi[i]:g}]")
            if lo[i] > hi[i]:
                raise ConfigError(None, key=f"{key}.{name}", expected="[lower, upper] with lower ≤ upper",
                                  found=f"[{lo[i]:g}, {hi[i]:g}]")
        return cls(names, lo, hi)


def plausibility_terms(M: np.ndarray, ranges: Ranges) -> np.ndarray:
    """Per output max((M_i − c_i)² − (u_i − c_i)², 0): 0 inside [l_i, u_i], growing quadratically outside.
    NaN outputs (failed simulations) give +inf."""
    c = (ranges.lower + ranges.upper) / 2
    half = (ranges.upper - ranges.lower) / 2
    terms = np.maximum((np.asarray(M, dtype=float) - c) ** 2 - half**2, 0.0)
    return np.where(np.isnan(terms), np.inf, terms)


def plausibility(M: np.ndarray, ranges: Ranges) -> np.ndarray:
    """g(p) = Σ_i max((M_i(p) − c_i)² − (u_i − c_i)², 0), c_i = (l_i + u_i)/2 (Allen et al. 2016)."""
    return plausibility_terms(M, ranges).sum(axis=1)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Algorithm settings (see `OPTION_DEFAULTS` for their meaning)."""

    method: str = "allen"
    surrogate: bool = False
    pilot: int = 2000
    precision: float = 0.95
    anneal_steps: int = 200
    anneal_t0: float = 1.0
    anneal_step: float = 0.15
    mh_chains: int = 100
    mh_step: float = 0.1
    mh_burn: int = 20
    alpha_grid: int = 40
    alpha_repeats: int = 10
    batch: int = 20000


OPTION_DEFAULTS = {
    "method": ("allen", "allen (plausible patients by annealing from uniform draws) or rieger (MH chains on the "
                        "data density)"),
    "surrogate": (False, "prescreen uniform draws with a classifier trained on a pilot (Myers et al. 2023)"),
    "pilot": (2000, "full simulations that train the surrogate"),
    "precision": (0.95, "precision the surrogate's threshold aims at on cross-validated pilot predictions"),
    "anneal_steps": (200, "simulated-annealing iterations per chain at most"),
    "anneal_t0": (1.0, "initial annealing temperature, relative to each chain's starting g"),
    "anneal_step": (0.15, "annealing move size, as a fraction of each parameter's scaled range"),
    "mh_chains": (100, "Metropolis–Hastings chains per chunk (rieger)"),
    "mh_step": (0.1, "MH proposal SD, as a fraction of each parameter's scaled range (rieger)"),
    "mh_burn": (20, "MH steps per chain before states are kept (rieger)"),
    "alpha_grid": (40, "values of the selection's scale α tried"),
    "alpha_repeats": (10, "uniform draws per α whose KS statistics are averaged"),
    "batch": (20000, "parameter sets simulated per call (bounds memory)"),
}


def make_options(section: str = "vpop", **given: object) -> Options:
    """Checked `Options` from config keys (unknown keys and bad values name `vpop.<key>`)."""
    opt.check_keys(section, given, OPTION_DEFAULTS)
    values = {k: v for k, (v, _) in OPTION_DEFAULTS.items()} | dict(given)
    key = lambda k: f"{section}.{k}"  # noqa: E731
    return Options(
        method=opt.choice(key("method"), values["method"], METHODS),
        surrogate=opt.flag(key("surrogate"), values["surrogate"]),
        pilot=opt.integer(key("pilot"), values["pilot"], 50),
        precision=opt.number(key("precision"), values["precision"], minimum=0.0, maximum=1.0),
        anneal_steps=opt.integer(key("anneal_steps"), values["anneal_steps"], 1),
        anneal_t0=opt.number(key("anneal_t0"), values["anneal_t0"], positive=True),
        anneal_step=opt.number(key("anneal_step"), values["anneal_step"], positive=True, maximum=1.0),
        mh_chains=opt.integer(key("mh_chains"), values["mh_chains"], 1),
        mh_step=opt.number(key("mh_step"), values["mh_step"], positive=True, maximum=1.0),
        mh_burn=opt.integer(key("mh_burn"), values["mh_burn"], 0),
        alpha_grid=opt.integer(key("alpha_grid"), values["alpha_grid"], 2),
        alpha_repeats=opt.integer(key("alpha_repeats"), values["alpha_repeats"], 1),
        batch=opt.integer(key("batch"), values["batch"], 1),
    )


# ---------------------------------------------------------------------------------------------
# Chunks of candidates
# ---------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    """One chunk's plausible patients (linear parameters and outputs) and its counts."""

    params: np.ndarray
    outputs: np.ndarray
    candidates: int = 0
    simulations: int = 0
    failed: int = 0
    best: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per output: smallest term reached
    best_g: float = math.inf
    screened_true: int = 0  # surrogate: accepted candidates found plausible in full
    accepted: int = 0  # surrogate: candidates it accepted (simulated in full)
    recall: float = math.nan  # surrogate: on the held-out pilot

    def stats(self) -> dict[str, float]:
        return {"candidates": self.candidates, "simulations": self.simulations, "failed": self.failed,
                "plausible": int(self.params.shape[0]), "best_g": self.best_g,
                "screened_true": self.screened_true, "accepted": self.accepted, "recall": self.recall,
                **{f"best_{i}": float(b) for i, b in enumerate(self.best)}}


def chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    """Chunk `chunk`'s own stream: from the seed and the chunk index only."""
    return np.random.default_rng(derive_seed(seed, "vpop", int(chunk)))


def chunk_sizes(candidates: int, n_chunks: int) -> list[int]:
    """`candidates` split over `n_chunks` as evenly as possible (the first ones one larger)."""
    base, extra = divmod(int(candidates), int(n_chunks))
    return [base + (1 if c < extra else 0) for c in range(n_chunks)]


class _Tracker:
    """Runs the evaluator in bounded batches; counts simulations, failures and the best terms seen."""

    def __init__(self, evaluate: Evaluator, space: Space, ranges: Ranges, batch: int) -> None:
        self.evaluate, self.space, self.ranges, self.batch = evaluate, space, ranges, batch
        self.simulations = 0
        self.failed = 0
        self.best = np.full(len(ranges.names), np.inf)
        self.best_g = np.inf

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs and g of scaled parameter sets X."""
        n = X.shape[0]
        M = np.full((n, len(self.ranges.names)), np.nan)
        for start in range(0, n, self.batch):
            part = X[start:start + self.batch]
            values, failed = self.evaluate(self.space.to_linear(part))
            values = np.array(values, dtype=float)
            failed = np.asarray(failed, dtype=bool).reshape(part.shape[0], -1).any(axis=1)
            values[failed] = np.nan
            M[start:start + part.shape[0]] = values
            self.failed += int(np.count_nonzero(failed | np.isnan(values).any(axis=1)))
        self.simulations += n
        terms = plausibility_terms(M, self.ranges)
        g = terms.sum(axis=1)
        if n:
            self.best = np.minimum(self.best, terms.min(axis=0))
            self.best_g = min(self.best_g, float(g.min()))
        return M, g

    def finish(self, X: np.ndarray, M: np.ndarray, candidates: int) -> Chunk:
        return Chunk(self.space.to_linear(X), M, candidates=candidates, simulations=self.simulations,
                     failed=self.failed, best=self.best.copy(), best_g=float(self.best_g))


def _reflect(X: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Moves reflected back into [lo, hi] (a symmetric proposal stays symmetric)."""
    span = hi - lo
    Y = np.mod(X - lo, 2 * span)
    return lo + np.where(Y > span, 2 * span - Y, Y)


def anneal(tracker: _Tracker, X: np.ndarray, rng: np.random.Generator,
           options: Options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized simulated annealing of g from each row of X (scaled) until g = 0 or the step budget.

    Returns (X, M, g) at the end: rows with g == 0 are plausible. Every iteration draws the same
    random numbers for every chain (active or not), so a chain's path depends only on the stream.
    """
    lo, hi = tracker.space._scaled_bounds()
    step = options.anneal_step * (hi - lo)
    M, g = tracker(X)
    X = X.copy()
    t0 = options.anneal_t0 * np.where(np.isfinite(g) & (g > 0), g, 1.0)
    size = np.ones(X.shape[0])  # per chain: its move size, adapted (1/5 rule) so a chain near its goal refines
    for it in range(options.anneal_steps):
        active = np.flatnonzero(g > 0)
        z = rng.standard_normal(X.shape)
        u = rng.random(X.shape[0])
        if active.size == 0:
            break
        temp = t0[active] * math.exp(-12.0 * it / options.anneal_steps) + 1e-300
        proposal = _reflect(X[active] + z[active] * step * size[active, None], lo, hi)
        M_new, g_new = tracker(proposal)
        better = g_new < g[active]
        with np.errstate(over="ignore", invalid="ignore"):
            accept = better | (u[active] < np.exp(-(g_new - g[active]) / temp))
        accept &= np.isfinite(g_new)
        size[active] = np.clip(size[active] * np.where(better, 1.5, 0.9), 1e-3, 1.0)
        rows = active[accept]
        X[rows], M[rows], g[rows] = proposal[accept], M_new[accept], g_new[accept]
    return X, M, g


def _check_reached(tracker: _Tracker, found: int) -> None:
    """An output no simulated set ever brought into its range stops everything, naming it."""
    unreached = [i for i, b in enumerate(tracker.best) if not b == 0.0]
    if unreached:
        i = max(unreached, key=lambda j: tracker.best[j])
        raise VpopError(None, key=f"vpop.ranges.{tracker.ranges.names[i]}",
                        message=(f"no parameter set within the bounds reaches this output's plausible range "
                                 f"[{tracker.ranges.lower[i]:g}, {tracker.ranges.upper[i]:g}] (best term "
                                 f"{tracker.best[i]:.4g}, best g {tracker.best_g:.4g} after "
                                 f"{tracker.simulations} simulations)"))
    if found == 0:
        raise VpopError(None, key="vpop.ranges",
                        message=(f"no parameter set is plausible for all outputs at once (best g "
                                 f"{tracker.best_g:.4g} after {tracker.simulations} simulations)"))


def allen_chunk(evaluate: Evaluator, space: Space, ranges: Ranges, n: int, rng: np.random.Generator,
                options: Options) -> Chunk:
    """`n` uniform draws, each annealed towards g = 0; the plausible ones."""
    tracker = _Tracker(evaluate, space, ranges, options.batch)
    X0 = space.unit_to_scaled(rng.random((n, space.dim)))
    X, M, g = anneal(tracker, X0, rng, options)
    keep = g == 0
    _check_reached(tracker, int(keep.sum()))
    return tracker.finish(X[keep], M[keep], n)


class Density:
    """A Gaussian KDE of outputs (scipy, Scott's bandwidth), on standardized columns, as log-density.

    `variance_corrected`: the kernels sit on the points shrunk towards their mean by 1/sqrt(1 + h²),
    so that the estimate has the data's covariance instead of covariance·(1 + h²): a VP selected
    against a plain KDE comes out that much too wide (≈ 9 % in SD for 400 patients in 3 outputs)."""

    def __init__(self, data: np.ndarray, source: str | None = None, what: str = "target", *,
                 variance_corrected: bool = True) -> None:
        data = np.asarray(data, dtype=float)
        data = data[np.all(np.isfinite(data), axis=1)]
        n, k = data.shape
        if n < max(MIN_TARGET, k + 2):
            raise DataError(source, expected=f"at least {max(MIN_TARGET, k + 2)} complete patients in the {what} "
                            "for a density estimate", found=f"{n} patients")
        self.mean = data.mean(axis=0)
        self.sd = data.std(axis=0, ddof=1)
        if np.any(self.sd <= 0):
            raise DataError(source, expected=f"outputs that vary across the {what}'s patients",
                            found="a constant column")
        z = (data - self.mean) / self.sd
        kde = stats.gaussian_kde(z.T)
        if variance_corrected:  # Silverman (1986) §6.4.1: the KDE keeps the data's covariance
            h = float(kde.factor)
            centre = z.mean(axis=0)
            kde = stats.gaussian_kde((centre + (z - centre) / math.sqrt(1.0 + h * h)).T, bw_method=h)
        self.kde = kde

    def logpdf(self, M: np.ndarray) -> np.ndarray:
        M = np.asarray(M, dtype=float)
        out = np.full(M.shape[0], -np.inf)
        ok = np.all(np.isfinite(M), axis=1)
        if ok.any():
            out[ok] = self.kde.logpdf(((M[ok] - self.mean) / self.sd).T) - np.log(self.sd).sum()
        return out


def rieger_chunk(evaluate: Evaluator, space: Space, ranges: Ranges, n: int, rng: np.random.Generator,
                 options: Options, target: Density) -> Chunk:
    """Rieger et al. 2018: MH chains targeting f_data(M(p))·[g(p)=0] spend `n` candidate simulations
    (annealing of the starts included); their accepted states after burn-in are the plausible patients."""
    tracker = _Tracker(evaluate, space, ranges, options.batch)
    chains = max(1, min(options.mh_chains, n))
    X, M, g = anneal(tracker, space.unit_to_scaled(rng.random((chains, space.dim))), rng, options)
    _check_reached(tracker, int(np.count_nonzero(g == 0)))
    # chains that did not reach plausibility restart from a plausible chain's state
    ok = np.flatnonzero(g == 0)
    fill = ok[np.arange(chains) % ok.size]
    X, M = np.where((g == 0)[:, None], X, X[fill]), np.where((g == 0)[:, None], M, M[fill])
    logp = target.logpdf(M)
    lo, hi = space._scaled_bounds()
    step = options.mh_step * (hi - lo)
    kept_x, kept_m = [], []
    it = 0
    while tracker.simulations < n:
        width = min(chains, n - tracker.simulations)
        z = rng.standard_normal((chains, space.dim))
        u = rng.random(chains)
        proposal = _reflect(X[:width] + z[:width] * step, lo, hi)
        M_new, g_new = tracker(proposal)
        logp_new = np.where(g_new == 0, target.logpdf(M_new), -np.inf)
        with np.errstate(invalid="ignore"):
            accept = np.log(u[:width]) < logp_new - logp[:width]
        rows = np.flatnonzero(accept)
        X[rows], M[rows], logp[rows] = proposal[rows], M_new[rows], logp_new[rows]
        if it < options.mh_burn:  # adapt the proposal towards 25 % acceptance during burn-in only
            step = step * math.exp(accept.mean() - 0.25)
        else:
            kept_x.append(proposal[rows])
            kept_m.append(M_new[rows])
        it += 1
    Xk = np.concatenate(kept_x) if kept_x else np.empty((0, space.dim))
    Mk = np.concatenate(kept_m) if kept_m else np.empty((0, len(ranges.names)))
    return tracker.finish(Xk, Mk, n)


# ---------------------------------------------------------------------------------------------
# Surrogate prescreen (Myers et al. 2023)
# ---------------------------------------------------------------------------------------------


@dataclass
class Surrogate:
    """A classifier of plausibility on scaled parameters, its threshold and held-out quality."""

    model: object
    threshold: float
    precision: float
    recall: float
    pilot: Chunk  # the pilot's plausible patients and counts (its simulations count once)


def fit_surrogate(evaluate: Evaluator, space: Space, ranges: Ranges, *, pilot: int, seed: int,
                  options: Options) -> Surrogate:
    """Simulate `pilot` uniform draws in full, train a gradient-boosting classifier on them and pick,
    on 5-fold cross-validated predictions, the lowest probability threshold whose precision reaches
    `options.precision` (the most recall at that precision; `precision` and `recall` are those CV figures)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(derive_seed(seed, "vpop", "pilot"))
    tracker = _Tracker(evaluate, space, ranges, options.batch)
    X = space.unit_to_scaled(rng.random((pilot, space.dim)))
    M, g = tracker(X)
    y = g == 0
    _check_reached(tracker, int(y.sum()))
    U = space.scaled_to_unit(X)
    if y.sum() < 5 or (~y).sum() < 5:
        raise VpopError(None, key="vpop.pilot", message=(f"the pilot's {pilot} draws are nearly all of one "
                        f"class ({int(y.sum())} plausible): a surrogate cannot learn; use more pilot draws or none"))

    def classifier() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=0, early_stopping=False)

    with threadpool_limits(1):  # byte-identical whatever the machine's threads
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        prob = cross_val_predict(classifier(), U, y, cv=folds, method="predict_proba")[:, 1]
        model = classifier().fit(U, y)
    truth = y
    threshold, precision, recall = 0.5, math.nan, math.nan
    for t in np.unique(np.concatenate([prob, [0.5]])):
        chosen = prob >= t
        if chosen.sum() == 0:
            continue
        p = float(truth[chosen].mean())
        if p >= options.precision:
            threshold, precision = float(t), p
            recall = float(truth[chosen].sum() / max(truth.sum(), 1))
            break
    if math.isnan(precision):
        threshold = float(prob.max())
        chosen = prob >= threshold
        precision = float(truth[chosen].mean())
        recall = float(truth[chosen].sum() / max(truth.sum(), 1))
    pilot_chunk = tracker.finish(X[y], M[y], pilot)
    log.info("surrogate: pilot %d (%d plausible), threshold %.3g, held-out precision %.3f, recall %.3f",
             pilot, int(y.sum()), threshold, precision, recall)
    return Surrogate(model, threshold, precision, recall, pilot_chunk)


def surrogate_chunk(evaluate: Evaluator, space: Space, ranges: Ranges, n: int, rng: np.random.Generator,
                    options: Options, surrogate: Surrogate) -> Chunk:
    """`n` uniform draws screened by the surrogate; the accepted ones simulated in full, plausible kept.
    Memory: draws are screened in blocks of `options.batch`."""
    from threadpoolctl import threadpool_limits

    tracker = _Tracker(evaluate, space, ranges, options.batch)
    kept_x, kept_m, accepted = [], [], 0
    U_all = rng.random((n, space.dim))
    for start in range(0, n, options.batch):
        U = U_all[start:start + options.batch]
        with threadpool_limits(1):
            prob = surrogate.model.predict_proba(U)[:, 1]
        X = space.unit_to_scaled(U[prob >= surrogate.threshold])
        accepted += X.shape[0]
        M, g = tracker(X)
        kept_x.append(X[g == 0])
        kept_m.append(M[g == 0])
    X = np.concatenate(kept_x) if kept_x else np.empty((0, space.dim))
    M = np.concatenate(kept_m) if kept_m else np.empty((0, len(ranges.names)))
    chunk = tracker.finish(X, M, n)
    chunk.screened_true = int(X.shape[0])
    chunk.accepted = accepted
    chunk.recall = surrogate.recall
    return chunk


# ---------------------------------------------------------------------------------------------
# One chunk, and all of them
# ---------------------------------------------------------------------------------------------


def candidate_chunk(evaluate: Evaluator, space: Space, ranges: Ranges, *, chunk: int, n_chunks: int,
                    candidates: int, seed: int, options: Options, target: np.ndarray | None = None,
                    surrogate: Surrogate | None = None) -> Chunk:
    """Chunk `chunk` of `n_chunks` (of `candidates` in all): its plausible patients.

    The surrogate (when `options.surrogate`) is fitted here unless given; it depends on the seed
    only, so every chunk job fits the same one. Chunk 0 carries the pilot's plausible patients.
    """
    if not 0 <= chunk < n_chunks:
        raise ConfigError(None, key="vpop.chunks", expected=f"a chunk index in [0, {n_chunks})", found=chunk)
    n = chunk_sizes(candidates, n_chunks)[chunk]
    rng = chunk_rng(seed, chunk)
    if options.surrogate:
        surrogate = surrogate or fit_surrogate(evaluate, space, ranges, pilot=options.pilot, seed=seed,
                                               options=options)
        result = surrogate_chunk(evaluate, space, ranges, n, rng, options, surrogate)
        if chunk == 0:
            p = surrogate.pilot
            result = Chunk(np.concatenate([p.params, result.params]), np.concatenate([p.outputs, result.outputs]),
                           candidates=result.candidates + p.candidates, simulations=result.simulations + p.simulations,
                           failed=result.failed + p.failed, best=np.minimum(result.best, p.best),
                           best_g=min(result.best_g, p.best_g), screened_true=result.screened_true,
                           accepted=result.accepted, recall=result.recall)
        return result
    if options.method == "rieger":
        if target is None:
            raise ConfigError(None, key="vpop.target", expected="a target cohort for method rieger")
        return rieger_chunk(evaluate, space, ranges, n, rng, options, Density(target))
    return allen_chunk(evaluate, space, ranges, n, rng, options)


def generate(evaluate: Evaluator, space: Space, ranges: Ranges, *, candidates: int, n_chunks: int, seed: int,
             options: Options, target: np.ndarray | None = None) -> list[Chunk]:
    """Every chunk in turn, in one process (the same chunks as separate `candidate_chunk` jobs give)."""
    surrogate = None
    if options.surrogate:
        surrogate = fit_surrogate(evaluate, space, ranges, pilot=options.pilot, seed=seed, options=options)
    out = []
    start = time.perf_counter()
    for c in range(n_chunks):
        out.append(candidate_chunk(evaluate, space, ranges, chunk=c, n_chunks=n_chunks, candidates=candidates,
                                   seed=seed, options=options, target=target, surrogate=surrogate))
        found = sum(ch.params.shape[0] for ch in out)
        elapsed = time.perf_counter() - start
        log.info("vpop: chunk %d/%d done, %d plausible so far, ETA %.0f s", c + 1, n_chunks, found,
                 elapsed / (c + 1) * (n_chunks - c - 1))
    return out


def combine(chunks: Sequence[Chunk]) -> Chunk:
    """Chunks concatenated in order, counts added."""
    if not chunks:
        raise ConfigError(None, key="vpop.chunks", expected="at least one chunk of candidates")
    k = chunks[0].outputs.shape[1]
    with_recall = [c.recall for c in chunks if not math.isnan(c.recall)]
    return Chunk(np.concatenate([c.params for c in chunks]), np.concatenate([c.outputs for c in chunks]),
                 candidates=sum(c.candidates for c in chunks), simulations=sum(c.simulations for c in chunks),
                 failed=sum(c.failed for c in chunks),
                 best=np.min([c.best if c.best.size else np.full(k, np.inf) for c in chunks], axis=0),
                 best_g=min(c.best_g for c in chunks), screened_true=sum(c.screened_true for c in chunks),
                 accepted=sum(c.accepted for c in chunks),
                 recall=with_recall[0] if with_recall else math.nan)


# ---------------------------------------------------------------------------------------------
# Selection (Allen et al. 2016) and fit
# ---------------------------------------------------------------------------------------------


def ks_statistics(sample: np.ndarray, target_sorted: Sequence[np.ndarray]) -> float:
    """Σ over outputs of the two-sample KS statistic of `sample`'s column against the sorted target column."""
    total = 0.0
    n = sample.shape[0]
    if n == 0:
        return float(len(target_sorted))
    for j, t in enumerate(target_sorted):
        s = np.sort(sample[:, j])
        both = np.concatenate([s, t])
        cdf_s = np.searchsorted(s, both, side="right") / n
        cdf_t = np.searchsorted(t, both, side="right") / t.size
        total += float(np.max(np.abs(cdf_s - cdf_t)))
    return total


@dataclass
class Selection:
    """The selected VPs (indices into the plausible population), α and the selection's figures."""

    selected: np.ndarray
    alpha: float
    ks_sum: float
    expected: float
    probability: np.ndarray


def select(outputs: np.ndarray, target: np.ndarray, *, seed: int, n_vps: int | None = None,
           options: Options = Options(), target_source: str | None = None) -> Selection:
    """Allen et al. 2016: keep plausible patient i with probability min(1, α·f_data(M_i)/f_plausible(M_i)).

    α is chosen on a grid (ratios' quantiles) to minimize the mean over `alpha_repeats` draws of the
    summed per-output KS statistics, among the α whose expected number of VPs is ≥ `n_vps` (all α
    when none is). The final draw is made with α; when it selects more than `n_vps`, `n_vps` of them
    are kept at random (order kept).
    """
    target = np.asarray(target, dtype=float)
    data = Density(target, target_source, "target")
    rng = np.random.default_rng(derive_seed(seed, "vpop", "select"))
    n = outputs.shape[0]
    if n < max(MIN_TARGET, outputs.shape[1] + 2):
        raise VpopError(None, key="vpop.n_candidates", expected=f"at least {max(MIN_TARGET, outputs.shape[1] + 2)} "
                        "plausible patients for a density estimate", found=f"{n}")
    kde_rows = np.sort(rng.choice(n, size=min(n, KDE_POINTS), replace=False))
    plaus = Density(outputs[kde_rows], None, "plausible population", variance_corrected=False)
    log_ratio = data.logpdf(outputs) - plaus.logpdf(outputs)
    ratio = np.exp(log_ratio - np.max(log_ratio))
    t_sorted = [np.sort(target[:, j][np.isfinite(target[:, j])]) for j in range(target.shape[1])]
    qs = 1.0 - np.geomspace(1e-4, 0.9, options.alpha_grid)
    alphas = np.unique(1.0 / np.maximum(np.quantile(ratio, qs), 1e-300))
    draws = rng.random((options.alpha_repeats, n))
    results = []
    for a in alphas:
        prob = np.minimum(1.0, a * ratio)
        ks = np.mean([ks_statistics(outputs[draws[r] < prob], t_sorted) for r in range(options.alpha_repeats)])
        results.append((float(a), float(ks), float(prob.sum())))
    eligible = [r for r in results if n_vps is None or r[2] >= n_vps] or results
    alpha, ks_sum, expected = min(eligible, key=lambda r: (r[1], r[0]))
    prob = np.minimum(1.0, alpha * ratio)
    chosen = np.flatnonzero(rng.random(n) < prob)
    if n_vps is not None and chosen.size > n_vps:
        chosen = np.sort(rng.choice(chosen, size=n_vps, replace=False))
    if n_vps is not None and chosen.size < n_vps:
        log.warning("vpop: %d VPs selected of the %d asked for (%d plausible patients): generate more candidates",
                    chosen.size, n_vps, n)
    return Selection(chosen, alpha, ks_sum, expected, prob)


def fit_table(vp: np.ndarray, target: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Per output: KS statistic and p-value, VP vs target mean and SD, `matches` (p ≥ 0.05); per pair
    of outputs (`a:b`): VP and target Pearson correlations and their difference."""
    rows = []
    for j, name in enumerate(names):
        v = vp[:, j][np.isfinite(vp[:, j])]
        t = target[:, j][np.isfinite(target[:, j])]
        ks = stats.ks_2samp(v, t) if v.size and t.size else None
        rows.append({"output": name, "n_vp": v.size, "n_target": t.size,
                     "ks": float(ks.statistic) if ks else math.nan, "ks_p": float(ks.pvalue) if ks else math.nan,
                     "matches": "yes" if ks and ks.pvalue >= 0.05 else "no",
                     "vp_mean": float(v.mean()) if v.size else math.nan, "target_mean": float(t.mean()),
                     "vp_sd": float(v.std(ddof=1)) if v.size > 1 else math.nan, "target_sd": float(t.std(ddof=1)),
                     "vp_corr": math.nan, "target_corr": math.nan, "corr_diff": math.nan})
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            cv = _corr(vp[:, a], vp[:, b])
            ct = _corr(target[:, a], target[:, b])
            rows.append({"output": f"{names[a]}:{names[b]}", "n_vp": vp.shape[0], "n_target": target.shape[0],
                         "ks": math.nan, "ks_p": math.nan, "matches": "", "vp_mean": math.nan,
                         "target_mean": math.nan, "vp_sd": math.nan, "target_sd": math.nan,
                         "vp_corr": cv, "target_corr": ct, "corr_diff": cv - ct})
    return pd.DataFrame(rows)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return math.nan
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


@dataclass
class VirtualPopulation:
    """The outcome of `virtual_population`: plausible patients, the selection and its fit."""

    space: Space
    ranges: Ranges
    plausible: Chunk
    selection: Selection
    fit: pd.DataFrame

    @property
    def params(self) -> np.ndarray:
        return self.plausible.params[self.selection.selected]

    @property
    def outputs(self) -> np.ndarray:
        return self.plausible.outputs[self.selection.selected]

    def plausible_table(self) -> pd.DataFrame:
        return _patients(self.plausible.params, self.plausible.outputs, self.space, self.ranges, "plausible")

    def vpop_table(self) -> pd.DataFrame:
        frame = _patients(self.params, self.outputs, self.space, self.ranges, "vp")
        frame.insert(1, "plausible", [f"plausible{i + 1:07d}" for i in self.selection.selected])
        return frame

    def summary(self) -> dict[str, float]:
        p = self.plausible
        return {"candidates": p.candidates, "simulations": p.simulations, "failed": p.failed,
                "plausible": p.params.shape[0], "vps": int(self.selection.selected.size),
                "plausible_per_vp": p.params.shape[0] / max(int(self.selection.selected.size), 1),
                "alpha": self.selection.alpha, "ks_sum": self.selection.ks_sum,
                "surrogate_recall": p.recall,
                "surrogate_precision": (p.screened_true / p.accepted) if p.accepted else math.nan}


def _patients(P: np.ndarray, M: np.ndarray, space: Space, ranges: Ranges, prefix: str) -> pd.DataFrame:
    frame = pd.DataFrame({"patient": [f"{prefix}{i + 1:07d}" for i in range(P.shape[0])]})
    for j, name in enumerate(space.names):
        frame[name] = P[:, j]
    for j, name in enumerate(ranges.names):
        frame[name] = M[:, j]
    return frame


def virtual_population(chunks: Sequence[Chunk], target: np.ndarray, space: Space, ranges: Ranges, *, seed: int,
                       n_vps: int | None = None, options: Options = Options(),
                       target_source: str | None = None) -> VirtualPopulation:
    """Chunks of plausible patients → Allen selection against `target` (rows: patients, columns: `ranges.names`)."""
    plausible = combine(chunks)
    selection = select(plausible.outputs, target, seed=seed, n_vps=n_vps, options=options,
                       target_source=target_source)
    fit = fit_table(plausible.outputs[selection.selected], np.asarray(target, dtype=float), ranges.names)
    return VirtualPopulation(space, ranges, plausible, selection, fit)


__all__ = ["Chunk", "Density", "METHODS", "OPTION_DEFAULTS", "Options", "Ranges", "Selection", "Space", "Surrogate",
           "VirtualPopulation", "VpopError", "allen_chunk", "anneal", "candidate_chunk", "chunk_rng", "chunk_sizes",
           "combine", "fit_surrogate", "fit_table", "generate", "ks_statistics", "make_options", "plausibility",
           "plausibility_terms", "rieger_chunk", "select", "surrogate_chunk", "virtual_population"]
