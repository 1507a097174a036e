"""The ranked ensemble: rules from AND-terms, the score, ranking and `InferenceResult`.

Ranking: by score (`mismatches + size_penalty × size`), then size, then the `.bnet` text; ids
`net_1`, `net_2`, ... in that order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from qspflow.boolean import FALSE, TRUE, And, BooleanNetwork, Expr, Not, Or, Var, bnet_text, sbml_qual_text
from qspflow.errors import ConfigError
from qspflow.io import table_text

log = logging.getLogger("qspflow.infer")

INDEX_COLUMNS = ("network", "score", "mismatches", "size", "missed")

Literal = tuple[str, int]  # (node, sign): sign 1 is `node`, -1 is `!node`
Term = tuple[Literal, ...]  # a conjunction, literals sorted by node


def _term_expr(term: Term) -> Expr:
    """The AND of a term's signed literals."""
    literals = [Var(n) if sign > 0 else Not(Var(n)) for n, sign in term]
    return TRUE if not literals else literals[0] if len(literals) == 1 else And(tuple(literals))


def dnf_rule(terms: Iterable[Term]) -> Expr:
    """The OR of `terms` (each an AND of signed literals), in a canonical order: shorter terms first."""
    ordered = sorted(set(terms), key=lambda t: (len(t), t))
    exprs = [_term_expr(t) for t in ordered]
    return FALSE if not exprs else exprs[0] if len(exprs) == 1 else Or(tuple(exprs))


def rule_size(terms: Iterable[Term]) -> int:
    """The number of literals over all `terms`."""
    return sum(len(t) for t in terms)


@dataclass(frozen=True)
class Weights:
    """Integer weights of the score: `mismatch × mismatches + literal × size` = denominator × score."""

    mismatch: int
    literal: int

    @classmethod
    def of(cls, size_penalty: float) -> Weights:
        ratio = Fraction(size_penalty).limit_denominator(10**6)
        if ratio <= 0:
            raise ConfigError(None, key="infer.size_penalty", expected="a number ≥ 1e-6", found=size_penalty)
        return cls(ratio.denominator, ratio.numerator)

    def key(self, mismatches: int, size: int) -> int:
        return self.mismatch * mismatches + self.literal * size


@dataclass(frozen=True)
class Candidate:
    """A network found by a method, with its fit (mismatches and what they are) and size."""

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


def ranked(candidates: list[Candidate], weights: Weights, size_penalty: float, method: str,
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
    order = [c for _, c in keyed]
    index = pd.DataFrame({
        "network": pd.Series([f"net_{i}" for i in range(1, len(order) + 1)], dtype="str"),
        "score": np.array([c.mismatches + size_penalty * c.size for c in order], dtype=float),
        "mismatches": np.array([c.mismatches for c in order], dtype=np.int64),
        "size": np.array([c.size for c in order], dtype=np.int64),
        "missed": pd.Series([";".join(c.missed) for c in order], dtype="str"),
    })
    return InferenceResult(index, tuple(c.network for c in order), method, complete and len(candidates) <= max_models)


def ensemble_texts(result: InferenceResult, max_networks: int) -> tuple[str, dict[str, tuple[str, str]]]:
    """The best `max_networks` of `result`: their index table as canonical TSV text, and each
    network's `.bnet` and SBML-qual text by network id, best first."""
    index = result.index.iloc[:max_networks]
    texts = {name: (bnet_text(net), sbml_qual_text(net)) for name, net in zip(index["network"], result.networks)}
    return table_text(index), texts

