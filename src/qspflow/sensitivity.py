"""Global sensitivity of model outputs: SALib's Morris screening and Sobol indices, with CIs and a
convergence check. SALib does all sampling and every estimator; this module chooses ranges, splits
the work and tabulates.

The three stages are separate so that the workflow can run them as separate jobs:

1. `sample(ranges, options, seed=…) -> {"morris": X, "sobol": X}`: sample matrices on each
   parameter's PEtab scale (a log10-scaled parameter is sampled uniformly in log10 space) within
   `parameter_ranges(...)`: `ci` (the selected model's profile CIs, lower_95/upper_95 of its
   estimates table; a parameter without a finite CI falls back to `factor`, and the log says so),
   `factor` (×/÷ `factor` around the centre) or `config` (`bounds`: [low, high] per parameter, on
   the linear scale). The centre is the estimate (or the nominal value without estimates).
2. `evaluate_chunk(model, X, ranges, chunk=k, n_chunks=K, base=…)`: the outputs of rows
   `chunk_rows(len(X), k, K)` of X (an `qspflow.outputs.OutputModel`); rows are simulated
   independently, so the chunks concatenated are bit-identical to one evaluation of X.
3. `analyze_morris(names, X, Y, output_names, options, seed=…)` and
   `analyze_sobol(names, Y, output_names, options, seed=…)`: tables with the columns `COLUMNS`
   from the gathered outputs Y (rows as in X, one column per output). Any function of the
   parameters can stand in for the model here (the tests use Ishigami and Sobol's g-function).

Indices: Morris `mu_star` (with SALib's bootstrap CI), `mu` and `sigma` (SALib gives no CI for
them: their ci_low/ci_high and converged are empty); Sobol `S1`, `ST` (and `S2` with
`second_order`, parameter `a:b`) with SALib's bootstrap CIs. ci_low/ci_high = value ∓ SALib's
half-width at `confidence`.

Convergence: each index is estimated again from the first half of the sample (the first N/2 base
points of the Saltelli design, which are themselves a Sobol' design; the first half of the Morris
trajectories); `converged` is true when the full-sample value lies within the half-sample CI
(widened by 1e-9 of the output's largest index of that kind, so that rounding noise around an index
of 0 is not a disagreement). The log names every index that did not converge.

Failed simulations: counted per output in `summary_table`. Neither estimator takes gaps (Sobol's
are built from fixed blocks of the Saltelli design, Morris' from whole trajectories), and imputing
would invent data, so an output with any failed simulation gets empty indices and a warning naming
how many of how many failed; the other outputs are analysed as usual. The same holds for an output
that does not vary beyond integration noise (`is_flat`).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from SALib.analyze import morris as morris_analyze
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import morris as morris_sample
from SALib.sample import sobol as sobol_sample

from qspflow.errors import ConfigError, ModelError
from qspflow.options import check_keys, choice, flag, integer, number
from qspflow.outputs import Output, OutputModel, parse_outputs
from qspflow.petab import PetabProblem
from qspflow.seeds import derive_seed

FLAT = 1e-7  # outputs are integrated at rtol 1e-8: a smaller relative spread is indistinguishable from noise
log = logging.getLogger("qspflow.sensitivity")

COLUMNS = ["output", "parameter", "index", "value", "ci_low", "ci_high", "converged"]
SUMMARY_COLUMNS = ["method", "output", "samples", "failed"]
RANGES = ("ci", "factor", "config")
METHODS = ("morris", "sobol", "both")
DEFAULTS: dict[str, object] = {
    "ranges": "factor",
    "factor": 2.0,
    "bounds": {},
    "parameters": None,
    "method": "both",
    "morris_trajectories": 20,
    "morris_levels": 4,
    "sobol_n": 1024,
    "second_order": False,
    "bootstrap": 200,
    "chunks": 4,
    "confidence": 0.95,
}
KEYS = ("outputs", *DEFAULTS)


@dataclass(frozen=True)
class SensitivityOptions:
    """The `sensitivity:` section, checked (see `sensitivity_options`)."""

    outputs: tuple[Output, ...]
    ranges: str = "factor"
    factor: float = 2.0
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    parameters: tuple[str, ...] | None = None
    method: str = "both"
    morris_trajectories: int = 20
    morris_levels: int = 4
    sobol_n: int = 1024
    second_order: bool = False
    bootstrap: int = 200
    chunks: int = 4
    confidence: float = 0.95

    @property
    def methods(self) -> tuple[str, ...]:
        return ("morris", "sobol") if self.method == "both" else (self.method,)


def sensitivity_options(options: Mapping[str, object], section: str = "sensitivity") -> SensitivityOptions:
    """The options of a `sensitivity:` section (defaults in `DEFAULTS`), checked; errors name
    `sensitivity.<key>`."""
    check_keys(section, options, KEYS)
    given = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None or k == "parameters"}}
    if "outputs" not in options:
        raise ConfigError(None, key=f"{section}.outputs", expected="this key (it has no default)")
    outputs = tuple(parse_outputs(options["outputs"], key=f"{section}.outputs"))
    ranges = choice(f"{section}.ranges", given["ranges"], RANGES)
    factor = number(f"{section}.factor", given["factor"], minimum=1.0)
    if factor <= 1.0:
        raise ConfigError(None, key=f"{section}.factor", expected="a number > 1", found=given["factor"])
    bounds_raw = given["bounds"] or {}
    if not isinstance(bounds_raw, Mapping):
        raise ConfigError(None, key=f"{section}.bounds", expected="a mapping {parameter: [low, high]}",
                          found=bounds_raw)
    bounds = {}
    for name, pair in bounds_raw.items():
        key = f"{section}.bounds.{name}"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ConfigError(None, key=key, expected="[low, high] on the linear scale", found=pair)
        low, high = number(key, pair[0]), number(key, pair[1])
        if not low < high:
            raise ConfigError(None, key=key, expected="[low, high] with low < high", found=list(pair))
        bounds[str(name)] = (low, high)
    parameters = given["parameters"]
    if parameters is not None:
        if isinstance(parameters, str) or not isinstance(parameters, Sequence) or not parameters or \
                not all(isinstance(p, str) for p in parameters) or len(set(parameters)) != len(parameters):
            raise ConfigError(None, key=f"{section}.parameters", expected="a non-empty list of distinct parameter ids",
                              found=parameters)
        parameters = tuple(parameters)
    method = choice(f"{section}.method", given["method"], METHODS)
    trajectories = integer(f"{section}.morris_trajectories", given["morris_trajectories"], minimum=4)
    levels = integer(f"{section}.morris_levels", given["morris_levels"], minimum=2)
    if levels % 2:
        raise ConfigError(None, key=f"{section}.morris_levels", expected="an even integer ≥ 2", found=levels)
    sobol_n = integer(f"{section}.sobol_n", given["sobol_n"], minimum=8)
    if sobol_n & (sobol_n - 1):
        raise ConfigError(None, key=f"{section}.sobol_n", expected="a power of 2 ≥ 8 (a balanced Sobol' design, "
                          "and its first half for the convergence check)", found=sobol_n)
    return SensitivityOptions(
        outputs=outputs, ranges=ranges, factor=factor, bounds=bounds, parameters=parameters, method=method,
        morris_trajectories=trajectories, morris_levels=levels, sobol_n=sobol_n,
        second_order=flag(f"{section}.second_order", given["second_order"]),
        bootstrap=integer(f"{section}.bootstrap", given["bootstrap"], minimum=10),
        chunks=integer(f"{section}.chunks", given["chunks"], minimum=1),
        confidence=number(f"{section}.confidence", given["confidence"], minimum=0.5, maximum=0.999))


# ---------------------------------------------------------------------------------- ranges


def to_linear(scale: str, value: float | np.ndarray) -> float | np.ndarray:
    """A value on a PEtab parameter scale on the linear scale (as `qspflow.calibrate.spec.to_linear`,
    which this layer may not import)."""
    return np.exp(value) if scale == "log" else np.power(10.0, value) if scale == "log10" else value


def to_scaled(scale: str, value: float | np.ndarray) -> float | np.ndarray:
    """A linear value on a PEtab parameter scale."""
    return np.log(value) if scale == "log" else np.log10(value) if scale == "log10" else value


@dataclass(frozen=True)
class ParameterRange:
    """A sampled parameter: `centre` on the linear scale, `low`/`high` on its PEtab `scale`, and
    where the range came from (`ci`, `factor`, `config`)."""

    name: str
    scale: str
    centre: float
    low: float
    high: float
    source: str

    def linear(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(to_linear(self.scale, x), dtype=float)


def default_parameters(problem: PetabProblem, outputs: Sequence[Output]) -> tuple[str, ...]:
    """Every estimated parameter that can move an output: model parameters, and parameters of the
    observable formulas the outputs name (noise parameters are left out)."""
    used = set()
    for o in outputs:
        if o.of in problem.observables:
            used |= {s.name for s in problem.observables[o.of].formula.free_symbols}
    return tuple(n for n, p in problem.parameters.items() if p.estimate and (n in problem.model.parameters
                                                                           or n in used))


def parameter_ranges(problem: PetabProblem, options: SensitivityOptions, *,
                     estimates: pd.DataFrame | None = None, section: str = "sensitivity") -> list[ParameterRange]:
    """The range of every sampled parameter (`options.parameters`, default `default_parameters`).

    `estimates`: the selected model's table (parameter, estimate, lower_95, upper_95; linear
    scale), or None for the problem's nominal values (then `ranges: ci` is an error).
    """
    names = options.parameters or default_parameters(problem, options.outputs)
    if not names:
        raise ConfigError(None, key=f"{section}.parameters", expected="at least one parameter to vary "
                          "(the problem estimates none that an output depends on)")
    known = {**problem.model.parameters, **problem.parameters}
    for name in names:
        if name not in known:
            raise ConfigError(None, key=f"{section}.parameters", expected="parameter ids of the problem", found=name)
    table = {}
    if estimates is not None:
        table = {str(r.parameter): r for r in estimates.itertuples()}
    elif options.ranges == "ci":
        raise ConfigError(None, key=f"{section}.ranges", found="ci",
                          expected="estimates with profile CIs (lower_95, upper_95) for ranges 'ci'; without them "
                                   "use 'factor' or 'config'")
    if options.ranges == "config":
        missing = [n for n in names if n not in options.bounds]
        if missing:
            raise ConfigError(None, key=f"{section}.bounds.{missing[0]}", expected="[low, high] for every sampled "
                              "parameter (ranges: config)")
    unknown = sorted(set(options.bounds) - set(names))
    if unknown:
        raise ConfigError(None, key=f"{section}.bounds.{unknown[0]}", expected="a sampled parameter "
                          f"(one of {list(names)})")
    out, fallback = [], []
    for name in names:
        parameter = known[name]
        scale = parameter.scale
        row = table.get(name)
        centre = float(row.estimate) if row is not None and math.isfinite(float(row.estimate)) else parameter.value
        if options.ranges == "config":
            low, high = options.bounds[name]
            source = "config"
        elif options.ranges == "ci" and row is not None and _finite_ci(row, scale):
            low, high = float(row.lower_95), float(row.upper_95)
            source = "ci"
        else:
            if options.ranges == "ci":
                fallback.append(name)
            if not centre > 0:
                raise ConfigError(None, key=f"{section}.ranges", element=name, found=centre,
                                  expected=f"a centre value > 0 for ×/÷ {options.factor:g} (use ranges: config)")
            low, high = centre / options.factor, centre * options.factor
            source = "factor"
        if scale != "lin" and not low > 0:
            raise ConfigError(None, key=f"{section}.bounds.{name}", found=[low, high],
                              expected=f"bounds > 0 for the {scale}-scaled parameter {name}")
        out.append(ParameterRange(name, scale, float(centre), float(to_scaled(scale, low)),
                                  float(to_scaled(scale, high)), source))
        if math.isfinite(parameter.lower) and math.isfinite(parameter.upper) and \
                (low < parameter.lower or high > parameter.upper):
            log.info("%s: range [%g, %g] reaches beyond its PEtab bounds [%g, %g]", name, low, high,
                     parameter.lower, parameter.upper)
    if fallback:
        log.warning("no finite profile CI for %s: ranged ×/÷ %g around the estimate instead", ", ".join(fallback),
                    options.factor)
    for r in out:
        log.info("%s (%s scale, %s): [%g, %g] on its scale, centre %g", r.name, r.scale, r.source, r.low, r.high,
                 r.centre)
    return out


def _finite_ci(row: object, scale: str) -> bool:
    low, high = float(row.lower_95), float(row.upper_95)
    return math.isfinite(low) and math.isfinite(high) and low < high and (scale == "lin" or low > 0)


def salib_problem(ranges: Sequence[ParameterRange]) -> dict:
    """The SALib problem: names and bounds on each parameter's scale."""
    return {"num_vars": len(ranges), "names": [r.name for r in ranges], "bounds": [[r.low, r.high] for r in ranges]}


# -------------------------------------------------------------------------------- sampling


def sample(ranges: Sequence[ParameterRange], options: SensitivityOptions, *, seed: int) -> dict[str, np.ndarray]:
    """{method: sample matrix (rows × parameters, on the parameters' scales)} for each method."""
    problem = salib_problem(ranges)
    out = {}
    if "morris" in options.methods:
        out["morris"] = morris_sample.sample(problem, options.morris_trajectories, num_levels=options.morris_levels,
                                             seed=derive_seed(seed, "morris"))
    if "sobol" in options.methods:
        out["sobol"] = sobol_sample.sample(problem, options.sobol_n, calc_second_order=options.second_order,
                                           scramble=True, seed=derive_seed(seed, "sobol"))
    for method, X in out.items():
        log.info("%s: %d parameter sets of %d parameters", method, X.shape[0], X.shape[1])
    return out


def linear_matrix(ranges: Sequence[ParameterRange], X: np.ndarray) -> np.ndarray:
    """Sample rows on the parameters' scales → the same rows on the linear scale."""
    X = np.asarray(X, dtype=float)
    return np.column_stack([r.linear(X[:, j]) for j, r in enumerate(ranges)]) if len(ranges) else X


def chunk_rows(n_rows: int, chunk: int, n_chunks: int) -> slice:
    """The rows of chunk `chunk` (0-based) of `n_chunks` near-equal consecutive chunks."""
    if not (isinstance(n_chunks, int) and n_chunks >= 1 and isinstance(chunk, int) and 0 <= chunk < n_chunks):
        raise ConfigError(None, key="chunk", expected=f"an integer in [0, {n_chunks})", found=chunk)
    return slice(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks)


def evaluate_chunk(model: OutputModel, X: np.ndarray, ranges: Sequence[ParameterRange], *, chunk: int = 0,
                   n_chunks: int = 1, base: Mapping[str, float] | None = None,
                   threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The outputs (values, failed) of the rows of chunk `chunk` of X (scaled samples of `ranges`).

    `model` varies exactly the sampled parameters (in `ranges` order); `base` sets the others.
    """
    if list(model.varying) != [r.name for r in ranges]:
        raise ModelError(None, element="varying", expected=f"the sampled parameters {[r.name for r in ranges]}",
                         found=list(model.varying))
    rows = chunk_rows(len(X), chunk, n_chunks)
    with np.errstate(over="ignore"):
        linear = linear_matrix(ranges, np.asarray(X, dtype=float)[rows])
    return model.evaluate(linear, base=base, threads=threads)


# -------------------------------------------------------------------------------- analysis


def _undefined(method: str, output: str, y: np.ndarray) -> str | None:
    """Why `method`'s indices of `output` cannot be estimated from `y`, or None when they can: failed
    simulations (the estimators cannot take gaps, and imputing would invent data) or an output that
    does not vary beyond integration noise (indices would apportion rounding errors)."""
    failed = int((~np.isfinite(y)).sum())
    if failed:
        return (f"{failed} of {len(y)} {method} simulations of {output} failed: its indices are left empty "
                f"(the estimators cannot take gaps; narrow sensitivity.ranges or fix the model)")
    if is_flat(y):
        return f"{method}: {output} does not vary over the ranges beyond integration noise: its indices are empty"
    return None


def summary_table(Ys: Mapping[str, np.ndarray], output_names: Sequence[str]) -> pd.DataFrame:
    """method, output, samples, failed (non-finite values) for each method's outputs Y."""
    rows = [(method, name, int(Y.shape[0]), int((~np.isfinite(Y[:, k])).sum()))
            for method, Y in Ys.items() for k, name in enumerate(output_names)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values(["method", "output"], ignore_index=True)


def _rows(output: str, names: Sequence[str], index: str, full: np.ndarray, conf: np.ndarray | None,
          half: np.ndarray | None, half_conf: np.ndarray | None) -> list[tuple]:
    rows = []
    for j, name in enumerate(names):
        value = float(full[j])
        if conf is None:
            rows.append((output, name, index, value, math.nan, math.nan, pd.NA))
            continue
        c = float(conf[j])
        # a floor of 1e-9 of the output's largest index: rounding noise of an index that is 0 is no disagreement
        floor = 1e-9 * float(np.nanmax(np.abs(full))) if np.isfinite(full).any() else 0.0
        converged = bool(math.isfinite(value) and abs(value - float(half[j])) <= float(half_conf[j]) + floor)
        rows.append((output, name, index, value, value - c, value + c, converged))
    return rows


def _table(rows: list[tuple], method: str) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"value": float, "ci_low": float, "ci_high": float,
                                                         "converged": "boolean"})
    table = table.sort_values(["output", "parameter", "index"], ignore_index=True)
    late = table[table["converged"].eq(False).fillna(False)]
    for row in late.itertuples():
        log.warning("%s: %s of %s for %s not converged (N and N/2 disagree beyond the N/2 CI)", method, row.index,
                    row.parameter, row.output)
    if late.empty and not table.empty:
        log.info("%s: every index converged (N and N/2 agree within the N/2 CI)", method)
    return table


def analyze_sobol(names: Sequence[str], Y: np.ndarray, output_names: Sequence[str], options: SensitivityOptions, *,
                  seed: int) -> pd.DataFrame:
    """Sobol S1, ST (and S2) per output from Y (rows of the Saltelli design `sample` made)."""
    Y = np.asarray(Y, dtype=float).reshape(len(Y), -1)
    d = len(names)
    block = 2 * d + 2 if options.second_order else d + 2
    if len(Y) % block or (len(Y) // block) % 2:
        raise ModelError(None, element="sobol", expected=f"N·{block} rows with N even (a Saltelli design of "
                         f"{d} parameters)", found=f"{len(Y)} rows")
    problem = {"num_vars": d, "names": list(names), "bounds": [[0.0, 1.0]] * d}
    half = len(Y) // 2
    rows: list[tuple] = []
    for k, output in enumerate(output_names):
        y = Y[:, k]
        reason = _undefined("sobol", output, y)
        if reason:
            log.warning("%s", reason)
            nan = np.full(d, np.nan)
            rows += _rows(output, names, "S1", nan, nan, nan, nan) + _rows(output, names, "ST", nan, nan, nan, nan)
            continue
        s = 1 + derive_seed(seed, "sobol", output)
        full, part = (_sobol(problem, v, options, s) for v in (y, y[:half]))
        for index in ("S1", "ST"):
            rows += _rows(output, names, index, full[index], full[f"{index}_conf"], part[index], part[f"{index}_conf"])
        if options.second_order:
            pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
            labels = [f"{names[i]}:{names[j]}" for i, j in pairs]
            rows += _rows(output, labels, "S2", *(np.array([r[key][i, j] for i, j in pairs])
                                                   for r, key in ((full, "S2"), (full, "S2_conf"),
                                                                  (part, "S2"), (part, "S2_conf"))))
    return _table(rows, "sobol")


def _sobol(problem: dict, y: np.ndarray, options: SensitivityOptions, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sobol_analyze.analyze(problem, y, calc_second_order=options.second_order,
                                     num_resamples=options.bootstrap, conf_level=options.confidence, seed=seed)


def analyze_morris(names: Sequence[str], X: np.ndarray, Y: np.ndarray, output_names: Sequence[str],
                   options: SensitivityOptions, *, seed: int) -> pd.DataFrame:
    """Morris mu_star (with CI), mu and sigma per output from the trajectories X and outputs Y."""
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float).reshape(len(Y), -1)
    d = len(names)
    if len(X) != len(Y) or len(Y) % (d + 1) or (len(Y) // (d + 1)) < 4:
        raise ModelError(None, element="morris", expected=f"at least 4 trajectories of {d + 1} rows in X and Y",
                         found=f"{len(X)} and {len(Y)} rows")
    half = (len(Y) // (d + 1)) // 2 * (d + 1)
    problem = {"num_vars": d, "names": list(names), "bounds": [[0.0, 1.0]] * d}
    rows: list[tuple] = []
    for k, output in enumerate(output_names):
        reason = _undefined("morris", output, Y[:, k])
        if reason:
            log.warning("%s", reason)
            nan = np.full(d, np.nan)
            rows += _rows(output, names, "mu_star", nan, nan, nan, nan)
            rows += _rows(output, names, "mu", nan, None, None, None)
            rows += _rows(output, names, "sigma", nan, None, None, None)
            continue
        s = derive_seed(seed, "morris", output)
        full, part = (morris_analyze.analyze(problem, X[:m], np.ascontiguousarray(Y[:m, k]),
                                             num_resamples=options.bootstrap, conf_level=options.confidence,
                                             num_levels=options.morris_levels, seed=s) for m in (len(Y), half))
        rows += _rows(output, names, "mu_star", np.asarray(full["mu_star"]), np.asarray(full["mu_star_conf"]),
                      np.asarray(part["mu_star"]), np.asarray(part["mu_star_conf"]))
        rows += _rows(output, names, "mu", np.asarray(full["mu"]), None, None, None)
        rows += _rows(output, names, "sigma", np.asarray(full["sigma"]), None, None, None)
    return _table(rows, "morris")


def is_flat(y: np.ndarray) -> bool:
    """Whether output values `y` are constant up to integration noise: their spread is at most `FLAT`
    times their magnitude. Indices of such an output would apportion rounding errors (a steady state
    that no parameter moves gives S_T of order 1 for parameters it cannot depend on)."""
    return not np.std(y) > FLAT * max(float(np.max(np.abs(y))), np.finfo(float).tiny)


def empty_table() -> pd.DataFrame:
    """The table of a method that was not run (header only)."""
    return _table([], "")
