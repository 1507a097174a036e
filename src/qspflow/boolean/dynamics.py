"""Dynamics of Boolean networks: synchronous and asynchronous attractors, steady states.

Inside the exhaustive searches a state is an integer whose most significant bit is the first
node, so integer order is the lexicographic order of the state tuples. Steady states of large
networks are found by clingo without enumerating the states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import clingo
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from qspflow.boolean.expressions import And, Const, Expr, Not, Or, PathLike, Var, bit_columns, evaluate_array
from qspflow.boolean.network import BooleanNetwork
from qspflow.errors import NetworkError

MAX_SYNCHRONOUS_NODES = 22  # 2^22 states: a few arrays of 32 MiB
MAX_ASYNCHRONOUS_NODES = 20  # up to n * 2^n transitions held as a sparse matrix


@dataclass(frozen=True)
class Attractor:
    """An attractor: its states in canonical order, its kind and (synchronous) basin size.

    A cycle starts at its smallest state and follows the update; complex attractors (terminal
    strongly connected components under asynchronous update) list their states sorted.
    """

    states: tuple[tuple[int, ...], ...]
    type: str  # "steady", "cycle" or "complex"
    basin: int | None

    @property
    def size(self) -> int:
        """The number of states in the attractor."""
        return len(self.states)


def _decode(code: int, n: int) -> tuple[int, ...]:
    """The state tuple of an integer code (first node = top bit)."""
    return tuple((code >> (n - 1 - i)) & 1 for i in range(n))


def _successors(net: BooleanNetwork) -> np.ndarray:
    """The synchronous successor code of every state code, computed on all 2^n states at once."""
    n = len(net.nodes)
    columns = bit_columns(net.nodes)
    successor = np.zeros(1 << n, dtype=np.int64)
    for i, node in enumerate(net.nodes):
        value = np.broadcast_to(evaluate_array(net.rules[node], columns), successor.shape)
        successor |= value.astype(np.int64) << (n - 1 - i)
    return successor


def _check_size(net: BooleanNetwork, limit: int, update: str, source: PathLike | None) -> None:
    """Refuse an exhaustive search whose state space would not fit in memory."""
    if len(net.nodes) > limit:
        raise NetworkError(source, expected=f"at most {limit} nodes for an exhaustive {update} attractor search",
                           found=f"{len(net.nodes)} nodes", message="steady_states works on large networks")


def attractors(net: BooleanNetwork, update: str = "synchronous", *, source: PathLike | None = None) -> list[Attractor]:
    """All attractors by exhaustive search over the 2^n states, sorted by (size, states).

    `update="synchronous"`: every node at once; cycles ("steady" or "cycle") with basin sizes.
    `update="asynchronous"` (general asynchronous: one node changes per transition): the terminal
    strongly connected components, "steady" for a single state and "complex" otherwise. `source`
    names the network's file when it is too large.
    """
    if update == "synchronous":
        _check_size(net, MAX_SYNCHRONOUS_NODES, update, source)
        found = _synchronous_attractors(net)
    elif update == "asynchronous":
        _check_size(net, MAX_ASYNCHRONOUS_NODES, update, source)
        found = _asynchronous_attractors(net)
    else:
        raise ValueError(f"update must be 'synchronous' or 'asynchronous', not {update!r}")
    return sorted(found, key=lambda a: (a.size, a.states))


def _synchronous_attractors(net: BooleanNetwork) -> list[Attractor]:
    """Cycles of the successor map, found by pointer doubling.

    After k rounds `jump` is the 2^k-th successor and `least` the smallest state among the first
    2^k states of the orbit. With 2^n >= number of states, `jump` lands every state on its
    attractor and `least` of an attractor state is its attractor's smallest state: a label.
    """
    n = len(net.nodes)
    successor = _successors(net)
    jump, least = successor, np.arange(successor.size, dtype=np.int64)
    for _ in range(n):
        least = np.minimum(least, least[jump])
        jump = jump[jump]
    label = least[jump]
    basins = np.bincount(label, minlength=successor.size)
    found = []
    for start in np.flatnonzero(basins):
        cycle, code = [int(start)], int(successor[start])
        while code != start:
            cycle.append(code)
            code = int(successor[code])
        found.append(Attractor(tuple(_decode(c, n) for c in cycle),
                               "steady" if len(cycle) == 1 else "cycle", int(basins[start])))
    return found


def _asynchronous_attractors(net: BooleanNetwork) -> list[Attractor]:
    """Terminal strongly connected components of the asynchronous state transition graph."""
    n = len(net.nodes)
    codes = np.arange(1 << n, dtype=np.int64)
    changing = _successors(net) ^ codes  # bits of the nodes whose rule disagrees with their value
    sources, targets = [], []
    for i in range(n):
        bit = 1 << i
        movers = codes[(changing & bit) != 0]
        sources.append(movers)
        targets.append(movers ^ bit)
    source, target = np.concatenate(sources), np.concatenate(targets)
    graph = coo_matrix((np.ones(source.size, dtype=np.int8), (source, target)), shape=(codes.size,) * 2).tocsr()
    # scipy's strong components are Pearce's iterative variant of Tarjan's algorithm
    count, component = connected_components(graph, directed=True, connection="strong")
    leaves = np.ones(count, dtype=bool)
    leaves[component[source][component[source] != component[target]]] = False
    found = []
    for c in np.flatnonzero(leaves):
        members = np.flatnonzero(component == c)
        found.append(Attractor(tuple(_decode(int(m), n) for m in members),
                               "steady" if members.size == 1 else "complex", None))
    return found


def steady_states(net: BooleanNetwork) -> list[tuple[int, ...]]:
    """All fixed points (states equal to their successor), sorted; works for large networks.

    Solved with clingo: each node is a free choice, each subexpression an atom defined by its
    operands, and each node must equal its rule. No enumeration of the 2^n states.
    """
    control = clingo.Control(["0", "--warn=none"])  # "0": enumerate all models
    memo: dict[Expr, int] = {}
    with control.backend() as backend:
        value = {node: backend.add_atom(clingo.Function("x", [clingo.Number(i)])) for i, node in enumerate(net.nodes)}
        for atom in value.values():
            backend.add_rule([atom], choice=True)

        def holds(expr: Expr) -> int:
            """An atom true exactly when `expr` is true (stratified: defined from its operands)."""
            if isinstance(expr, Var):
                return value[expr.name]
            if expr not in memo:
                atom = backend.add_atom()
                match expr:
                    case Const(value=True):
                        backend.add_rule([atom])  # Const(False): an atom without rules stays false
                    case Not(arg):
                        backend.add_rule([atom], [-holds(arg)])
                    case And(args):
                        backend.add_rule([atom], [holds(a) for a in args])
                    case Or(args):
                        for a in args:
                            backend.add_rule([atom], [holds(a)])
                memo[expr] = atom
            return memo[expr]

        for node in net.nodes:
            rule = holds(net.rules[node])
            backend.add_rule([], [value[node], -rule])
            backend.add_rule([], [-value[node], rule])
    found: list[tuple[int, ...]] = []
    control.solve(on_model=lambda m: found.append(tuple(int(m.is_true(value[n])) for n in net.nodes)))
    return sorted(found)


def attractors_table(found: Sequence[Attractor], net: BooleanNetwork) -> pd.DataFrame:
    """One row per attractor: index (from 1), type, size, basin (empty if unknown), states, nodes.

    States are 0/1 strings in the node order of `net`, separated by semicolons; `nodes` names
    that order (comma-separated), so each row says which node each position is.
    """
    for attractor in found:
        if any(len(s) != len(net.nodes) for s in attractor.states):
            raise ValueError("attractor states do not match the network's nodes")
    return pd.DataFrame({
        "attractor": pd.Series(range(1, len(found) + 1), dtype="int64"),
        "type": pd.Series([a.type for a in found], dtype="object"),
        "size": pd.Series([a.size for a in found], dtype="int64"),
        "basin": pd.Series([pd.NA if a.basin is None else a.basin for a in found], dtype="Int64"),
        "states": pd.Series([";".join("".join(map(str, s)) for s in a.states) for a in found], dtype="object"),
        "nodes": pd.Series([",".join(net.nodes)] * len(found), dtype="object"),
    })
