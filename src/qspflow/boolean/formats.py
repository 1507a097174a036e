"""Exchange formats of Boolean networks: BoolNet `.bnet`, SBML-qual and signed SIF.

Each format has a reader (a user's file, with errors naming the line or element) and a text
renderer in canonical form; writing output files is left to `qspflow.steps`. SBML-qual is read as
GINsim, bioLQM and CellCollective write it.
"""

from __future__ import annotations

import logging
import operator
import os
import re
from collections.abc import Collection, Mapping

import libsbml

from qspflow.boolean.expressions import (
    FALSE,
    MAX_DEPTH,
    NAME_EXPECTED,
    TRUE,
    And,
    Const,
    Expr,
    Not,
    Or,
    PathLike,
    Var,
    conjunction,
    disjunction,
    format_expression,
    is_name,
    parse_expression,
    sign_of,
    variables,
)
from qspflow.boolean.network import BooleanNetwork, Pkn
from qspflow.errors import NetworkError
from qspflow.io import read_user_text
from qspflow.model import unique_name

log = logging.getLogger("qspflow.boolean")

SBML_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- BoolNet .bnet ------------------------------------------------------------------------------


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
        if not is_name(name):
            col = len(target) - len(target.lstrip()) + 1
            raise NetworkError(source, line=number, col=col, expected=NAME_EXPECTED, found=name)
        if name in rules:
            raise NetworkError(source, line=number,
                               message=f"second rule for '{name}' (first on line {first_line[name]})")
        rules[name] = parse_expression(rule, source=source, line=number, column=len(target) + 2)
        first_line[name] = number
    if not rules:
        raise NetworkError(source, expected="at least one 'node, rule' line")
    for name, rule in rules.items():
        undefined = sorted(variables(rule) - rules.keys())
        if undefined:
            raise NetworkError(source, line=first_line[name],
                               message=f"undefined node '{undefined[0]}' in the rule of '{name}' (it has no rule)")
    return BooleanNetwork.from_rules(rules, source=source)


def read_bnet(path: PathLike) -> BooleanNetwork:
    """Read a BoolNet `.bnet` file."""
    return parse_bnet(read_user_text(path, NetworkError), source=path)


def bnet_text(net: BooleanNetwork) -> str:
    """Canonical `.bnet` text: header, then `node, rule` per node in node order."""
    lines = ["targets, factors"] + [f"{n}, {format_expression(net.rules[n])}" for n in net.nodes]
    return "\n".join(lines) + "\n"


# --- SBML-qual ---------------------------------------------------------------------------------


def _math(expr: Expr) -> libsbml.ASTNode:
    """MathML for a rule: `eq(x, 1)` for a node, and/or/not, true/false."""
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


def _sbml_document(net: BooleanNetwork) -> libsbml.SBMLDocument:
    """An SBML L3V1 qual document: one species per node, one transition per non-input node."""
    for node in net.nodes:
        if not SBML_ID_PATTERN.fullmatch(node):
            raise NetworkError(None, element=node, expected="a node name that is a valid SBML id (no '.')")
    doc = libsbml.SBMLDocument(libsbml.SBMLNamespaces(3, 1, "qual", 1))
    doc.setPackageRequired("qual", True)
    taken = set(net.nodes)
    model = doc.createModel()
    model.setId(unique_name("boolean_network", taken))
    compartment = model.createCompartment()
    compartment.setId(unique_name("cell", taken))
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
        transition.setId(unique_name(f"tr_{node}", taken))
        for regulator in net.regulators(node):
            item = transition.createInput()
            item.setId(unique_name(f"{transition.getId()}_in_{regulator}", taken))
            item.setQualitativeSpecies(regulator)
            item.setTransitionEffect(libsbml.INPUT_TRANSITION_EFFECT_NONE)
            item.setSign(signs[sign_of(rule, regulator)])
            item.setThresholdLevel(1)
        output = transition.createOutput()
        output.setId(unique_name(f"{transition.getId()}_out", taken))
        output.setQualitativeSpecies(node)
        output.setTransitionEffect(libsbml.OUTPUT_TRANSITION_EFFECT_ASSIGNMENT_LEVEL)
        transition.createDefaultTerm().setResultLevel(0)
        term = transition.createFunctionTerm()
        term.setResultLevel(1)
        term.setMath(_math(rule))
    return doc


def sbml_qual_text(net: BooleanNetwork) -> str:
    """`net` as SBML-qual text (Level 3 Version 1, qual Version 1)."""
    return libsbml.writeSBMLToString(_sbml_document(net)).replace("\r\n", "\n")


def read_sbml_qual(path: PathLike) -> BooleanNetwork:
    """Read a Boolean SBML-qual model (GINsim, bioLQM, CellCollective and our own exports).

    Nodes are the qualitative species ids in file order; a species without a transition is an
    input. A transition's rule is the OR of its function terms of result level 1 (default 0),
    or the negation of the OR of its result-0 terms (default 1).
    """
    if not os.path.isfile(path):
        raise NetworkError(path, message="cannot read the file (no such file)")
    return _network_from_sbml(libsbml.readSBMLFromFile(os.fspath(path)), path)


def parse_sbml_qual(text: str, *, source: PathLike | None = None) -> BooleanNetwork:
    """A network from SBML-qual text; see `read_sbml_qual`."""
    return _network_from_sbml(libsbml.readSBMLFromString(text), source)


def _network_from_sbml(doc, source: PathLike | None) -> BooleanNetwork:
    """Convert a parsed libsbml document, raising `NetworkError` for what is not Boolean qual."""
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
        return disjunction(terms)
    return Not(disjunction(terms)) if terms else TRUE


_FLIPPED = {"eq": "eq", "neq": "neq", "lt": "gt", "gt": "lt", "leq": "geq", "geq": "leq"}
_COMPARE = {"eq": operator.eq, "neq": operator.ne, "lt": operator.lt, "gt": operator.gt,
            "leq": operator.le, "geq": operator.ge}


def _expression_from_math(ast, species: Collection[str], thresholds: Mapping[str, float],
                          source: PathLike | None, where: str, depth: int = 1) -> Expr:
    """An `Expr` from function-term MathML: and/or/not/xor, true/false, comparisons of a species
    with a number or an input's threshold (either side). `depth` is the nesting level of `ast`,
    held to `MAX_DEPTH` (and so this recursion) as for `.bnet` rules."""
    if ast is None:
        raise NetworkError(source, element=where, expected="MathML in every function term")
    if depth > MAX_DEPTH:
        raise NetworkError(source, element=where, expected=f"MathML nested at most {MAX_DEPTH} levels deep")
    kind = ast.getType()
    children = [ast.getChild(i) for i in range(ast.getNumChildren())]

    def sub(child):
        return _expression_from_math(child, species, thresholds, source, where, depth + 1)

    if kind == libsbml.AST_LOGICAL_AND:
        return conjunction([sub(c) for c in children])
    if kind == libsbml.AST_LOGICAL_OR:
        return disjunction([sub(c) for c in children])
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
    if ast.getType() in (libsbml.AST_INTEGER, libsbml.AST_REAL):
        return ast.getValue()
    if ast.getType() == libsbml.AST_NAME and ast.getName() in thresholds:
        return thresholds[ast.getName()]
    raise NetworkError(source, element=where, expected="a number or an input id with a thresholdLevel",
                       found=libsbml.formulaToL3String(ast))


# --- signed SIF --------------------------------------------------------------------------------


def read_sif(path: PathLike) -> Pkn:
    """Read a signed SIF file: `source<TAB>sign<TAB>target` per line (spaces work too).

    A sign other than 1/-1, a line without three fields and one pair with both signs are errors;
    a repeated edge is logged as a warning and kept once. A self-loop (autoregulation, `A 1 A`)
    is an edge like any other, as in CellNOpt's and BoolNet's models.
    """
    found: dict[tuple[str, str], tuple[int, int]] = {}  # (source, target) -> (sign, line)
    for number, line in enumerate(read_user_text(path, NetworkError).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise NetworkError(path, line=number, expected="3 fields 'source sign target'",
                               found=f"{len(fields)} fields")
        source, sign_text, target = fields
        for name in (source, target):
            if not is_name(name):
                raise NetworkError(path, line=number, expected=NAME_EXPECTED, found=name)
        if sign_text not in ("1", "-1", "+1"):
            raise NetworkError(path, line=number, expected="sign 1 or -1", found=sign_text)
        sign = int(sign_text)
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


def sif_text(pkn: Pkn) -> str:
    """`pkn` as tab-separated SIF, one edge per line in sorted order."""
    return "".join(f"{source}\t{sign}\t{target}\n" for source, sign, target in pkn.edges)
