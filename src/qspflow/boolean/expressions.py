"""Logic expressions of Boolean rules: Var/Const/Not/And/Or, the safe parser, formatting, truth tables.

Rules are parsed by a small operator-precedence parser (never `eval`, no recursion) in BoolNet's
`.bnet` syntax: `!` binds tighter than `&`, which binds tighter than `|`; a rule nests at most
`MAX_DEPTH` levels deep. In a truth table the first name is the most significant bit, so integer
order is the lexicographic order of the assignments.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qspflow.errors import NetworkError

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Var:
    """The value of a node."""

    name: str


@dataclass(frozen=True)
class Const:
    """A constant, true or false."""

    value: bool


@dataclass(frozen=True)
class Not:
    """Negation."""

    arg: Expr


@dataclass(frozen=True)
class And:
    """Conjunction of any number of terms (none: true)."""

    args: tuple[Expr, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))


@dataclass(frozen=True)
class Or:
    """Disjunction of any number of terms (none: false)."""

    args: tuple[Expr, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))


Expr = Var | Const | Not | And | Or

TRUE = Const(True)
FALSE = Const(False)


def evaluate(expr: Expr, state: Mapping[str, int | bool]) -> bool:
    """The value of `expr` when each variable takes its value in `state`."""
    match expr:
        case Var(name):
            return bool(state[name])
        case Const(value):
            return value
        case Not(arg):
            return not evaluate(arg, state)
        case And(args):
            return all(evaluate(a, state) for a in args)
        case Or(args):
            return any(evaluate(a, state) for a in args)
    raise TypeError(f"not an expression: {expr!r}")


def variables(expr: Expr) -> frozenset[str]:
    """The names of the variables that occur in `expr`."""
    match expr:
        case Var(name):
            return frozenset((name,))
        case Const():
            return frozenset()
        case Not(arg):
            return variables(arg)
        case And(args) | Or(args):
            return frozenset().union(*(variables(a) for a in args))
    raise TypeError(f"not an expression: {expr!r}")


def evaluate_array(expr: Expr, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """`expr` evaluated on many states at once; `columns` maps a name to a boolean array."""
    match expr:
        case Var(name):
            return columns[name]
        case Const(value):
            return np.bool_(value)
        case Not(arg):
            return np.logical_not(evaluate_array(arg, columns))
        case And(args):
            return functools.reduce(np.logical_and, (evaluate_array(a, columns) for a in args), np.bool_(True))
        case Or(args):
            return functools.reduce(np.logical_or, (evaluate_array(a, columns) for a in args), np.bool_(False))
    raise TypeError(f"not an expression: {expr!r}")


def bit_columns(names: Sequence[str]) -> dict[str, np.ndarray]:
    """All 2^n assignments of `names`, one boolean column each; the first name is the top bit."""
    n = len(names)
    index = np.arange(1 << n, dtype=np.int64)
    return {name: ((index >> (n - 1 - i)) & 1).astype(bool) for i, name in enumerate(names)}


def truth_table(expr: Expr, names: Sequence[str]) -> np.ndarray:
    """The values of `expr` over all 2^len(names) assignments, first name as the top bit.

    `names` must contain every variable of `expr`; two rules are equivalent exactly when their
    truth tables over the union of their variables are equal.
    """
    missing = variables(expr) - set(names)
    if missing:
        raise ValueError(f"truth table needs values for {sorted(missing)}")
    columns = bit_columns(names)
    return np.broadcast_to(evaluate_array(expr, columns), (1 << len(names),)).copy()


def sign_of(expr: Expr, var: str) -> int:
    """+1 if `expr` is monotone increasing in `var`, -1 if decreasing, 0 if neither.

    Decided on the truth table: 0 also when `expr` does not depend on `var` at all, and for a
    dual regulator (one that activates in some contexts and inhibits in others).
    """
    names = sorted(variables(expr) | {var})
    table = truth_table(expr, names)
    bit = 1 << (len(names) - 1 - names.index(var))
    low = np.flatnonzero((np.arange(table.size) & bit) == 0)
    change = table[low | bit].astype(np.int8) - table[low].astype(np.int8)
    if not change.any():
        return 0
    if (change >= 0).all():
        return 1
    if (change <= 0).all():
        return -1
    return 0


def conjunction(args: Sequence[Expr]) -> Expr:
    """A conjunction with nested conjunctions spliced in, as the parser builds it."""
    flat = tuple(b for a in args for b in (a.args if isinstance(a, And) else (a,)))
    return TRUE if not flat else flat[0] if len(flat) == 1 else And(flat)


def disjunction(args: Sequence[Expr]) -> Expr:
    """A disjunction with nested disjunctions spliced in, as the parser builds it."""
    flat = tuple(b for a in args for b in (a.args if isinstance(a, Or) else (a,)))
    return FALSE if not flat else flat[0] if len(flat) == 1 else Or(flat)


# --- parsing and formatting --------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<number>[0-9][A-Za-z0-9_.]*)|(?P<op>[!&|()])|(?P<bad>\S))"
)
_CONSTANTS = {"0": False, "1": True, "false": False, "true": True}
_ATOM_EXPECTED = "a node name, 0, 1, '!' or '('"
NAME_EXPECTED = "a node name [A-Za-z_][A-Za-z0-9_.]* other than true/false"
#: deepest nesting of operators in a rule ('!', and '&'/'|' inside parentheses; redundant parentheses
#: do not count): the walks over expressions recurse once per level, and real rules stay far below
MAX_DEPTH = 100


def is_name(text: str) -> bool:
    """Whether `text` can name a node: an identifier that the parser does not read as a constant."""
    return bool(NAME_PATTERN.fullmatch(text)) and text.lower() not in _CONSTANTS


class _Frame:
    """One parenthesis level while parsing: its finished OR-terms and the factors of its current
    AND-term (each with its depth), the '!'s waiting for the next factor, and the '!'s before its
    own '(' (applied to it when it closes)."""

    def __init__(self, negations: list[int], start: int) -> None:
        self.terms: list[tuple[Expr, int]] = []
        self.factors: list[tuple[Expr, int]] = []
        self.waiting: list[int] = []  # columns of '!'s
        self.negations = negations
        self.start = start  # column of its '(' (of the rule's first token at the top)


def _joined(items: list[tuple[Expr, int]], kind: type[And] | type[Or]) -> tuple[Expr, int]:
    """The conjunction or disjunction of `items` (expression, depth) as the parser builds it, with
    its depth: a spliced operand's arguments are one level shallower than the operand."""
    expr = (conjunction if kind is And else disjunction)([e for e, _ in items])
    if len(items) == 1 and expr is items[0][0]:
        return items[0]
    return expr, 1 + max(d - 1 if isinstance(e, kind) else d for e, d in items)


class _Parser:
    """Operator precedence without recursion (`or := and ('|' and)*`, `and := not ('&' not)*`,
    `not := '!' not | '(' or ')' | name | constant`): a stack of open parentheses, so any number
    of redundant parentheses parses, and the depth of the expression built is checked against
    `MAX_DEPTH` as it grows."""

    def __init__(self, text: str, source: PathLike | None, line: int, column: int) -> None:
        self.source, self.line = source, line
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, column)
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind), column + match.start(kind)))
        self.end_column = column + len(text.rstrip())
        self.pos = 0

    def error(self, expected: str) -> NetworkError:
        if self.pos < len(self.tokens):
            _, text, col = self.tokens[self.pos]
            return NetworkError(self.source, line=self.line, col=col, expected=expected, found=text)
        return NetworkError(self.source, line=self.line, col=self.end_column, expected=expected,
                            message="found the end of the rule")

    def checked(self, item: tuple[Expr, int], negations: list[int], start: int) -> tuple[Expr, int]:
        """`item` under `negations`, refused if deeper than `MAX_DEPTH` (naming where it starts)."""
        expr, depth = item
        for _ in negations:
            expr, depth = Not(expr), depth + 1
        if depth > MAX_DEPTH:
            raise NetworkError(self.source, line=self.line, col=negations[0] if negations else start,
                               expected=f"a rule nested at most {MAX_DEPTH} levels deep",
                               message=f"the part starting here nests {depth} levels")
        return expr, depth

    def parse(self) -> Expr:
        stack = [_Frame([], self.tokens[0][2] if self.tokens else self.end_column)]
        operand_next = True
        for self.pos, (kind, text, col) in enumerate(self.tokens):
            frame = stack[-1]
            if operand_next:
                if text == "!":
                    frame.waiting.append(col)
                    continue
                if text == "(":
                    stack.append(_Frame(frame.waiting, col))
                    frame.waiting = []
                    continue
                if kind in ("name", "number") and text.lower() in _CONSTANTS:
                    atom: Expr = Const(_CONSTANTS[text.lower()])
                elif kind == "name":
                    atom = Var(text)
                else:
                    raise self.error(_ATOM_EXPECTED)
                frame.factors.append(self.checked((atom, 1), frame.waiting, col))
                frame.waiting = []
                operand_next = False
            elif text == "&":
                operand_next = True
            elif text == "|":
                frame.terms.append(self.checked(_joined(frame.factors, And), [], frame.start))
                frame.factors = []
                operand_next = True
            elif text == ")" and len(stack) > 1:
                stack.pop()
                group = _joined([*frame.terms, self.checked(_joined(frame.factors, And), [], frame.start)], Or)
                stack[-1].factors.append(self.checked(group, frame.negations, frame.start))
            else:
                raise self.error("'&', '|' or ')'" if len(stack) > 1 else "'&', '|' or the end of the rule")
        self.pos = len(self.tokens)
        if operand_next:
            raise self.error(_ATOM_EXPECTED)
        if len(stack) > 1:
            raise self.error("'&', '|' or ')'")
        top = stack[0]
        return self.checked(_joined([*top.terms, self.checked(_joined(top.factors, And), [], top.start)], Or),
                            [], top.start)[0]


def parse_expression(text: str, *, source: PathLike | None = None, line: int | None = None,
                     column: int = 1) -> Expr:
    """Parse a rule in `.bnet` syntax: `!` binds tighter than `&`, which binds tighter than `|`.

    Names are `[A-Za-z_][A-Za-z0-9_.]*`; `0`, `1`, `true` and `false` (any case) are constants. A syntax
    error raises `NetworkError` with the line (1 unless given) and the 1-based column, counted from
    `column` for the rule's first character (where the rule starts in its file line).
    """
    return _Parser(text, source, 1 if line is None else line, column).parse()


def format_expression(expr: Expr) -> str:
    """`expr` in `.bnet` syntax with the fewest parentheses: `!a & b | c`."""
    return _format(expr, 0)


def _format(expr: Expr, context: int) -> str:
    """Format `expr` inside an operator of binding strength `context` (| 1, & 2, ! 3)."""
    match expr:
        case Var(name):
            return name
        case Const(value):
            return "1" if value else "0"
        case Not(arg):
            return "!" + _format(arg, 3)
        case And(args) | Or(args) if len(args) == 1:
            return _format(args[0], context)
        case And(()):
            return "1"
        case Or(()):
            return "0"
        case And(args):
            text, strength = " & ".join(_format(a, 2) for a in args), 2
        case Or(args):
            text, strength = " | ".join(_format(a, 1) for a in args), 1
        case _:
            raise TypeError(f"not an expression: {expr!r}")
    return f"({text})" if context > strength else text
