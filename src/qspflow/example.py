"""The bundled example study: a signaling network under a MEK inhibitor, with its ground truth.

Growth factor (EGF) and cytokine (TNFa) signaling decide between survival and apoptosis
(Casp3); an oral MEK inhibitor is given q12h. `example_files` renders the study's inputs
(PKN, experiments, noisy measurements, dosing, a clinical cohort's biomarkers) and the
ground truth they were generated from (true logic, parameters, noise-free trajectories,
Boolean fixpoints, the cohort's true parameters) as the files of one folder
(`qspflow.steps.example` writes them); `resources/example/` is that folder for the default
seed, byte for byte.

The continuous model is Odefy's normalized HillCube (Krumsiek et al. 2010): an edge from
x has f(x) = xⁿ/(xⁿ+kⁿ)·(1+kⁿ); a node's production B is the multilinear interpolation
(BooleCube) of its Boolean function over the f-values of its inputs; dx/dt = (B − x)/tau.
The drug's 2-compartment oral PK (depot written analytically, so no events) drives an Emax
inhibition of MEK's production. Everything the generator knows is in the constants below;
`simulate_truth` is the one simulator, reusable by tests of later steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.integrate import solve_ivp
from threadpoolctl import threadpool_limits

from qspflow.errors import DataError, ModelError
from qspflow.io import table_text

# ---------------------------------------------------------------------------------------------
# The study, in one place
# ---------------------------------------------------------------------------------------------

DEFAULT_SEED = 20261127

STIMULI = ("EGF", "TNFa")
INTERNAL = ("PI3K", "Akt", "Raf", "MEK", "ERK", "IKK", "NFkB", "Casp3")
NODES = STIMULI + INTERNAL
READOUTS = ("Akt", "Raf", "ERK", "IKK", "NFkB", "Casp3")
DRUG = "drug"
DRUG_TARGET = "MEK"
TOOL_INHIBITOR_TARGET = "PI3K"
CONCENTRATION = "C_drug"

# The true logic, BoolNet syntax, in the order written to truth/network.bnet. Rules are in
# disjunctive normal form (`|` of `&`-terms of possibly negated names): `_parse_dnf` reads them.
TRUE_RULES: dict[str, str] = {
    "EGF": "EGF",
    "TNFa": "TNFa",
    "PI3K": "EGF",
    "Akt": "PI3K",
    "Raf": "EGF",
    "MEK": "Raf",
    "ERK": "MEK",
    "IKK": "TNFa | Akt",
    "NFkB": "IKK",
    "Casp3": "TNFa & !Akt & !ERK",
}

# Edges of the prior-knowledge network that are not in the truth (source, sign, target).
DECOY_EDGES: tuple[tuple[str, int, str], ...] = (
    ("TNFa", 1, "PI3K"),
    ("EGF", 1, "IKK"),
    ("ERK", 1, "NFkB"),
    ("NFkB", -1, "Casp3"),
    ("Akt", -1, "Raf"),
)

MEASUREMENT_TIMES = (0.0, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)
BINARIZATION_TIME = 8.0
BINARIZATION_THRESHOLD = 0.5
DOSES_MG = (0, 30, 300)
INHIBITING_DOSE_MG = 300  # the dose the Boolean level treats as "MEK forced off"
DOSE_INTERVAL_H = 12.0
N_DOSES = 2
ROUTE = "oral"
NOISE_SD = 0.05
MISSING_FRACTION = 0.02

EXPERIMENT_COLUMNS = ("experiment", "stimulus:EGF", "stimulus:TNFa", "inhibitor:PI3K", "dose:drug")

# (name, value, unit, description); tau in h, Hill thresholds and exponents dimensionless.
TRUE_PARAMETERS: tuple[tuple[str, float, str, str], ...] = (
    ("tau_PI3K", 0.6, "h", "time constant of PI3K"),
    ("tau_Akt", 0.8, "h", "time constant of Akt"),
    ("tau_Raf", 0.7, "h", "time constant of Raf"),
    ("tau_MEK", 1.2, "h", "time constant of MEK"),
    ("tau_ERK", 1.5, "h", "time constant of ERK"),
    ("tau_IKK", 0.9, "h", "time constant of IKK"),
    ("tau_NFkB", 2.2, "h", "time constant of NFkB"),
    ("tau_Casp3", 2.8, "h", "time constant of Casp3"),
    ("k_EGF_PI3K", 0.45, "1", "Hill threshold of EGF -> PI3K"),
    ("n_EGF_PI3K", 3.0, "1", "Hill exponent of EGF -> PI3K"),
    ("k_PI3K_Akt", 0.4, "1", "Hill threshold of PI3K -> Akt"),
    ("n_PI3K_Akt", 2.5, "1", "Hill exponent of PI3K -> Akt"),
    ("k_EGF_Raf", 0.55, "1", "Hill threshold of EGF -> Raf"),
    ("n_EGF_Raf", 3.0, "1", "Hill exponent of EGF -> Raf"),
    ("k_Raf_MEK", 0.5, "1", "Hill threshold of Raf -> MEK"),
    ("n_Raf_MEK", 2.0, "1", "Hill exponent of Raf -> MEK"),
    ("k_MEK_ERK", 0.45, "1", "Hill threshold of MEK -> ERK"),
    ("n_MEK_ERK", 3.5, "1", "Hill exponent of MEK -> ERK"),
    ("k_TNFa_IKK", 0.5, "1", "Hill threshold of TNFa -> IKK"),
    ("n_TNFa_IKK", 3.0, "1", "Hill exponent of TNFa -> IKK"),
    ("k_Akt_IKK", 0.6, "1", "Hill threshold of Akt -> IKK"),
    ("n_Akt_IKK", 2.0, "1", "Hill exponent of Akt -> IKK"),
    ("k_IKK_NFkB", 0.4, "1", "Hill threshold of IKK -> NFkB"),
    ("n_IKK_NFkB", 3.0, "1", "Hill exponent of IKK -> NFkB"),
    ("k_TNFa_Casp3", 0.5, "1", "Hill threshold of TNFa -> Casp3"),
    ("n_TNFa_Casp3", 3.0, "1", "Hill exponent of TNFa -> Casp3"),
    ("k_Akt_Casp3", 0.35, "1", "Hill threshold of Akt -| Casp3"),
    ("n_Akt_Casp3", 4.0, "1", "Hill exponent of Akt -| Casp3"),
    ("k_ERK_Casp3", 0.65, "1", "Hill threshold of ERK -| Casp3"),
    ("n_ERK_Casp3", 2.0, "1", "Hill exponent of ERK -| Casp3"),
    ("pk_ka", 1.0, "1/h", "first-order absorption rate constant"),
    ("pk_cl", 10.0, "L/h", "clearance from the central compartment"),
    ("pk_vc", 50.0, "L", "central volume"),
    ("pk_q", 5.0, "L/h", "inter-compartmental clearance"),
    ("pk_vp", 100.0, "L", "peripheral volume"),
    ("pk_f", 0.6, "1", "oral bioavailability"),
    ("pd_emax", 0.95, "1", "maximal fractional inhibition of MEK production"),
    ("pd_ec50", 0.2, "mg/L", "drug concentration of half-maximal inhibition"),
    ("pd_hill", 1.5, "1", "Hill coefficient of the inhibition"),
)

# The clinical cohort: log-normal inter-individual variability around the truth (median).
N_PATIENTS = 200
POPULATION_CV: dict[str, float] = {
    "pk_cl": 0.30,
    "pk_vc": 0.20,
    "pd_ec50": 0.40,
    "tau_ERK": 0.25,
    "tau_Casp3": 0.25,
}
VPOP_CONDITION: dict[str, float] = {
    "experiment": "cohort_d100",
    "stimulus:EGF": 1,
    "stimulus:TNFa": 1,
    "inhibitor:PI3K": 0,
    "dose:drug": 100,
}
VPOP_DURATION_H = 24.0
# (biomarker, observable, time h, unit, noise model, noise parameter)
BIOMARKERS: tuple[tuple[str, str, float, str, str, float], ...] = (
    ("erk_8h", "ERK", 8.0, "1", "additive_normal", 0.05),
    ("casp3_1h", "Casp3", 1.0, "1", "additive_normal", 0.05),
    ("ctrough_12h", CONCENTRATION, 12.0, "mg/L", "lognormal", 0.10),
)

# Child streams of numpy.random.SeedSequence(seed).spawn(4), by position.
STREAMS = ("noise", "missing", "population", "biomarker_noise")

SOLVER_OPTIONS = {"method": "Radau", "rtol": 1e-10, "atol": 1e-12}


# ---------------------------------------------------------------------------------------------
# Logic: rules, edges, Boolean fixpoints
# ---------------------------------------------------------------------------------------------

Term = tuple[tuple[str, bool], ...]


def _parse_dnf(rule: str) -> tuple[Term, ...]:
    """A rule `a & !b | c` as terms of (name, positive) literals; no `eval`, DNF only."""
    terms = []
    for term in rule.split("|"):
        literals = []
        for literal in term.split("&"):
            literal = literal.strip()
            positive = not literal.startswith("!")
            name = literal.lstrip("!").strip()
            if not name.replace("_", "").isalnum():
                raise ModelError(None, element=rule, expected="a DNF rule of names, !, & and |", found=literal)
            literals.append((name, positive))
        terms.append(tuple(literals))
    return tuple(terms)


TRUE_DNF: dict[str, tuple[Term, ...]] = {node: _parse_dnf(rule) for node, rule in TRUE_RULES.items()}


def rule_inputs(node: str) -> tuple[str, ...]:
    """The inputs of a node in the order they first appear in its rule."""
    seen: dict[str, None] = {}
    for term in TRUE_DNF[node]:
        for name, _ in term:
            seen.setdefault(name, None)
    return tuple(seen)


def true_edges() -> tuple[tuple[str, int, str], ...]:
    """The true signed edges (source, sign, target) of the non-input nodes, in rule order."""
    edges = []
    for node in INTERNAL:
        for source in rule_inputs(node):
            signs = {positive for term in TRUE_DNF[node] for name, positive in term if name == source}
            if len(signs) != 1:
                raise ModelError(None, element=node, expected="a monotone rule", found=TRUE_RULES[node])
            edges.append((source, 1 if signs.pop() else -1, node))
    return tuple(edges)


def _eval_dnf(terms: tuple[Term, ...], state: Mapping[str, int]) -> int:
    return int(any(all(bool(state[name]) == positive for name, positive in term) for term in terms))


def boolean_fixpoint(
    stimuli: Mapping[str, int],
    *,
    forced_off: Sequence[str] = (),
    extra_edges: Sequence[tuple[str, int, str]] = (),
) -> dict[str, int]:
    """The fixpoint of the true network with stimuli clamped and `forced_off` nodes held at 0.

    `extra_edges` (source, sign, target) are added to the target's rule: OR source for a
    positive edge, AND NOT source for a negative one (how a decoy would act if it were real).
    The network is acyclic, so synchronous updating reaches the unique fixpoint.
    """
    state = {node: 0 for node in NODES}
    state.update({s: int(stimuli.get(s, 0)) for s in STIMULI})

    def update(current: dict[str, int]) -> dict[str, int]:
        new = {}
        for node in NODES:
            if node in STIMULI:
                new[node] = current[node]
                continue
            value = _eval_dnf(TRUE_DNF[node], current)
            for source, sign, target in extra_edges:
                if target == node:
                    value = (value or current[source]) if sign > 0 else (value and not current[source])
            new[node] = 0 if node in forced_off else int(value)
        return new

    for _ in range(len(NODES) + 1):
        new = update(state)
        if new == state:
            return state
        state = new
    raise ModelError(None, expected="a network whose updates reach a fixpoint", message="no fixpoint reached")


def experiment_fixpoint(experiment: Mapping[str, object], **kwargs: object) -> dict[str, int]:
    """The Boolean fixpoint of one experiment: PI3K off under its inhibitor, MEK off at the high dose."""
    row = _experiment_inputs(experiment)
    forced = []
    if row["inhibitor:PI3K"]:
        forced.append(TOOL_INHIBITOR_TARGET)
    if row["dose:drug"] >= INHIBITING_DOSE_MG:
        forced.append(DRUG_TARGET)
    stimuli = {s: row[f"stimulus:{s}"] for s in STIMULI}
    return boolean_fixpoint(stimuli, forced_off=forced, **kwargs)


def bnet_text() -> str:
    """truth/network.bnet in BoolNet format."""
    lines = ["targets, factors"] + [f"{node}, {rule}" for node, rule in TRUE_RULES.items()]
    return "\n".join(lines) + "\n"


def pkn_text() -> str:
    """pkn.sif: true and decoy edges, `source<TAB>sign<TAB>target`, sorted by source then target."""
    edges = sorted(set(true_edges()) | set(DECOY_EDGES), key=lambda e: (e[0], e[2], e[1]))
    return "".join(f"{s}\t{sign}\t{t}\n" for s, sign, t in edges)


# ---------------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------------


def experiments() -> pd.DataFrame:
    """The 15 experiments: 4 stimulus sets × 3 doses, and 3 PI3K-inhibitor experiments without drug."""
    rows = []
    for egf, tnfa in itertools.product((0, 1), repeat=2):
        name = "_".join(s for s, on in zip(STIMULI, (egf, tnfa)) if on) or "ctrl"
        for dose in DOSES_MG:
            rows.append((f"{name}_d{dose}", egf, tnfa, 0, dose))
        if egf or tnfa:
            rows.append((f"{name}_PI3Ki", egf, tnfa, 1, 0))
    frame = pd.DataFrame(rows, columns=list(EXPERIMENT_COLUMNS))
    return frame.sort_values("experiment", ignore_index=True)


def _experiment_inputs(experiment: Mapping[str, object]) -> dict[str, float]:
    row = {}
    for column in EXPERIMENT_COLUMNS[1:]:
        value = experiment.get(column, 0)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        ok = number >= 0 if column.startswith("dose:") else number in (0.0, 1.0)
        if not ok:
            expected = "a dose ≥ 0 (mg)" if column.startswith("dose:") else "0 or 1"
            raise DataError(None, column=column, expected=expected, found=value)
        row[column] = number
    return row


# ---------------------------------------------------------------------------------------------
# The continuous model
# ---------------------------------------------------------------------------------------------


def true_parameters() -> dict[str, float]:
    """The true parameter values by name."""
    return {name: value for name, value, _, _ in TRUE_PARAMETERS}


def _minterms(node: str) -> tuple[tuple[int, ...], ...]:
    """The input combinations (in `rule_inputs` order) for which the node's rule is true."""
    inputs = rule_inputs(node)
    return tuple(
        bits
        for bits in itertools.product((0, 1), repeat=len(inputs))
        if _eval_dnf(TRUE_DNF[node], dict(zip(inputs, bits)))
    )


def _hill(x, n, k):
    """Odefy's normalized Hill function (floats or arrays): 0 at 0, 1 at 1; negative x counts as 0."""
    xn = ((x + abs(x)) * 0.5) ** n
    kn = k**n
    return xn / (xn + kn) * (1.0 + kn)


def _check_parameters(parameters: Mapping[str, object], source: str = "parameters") -> None:
    known = true_parameters()
    missing = sorted(set(known) - set(parameters))
    unknown = sorted(set(parameters) - set(known))
    if missing or unknown:
        parts = [f"missing: {', '.join(missing)}" if missing else "",
                 f"unknown: {', '.join(unknown)}" if unknown else ""]
        raise ModelError(None, element=source, expected="exactly the example model's parameters",
                         message="; ".join(p for p in parts if p))


def _check_times(times: Sequence[float]) -> np.ndarray:
    t_out = np.asarray(times, dtype=float)
    if t_out.ndim != 1 or t_out.size == 0 or np.any(t_out < 0) or np.any(np.diff(t_out) <= 0):
        raise DataError(None, element="times", expected="increasing times ≥ 0", found=list(t_out))
    return t_out


def _integrate(
    values: Mapping[str, np.ndarray],
    inputs: Mapping[str, float],
    t_out: np.ndarray,
    interval_h: float,
    n_doses: int,
) -> np.ndarray:
    """The model for a batch of B parameter sets (arrays of length B) in one experiment.

    Returns an array (B, len(t_out), len(INTERNAL) + 1): the internal nodes, then C_drug.
    One right-hand side serves both cases: with B = 1 it runs on Python floats (fast for one
    solve), with B > 1 on arrays, the states stacked state-major (state s of member b at
    s·B + b) and Radau estimating the Jacobian on its block-diagonal sparsity pattern, so the
    members only share the step sizes.
    """
    batch = len(values["pk_ka"])
    p = {k: float(v[0]) for k, v in values.items()} if batch == 1 else dict(values)
    stim_values = [inputs[f"stimulus:{s}"] for s in STIMULI]
    pi3k_on = 0.0 if inputs["inhibitor:PI3K"] else 1.0
    dose = inputs["dose:drug"]
    ka, cl, vc, q, vp, bio = (p[k] for k in ("pk_ka", "pk_cl", "pk_vc", "pk_q", "pk_vp", "pk_f"))
    emax, hill = p["pd_emax"], p["pd_hill"]
    ec50h = p["pd_ec50"] ** hill
    index = {node: i for i, node in enumerate(INTERNAL)}
    n_nodes = len(INTERNAL)
    i_c, i_p = n_nodes, n_nodes + 1
    n_states = n_nodes + 2
    i_mek, i_pi3k = index[DRUG_TARGET], index[TOOL_INHIBITOR_TARGET]

    # Per node: state index, 1/tau, production factor (1; 0 for PI3K under its inhibitor; None
    # for MEK: the drug), inputs as (state index, n, k, None) or, for a stimulus, whose f-value
    # is constant, (None, n, k, f), and the rule's minterms.
    plan = []
    for node in INTERNAL:
        slots = []
        for s in rule_inputs(node):
            n, k = p[f"n_{s}_{node}"], p[f"k_{s}_{node}"]
            if s in index:
                slots.append((index[s], n, k, None))
            else:
                slots.append((None, n, k, _hill(stim_values[STIMULI.index(s)], n, k)))
        factor = None if index[node] == i_mek else (pi3k_on if index[node] == i_pi3k else 1.0)
        plan.append((index[node], 1.0 / p[f"tau_{node}"], factor, slots, _minterms(node)))

    def rhs(t: float, y: np.ndarray, depot0: object, t0: float) -> np.ndarray:
        x = y.tolist() if batch == 1 else y.reshape(n_states, batch)
        dx = [None] * n_states
        for i, rate, factor, slots, minterms in plan:
            f = [_hill(x[s], n, k) if fixed is None else fixed for s, n, k, fixed in slots]
            b = 0.0
            for bits in minterms:
                term = 1.0
                for bit, fv in zip(bits, f):
                    term = term * (fv if bit else 1.0 - fv)
                b = b + term
            if factor is None:
                ch = ((x[i_c] + abs(x[i_c])) * 0.5 / vc) ** hill
                b = b * (1.0 - emax * ch / (ec50h + ch))
            else:
                b = b * factor
            dx[i] = (b - x[i]) * rate
        depot = depot0 * np.exp(-ka * (t - t0))
        dx[i_c] = ka * depot - (cl + q) / vc * x[i_c] + q / vp * x[i_p]
        dx[i_p] = q / vc * x[i_c] - q / vp * x[i_p]
        return np.array(dx, dtype=float) if batch == 1 else np.concatenate(dx)

    sparsity = None
    if batch > 1:
        pattern = np.eye(n_states, dtype=bool)
        for i, _, _, slots, _ in plan:
            pattern[i, [s for s, _, _, _ in slots if s is not None]] = True
        pattern[i_mek, i_c] = True
        pattern[np.ix_([i_c, i_p], [i_c, i_p])] = True
        sparsity = sparse.kron(sparse.csc_matrix(pattern), sparse.identity(batch), format="csc")

    t_end = float(t_out[-1])
    dose_times = [k * interval_h for k in range(n_doses)] if dose > 0 else []
    bounds = sorted({0.0, t_end, *(t for t in dose_times if 0.0 < t < t_end)})
    y = np.zeros(n_states * batch)
    out = np.zeros((t_out.size, n_states * batch))
    # Radau's small dense products over many members are slower with threaded BLAS, not faster.
    with threadpool_limits(limits=1, user_api="blas"):
        for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            last = j == len(bounds) - 2
            mask = (t_out >= a) & ((t_out <= b) if last else (t_out < b))
            t_eval = np.unique(np.append(t_out[mask], b))
            depot0 = sum((bio * dose * np.exp(-ka * (a - tk)) for tk in dose_times if tk <= a), 0.0)
            sol = solve_ivp(rhs, (a, b), y, t_eval=t_eval, args=(depot0, a), jac_sparsity=sparsity,
                            **SOLVER_OPTIONS)
            if not sol.success:
                raise ModelError(None, element="simulation", expected="a successful integration",
                                 message=sol.message)
            out[mask] = sol.y[:, : int(mask.sum())].T
            y = sol.y[:, -1]

    states = out.reshape(t_out.size, n_states, batch).transpose(2, 0, 1)
    result = states[:, :, : n_nodes + 1].copy()
    result[:, :, n_nodes] = states[:, :, i_c] / np.asarray(values["pk_vc"], dtype=float)[:, None]
    return result


def simulate_truth(
    parameters: Mapping[str, float],
    experiment: Mapping[str, object],
    times: Sequence[float],
    *,
    interval_h: float = DOSE_INTERVAL_H,
    n_doses: int = N_DOSES,
) -> pd.DataFrame:
    """Simulate the example model in one experiment; noise-free.

    `parameters` holds every name of `TRUE_PARAMETERS` (see `true_parameters`); `experiment`
    is a row or dict with `stimulus:EGF`, `stimulus:TNFa`, `inhibitor:PI3K` (0/1) and
    `dose:drug` (mg; absent keys count as 0). Oral doses of `dose:drug` are given at 0,
    interval_h, … (n_doses of them; those after the last time do not matter). Internal nodes
    start at 0; stimuli are held at their value from t = 0. The integration (Radau, rtol 1e-10,
    atol 1e-12) restarts at every dose time.

    Returns one row per time: `time`, the 8 internal nodes, and `C_drug` (mg/L).
    """
    _check_parameters(parameters)
    p = {name: np.array([float(parameters[name])]) for name in true_parameters()}
    t_out = _check_times(times)
    values = _integrate(p, _experiment_inputs(experiment), t_out, interval_h, n_doses)[0]
    frame = pd.DataFrame(values, columns=[*INTERNAL, CONCENTRATION])
    frame.insert(0, "time", t_out)
    return frame


def simulate_population(
    parameter_sets: pd.DataFrame,
    experiment: Mapping[str, object],
    times: Sequence[float],
    *,
    interval_h: float = DOSE_INTERVAL_H,
    n_doses: int = N_DOSES,
) -> pd.DataFrame:
    """`simulate_truth` for many parameter sets at once (one row of `parameter_sets` each).

    Columns of `parameter_sets` override the truth; the others stay at their true value.
    Returns rows (member, time) with `member` the row position in `parameter_sets`, then the
    8 internal nodes and `C_drug`. The members share Radau's step sizes (the error norm runs
    over all of them), which agrees with one-by-one solves far below the files' precision.
    """
    truth = true_parameters()
    _check_parameters({**truth, **dict.fromkeys(parameter_sets.columns)}, "parameter_sets")
    batch = len(parameter_sets)
    p = {
        name: parameter_sets[name].to_numpy(dtype=float) if name in parameter_sets else np.full(batch, value)
        for name, value in truth.items()
    }
    t_out = _check_times(times)
    values = _integrate(p, _experiment_inputs(experiment), t_out, interval_h, n_doses)
    frame = pd.DataFrame(values.reshape(-1, values.shape[2]), columns=[*INTERNAL, CONCENTRATION])
    frame.insert(0, "time", np.tile(t_out, batch))
    frame.insert(0, "member", np.repeat(np.arange(batch), t_out.size))
    return frame


# ---------------------------------------------------------------------------------------------
# Generated tables
# ---------------------------------------------------------------------------------------------


def _round(values: np.ndarray | pd.Series, decimals: int = 10) -> np.ndarray:
    """Round to a fixed absolute precision so digits below the solver's accuracy never reach a file."""
    return np.round(np.asarray(values, dtype=float), decimals) + 0.0


def truth_trajectories(parameters: Mapping[str, float], experiment_table: pd.DataFrame) -> pd.DataFrame:
    """Noise-free tidy trajectories (experiment, time, observable, value) at the measurement times."""
    parts = []
    for row in experiment_table.to_dict("records"):
        sim = simulate_truth(parameters, row, MEASUREMENT_TIMES)
        tidy = sim.melt(id_vars="time", var_name="observable", value_name="value")
        tidy.insert(0, "experiment", row["experiment"])
        parts.append(tidy)
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(["experiment", "observable", "time"], ignore_index=True)
    frame["value"] = _round(frame["value"])
    return frame[["experiment", "time", "observable", "value"]]


def _format_fixed(values: np.ndarray, fmt: str) -> list[str]:
    """Fixed-precision text; NaN as empty, never a negative zero."""
    texts = []
    for v in values:
        if math.isnan(v):
            texts.append("")
            continue
        text = format(v, fmt)
        if text.startswith("-") and float(text) == 0.0:
            text = text[1:]
        texts.append(text)
    return texts


def measurements(trajectories: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The tidy measurement table: readouts + N(0, NOISE_SD²) noise, ~2 % missing (never at t=0).

    Noise is drawn for every cell in row order (experiment, observable, time), so which cells
    go missing does not change any other value; values are text with 4 decimals.
    """
    rng_noise, rng_missing = _streams(seed)[:2]
    frame = trajectories[trajectories["observable"].isin(READOUTS)].reset_index(drop=True)
    values = frame["value"].to_numpy() + rng_noise.normal(0.0, NOISE_SD, size=len(frame))
    candidates = np.flatnonzero(frame["time"].to_numpy() > 0)
    n_missing = round(MISSING_FRACTION * len(frame))
    values[np.sort(rng_missing.choice(candidates, size=n_missing, replace=False))] = np.nan
    return pd.DataFrame(
        {
            "experiment": frame["experiment"],
            "time": frame["time"],
            "observable": frame["observable"],
            "value": _format_fixed(values, ".4f"),
            "sd": NOISE_SD,
        }
    )


def binarized_fixpoints(experiment_table: pd.DataFrame) -> pd.DataFrame:
    """The Boolean fixpoint state of every node per experiment (dose 300 mg = MEK off)."""
    rows = []
    for row in experiment_table.to_dict("records"):
        state = experiment_fixpoint(row)
        rows.extend((row["experiment"], node, state[node]) for node in NODES)
    frame = pd.DataFrame(rows, columns=["experiment", "observable", "state"])
    return frame.sort_values(["experiment", "observable"], ignore_index=True)


def parameters_table() -> pd.DataFrame:
    return pd.DataFrame(list(TRUE_PARAMETERS), columns=["parameter", "value", "unit", "description"])


def population_table() -> pd.DataFrame:
    truth = true_parameters()
    rows = [(name, "lognormal", truth[name], cv) for name, cv in POPULATION_CV.items()]
    return pd.DataFrame(rows, columns=["parameter", "distribution", "median", "cv"])


def dosing_table() -> pd.DataFrame:
    return pd.DataFrame(
        [(DRUG, ROUTE, DOSE_INTERVAL_H, N_DOSES, "pk_f")],
        columns=["drug", "route", "interval_h", "n_doses", "bioavailability_param"],
    )


def _streams(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS))]


def _round_sig(values: np.ndarray, digits: int = 6) -> np.ndarray:
    """Values as they read back from text written with `.{digits}g`."""
    return np.array([float(format(v, f".{digits}g")) for v in values])


def cohort(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The virtual-population target: per-patient truth and observed biomarkers.

    Each of `POPULATION_CV`'s parameters is median·exp(σ·z), σ = sqrt(ln(1+CV²)), z ~ N(0,1)
    (population stream, patients × parameters in row order); biomarkers get noise from their
    own stream: additive N(0, 0.05²) on erk_8h and casp3_1h, a log-normal factor exp(N(0, 0.1²))
    on ctrough_12h. Returns (truth per patient, observed targets rounded to 6 significant digits).
    """
    rng_population, rng_biomarker = _streams(seed)[2:]
    truth = true_parameters()
    names = list(POPULATION_CV)
    sigma = np.array([math.sqrt(math.log1p(POPULATION_CV[n] ** 2)) for n in names])
    median = np.array([truth[n] for n in names])
    draws = median * np.exp(sigma * rng_population.standard_normal((N_PATIENTS, len(names))))
    draws = _round_sig(draws.ravel(), 10).reshape(draws.shape)  # as written to truth/patients.tsv
    times = sorted({t for _, _, t, _, _, _ in BIOMARKERS} | {VPOP_DURATION_H})
    patients = [f"P{i + 1:03d}" for i in range(N_PATIENTS)]
    sims = simulate_population(pd.DataFrame(draws, columns=names), VPOP_CONDITION, times)
    sims = sims.set_index(["member", "time"])
    clean = np.column_stack(
        [sims[obs].xs(t, level="time").to_numpy() for _, obs, t, _, _, _ in BIOMARKERS]
    )
    noise = rng_biomarker.standard_normal(clean.shape)
    observed = np.empty_like(clean)
    for j, (_, _, _, _, model, scale) in enumerate(BIOMARKERS):
        if model == "additive_normal":
            observed[:, j] = clean[:, j] + scale * noise[:, j]
        else:
            observed[:, j] = clean[:, j] * np.exp(scale * noise[:, j])
    biomarker_names = [b[0] for b in BIOMARKERS]
    truth_frame = pd.DataFrame(draws, columns=names)
    for j, name in enumerate(biomarker_names):
        truth_frame[f"{name}_true"] = _round(clean[:, j])
    truth_frame.insert(0, "patient", patients)
    target = pd.DataFrame(
        {name: _round_sig(observed[:, j]) for j, name in enumerate(biomarker_names)}
    )
    target.insert(0, "patient", patients)
    return truth_frame, target


def vpop_summary(target: pd.DataFrame) -> pd.DataFrame:
    """n, mean, sd (ddof 1) and percentiles (numpy's linear rule) of each biomarker column."""
    rows = []
    for name in target.columns.drop("patient"):
        v = target[name].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        rows.append(
            (name, len(v), v.mean(), v.std(ddof=1), *np.percentile(v, [5, 25, 50, 75, 95]))
        )
    return pd.DataFrame(rows, columns=["biomarker", "n", "mean", "sd", "p05", "p25", "p50", "p75", "p95"])


def biomarkers_table() -> pd.DataFrame:
    return pd.DataFrame(
        list(BIOMARKERS), columns=["biomarker", "observable", "time", "unit", "noise", "noise_param"]
    )


def example_files(*, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """The example study and its ground truth as {relative path: text} (README.md is not among them).

    Inputs: pkn.sif, experiments.tsv, measurements.tsv, dosing.tsv, vpop_condition.tsv,
    vpop_biomarkers.tsv, vpop_target.tsv, vpop_summary.tsv. Ground truth under truth/:
    network.bnet, parameters.tsv, population.tsv, trajectories.tsv, binarized_8h.tsv,
    patients.tsv.
    """
    truth = true_parameters()
    exps = experiments()
    trajectories = truth_trajectories(truth, exps)
    patients, target = cohort(seed)
    return {
        "pkn.sif": pkn_text(),
        "experiments.tsv": table_text(exps),
        "measurements.tsv": table_text(measurements(trajectories, seed)),
        "dosing.tsv": table_text(dosing_table()),
        "vpop_condition.tsv": table_text(pd.DataFrame([VPOP_CONDITION])),
        "vpop_biomarkers.tsv": table_text(biomarkers_table()),
        "vpop_target.tsv": table_text(target, float_format=".6g"),
        "vpop_summary.tsv": table_text(vpop_summary(target), float_format=".6g"),
        "truth/network.bnet": bnet_text(),
        "truth/parameters.tsv": table_text(parameters_table()),
        "truth/population.tsv": table_text(population_table()),
        "truth/trajectories.tsv": table_text(trajectories, float_format=".8g"),
        "truth/binarized_8h.tsv": table_text(binarized_fixpoints(exps)),
        "truth/patients.tsv": table_text(patients, float_format=".10g"),
    }


__all__ = [
    "BIOMARKERS",
    "DECOY_EDGES",
    "DEFAULT_SEED",
    "INTERNAL",
    "MEASUREMENT_TIMES",
    "NODES",
    "POPULATION_CV",
    "READOUTS",
    "STIMULI",
    "TRUE_PARAMETERS",
    "TRUE_RULES",
    "boolean_fixpoint",
    "experiment_fixpoint",
    "experiments",
    "simulate_population",
    "simulate_truth",
    "true_edges",
    "true_parameters",
    "example_files",
]
