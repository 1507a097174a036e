"""Boolean networks and signed prior knowledge networks (PKNs) as immutable values.

A `BooleanNetwork` has one logic rule per node; an input node's rule is the node itself, so it
keeps its value. States are tuples of 0/1 in node order. A `Pkn` is a set of signed edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from qspflow.boolean.expressions import (
    FALSE,
    NAME_EXPECTED,
    TRUE,
    Const,
    Expr,
    Not,
    PathLike,
    Var,
    conjunction,
    disjunction,
    evaluate,
    is_name,
    parse_expression,
    sign_of,
    variables,
)
from qspflow.errors import NetworkError


def _parse_node_rule(node: str, text: str, source: PathLike | None) -> Expr:
    """Parse the rule of `node` given outside a file: the error names the node, not a line."""
    try:
        return parse_expression(text)
    except NetworkError as err:
        where = f"at column {err.col} of '{text}'"
        raise NetworkError(source, key=node, expected=err.expected, found=err.found,
                           message=f"{err.detail} {where}" if err.detail else where) from None


def _check_network(nodes: Sequence[str], rules: Mapping[str, Expr], source: PathLike | None) -> None:
    """Raise `NetworkError` unless every node has a valid name and one rule over known nodes."""
    seen: set[str] = set()
    for node in nodes:
        if not isinstance(node, str) or not is_name(node):
            raise NetworkError(source, expected=NAME_EXPECTED, found=node)
        if node in seen:
            raise NetworkError(source, message=f"node '{node}' is listed twice")
        seen.add(node)
    for node in rules:
        if node not in seen:
            raise NetworkError(source, message=f"rule for unknown node '{node}'")
    for node in nodes:
        if node not in rules:
            raise NetworkError(source, message=f"node '{node}' has no rule")
        undefined = sorted(variables(rules[node]) - seen)
        if undefined:
            raise NetworkError(source, message=f"undefined node '{undefined[0]}' in the rule of '{node}'")


@dataclass(frozen=True)
class BooleanNetwork:
    """Nodes and one rule per node; an input node's rule is `Var(node)`, so it stays constant.

    `nodes` fixes the order of the state vectors. Networks are immutable and hashable.
    """

    nodes: tuple[str, ...]
    rules: Mapping[str, Expr]

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        _check_network(nodes, self.rules, None)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "rules", MappingProxyType({n: self.rules[n] for n in nodes}))

    def __hash__(self) -> int:
        return hash((self.nodes, tuple(self.rules.values())))

    @classmethod
    def from_rules(cls, rules: Mapping[str, Expr | str], *, source: PathLike | None = None) -> BooleanNetwork:
        """A network with the nodes in the order of `rules`; string rules are parsed."""
        parsed = {node: _parse_node_rule(node, r, source) if isinstance(r, str) else r for node, r in rules.items()}
        _check_network(tuple(parsed), parsed, source)
        return cls(tuple(parsed), parsed)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The nodes whose rule is the node itself, in node order."""
        return tuple(n for n in self.nodes if self.rules[n] == Var(n))

    def regulators(self, node: str) -> tuple[str, ...]:
        """The nodes in the rule of `node`, in node order; none for an input node."""
        rule = self.rules[node]
        if rule == Var(node):
            return ()
        names = variables(rule)
        return tuple(n for n in self.nodes if n in names)

    def edges(self) -> tuple[tuple[str, int, str], ...]:
        """Signed interaction graph `(source, sign, target)`, sorted; sign 0 is dual or no effect."""
        return tuple(sorted((s, sign_of(self.rules[t], s), t) for t in self.nodes for s in self.regulators(t)))

    def step(self, state: Sequence[int]) -> tuple[int, ...]:
        """The synchronous successor of `state`: every node takes its rule's value at once."""
        if len(state) != len(self.nodes):
            raise ValueError(f"state has {len(state)} values for {len(self.nodes)} nodes")
        values = dict(zip(self.nodes, state, strict=True))
        return tuple(int(evaluate(self.rules[n], values)) for n in self.nodes)

    def with_rules(self, **changes: Expr | str) -> BooleanNetwork:
        """A copy with the rules of some nodes replaced (string rules are parsed)."""
        for node in changes:
            if node not in self.rules:
                raise NetworkError(None, message=f"unknown node '{node}'")
        parsed = {n: _parse_node_rule(n, r, None) if isinstance(r, str) else r for n, r in changes.items()}
        return BooleanNetwork(self.nodes, {**self.rules, **parsed})


# --- prior knowledge networks -----------------------------------------------------------------


@dataclass(frozen=True)
class Pkn:
    """A signed prior knowledge network: edges `(source, sign, target)` with sign ±1, sorted."""

    edges: tuple[tuple[str, int, str], ...]

    def __post_init__(self) -> None:
        edges = tuple(sorted(set(self.edges)))
        signs: dict[tuple[str, str], int] = {}
        for source, sign, target in edges:
            if sign not in (1, -1):
                raise NetworkError(None, element=f"{source} -> {target}", expected="sign 1 or -1", found=sign)
            if signs.setdefault((source, target), sign) != sign:
                raise NetworkError(None, element=f"{source} -> {target}", message="edge with both signs")
        object.__setattr__(self, "edges", edges)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node that is the source or target of an edge, sorted."""
        return tuple(sorted({s for s, _, _ in self.edges} | {t for _, _, t in self.edges}))

    def parents(self, node: str) -> tuple[tuple[str, int], ...]:
        """The `(source, sign)` of the edges into `node`, sorted by source."""
        return tuple((s, sign) for s, sign, t in self.edges if t == node)


# --- random networks ---------------------------------------------------------------------------


def _expression_from_table(names: Sequence[str], table: Sequence[bool]) -> Expr:
    """A compact expression with truth table `table` (first name = top bit), by Shannon expansion."""
    if all(table):
        return TRUE
    if not any(table):
        return FALSE
    half = len(table) // 2
    low, high = table[:half], table[half:]
    if list(low) == list(high):
        return _expression_from_table(names[1:], low)
    x = Var(names[0])
    when_low, when_high = _expression_from_table(names[1:], low), _expression_from_table(names[1:], high)
    match when_low, when_high:
        case Const(False), Const(True):
            return x
        case Const(True), Const(False):
            return Not(x)
        case _, Const(True):
            return disjunction([x, when_low])
        case _, Const(False):
            return conjunction([Not(x), when_low])
        case Const(True), _:
            return disjunction([Not(x), when_high])
        case Const(False), _:
            return conjunction([x, when_high])
    return disjunction([conjunction([x, when_high]), conjunction([Not(x), when_low])])


def random_network(n_nodes: int, *, seed: int, min_inputs: int = 2, max_inputs: int = 3) -> BooleanNetwork:
    """A random network on nodes `x01…`: each node gets `min_inputs`–`max_inputs` distinct
    regulators (itself possible) and a random function that depends on every one of them."""
    rng = np.random.default_rng(seed)
    names = [f"x{i:0{len(str(n_nodes))}d}" for i in range(1, n_nodes + 1)]
    rules = {}
    for node in names:
        k = int(rng.integers(min(min_inputs, n_nodes), min(max_inputs, n_nodes) + 1))
        regulators = [names[i] for i in sorted(rng.choice(n_nodes, size=k, replace=False))]
        while True:
            table = rng.integers(0, 2, size=1 << k).astype(bool)
            rule = _expression_from_table(regulators, table.tolist())
            if variables(rule) == set(regulators):  # non-constant, and no dummy regulator
                break
        rules[node] = rule
    return BooleanNetwork(tuple(names), rules)
