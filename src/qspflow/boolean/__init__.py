"""Boolean networks: logic expressions, `.bnet`/SBML-qual/SIF I/O, dynamics and attractors.

A `BooleanNetwork` has one logic rule per node; an input node's rule is the node itself, so it
keeps its value. States are tuples of 0/1 in node order; inside the exhaustive searches a state
is an integer whose most significant bit is the first node, so integer order is the
lexicographic order of the tuples.

Rules are parsed by a small recursive-descent parser (never `eval`). Exchange formats:
BoolNet's `.bnet`, SBML-qual (as GINsim, bioLQM and CellCollective write it) and SIF for signed
prior knowledge networks (PKNs).
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from qspflow.errors import NetworkError
from qspflow.io import write_text

log = logging.getLogger("qspflow.boolean")

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
SBML_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SYNCHRONOUS_NODES = 22  # 2^22 states: a few arrays of 32 MiB
MAX_ASYNCHRONOUS_NODES = 20  # up to n * 2^n transitions held as a sparse matrix

PathLike = str | os.PathLike[str]


# --- expressions -------------------------------------------------------------------------------


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


def _evaluate_array(expr: Expr, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """`expr` evaluated on many states at once; `columns` maps a name to a boolean array."""
    match expr:
        case Var(name):
            return columns[name]
        case Const(value):
            return np.bool_(value)
        case Not(arg):
            return np.logical_not(_evaluate_array(arg, columns))
        case And(args):
            return functools.reduce(np.logical_and, (_evaluate_array(a, columns) for a in args), np.bool_(True))
        case Or(args):
            return functools.reduce(np.logical_or, (_evaluate_array(a, columns) for a in args), np.bool_(False))
    raise TypeError(f"not an expression: {expr!r}")


def _bit_columns(names: Sequence[str]) -> dict[str, np.ndarray]:
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
    columns = _bit_columns(names)
    return np.broadcast_to(_evaluate_array(expr, columns), (1 << len(names),)).copy()


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


def _and(args: Sequence[Expr]) -> Expr:
    """A conjunction with nested conjunctions spliced in, as the parser builds it."""
    flat = tuple(b for a in args for b in (a.args if isinstance(a, And) else (a,)))
    return TRUE if not flat else flat[0] if len(flat) == 1 else And(flat)


def _or(args: Sequence[Expr]) -> Expr:
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


def _is_name(text: str) -> bool:
    """Whether `text` can name a node: an identifier that the parser does not read as a constant."""
    return bool(NAME_PATTERN.fullmatch(text)) and text.lower() not in _CONSTANTS


class _Parser:
    """Recursive descent over `or := and ('|' and)*`, `and := not ('&' not)*`,
    `not := '!' not | '(' or ')' | name | constant`."""

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

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def parse(self) -> Expr:
        expr = self.disjunction(closing=False)
        if self.pos < len(self.tokens):
            raise self.error("'&', '|' or the end of the rule")
        return expr

    def disjunction(self, closing: bool) -> Expr:
        terms = [self.conjunction()]
        while self.peek() == "|":
            self.pos += 1
            terms.append(self.conjunction())
        if closing and self.peek() != ")":
            raise self.error("'&', '|' or ')'")
        return _or(terms)

    def conjunction(self) -> Expr:
        factors = [self.negation()]
        while self.peek() == "&":
            self.pos += 1
            factors.append(self.negation())
        return _and(factors)

    def negation(self) -> Expr:
        if self.pos >= len(self.tokens):
            raise self.error(_ATOM_EXPECTED)
        kind, text, _ = self.tokens[self.pos]
        if text == "!":
            self.pos += 1
            return Not(self.negation())
        if text == "(":
            self.pos += 1
            expr = self.disjunction(closing=True)
            self.pos += 1
            return expr
        if kind in ("name", "number") and text.lower() in _CONSTANTS:
            self.pos += 1
            return Const(_CONSTANTS[text.lower()])
        if kind == "name":
            self.pos += 1
            return Var(text)
        raise self.error(_ATOM_EXPECTED)


def parse_expression(text: str, *, source: PathLike | None = None, line: int | None = None) -> Expr:
    """Parse a rule in `.bnet` syntax: `!` binds tighter than `&`, which binds tighter than `|`.

    Names are `[A-Za-z_][A-Za-z0-9_.]*`; `0`, `1`, `true` and `false` (any case) are constants. A syntax
    error raises `NetworkError` with the line (1 unless given) and the 1-based column.
    """
    return _Parser(text, source, 1 if line is None else line, 1).parse()


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


# --- networks ----------------------------------------------------------------------------------


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
        if not isinstance(node, str) or not _is_name(node):
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


# --- .bnet -------------------------------------------------------------------------------------


def parse_bnet(text: str, *, source: PathLike | None = None) -> BooleanNetwork:
    """A network from BoolNet `.bnet` text: `node, rule` per line, `#` comments, optional header."""
    rules: dict[str, Expr] = {}
    first_line: dict[str, int] = {}
    header_allowed = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        target, comma, rule = line.partition(",")
        if not comma:
            raise NetworkError(source, line=number, expected="'node, rule'", found=line.strip())
        name = target.strip()
        if header_allowed and name.lower() == "targets" and rule.strip().lower() == "factors":
            header_allowed = False
            continue
        header_allowed = False
        if not _is_name(name):
            col = len(target) - len(target.lstrip()) + 1
            raise NetworkError(source, line=number, col=col, expected=NAME_EXPECTED, found=name)
        if name in rules:
            raise NetworkError(source, line=number,
                               message=f"second rule for '{name}' (first on line {first_line[name]})")
        rules[name] = _Parser(rule, source, number, len(target) + 2).parse()  # columns as in the file
        first_line[name] = number
    if not rules:
        raise NetworkError(source, expected="at least one 'node, rule' line")
    for name, rule in rules.items():
        undefined = sorted(variables(rule) - rules.keys())
        if undefined:
            raise NetworkError(source, line=first_line[name],
                               message=f"undefined node '{undefined[0]}' in the rule of '{name}' (it has no rule)")
    return BooleanNetwork.from_rules(rules, source=source)


def _read_text(path: PathLike) -> str:
    """A text file's contents, or a `NetworkError` that says why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise NetworkError(path, message=f"cannot read the file ({err.strerror})") from None
    except UnicodeDecodeError:
        raise NetworkError(path, expected="UTF-8 text") from None


def read_bnet(path: PathLike) -> BooleanNetwork:
    """Read a BoolNet `.bnet` file."""
    return parse_bnet(_read_text(path), source=path)


def bnet_text(net: BooleanNetwork) -> str:
    """Canonical `.bnet` text: header, then `node, rule` per node in node order."""
    lines = ["targets, factors"] + [f"{n}, {format_expression(net.rules[n])}" for n in net.nodes]
    return "\n".join(lines) + "\n"


def write_bnet(net: BooleanNetwork, path: PathLike) -> None:
    """Write `net` as canonical `.bnet`, atomically."""
    write_text(bnet_text(net), path)


# --- SBML-qual ---------------------------------------------------------------------------------


def _unique_id(base: str, taken: set[str]) -> str:
    """`base`, or `base` with underscores appended, whichever is not yet taken; marks it taken."""
    candidate = base
    while candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def _math(expr: Expr):  # -> libsbml.ASTNode
    """MathML for a rule: `eq(x, 1)` for a node, and/or/not, true/false."""
    import libsbml

    match expr:
        case Var(name):
            node = libsbml.ASTNode(libsbml.AST_RELATIONAL_EQ)
            species = libsbml.ASTNode(libsbml.AST_NAME)
            species.setName(name)
            level = libsbml.ASTNode(libsbml.AST_INTEGER)
            level.setValue(1)
            node.addChild(species)
            node.addChild(level)
            return node
        case Const(value):
            return libsbml.ASTNode(libsbml.AST_CONSTANT_TRUE if value else libsbml.AST_CONSTANT_FALSE)
        case And(args) | Or(args) if len(args) == 1:
            return _math(args[0])
        case And(()) | Or(()):
            return _math(Const(isinstance(expr, And)))
    kind = {Not: libsbml.AST_LOGICAL_NOT, And: libsbml.AST_LOGICAL_AND, Or: libsbml.AST_LOGICAL_OR}[type(expr)]
    node = libsbml.ASTNode(kind)
    for arg in (expr.arg,) if isinstance(expr, Not) else expr.args:
        node.addChild(_math(arg))
    return node


def _sbml_document(net: BooleanNetwork):  # -> libsbml.SBMLDocument
    """An SBML L3V1 qual document: one species per node, one transition per non-input node."""
    import libsbml

    for node in net.nodes:
        if not SBML_ID_PATTERN.fullmatch(node):
            raise NetworkError(None, element=node, expected="a node name that is a valid SBML id (no '.')")
    doc = libsbml.SBMLDocument(libsbml.SBMLNamespaces(3, 1, "qual", 1))
    doc.setPackageRequired("qual", True)
    taken = set(net.nodes)
    model = doc.createModel()
    model.setId(_unique_id("boolean_network", taken))
    compartment = model.createCompartment()
    compartment.setId(_unique_id("cell", taken))
    compartment.setConstant(True)
    qual = model.getPlugin("qual")
    inputs = set(net.inputs)
    for node in net.nodes:
        species = qual.createQualitativeSpecies()
        species.setId(node)
        species.setCompartment(compartment.getId())
        species.setConstant(node in inputs)
        species.setMaxLevel(1)
    signs = {1: libsbml.INPUT_SIGN_POSITIVE, -1: libsbml.INPUT_SIGN_NEGATIVE, 0: libsbml.INPUT_SIGN_UNKNOWN}
    for node in net.nodes:
        if node in inputs:
            continue
        rule = net.rules[node]
        transition = qual.createTransition()
        transition.setId(_unique_id(f"tr_{node}", taken))
        for regulator in net.regulators(node):
            item = transition.createInput()
            item.setId(_unique_id(f"{transition.getId()}_in_{regulator}", taken))
            item.setQualitativeSpecies(regulator)
            item.setTransitionEffect(libsbml.INPUT_TRANSITION_EFFECT_NONE)
            item.setSign(signs[sign_of(rule, regulator)])
            item.setThresholdLevel(1)
        output = transition.createOutput()
        output.setId(_unique_id(f"{transition.getId()}_out", taken))
        output.setQualitativeSpecies(node)
        output.setTransitionEffect(libsbml.OUTPUT_TRANSITION_EFFECT_ASSIGNMENT_LEVEL)
        transition.createDefaultTerm().setResultLevel(0)
        term = transition.createFunctionTerm()
        term.setResultLevel(1)
        term.setMath(_math(rule))
    return doc


def sbml_qual_text(net: BooleanNetwork) -> str:
    """`net` as SBML-qual text (Level 3 Version 1, qual Version 1)."""
    import libsbml

    return libsbml.writeSBMLToString(_sbml_document(net)).replace("\r\n", "\n")


def write_sbml_qual(net: BooleanNetwork, path: PathLike) -> None:
    """Write `net` as SBML-qual, atomically. Node names must be SBML ids (no '.')."""
    write_text(sbml_qual_text(net), path)


def read_sbml_qual(path: PathLike) -> BooleanNetwork:
    """Read a Boolean SBML-qual model (GINsim, bioLQM, CellCollective and our own exports).

    Nodes are the qualitative species ids in file order; a species without a transition is an
    input. A transition's rule is the OR of its function terms of result level 1 (default 0),
    or the negation of the OR of its result-0 terms (default 1).
    """
    import libsbml

    if not os.path.isfile(path):
        raise NetworkError(path, message="cannot read the file (no such file)")
    return _network_from_sbml(libsbml.readSBMLFromFile(os.fspath(path)), path)


def parse_sbml_qual(text: str, *, source: PathLike | None = None) -> BooleanNetwork:
    """A network from SBML-qual text; see `read_sbml_qual`."""
    import libsbml

    return _network_from_sbml(libsbml.readSBMLFromString(text), source)


def _network_from_sbml(doc, source: PathLike | None) -> BooleanNetwork:
    """Convert a parsed libsbml document, raising `NetworkError` for what is not Boolean qual."""
    import libsbml

    for i in range(doc.getNumErrors()):
        error = doc.getError(i)
        if error.getSeverity() >= libsbml.LIBSBML_SEV_ERROR:
            raise NetworkError(source, line=error.getLine() or None,
                               message=f"not readable SBML: {error.getShortMessage() or error.getMessage().strip()}")
    model = doc.getModel()
    if model is None:
        raise NetworkError(source, expected="an SBML model", message="found none")
    qual = model.getPlugin("qual")
    if qual is None:
        raise NetworkError(source, element=model.getId() or "model", expected="an SBML-qual model (qual package)")
    rules: dict[str, Expr] = {}
    for i in range(qual.getNumQualitativeSpecies()):
        species = qual.getQualitativeSpecies(i)
        if species.isSetMaxLevel() and species.getMaxLevel() > 1:
            raise NetworkError(source, element=species.getId(), expected="a Boolean species (maxLevel 1)",
                               found=f"maxLevel {species.getMaxLevel()}")
        rules[species.getId()] = Var(species.getId())
    defined: set[str] = set()
    for i in range(qual.getNumTransitions()):
        transition = qual.getTransition(i)
        where = transition.getId() or f"transition {i + 1}"
        if transition.getNumOutputs() != 1:
            raise NetworkError(source, element=where, expected="one output",
                               found=f"{transition.getNumOutputs()} outputs")
        target = transition.getOutput(0).getQualitativeSpecies()
        if target not in rules:
            raise NetworkError(source, element=where, message=f"output '{target}' is not a qualitative species")
        if target in defined:
            raise NetworkError(source, element=where, message=f"second transition for '{target}'")
        defined.add(target)
        rules[target] = _transition_rule(transition, rules.keys(), source, where)
    return BooleanNetwork.from_rules(rules, source=source)


def _level(value: float, source: PathLike | None, where: str) -> int:
    """A Boolean result level (0 or 1)."""
    if value not in (0, 1):
        raise NetworkError(source, element=where, expected="result level 0 or 1", found=value)
    return int(value)


def _transition_rule(transition, species: Collection[str], source: PathLike | None, where: str) -> Expr:
    """The rule of one transition's output from its default and function terms."""
    thresholds = {}
    for i in range(transition.getNumInputs()):
        item = transition.getInput(i)
        if item.isSetThresholdLevel():
            thresholds[item.getId()] = item.getThresholdLevel()
    default = 0
    if transition.isSetDefaultTerm():
        default = _level(transition.getDefaultTerm().getResultLevel(), source, where)
    terms: list[Expr] = []
    for i in range(transition.getNumFunctionTerms()):
        term = transition.getFunctionTerm(i)
        if _level(term.getResultLevel(), source, where) != default:
            terms.append(_expression_from_math(term.getMath(), species, thresholds, source, where))
    if default == 0:
        return _or(terms)
    return Not(_or(terms)) if terms else TRUE


_FLIPPED = {"eq": "eq", "neq": "neq", "lt": "gt", "gt": "lt", "leq": "geq", "geq": "leq"}
_COMPARE = {"eq": operator.eq, "neq": operator.ne, "lt": operator.lt, "gt": operator.gt,
            "leq": operator.le, "geq": operator.ge}


def _expression_from_math(ast, species: Collection[str], thresholds: Mapping[str, float],
                          source: PathLike | None, where: str) -> Expr:
    """An `Expr` from function-term MathML: and/or/not/xor, true/false, comparisons of a species
    with a number or an input's threshold (either side)."""
    import libsbml

    if ast is None:
        raise NetworkError(source, element=where, expected="MathML in every function term")
    kind = ast.getType()
    children = [ast.getChild(i) for i in range(ast.getNumChildren())]

    def sub(child):
        return _expression_from_math(child, species, thresholds, source, where)

    if kind == libsbml.AST_LOGICAL_AND:
        return _and([sub(c) for c in children])
    if kind == libsbml.AST_LOGICAL_OR:
        return _or([sub(c) for c in children])
    if kind == libsbml.AST_LOGICAL_NOT and len(children) == 1:
        return Not(sub(children[0]))
    if kind == libsbml.AST_LOGICAL_XOR and len(children) == 2:
        a, b = sub(children[0]), sub(children[1])
        return Or((And((a, Not(b))), And((Not(a), b))))
    if kind in (libsbml.AST_CONSTANT_TRUE, libsbml.AST_CONSTANT_FALSE):
        return Const(kind == libsbml.AST_CONSTANT_TRUE)
    if kind == libsbml.AST_NAME and ast.getName() in species:
        return Var(ast.getName())  # a bare Boolean species: true when at level 1
    relations = {libsbml.AST_RELATIONAL_EQ: "eq", libsbml.AST_RELATIONAL_NEQ: "neq",
                 libsbml.AST_RELATIONAL_LT: "lt", libsbml.AST_RELATIONAL_GT: "gt",
                 libsbml.AST_RELATIONAL_LEQ: "leq", libsbml.AST_RELATIONAL_GEQ: "geq"}
    if kind in relations and len(children) == 2:
        relation = relations[kind]
        left, right = children
        if not (left.getType() == libsbml.AST_NAME and left.getName() in species):
            left, right, relation = right, left, _FLIPPED[relation]
        if left.getType() != libsbml.AST_NAME or left.getName() not in species:
            raise NetworkError(source, element=where, expected="a comparison of a qualitative species with a level",
                               found=libsbml.formulaToL3String(ast))
        level = _number(right, thresholds, source, where)
        satisfied = [v for v in (0, 1) if _COMPARE[relation](v, level)]
        if len(satisfied) == 2:
            return TRUE
        if not satisfied:
            return FALSE
        return Var(left.getName()) if satisfied == [1] else Not(Var(left.getName()))
    raise NetworkError(source, element=where, expected="Boolean MathML (and, or, not, comparisons with 0 or 1)",
                       found=libsbml.formulaToL3String(ast))


def _number(ast, thresholds: Mapping[str, float], source: PathLike | None, where: str) -> float:
    """A level in MathML: a number, or the id of an input standing for its threshold level."""
    import libsbml

    if ast.getType() in (libsbml.AST_INTEGER, libsbml.AST_REAL):
        return ast.getValue()
    if ast.getType() == libsbml.AST_NAME and ast.getName() in thresholds:
        return thresholds[ast.getName()]
    raise NetworkError(source, element=where, expected="a number or an input id with a thresholdLevel",
                       found=libsbml.formulaToL3String(ast))


# --- SIF prior knowledge networks --------------------------------------------------------------


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


def read_sif(path: PathLike) -> Pkn:
    """Read a signed SIF file: `source<TAB>sign<TAB>target` per line (spaces work too).

    A self-loop, a sign other than 1/-1, a line without three fields and one pair with both
    signs are errors; a repeated edge is logged as a warning and kept once.
    """
    found: dict[tuple[str, str], tuple[int, int]] = {}  # (source, target) -> (sign, line)
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise NetworkError(path, line=number, expected="3 fields 'source sign target'",
                               found=f"{len(fields)} fields")
        source, sign_text, target = fields
        for name in (source, target):
            if not _is_name(name):
                raise NetworkError(path, line=number, expected=NAME_EXPECTED, found=name)
        if sign_text not in ("1", "-1", "+1"):
            raise NetworkError(path, line=number, expected="sign 1 or -1", found=sign_text)
        sign = int(sign_text)
        if source == target:
            raise NetworkError(path, line=number, message=f"self-loop on '{source}'")
        if (source, target) in found:
            previous, first = found[(source, target)]
            if previous != sign:
                raise NetworkError(path, line=number, message=f"edge {source} -> {target} has sign {sign} here "
                                                              f"and {previous} on line {first}")
            log.warning("%s, line %d: repeats the edge %s %d %s of line %d; kept once",
                        path, number, source, sign, target, first)
            continue
        found[(source, target)] = (sign, number)
    if not found:
        raise NetworkError(path, expected="at least one edge 'source sign target'")
    return Pkn(tuple((s, sign, t) for (s, t), (sign, _) in found.items()))


def write_sif(pkn: Pkn, path: PathLike) -> None:
    """Write `pkn` as tab-separated SIF, one edge per line in sorted order, atomically."""
    write_text("".join(f"{s}\t{sign}\t{t}\n" for s, sign, t in pkn.edges), path)


# --- dynamics ----------------------------------------------------------------------------------


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
    columns = _bit_columns(net.nodes)
    successor = np.zeros(1 << n, dtype=np.int64)
    for i, node in enumerate(net.nodes):
        value = np.broadcast_to(_evaluate_array(net.rules[node], columns), successor.shape)
        successor |= value.astype(np.int64) << (n - 1 - i)
    return successor


def _check_size(net: BooleanNetwork, limit: int, update: str) -> None:
    """Refuse an exhaustive search whose state space would not fit in memory."""
    if len(net.nodes) > limit:
        raise NetworkError(None, message=f"exhaustive {update} attractor search is limited to {limit} nodes; "
                           f"the network has {len(net.nodes)} (steady_states works on large networks)")


def attractors(net: BooleanNetwork, update: str = "synchronous") -> list[Attractor]:
    """All attractors by exhaustive search over the 2^n states, sorted by (size, states).

    `update="synchronous"`: every node at once; cycles ("steady" or "cycle") with basin sizes.
    `update="asynchronous"` (general asynchronous: one node changes per transition): the terminal
    strongly connected components, "steady" for a single state and "complex" otherwise.
    """
    if update == "synchronous":
        _check_size(net, MAX_SYNCHRONOUS_NODES, update)
        found = _synchronous_attractors(net)
    elif update == "asynchronous":
        _check_size(net, MAX_ASYNCHRONOUS_NODES, update)
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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

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
    import clingo

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
    """One row per attractor: index (from 1), type, size, basin (empty if unknown), states.

    States are 0/1 strings in the node order of `net`, separated by semicolons.
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
    })


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
            return _or([x, when_low])
        case _, Const(False):
            return _and([Not(x), when_low])
        case Const(True), _:
            return _or([Not(x), when_high])
        case Const(False), _:
            return _and([x, when_high])
    return _or([_and([x, when_high]), _and([Not(x), when_low])])


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
