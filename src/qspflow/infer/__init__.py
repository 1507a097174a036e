"""Boolean-network inference from binarized data against a prior knowledge network (PKN).

Two kinds of data, two exact methods; both return a ranked ensemble (`InferenceResult`).

Steady-state perturbation data (CellNOpt style)
-----------------------------------------------
Stimuli and inhibitors, readouts at one time after stimulation. A candidate model gives each
node an OR of AND-terms ("hyperedges"); a term is a conjunction of up to `max_inputs` signed PKN
parents (`x` for an activating edge, `!x` for an inhibiting one), as CellNOptR's expansion makes
them. The PKN is first cut to the nodes that are both controllable (reachable from a stimulus or
an inhibitor) and observable (reaching a readout), keeping every measured, stimulated and
inhibited node (CellNOptR's `cutNONC`).

Semantics of a model under an experiment: stimulus nodes are inputs clamped to 1 (stimulated)
or 0; inhibited nodes are forced to 0; every other node starts at 0. The model is updated
synchronously (clamps held) for `horizon` steps, one more than the number of non-input nodes of
the compressed PKN, which is enough for every acyclic model (and every model without negative
literals) to settle. If the last two states differ the model reaches no fixpoint from there (it
oscillates or is still moving) and every readout of that experiment counts as mismatched.

A mismatch is an (experiment, readout) pair where the model's fixpoint differs from the
binarized datum. The score is `mismatches + size_penalty × size`, size being the number of
literals over all terms. With the default `size_penalty` of 1e-4 the penalty of any realistic
model stays below one mismatch, so fit comes first and size breaks ties, as CellNOptR's small
default size factor does. The optimum is found and proven by clingo (answer set programming with
optimization, after caspo: Guziolowski et al. 2013, Videla et al. 2015); every optimal model is
enumerated (`optN`). With `tolerance` > 0 the ensemble also holds the models with at most
`tolerance` more mismatches than the optimum and no more literals than it (caspo's fit and size
tolerances, size tolerance 0). A node's terms never contain one another, so a rule is the set of
prime implicants of a unate function: two models are logically equivalent exactly when they
have the same terms, and each appears once.

Time series (best-fit extension)
--------------------------------
Binarized states of every PKN node at consecutive times. For each node, every regulator set of
at most `max_inputs` of its PKN parents and every Boolean function on it that depends on each
regulator is scored by its inconsistency, the number of transitions t → t+1 it contradicts
(Lähdesmäki et al. 2003; BoolNet's `reconstructNetwork(method="bestfit")`). Every function at
the minimum over all regulator sets is kept. With `respect_signs` the function must also be
monotone in each regulator with the PKN edge's sign. Nodes without PKN parents are inputs. The
ensemble is the product of the nodes' optimal functions, of which the `max_models` smallest (by
literals of their minimal DNF) are kept.

Ranking: by score, then size, then the `.bnet` text; ids `net_1`, `net_2`, ... in that order.
A network's `missed` lists what it gets wrong: `experiment:readout` (steady state) or
`experiment:node@time`, the time of the state it mispredicts (time series).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from qspflow.boolean import (
    FALSE,
    TRUE,
    And,
    BooleanNetwork,
    Expr,
    Not,
    Or,
    Pkn,
    Var,
    bnet_text,
    evaluate,
    format_expression,
    read_sif,
    sbml_qual_text,
)
from qspflow.errors import ConfigError, DataError, NetworkError
from qspflow.io import format_float, table_text

log = logging.getLogger("qspflow.infer")

PathLike = str | os.PathLike[str]

METHODS = ("auto", "steady_state", "time_series")
BINARIZED_COLUMNS = ("experiment", "time", "observable", "state")
INDEX_COLUMNS = ("network", "score", "mismatches", "size", "missed")
MAX_TIME_SERIES_INPUTS = 4  # best-fit enumerates truth tables on up to 2^4 regulator states

Literal = tuple[str, int]  # (node, sign): sign 1 is `node`, -1 is `!node`
Term = tuple[Literal, ...]  # a conjunction, literals sorted by node


# --- reading and mapping the prepared data ----------------------------------------------------


def read_binarized(path: PathLike) -> pd.DataFrame:
    """Read `prepared/binarized.tsv` (experiment, time, observable, state), checking every cell.

    A state other than 0/1, a time that is not a number and a repeated (experiment, time,
    observable) are `DataError`s naming the file line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, message=f"cannot read the file ({getattr(err, 'strerror', None) or err})") from None
    lines = text.splitlines()
    header = lines[0].split("\t") if lines else []
    missing = [c for c in BINARIZED_COLUMNS if c not in header]
    if missing:
        raise DataError(path, row=1, expected="columns " + ", ".join(BINARIZED_COLUMNS), found=", ".join(header))
    at = {name: header.index(name) for name in BINARIZED_COLUMNS}
    rows: list[tuple[str, float, str, int]] = []
    seen: dict[tuple[str, float, str], int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(path, row=number, expected=f"{len(header)} tab-separated fields",
                            found=f"{len(fields)} fields")
        experiment, time_text, observable, state_text = (fields[at[c]].strip() for c in BINARIZED_COLUMNS)
        try:
            time = float(time_text)
        except ValueError:
            time = math.nan
        if not math.isfinite(time):
            raise DataError(path, row=number, column="time", expected="a number", found=time_text)
        if state_text not in ("0", "1"):
            raise DataError(path, row=number, column="state", expected="0 or 1", found=state_text)
        key = (experiment, time, observable)
        if key in seen:
            raise DataError(path, row=number, expected="one row per experiment, time and observable",
                            found=f"{experiment}, {time_text}, {observable}", message=f"already in row {seen[key]}")
        seen[key] = number
        rows.append((experiment, time, observable, int(state_text)))
    if not rows:
        raise DataError(path, row=2, expected="at least one data row")
    experiments, times, observables, states = zip(*rows, strict=True)
    return pd.DataFrame({
        "experiment": pd.Series(experiments, dtype="str"),
        "time": np.asarray(times, dtype=float),
        "observable": pd.Series(observables, dtype="str"),
        "state": np.asarray(states, dtype=np.int64),
    })


def _check_binarized(binarized: pd.DataFrame, source: str | None) -> None:
    """The frame has the binarized columns and only 0/1 states."""
    missing = [c for c in BINARIZED_COLUMNS if c not in binarized.columns]
    if missing:
        raise DataError(source, expected="columns " + ", ".join(BINARIZED_COLUMNS),
                        found=", ".join(map(str, binarized.columns)))
    bad = ~binarized["state"].isin([0, 1])
    if bad.any():
        row = binarized[bad].iloc[0]
        raise DataError(source, column="state", expected="0 or 1", found=row["state"],
                        message=f"experiment '{row['experiment']}', time {row['time']:g}, "
                                f"observable '{row['observable']}'")


@dataclass(frozen=True)
class Experiment:
    """One perturbation experiment: clamped node values and binarized observations (node → 0/1)."""

    name: str
    clamps: Mapping[str, int]
    observed: Mapping[str, int]


@dataclass(frozen=True)
class SteadyStateData:
    """Steady-state perturbation data at one time: experiments in name order, and the stimulus nodes."""

    experiments: tuple[Experiment, ...]
    stimuli: tuple[str, ...]
    time: float

    @property
    def readouts(self) -> tuple[str, ...]:
        """Every observed node, sorted."""
        return tuple(sorted({n for e in self.experiments for n in e.observed}))

    @property
    def inhibited(self) -> tuple[str, ...]:
        """Every node forced to 0 in some experiment (by an inhibitor or an inhibiting dose), sorted."""
        stimuli = set(self.stimuli)
        return tuple(sorted({n for e in self.experiments for n, v in e.clamps.items() if v == 0 and n not in stimuli}))


def _perturbations(
    experiments: pd.DataFrame,
    *,
    drug_targets: Mapping[str, str],
    inhibiting_dose: float | None,
    source: str | None,
) -> tuple[dict[str, dict[str, int] | None], tuple[str, ...]]:
    """Clamps per experiment (None: left out, partial inhibition) and the stimulus nodes.

    `stimulus:X` > 0 clamps X to 1 (else 0); `inhibitor:Y` = 1 and `dose:D` ≥ `inhibiting_dose`
    force Y and D's target to 0; an inhibition wins over a stimulus of the same node.
    """
    stimuli = tuple(sorted(c.split(":", 1)[1] for c in experiments.columns if c.startswith("stimulus:")))
    doses = [c for c in experiments.columns if c.startswith("dose:")]
    for column in doses:
        if not (experiments[column] > 0).any():
            continue
        drug = column.split(":", 1)[1]
        if drug not in drug_targets:
            raise ConfigError(None, key="drug.target", expected=f"the node that drug '{drug}' inhibits",
                              message=f"{source or 'the experiment table'} has column '{column}'")
        if inhibiting_dose is None:
            raise ConfigError(None, key="infer.inhibiting_dose",
                              expected="the dose at which the drug is a full inhibitor",
                              message=f"{source or 'the experiment table'} has doses in '{column}'")
    clamps: dict[str, dict[str, int] | None] = {}
    for row in experiments.to_dict("records"):
        name = str(row["experiment"])
        values = {node: int(row[f"stimulus:{node}"] > 0) for node in stimuli}
        for column, level in row.items():
            kind, _, node = str(column).partition(":")
            if kind == "inhibitor" and level == 1:
                values[node] = 0
        partial = []
        for column in doses:
            dose = row[column]
            if dose > 0 and dose >= inhibiting_dose:
                values[drug_targets[column.split(":", 1)[1]]] = 0
            elif dose > 0:
                partial.append(f"{column} = {dose:g}")
        if partial:
            log.warning("experiment '%s' left out: %s is below the inhibiting dose %g "
                        "(partial inhibition is not Boolean)", name, ", ".join(partial), inhibiting_dose)
            clamps[name] = None
        else:
            clamps[name] = values
    return clamps, stimuli


def _check_experiments(binarized: pd.DataFrame, experiments: pd.DataFrame,
                       sources: tuple[str | None, str | None]) -> None:
    """Every measured experiment has a row in the experiment table."""
    listed = set(experiments["experiment"].astype(str))
    for name in binarized["experiment"].unique():
        if name not in listed:
            raise DataError(sources[1], column="experiment", expected=f"a row for experiment '{name}'",
                            message=f"{sources[0] or 'the binarized data'} has it")


def steady_state_data(
    binarized: pd.DataFrame,
    experiments: pd.DataFrame,
    *,
    time: float | None = None,
    drug_targets: Mapping[str, str] | None = None,
    inhibiting_dose: float | None = None,
    binarized_source: str | None = None,
    experiments_source: str | None = None,
) -> SteadyStateData:
    """The binarized states at `time` (default: the latest) with each experiment's clamps.

    `experiments` has `experiment` and `stimulus:<node>`, `inhibitor:<node>`, `dose:<drug>`
    columns; `drug_targets` maps a drug to the node it inhibits. An experiment with a dose
    strictly between 0 and `inhibiting_dose` is left out with a warning. The sources name the
    files in error messages.
    """
    _check_binarized(binarized, binarized_source)
    _check_experiments(binarized, experiments, (binarized_source, experiments_source))
    times = sorted(binarized["time"].unique())
    if time is None:
        time = float(times[-1])
    elif not np.isclose(times, time).any():
        raise DataError(binarized_source, column="time", found=format_float(time),
                        expected="infer.time to be one of the measured times "
                                 + ", ".join(format_float(t) for t in times))
    clamps, stimuli = _perturbations(experiments, drug_targets=drug_targets or {}, inhibiting_dose=inhibiting_dose,
                                     source=experiments_source)
    at_time = binarized[np.isclose(binarized["time"], time)]
    found = []
    for name, group in at_time.groupby("experiment", sort=True):
        if clamps[name] is not None:
            observed = dict(zip(group["observable"], group["state"].astype(int)))
            found.append(Experiment(str(name), clamps[name], observed))
    absent = sorted(set(binarized["experiment"]) - set(at_time["experiment"]))
    if absent:
        log.info("experiments without data at time %s: %s", format_float(time), ", ".join(absent))
    if not found:
        raise DataError(binarized_source, column="time",
                        expected=f"data of at least one usable experiment at time {format_float(time)}")
    return SteadyStateData(tuple(found), stimuli, float(time))


# --- the PKN ------------------------------------------------------------------------------------


def _check_nodes(pkn: Pkn, names: Iterable[str], source: str | None, column: str) -> None:
    """Every name is a PKN node, else a `DataError` naming the file and the column."""
    nodes = set(pkn.nodes)
    for name in names:
        if name not in nodes:
            raise DataError(source, column=column, expected="a node of the PKN", found=name)


def compress_pkn(pkn: Pkn, *, stimuli: Collection[str], inhibited: Collection[str], readouts: Collection[str]) -> Pkn:
    """The PKN without nodes that are not controllable or not observable (CellNOptR's `cutNONC`).

    A node is controllable if a path leads to it from a stimulus or an inhibited node, and
    observable if a path leads from it to a readout. Stimulated, inhibited and measured nodes are
    always kept; edges are kept between kept nodes. A non-observable node cannot change a
    readout, and a non-controllable one takes the same value in every experiment, so neither can
    explain a response to a perturbation.
    """
    children: dict[str, set[str]] = {}
    parents: dict[str, set[str]] = {}
    for source, _, target in pkn.edges:
        children.setdefault(source, set()).add(target)
        parents.setdefault(target, set()).add(source)

    def reach(starts: Iterable[str], step: Mapping[str, set[str]]) -> set[str]:
        seen = set(starts)
        frontier = list(seen)
        while frontier:
            for nxt in step.get(frontier.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        return seen

    perturbed = set(stimuli) | set(inhibited)
    keep = (reach(perturbed, children) & reach(readouts, parents)) | perturbed | set(readouts)
    removed = sorted(set(pkn.nodes) - keep)
    if removed:
        log.info("PKN compression removed %d non-controllable or non-observable nodes: %s",
                 len(removed), ", ".join(removed))
    return Pkn(tuple(e for e in pkn.edges if e[0] in keep and e[2] in keep))


# --- rules from terms ---------------------------------------------------------------------------


def _term_expr(term: Term) -> Expr:
    literals = [Var(n) if sign > 0 else Not(Var(n)) for n, sign in term]
    return TRUE if not literals else literals[0] if len(literals) == 1 else And(tuple(literals))


def dnf_rule(terms: Iterable[Term]) -> Expr:
    """The OR of `terms` (each an AND of signed literals), in a canonical order: shorter terms first."""
    ordered = sorted(set(terms), key=lambda t: (len(t), t))
    exprs = [_term_expr(t) for t in ordered]
    return FALSE if not exprs else exprs[0] if len(exprs) == 1 else Or(tuple(exprs))


def _size(terms: Iterable[Term]) -> int:
    return sum(len(t) for t in terms)


# --- steady state: the candidate space and its semantics -----------------------------------------


@dataclass(frozen=True)
class LogicSpace:
    """The candidate logic models of a steady-state problem.

    `nodes` are the compressed PKN's nodes and every readout (sorted), `terms` every
    non-input node's candidate AND-terms, `keep` the nodes every model lists
    (stimuli, readouts, inhibited nodes) and `horizon` the number of synchronous steps after
    which a model must have settled.
    """

    nodes: tuple[str, ...]
    stimuli: tuple[str, ...]
    terms: Mapping[str, tuple[Term, ...]]
    keep: frozenset[str]
    horizon: int

    def network(self, chosen: Mapping[str, Collection[Term]]) -> BooleanNetwork:
        """The model whose non-input nodes have the `chosen` terms (a node not given has none).

        It lists the kept nodes and every node in a chosen term; stimuli are inputs, a node
        without terms is constant 0.
        """
        used = {n for node, terms in chosen.items() if terms for n in (node, *(m for t in terms for m, _ in t))}
        nodes = tuple(n for n in self.nodes if n in self.keep or n in used)
        rules = {n: Var(n) if n in self.stimuli else dnf_rule(chosen.get(n, ())) for n in nodes}
        return BooleanNetwork(nodes, rules)


def logic_space(pkn: Pkn, data: SteadyStateData, *, max_inputs: int = 3) -> LogicSpace:
    """Compress the PKN for `data` and expand every node's candidate terms (CellNOptR style).

    A node's candidate terms are all sets of 1 to `max_inputs` of its PKN parents, each parent
    with its edge's sign; a node with more parents gets a warning, as no term can use them all.
    """
    compressed = compress_pkn(pkn, stimuli=data.stimuli, inhibited=data.inhibited, readouts=data.readouts)
    keep = frozenset(data.stimuli) | set(data.inhibited) | set(data.readouts)
    nodes = tuple(sorted(set(compressed.nodes) | keep))  # a readout cut off from every stimulus has no edges left
    terms: dict[str, tuple[Term, ...]] = {}
    for node in nodes:
        parents = compressed.parents(node)
        if node in data.stimuli or not parents:
            continue
        if len(parents) > max_inputs:
            log.warning("node '%s' has %d PKN parents; its AND terms are limited to %d literals (infer.max_inputs)",
                        node, len(parents), max_inputs)
        terms[node] = tuple(t for k in range(1, min(max_inputs, len(parents)) + 1)
                            for t in itertools.combinations(parents, k))
    return LogicSpace(nodes, data.stimuli, terms, keep, horizon=len(nodes) - len(data.stimuli) + 1)


def steady_state(net: BooleanNetwork, clamps: Mapping[str, int], horizon: int) -> dict[str, int] | None:
    """The state reached by synchronous updates from the experiment's start, or None if unsettled.

    Start: clamped nodes at their value, every other node 0 (inputs included); clamps are held.
    The state after `horizon` steps is returned if it equals the one before.
    """
    held = {n: v for n, v in clamps.items() if n in net.rules}
    state = {n: held.get(n, 0) for n in net.nodes}
    previous = state
    for _ in range(horizon):
        previous, state = state, {n: held[n] if n in held else int(evaluate(net.rules[n], state)) for n in net.nodes}
    return state if state == previous else None


def network_mismatches(net: BooleanNetwork, data: SteadyStateData, *,
                       horizon: int | None = None) -> list[tuple[str, str]]:
    """The (experiment, readout) pairs where `net` disagrees with `data`, in data order.

    `horizon` defaults to one more than the number of non-input nodes of `net` (enough for an
    acyclic network); every readout of an experiment without a fixpoint counts.
    """
    missing = [r for r in data.readouts if r not in net.rules]
    if missing:
        raise NetworkError(None, message=f"the network has no node '{missing[0]}' (a readout)")
    steps = len(net.nodes) - len(net.inputs) + 1 if horizon is None else horizon
    missed = []
    for experiment in data.experiments:
        state = steady_state(net, experiment.clamps, steps)
        missed.extend((experiment.name, r) for r, v in sorted(experiment.observed.items())
                      if state is None or state[r] != v)
    return missed


# --- steady state: the answer set program -------------------------------------------------------

# Facts: term(J,V) candidate term J of node V, with literals pos(J,W)/neg(J,W) and len(J,L);
# sub(K,J) when K's literals are a proper subset of J's (same node); exp(E); free(E,V) for a
# node not clamped in E; clamp(E,V,0/1); obs(E,V,0/1). Constants h (horizon), wm and ws (weights).
_ASP_MODEL = """
{ use(J) } :- term(J,_).
:- use(J), use(K), sub(K,J).
on(E,V,T) :- clamp(E,V,1), T = 0..h.
sat(E,J,T) :- use(J), term(J,V), free(E,V), T = 0..h-1, on(E,W,T) : pos(J,W); not on(E,W,T) : neg(J,W).
on(E,V,T+1) :- sat(E,J,T), term(J,V).
unsettled(E) :- free(E,V), on(E,V,h), not on(E,V,h-1).
unsettled(E) :- free(E,V), on(E,V,h-1), not on(E,V,h).
miss(E,V) :- obs(E,V,1), not on(E,V,h).
miss(E,V) :- obs(E,V,0), on(E,V,h).
miss(E,V) :- obs(E,V,_), unsettled(E).
#show use/1.
#show miss/2.
"""
_ASP_OPTIMIZE = "#minimize { wm,E,V : miss(E,V); ws*L,J : use(J), len(J,L) }."
_ASP_WITHIN = """
:- #count { E,V : miss(E,V) } > maxmiss.
:- #sum { L,J : use(J), len(J,L) } > maxsize.
"""


@dataclass(frozen=True)
class _Weights:
    """Integer weights of the score: `mismatch × mismatches + literal × size` = denominator × score."""

    mismatch: int
    literal: int

    @classmethod
    def of(cls, size_penalty: float) -> _Weights:
        ratio = Fraction(size_penalty).limit_denominator(10**6)
        if ratio <= 0:
            raise ConfigError(None, key="infer.size_penalty", expected="a number ≥ 1e-6", found=size_penalty)
        return cls(ratio.denominator, ratio.numerator)

    def key(self, mismatches: int, size: int) -> int:
        return self.mismatch * mismatches + self.literal * size


def _facts(space: LogicSpace, data: SteadyStateData, term_ids: Sequence[tuple[str, Term]]) -> str:
    """The instance as ground facts over integer ids (nodes by PKN order, experiments by data order)."""
    node_id = {n: i for i, n in enumerate(space.nodes)}
    out = []
    by_node: dict[str, list[int]] = {}
    for j, (node, term) in enumerate(term_ids):
        v = node_id[node]
        out.append(f"term({j},{v}). len({j},{len(term)}).")
        out.extend(f"{'pos' if sign > 0 else 'neg'}({j},{node_id[w]})." for w, sign in term)
        by_node.setdefault(node, []).append(j)
    for node, ids in by_node.items():
        literal_sets = {j: set(term_ids[j][1]) for j in ids}
        out.extend(f"sub({k},{j})." for j in ids for k in ids if literal_sets[k] < literal_sets[j])
    for e, experiment in enumerate(data.experiments):
        clamps = {n: v for n, v in experiment.clamps.items() if n in node_id}
        out.append(f"exp({e}).")
        out.extend(f"clamp({e},{node_id[n]},{v})." for n, v in clamps.items())
        out.extend(f"free({e},{node_id[n]})." for n in space.nodes if n not in clamps)
        out.extend(f"obs({e},{node_id[r]},{v})." for r, v in experiment.observed.items())
    return "\n".join(out)


@dataclass(frozen=True)
class _Model:
    terms: frozenset[int]
    missed: tuple[tuple[int, int], ...]  # (experiment index, node index)


def _solve(program: str, constants: Mapping[str, int], *, optimize: bool, max_models: int) -> tuple[list[_Model], bool]:
    """All answer sets (optimal ones when `optimize`), up to `max_models`; and whether the search finished."""
    import clingo

    arguments = ["0", "--warn=none", *(f"--const={k}={v}" for k, v in constants.items())]
    if optimize:
        # core-guided optimization proves these optima far faster than clingo's default branch
        # and bound (3 s instead of 8 min on benchmarks/infer.py's 20-node PKN)
        arguments += ["--opt-mode=optN", "--opt-strategy=usc"]
    control = clingo.Control(arguments)
    control.add("base", [], program)
    control.ground([("base", [])])
    found: dict[frozenset[int], _Model] = {}

    def on_model(model) -> bool:
        if optimize and not model.optimality_proven:
            return True  # still improving; optN reports the optimal models after the proof
        uses, missed = set(), []
        for symbol in model.symbols(shown=True):
            if symbol.name == "use":
                uses.add(symbol.arguments[0].number)
            else:
                missed.append((symbol.arguments[0].number, symbol.arguments[1].number))
        terms = frozenset(uses)
        found[terms] = _Model(terms, tuple(sorted(missed)))
        return len(found) < max_models

    result = control.solve(on_model=on_model)
    return list(found.values()), bool(result.exhausted)


def infer_steady_state(
    pkn: Pkn,
    data: SteadyStateData,
    *,
    max_inputs: int = 3,
    size_penalty: float = 1e-4,
    tolerance: int = 0,
    max_models: int = 10000,
) -> InferenceResult:
    """The optimal logic models of `pkn` for steady-state perturbation `data` (see the module doc).

    Exact: clingo proves the optimum of `mismatches + size_penalty × size` and enumerates every
    optimal model; with `tolerance` > 0 also those with at most `tolerance` more mismatches and
    no more literals than the best. At most `max_models` are kept (a warning says so).
    """
    _check_nodes(pkn, (*data.readouts, *data.stimuli, *data.inhibited), None, "node")
    weights = _Weights.of(size_penalty)
    space = logic_space(pkn, data, max_inputs=max_inputs)
    term_ids = [(node, term) for node in sorted(space.terms) for term in space.terms[node]]
    log.info("steady-state inference: %d nodes, %d candidate terms, %d experiments, %d readouts, horizon %d",
             len(space.nodes), len(term_ids), len(data.experiments), len(data.readouts), space.horizon)
    base = _ASP_MODEL + _facts(space, data, term_ids)
    constants = {"h": space.horizon, "wm": weights.mismatch, "ws": weights.literal}
    models, complete = _solve(base + _ASP_OPTIMIZE, constants, optimize=True, max_models=max_models)

    def summary(model: _Model) -> tuple[int, int]:
        return len(model.missed), sum(len(term_ids[j][1]) for j in model.terms)

    if tolerance > 0:
        mismatches, size = min((summary(m) for m in models), key=lambda ms: (weights.key(*ms), ms[1]))
        within, finished = _solve(base + _ASP_WITHIN, {**constants, "maxmiss": mismatches + tolerance, "maxsize": size},
                                  optimize=False, max_models=max_models)
        known = {m.terms for m in models}
        models += [m for m in within if m.terms not in known]
        complete = complete and finished
    if not complete:
        log.warning("the ensemble was cut at infer.max_models = %d models; raise it to enumerate all", max_models)

    names = [e.name for e in data.experiments]
    nodes = space.nodes
    candidates = []
    for model in models:
        chosen: dict[str, list[Term]] = {}
        for j in model.terms:
            node, term = term_ids[j]
            chosen.setdefault(node, []).append(term)
        missed = [f"{names[e]}:{nodes[v]}" for e, v in model.missed]
        size = _size(term_ids[j][1] for j in model.terms)
        candidates.append(_Candidate(space.network(chosen), len(model.missed), size, missed))
    return _ranked(candidates, weights, size_penalty, "steady_state", max_models, complete)


# --- time series: best-fit extension ------------------------------------------------------------


@dataclass(frozen=True)
class TimeSeriesData:
    """Binarized trajectories of every node: consecutive state pairs with where they came from.

    `before` and `after` are (transitions × nodes) 0/1 arrays in `nodes` order; `fitted` marks
    the (transition, node) pairs that count (a node clamped in the experiment is not fitted);
    `labels` names each transition by (experiment, time of the later state).
    """

    nodes: tuple[str, ...]
    before: np.ndarray
    after: np.ndarray
    fitted: np.ndarray
    labels: tuple[tuple[str, float], ...]


def time_series_data(
    binarized: pd.DataFrame,
    nodes: Sequence[str],
    experiments: pd.DataFrame | None = None,
    *,
    drug_targets: Mapping[str, str] | None = None,
    inhibiting_dose: float | None = None,
    binarized_source: str | None = None,
    experiments_source: str | None = None,
) -> TimeSeriesData:
    """Transitions between consecutive measured times of each experiment, all `nodes` observed.

    A node never observed is a `DataError`; a time point where some node is missing is skipped
    (with its two transitions) and reported. With an experiment table, nodes clamped in an
    experiment (inhibitors, inhibiting doses, stimuli) are not fitted there.
    """
    _check_binarized(binarized, binarized_source)
    unobserved = sorted(set(nodes) - set(binarized["observable"]))
    if unobserved:
        raise DataError(binarized_source, column="observable",
                        expected="every PKN node observed (time-series inference)",
                        message=f"never observed: {', '.join(unobserved)}")
    clamps: dict[str, dict[str, int] | None] = {}
    if experiments is not None:
        _check_experiments(binarized, experiments, (binarized_source, experiments_source))
        clamps, _ = _perturbations(experiments, drug_targets=drug_targets or {}, inhibiting_dose=inhibiting_dose,
                                   source=experiments_source)
    column = {n: i for i, n in enumerate(nodes)}
    before, after, fitted, labels = [], [], [], []
    incomplete = 0
    for name, group in binarized[binarized["observable"].isin(column)].groupby("experiment", sort=True):
        if clamps.get(name, {}) is None:
            continue
        held = np.array([n in clamps.get(name, {}) for n in nodes])
        table = group.pivot(index="time", columns="observable", values="state")
        table = table.reindex(columns=list(nodes)).sort_index()
        complete = table.notna().all(axis=1).to_numpy()
        incomplete += int((~complete).sum())
        states = table.fillna(0).to_numpy(dtype=np.int8)
        for t in range(len(table) - 1):
            if complete[t] and complete[t + 1]:
                before.append(states[t])
                after.append(states[t + 1])
                fitted.append(~held)
                labels.append((str(name), float(table.index[t + 1])))
    if incomplete:
        log.warning("%s: %d time points miss some node's state; their transitions are not used",
                    binarized_source or "binarized data", incomplete)
    if not labels:
        raise DataError(binarized_source, expected="at least one pair of consecutive complete time points")
    n = len(nodes)
    return TimeSeriesData(tuple(nodes), np.array(before, dtype=np.int8).reshape(-1, n),
                          np.array(after, dtype=np.int8).reshape(-1, n), np.array(fitted, dtype=bool).reshape(-1, n),
                          tuple(labels))


@dataclass(frozen=True)
class FittedFunction:
    """One optimal function of a node: regulators (PKN order), truth table, rule, size, errors.

    `table[c]` is the value for the regulator state `c` whose top bit is the first regulator
    (as `qspflow.boolean.truth_table`); `missed` lists the contradicted transitions.
    """

    node: str
    regulators: tuple[str, ...]
    table: tuple[int, ...]
    rule: Expr
    size: int
    errors: int
    missed: tuple[tuple[str, float], ...]


@lru_cache(maxsize=None)
def _positive_monotone_tables(k: int) -> np.ndarray:
    """All monotone increasing functions of k variables that depend on every one (rows of 0/1).

    f is monotone exactly when f = f0 ∨ (x ∧ f1) with monotone f0 ≤ f1 on the other variables;
    the first variable is the top bit, so the table is f0's table then f1's.
    """

    def monotone(m: int) -> list[tuple[int, ...]]:
        if m == 0:
            return [(0,), (1,)]
        smaller = monotone(m - 1)
        return [f0 + f1 for f0 in smaller for f1 in smaller if all(a <= b for a, b in zip(f0, f1))]

    tables = np.array(monotone(k), dtype=bool).reshape(-1, 1 << k)
    return tables[[_depends_on_all(row, k) for row in tables]]


def _depends_on_all(table: np.ndarray, k: int) -> bool:
    index = np.arange(1 << k)
    return all((table[index | (1 << b)] != table[index & ~(1 << b)]).any() for b in range(k))


@lru_cache(maxsize=None)
def _minimal_cubes(k: int, table: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """A minimum-literal DNF of a k-variable truth table as cubes (mask, value), sorted.

    A cube fixes the variables in `mask` to the bits of `value`. Primes are the implicants whose
    minterms no other implicant's contain; the cover is found by branch and bound on the
    smallest uncovered minterm (a unate function's primes are all needed, so it ends at once).
    """
    ones = frozenset(i for i, v in enumerate(table) if v)
    implicants = []
    for mask in range(1 << k):
        for value in range(1 << k):
            members = frozenset(m for m in range(1 << k) if m & mask == value)
            if value & ~mask == 0 and members <= ones:
                implicants.append((mask, value, members))
    primes = [c for c in implicants if not any(d[2] > c[2] for d in implicants)]
    best: tuple[float, tuple] = (math.inf, ())

    def search(chosen: tuple, uncovered: frozenset[int], cost: int) -> None:
        nonlocal best
        if cost >= best[0]:
            return
        if not uncovered:
            best = (cost, chosen)
            return
        pivot = min(uncovered)
        for prime in primes:
            if pivot in prime[2]:
                search(chosen + (prime,), uncovered - prime[2], cost + bin(prime[0]).count("1"))

    search((), ones, 0)
    return tuple(sorted((mask, value) for mask, value, _ in best[1]))


def _rule_of_table(regulators: Sequence[str], table: Sequence[int]) -> tuple[Expr, int]:
    """The minimal DNF rule of a truth table over `regulators` (first = top bit) and its size."""
    k = len(regulators)
    terms = []
    for mask, value in _minimal_cubes(k, tuple(int(v) for v in table)):
        bits = [i for i in range(k) if mask >> (k - 1 - i) & 1]
        terms.append(tuple((regulators[i], 1 if value >> (k - 1 - i) & 1 else -1) for i in bits))
    return dnf_rule(terms), _size(terms)


def best_fit(
    pkn: Pkn, data: TimeSeriesData, *, max_inputs: int = 3, respect_signs: bool = True
) -> dict[str, tuple[FittedFunction, ...]]:
    """Every node's functions of minimal inconsistency (best-fit extension), sorted by size and rule.

    Regulator sets are the subsets of at most `max_inputs` PKN parents (the empty set gives the
    constants); a function must depend on each of its regulators, so each function is listed
    once. With `respect_signs` a function is monotone in each regulator with the edge's sign.
    Nodes without PKN parents are not fitted (they are inputs).
    """
    if not 1 <= max_inputs <= MAX_TIME_SERIES_INPUTS:
        raise ConfigError(None, key="infer.max_inputs", found=max_inputs,
                          expected=f"1 to {MAX_TIME_SERIES_INPUTS} for time-series inference")
    column = {n: i for i, n in enumerate(data.nodes)}
    found = {}
    for node in data.nodes:
        parents = pkn.parents(node)
        if not parents:
            continue
        if len(parents) > max_inputs:
            log.warning("node '%s' has %d PKN parents; best-fit considers regulator sets of at most %d of them "
                        "(raise infer.max_inputs to allow more)", node, len(parents), max_inputs)
        rows = data.fitted[:, column[node]]
        if not rows.any():
            log.info("node '%s' is clamped in every experiment; it stays an input", node)
            continue
        target = data.after[rows, column[node]].astype(bool)
        labels = [label for label, used in zip(data.labels, rows) if used]
        scored = []  # (errors, regulators, table)
        for k in range(min(max_inputs, len(parents)) + 1):
            for chosen in itertools.combinations(parents, k):
                regulators = tuple(n for n, _ in chosen)
                bits = np.zeros(int(rows.sum()), dtype=np.int64)
                for n in regulators:
                    bits = bits << 1 | data.before[rows, column[n]]
                n1 = np.bincount(bits[target], minlength=1 << k)
                n0 = np.bincount(bits[~target], minlength=1 << k)
                scored.extend((errors, regulators, table) for errors, table in
                              _optimal_tables(n0, n1, chosen, k, respect_signs))
        least = min(e for e, _, _ in scored)
        functions = []
        for errors, regulators, table in scored:
            if errors != least:
                continue
            rule, size = _rule_of_table(regulators, table)
            bits = np.zeros(len(target), dtype=np.int64)
            for n in regulators:
                bits = bits << 1 | data.before[rows, column[n]]
            wrong = np.flatnonzero(np.asarray(table, dtype=bool)[bits] != target)
            functions.append(FittedFunction(node, regulators, tuple(int(v) for v in table), rule, size, int(errors),
                                            tuple(labels[i] for i in wrong)))
        found[node] = tuple(sorted(functions, key=lambda f: (f.size, format_expression(f.rule))))
    return found


def _optimal_tables(n0: np.ndarray, n1: np.ndarray, chosen: Sequence[tuple[str, int]], k: int,
                    respect_signs: bool) -> list[tuple[int, tuple[int, ...]]]:
    """The least-error truth tables on one regulator set (depending on every regulator), with their error.

    `n0[c]`/`n1[c]` count transitions from regulator state c to 0/1. Unrestricted, a table takes
    the majority successor where one exists and both values on ties (unseen states included).
    """
    if respect_signs:
        flip = sum(1 << (k - 1 - i) for i, (_, sign) in enumerate(chosen) if sign < 0)
        tables = _positive_monotone_tables(k)[:, np.arange(1 << k) ^ flip]
        errors = tables.astype(np.int64) @ n0 + (~tables).astype(np.int64) @ n1
        if not len(errors):
            return []
        least = errors.min()
        return [(int(least), tuple(int(v) for v in t)) for t in tables[errors == least]]
    ties = np.flatnonzero(n0 == n1)
    base = (n1 > n0).astype(np.int8)
    least = int(np.minimum(n0, n1).sum())
    out = []
    for values in itertools.product((0, 1), repeat=len(ties)):
        table = base.copy()
        table[ties] = values
        if _depends_on_all(table, k):
            out.append((least, tuple(int(v) for v in table)))
    return out


def infer_time_series(
    pkn: Pkn,
    data: TimeSeriesData,
    *,
    max_inputs: int = 3,
    respect_signs: bool = True,
    size_penalty: float = 1e-4,
    max_models: int = 10000,
) -> InferenceResult:
    """Best-fit networks for time series: the `max_models` smallest of the product of optimal functions.

    Every network has the least total inconsistency; they are taken in order of total size
    (ties at the cut by the nodes' own order of functions) and ranked like any ensemble.
    """
    weights = _Weights.of(size_penalty)
    fits = best_fit(pkn, data, max_inputs=max_inputs, respect_signs=respect_signs)
    fitted_nodes = list(fits)
    total = math.prod(len(f) for f in fits.values())
    log.info("best-fit: %s optimal networks; keeping the %d smallest", total, min(total, max_models))
    if total > max_models:
        log.warning("the ensemble was cut at infer.max_models = %d of %d networks", max_models, total)
    sizes = [[f.size for f in fits[n]] for n in fitted_nodes]
    candidates = []
    for choice in _smallest_combinations(sizes, max_models):
        functions = [fits[n][i] for n, i in zip(fitted_nodes, choice)]
        rules = {n: Var(n) for n in data.nodes}
        rules.update({f.node: f.rule for f in functions})
        missed = sorted((e, t, f.node) for f in functions for e, t in f.missed)
        candidates.append(_Candidate(BooleanNetwork(data.nodes, rules), sum(f.errors for f in functions),
                                     sum(f.size for f in functions),
                                     [f"{e}:{n}@{format_float(t)}" for e, t, n in missed]))
    return _ranked(candidates, weights, size_penalty, "time_series", max_models, total <= max_models)


def _smallest_combinations(sizes: Sequence[Sequence[int]], limit: int) -> list[tuple[int, ...]]:
    """Up to `limit` index tuples, one index per list, in order of increasing total size.

    Each list is sorted by size; a heap grows the frontier one coordinate at a time, so the
    cost is about limit × len(sizes) heap operations, never the whole product.
    """
    start = (0,) * len(sizes)
    heap = [(sum(s[0] for s in sizes), start)]
    seen = {start}
    out = []
    while heap and len(out) < limit:
        total, choice = heapq.heappop(heap)
        out.append(choice)
        for i, index in enumerate(choice):
            if index + 1 < len(sizes[i]):
                nxt = choice[:i] + (index + 1,) + choice[i + 1:]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (total - sizes[i][index] + sizes[i][index + 1], nxt))
    return out


# --- the ensemble ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    network: BooleanNetwork
    mismatches: int
    size: int
    missed: list[str]


@dataclass(frozen=True)
class InferenceResult:
    """A ranked ensemble: `index` (network, score, mismatches, size, missed) and the networks in its order.

    `method` is "steady_state" or "time_series"; `complete` is False when `max_models` cut the
    ensemble.
    """

    index: pd.DataFrame
    networks: tuple[BooleanNetwork, ...]
    method: str
    complete: bool


def _ranked(candidates: list[_Candidate], weights: _Weights, size_penalty: float, method: str,
            max_models: int, complete: bool) -> InferenceResult:
    """Sort by score, size and `.bnet` text; number the networks; warn when nothing fits all data."""
    keyed = sorted((((weights.key(c.mismatches, c.size), c.size, bnet_text(c.network)), c) for c in candidates),
                   key=lambda pair: pair[0])[:max_models]
    best = keyed[0][1]
    if best.mismatches:
        shown = "; ".join(best.missed[:10]) + (" …" if len(best.missed) > 10 else "")
        log.warning("no network fits all data; the best has %d mismatches: %s", best.mismatches, shown)
    log.info("%d networks in the ensemble; the best has %d mismatches and %d literals",
             len(keyed), best.mismatches, best.size)
    ranked = [c for _, c in keyed]
    index = pd.DataFrame({
        "network": pd.Series([f"net_{i}" for i in range(1, len(ranked) + 1)], dtype="str"),
        "score": np.array([c.mismatches + size_penalty * c.size for c in ranked], dtype=float),
        "mismatches": np.array([c.mismatches for c in ranked], dtype=np.int64),
        "size": np.array([c.size for c in ranked], dtype=np.int64),
        "missed": pd.Series([";".join(c.missed) for c in ranked], dtype="str"),
    })
    return InferenceResult(index, tuple(c.network for c in ranked), method, complete and len(candidates) <= max_models)


def write_networks(result: InferenceResult, out_dir: PathLike, max_networks: int = 5) -> None:
    """Write the best `max_networks` as `index.tsv`, `{net}.bnet` and `{net}.sbml` (SBML-qual).

    Everything is rendered first, written into a temporary folder beside `out_dir` and renamed
    into place, so `out_dir` is either the old folder or the complete new one.
    """
    if max_networks < 1:
        raise ConfigError(None, key="infer.max_networks", expected="an integer ≥ 1", found=max_networks)
    index = result.index.iloc[:max_networks]
    files = {"index.tsv": table_text(index)}
    for name, net in zip(index["network"], result.networks):
        files[f"{name}.bnet"] = bnet_text(net)
        files[f"{name}.sbml"] = sbml_qual_text(net)
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for name, text in files.items():
            (staging / name).write_bytes(text.encode("utf-8"))
        staging.chmod(0o755)
        if target.exists():
            # a folder cannot be renamed onto a non-empty folder: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


# --- entry points ------------------------------------------------------------------------------


def infer_networks(
    pkn: Pkn,
    binarized: pd.DataFrame,
    experiments: pd.DataFrame,
    *,
    method: str = "auto",
    time: float | None = None,
    max_inputs: int = 3,
    size_penalty: float = 1e-4,
    tolerance: int = 0,
    respect_signs: bool = True,
    max_models: int = 10000,
    drug_target: str | None = None,
    inhibiting_dose: float | None = None,
    pkn_source: str | None = None,
    binarized_source: str | None = None,
    experiments_source: str | None = None,
) -> InferenceResult:
    """Infer a ranked ensemble from prepared data (`binarized`, `experiments`) against `pkn`.

    `method="auto"` takes the time-series route when every PKN node is observed at two or more
    times, else the steady-state route at `time`. `drug_target` is the node every `dose:` column's
    drug inhibits at `inhibiting_dose` or more. Options are checked first (`ConfigError`), then
    the data's nodes against the PKN (`DataError` naming the file and column).
    """
    _check_options(method, max_inputs, size_penalty, tolerance, max_models)
    _check_binarized(binarized, binarized_source)
    _check_nodes(pkn, binarized["observable"].unique(), binarized_source, "observable")
    for column in experiments.columns:
        kind, _, node = str(column).partition(":")
        if kind in ("stimulus", "inhibitor"):
            _check_nodes(pkn, [node], experiments_source, str(column))
    doses = [str(c).split(":", 1)[1] for c in experiments.columns if str(c).startswith("dose:")]
    drug_targets = {}
    if drug_target:
        if drug_target not in pkn.nodes:
            raise ConfigError(None, key="drug.target", expected=f"a node of the PKN {pkn_source or ''}".rstrip(),
                              found=drug_target)
        if len(doses) > 1:
            raise ConfigError(None, key="drug.target", expected="one drug per study",
                              message=f"{experiments_source or 'the experiment table'} has dose columns "
                                      f"for {', '.join(doses)}")
        drug_targets = {d: drug_target for d in doses}
    if method == "auto":
        observed = set(binarized["observable"])
        repeated = binarized.groupby("experiment")["time"].nunique().max() >= 2
        method = "time_series" if observed >= set(pkn.nodes) and repeated else "steady_state"
        log.info("inference method: %s", method)
    log.info("PKN %s: %d nodes, %d edges", pkn_source or "(in memory)", len(pkn.nodes), len(pkn.edges))
    if method == "time_series":
        data = time_series_data(binarized, pkn.nodes, experiments, drug_targets=drug_targets,
                                inhibiting_dose=inhibiting_dose, binarized_source=binarized_source,
                                experiments_source=experiments_source)
        return infer_time_series(pkn, data, max_inputs=max_inputs, respect_signs=respect_signs,
                                 size_penalty=size_penalty, max_models=max_models)
    data = steady_state_data(binarized, experiments, time=time, drug_targets=drug_targets,
                             inhibiting_dose=inhibiting_dose, binarized_source=binarized_source,
                             experiments_source=experiments_source)
    return infer_steady_state(pkn, data, max_inputs=max_inputs, size_penalty=size_penalty, tolerance=tolerance,
                              max_models=max_models)


def _check_options(method: str, max_inputs: int, size_penalty: float, tolerance: int, max_models: int) -> None:
    if method not in METHODS:
        raise ConfigError(None, key="infer.method", expected=" or ".join(repr(m) for m in METHODS), found=method)
    for key, value, low in (("max_inputs", max_inputs, 1), ("tolerance", tolerance, 0), ("max_models", max_models, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(None, key=f"infer.{key}", expected=f"an integer ≥ {low}", found=value)
    if isinstance(size_penalty, bool) or not isinstance(size_penalty, int | float) or not size_penalty > 0:
        raise ConfigError(None, key="infer.size_penalty", expected="a number > 0", found=size_penalty)


def infer_files(pkn_path: PathLike, binarized_path: PathLike, experiments_path: PathLike, **options) -> InferenceResult:
    """`infer_networks` on the prepare step's files (`binarized.tsv`, `experiments.tsv`) and a SIF PKN."""
    from qspflow.data import read_experiments  # qspflow.data loads matplotlib; only the entry points need it

    return infer_networks(read_sif(pkn_path), read_binarized(binarized_path), read_experiments(experiments_path),
                          pkn_source=str(pkn_path), binarized_source=str(binarized_path),
                          experiments_source=str(experiments_path), **options)


def run_infer_cli(pkn: PathLike, data: PathLike, fmt: str = "auto", experiments: PathLike | None = None,
                  out: PathLike = "networks", *, max_networks: int = 5, **options) -> InferenceResult:
    """`qspflow infer`: binarize `data` in memory as the prepare step does, infer, write `out` like the rule."""
    from qspflow.data import prepare  # see infer_files

    network = read_sif(pkn)
    prepared = prepare(data, fmt=fmt, experiments_path=experiments, known_nodes=network.nodes)
    result = infer_networks(network, prepared.binarized, prepared.experiments, pkn_source=str(pkn),
                            binarized_source=str(data), experiments_source=str(experiments or data), **options)
    write_networks(result, out, max_networks)
    return result
