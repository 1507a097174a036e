"""Time-series inference by the best-fit extension (Lähdesmäki et al. 2003); see `qspflow.infer`."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qspflow.boolean import BooleanNetwork, Expr, Pkn, Var, format_expression
from qspflow.errors import ConfigError
from qspflow.infer.ensemble import Candidate, InferenceResult, Weights, dnf_rule, ranked, rule_size
from qspflow.infer.observations import TimeSeriesData
from qspflow.io import format_float

log = logging.getLogger("qspflow.infer")

MAX_TIME_SERIES_INPUTS = 4  # best-fit enumerates truth tables on up to 2^4 regulator states


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
    return dnf_rule(terms), rule_size(terms)


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
    weights = Weights.of(size_penalty)
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
        candidates.append(Candidate(BooleanNetwork(data.nodes, rules), sum(f.errors for f in functions),
                                     sum(f.size for f in functions),
                                     [f"{e}:{n}@{format_float(t)}" for e, t, n in missed]))
    return ranked(candidates, weights, size_penalty, "time_series", max_models, total <= max_models)


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

