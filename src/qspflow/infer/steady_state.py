"""Steady-state inference (CellNOpt style) by answer set programming; see `qspflow.infer`."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import clingo

from qspflow.boolean import BooleanNetwork, Pkn, Var, evaluate
from qspflow.errors import NetworkError
from qspflow.infer.ensemble import Candidate, InferenceResult, Term, Weights, dnf_rule, ranked, rule_size
from qspflow.infer.observations import SteadyStateData, check_nodes

log = logging.getLogger("qspflow.infer")


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


# --- the candidate space and its semantics ----------------------------------------------------


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


# --- the answer set program ------------------------------------------------------------------

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
    check_nodes(pkn, (*data.readouts, *data.stimuli, *data.inhibited), None, "node")
    weights = Weights.of(size_penalty)
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
        size = rule_size(term_ids[j][1] for j in model.terms)
        candidates.append(Candidate(space.network(chosen), len(model.missed), size, missed))
    return ranked(candidates, weights, size_penalty, "steady_state", max_models, complete)

