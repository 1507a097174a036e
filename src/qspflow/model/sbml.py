"""SBML ↔ `OdeModel` (used through `qspflow.model`).

Reading turns an SBML core model (any level/version libsbml reads) into explicit ODEs:

- compartments become constant parameters (their size); a compartment whose size changes in
  time (rate or assignment rule) is not supported;
- species are states in their own units: a concentration when `hasOnlySubstanceUnits` is false
  (d[S]/dt = Σ stoichiometry · rate / V), an amount otherwise; boundary or constant species
  without a rule are states whose right-hand side is 0;
- global parameters keep their ids, reaction-local parameters become `<reaction>_<parameter>`;
  stoichiometries with an id become parameters too;
- an initial assignment of a number to a parameter or compartment gives it that value;
- assignment rules, reaction rates (by reaction id) and other initial assignments to non-states are
  substituted into everything in dependency order; they are also kept by name in
  `OdeModel.expressions`; rate rules give states;
- function definitions are inlined; `piecewise` becomes `sympy.Piecewise` with its relational
  conditions kept (`time >= c`), so `OdeModel.breakpoints` sees input switches.

- events become `qspflow.model.Event`s (trigger, assignments, priority, delay, `initialValue`,
  `persistent`, `useValuesFromTriggerTime`; Level 2's implicit values are Level 3's defaults); a
  parameter that an event assigns becomes a state whose right-hand side is 0 (or its rate rule).

Event delays that depend on states or time, event assignments to compartments or stoichiometries,
equalities in triggers, algebraic rules, fast reactions, conversion factors, `delay`, `rateOf` and
non-constant stoichiometries raise `ModelError` naming the file and the element.

Writing gives SBML L3V2 with one compartment of size 1, a species per state (an initial
assignment where the initial value is an expression), a constant parameter per parameter,
an assignment rule per expression, a rate rule per state (the right-hand side itself) and an
event per event.
Observables are not written (they belong to a PEtab observable table). Floats are written
with libsbml's 15 significant digits.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import libsbml
import sympy

from qspflow.errors import ModelError
from qspflow.io import write_text
from qspflow.model import TIME, Event, OdeModel, Parameter, symbol

AVOGADRO = 6.02214179e23  # the value SBML L3V1 fixes for csymbol avogadro
_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_UNARY: dict[int, Callable[[sympy.Expr], sympy.Expr]] = {
    libsbml.AST_FUNCTION_ABS: sympy.Abs,
    libsbml.AST_FUNCTION_CEILING: sympy.ceiling,
    libsbml.AST_FUNCTION_FLOOR: sympy.floor,
    libsbml.AST_FUNCTION_EXP: sympy.exp,
    libsbml.AST_FUNCTION_LN: sympy.log,
    libsbml.AST_FUNCTION_FACTORIAL: sympy.factorial,
    libsbml.AST_FUNCTION_SIN: sympy.sin,
    libsbml.AST_FUNCTION_COS: sympy.cos,
    libsbml.AST_FUNCTION_TAN: sympy.tan,
    libsbml.AST_FUNCTION_SEC: sympy.sec,
    libsbml.AST_FUNCTION_CSC: sympy.csc,
    libsbml.AST_FUNCTION_COT: sympy.cot,
    libsbml.AST_FUNCTION_SINH: sympy.sinh,
    libsbml.AST_FUNCTION_COSH: sympy.cosh,
    libsbml.AST_FUNCTION_TANH: sympy.tanh,
    libsbml.AST_FUNCTION_SECH: sympy.sech,
    libsbml.AST_FUNCTION_CSCH: sympy.csch,
    libsbml.AST_FUNCTION_COTH: sympy.coth,
    libsbml.AST_FUNCTION_ARCSIN: sympy.asin,
    libsbml.AST_FUNCTION_ARCCOS: sympy.acos,
    libsbml.AST_FUNCTION_ARCTAN: sympy.atan,
    libsbml.AST_FUNCTION_ARCSEC: sympy.asec,
    libsbml.AST_FUNCTION_ARCCSC: sympy.acsc,
    libsbml.AST_FUNCTION_ARCCOT: sympy.acot,
    libsbml.AST_FUNCTION_ARCSINH: sympy.asinh,
    libsbml.AST_FUNCTION_ARCCOSH: sympy.acosh,
    libsbml.AST_FUNCTION_ARCTANH: sympy.atanh,
    libsbml.AST_FUNCTION_ARCSECH: sympy.asech,
    libsbml.AST_FUNCTION_ARCCSCH: sympy.acsch,
    libsbml.AST_FUNCTION_ARCCOTH: sympy.acoth,
    libsbml.AST_LOGICAL_NOT: sympy.Not,
}
_NARY: dict[int, Callable[..., sympy.Basic]] = {
    libsbml.AST_FUNCTION_MIN: sympy.Min,
    libsbml.AST_FUNCTION_MAX: sympy.Max,
    libsbml.AST_LOGICAL_AND: sympy.And,
    libsbml.AST_LOGICAL_OR: sympy.Or,
    libsbml.AST_LOGICAL_XOR: sympy.Xor,
    libsbml.AST_LOGICAL_IMPLIES: sympy.Implies,
}
_RELATIONAL: dict[int, Callable[[sympy.Expr, sympy.Expr], sympy.Basic]] = {
    libsbml.AST_RELATIONAL_EQ: sympy.Eq,
    libsbml.AST_RELATIONAL_NEQ: sympy.Ne,
    libsbml.AST_RELATIONAL_LT: sympy.Lt,
    libsbml.AST_RELATIONAL_LEQ: sympy.Le,
    libsbml.AST_RELATIONAL_GT: sympy.Gt,
    libsbml.AST_RELATIONAL_GEQ: sympy.Ge,
}
_UNSUPPORTED_MATH = {
    libsbml.AST_FUNCTION_DELAY: "delay",
    libsbml.AST_FUNCTION_RATE_OF: "rateOf",
    libsbml.AST_FUNCTION_QUOTIENT: "quotient",
    libsbml.AST_FUNCTION_REM: "rem",
}


def _number(x: float) -> sympy.Expr:
    """An exact sympy number; integral values stay integers so that `x**2` is not `x**2.0`."""
    if math.isfinite(x) and x == int(x) and abs(x) < 2**53:
        return sympy.Integer(int(x))
    return sympy.Float(x)


# --------------------------------------------------------------------------------- reading


def read_sbml(source: str | os.PathLike[str]) -> OdeModel:
    """An `OdeModel` from an SBML file path or from SBML text (a string starting with '<')."""
    if isinstance(source, str) and source.lstrip().startswith("<"):
        origin = "SBML text"
        doc = libsbml.readSBMLFromString(source)
    else:
        origin = str(source)
        if Path(source).is_dir():
            raise ModelError(origin, expected="an SBML file", message="found a folder")
        if not Path(source).is_file():
            raise ModelError(origin, expected="an SBML file", message="file not found")
        doc = libsbml.readSBMLFromFile(origin)
    for i in range(doc.getNumErrors()):
        error = doc.getError(i)
        if error.getSeverity() >= libsbml.LIBSBML_SEV_ERROR:
            raise _libsbml_error(error, origin, source)
    sbml_model = doc.getModel()
    if sbml_model is None:
        raise ModelError(origin, expected="an SBML document with a model")
    return _Reader(sbml_model, origin).read()


def _libsbml_error(error: libsbml.SBMLError, origin: str, source: str | os.PathLike[str]) -> ModelError:
    """libSBML's first error on one line: its line, the element there, its first sentence and,
    where it gives one, the sentence about this document (after its spec reference)."""
    line = error.getLine() or None
    element = None
    if line is not None:
        text = source if origin == "SBML text" else Path(source).read_bytes().decode("utf-8", "replace")
        lines = str(text).splitlines()
        tag = re.search(r"<\s*([A-Za-z_][\w:.-]*)", lines[line - 1]) if line <= len(lines) else None
        element = tag.group(1) if tag else None
    parts = [part.strip() for part in re.split(r"Reference: [^\n]*", error.getMessage())]
    sentences = [re.split(r"(?<=\.)\s", " ".join(part.split()))[0] for part in parts if part.strip()]
    return ModelError(origin, line=line, element=element, expected="valid SBML",
                      message="libSBML: " + " ".join(dict.fromkeys(sentences)))


class _Reader:
    """One pass over a libsbml Model; `read()` returns the OdeModel."""

    def __init__(self, sbml: libsbml.Model, origin: str) -> None:
        self.sbml = sbml
        self.origin = origin
        self.functions = {f.getId(): f for f in sbml.getListOfFunctionDefinitions()}
        self.known: set[str] = set()

    def error(self, element: str, message: str) -> ModelError:
        return ModelError(self.origin, element=element, message=message)

    def read(self) -> OdeModel:
        m = self.sbml
        self._reject_unsupported()
        compartments = list(m.getListOfCompartments())
        species = list(m.getListOfSpecies())
        reactions = list(m.getListOfReactions())
        self.known = {x.getId() for x in compartments + species + reactions}
        self.known |= {p.getId() for p in m.getListOfParameters()}
        self.known |= {r.getId() for rx in reactions for r in _references(rx) if r.isSetId()}
        if "time" in self.known:
            raise self.error("time", "the id 'time' is reserved for model time")

        assigned = {r.getVariable(): r for r in m.getListOfRules() if r.isAssignment()}
        rated = {r.getVariable(): r for r in m.getListOfRules() if r.isRate()}
        initial_assignments = {a.getSymbol(): a for a in m.getListOfInitialAssignments()}
        for name in [*assigned, *rated, *initial_assignments]:
            if name not in self.known:
                raise self.error(name, "a rule or initial assignment for an undefined id")
        for c in compartments:
            if c.getId() in assigned or c.getId() in rated:
                raise self.error(c.getId(), "compartments whose size changes in time are not supported")
        evented = self._event_targets()
        # A parameter an event changes is a state (its rate rule, or 0, as right-hand side).
        switched = [p.getId() for p in m.getListOfParameters() if p.getId() in evented and p.getId() not in rated]
        rated_or_switched = set(rated) | set(switched)

        # What each id means at t = 0, before substitution (parameters stay symbols).
        parameters: dict[str, Parameter] = {}
        at_start: dict[str, sympy.Expr] = {}
        constants: list[str] = []  # non-states fixed by an initial assignment

        def constant(name: str, value: float, kind: str) -> None:
            """A compartment, parameter or stoichiometry id: a parameter unless a rule or assignment sets it."""
            if name in assigned:
                return
            if name in initial_assignments:
                start = self.math(initial_assignments[name].getMath(), name)
                if name in rated_or_switched:
                    return
                if start.is_number and start.is_real:
                    # A number: still a parameter, which a PEtab condition may set.
                    parameters[name] = Parameter(name, float(start))
                else:
                    constants.append(name)
                return
            # A parameter may get its value from PEtab later; anything else needs one now.
            if math.isnan(value) and (kind != "parameter" or name in rated_or_switched):
                raise self.error(name, f"{kind} without a value")
            if name in rated_or_switched:
                at_start[name] = _number(value)
            else:
                parameters[name] = Parameter(name, float(value))

        for c in compartments:
            constant(c.getId(), c.getSize() if c.isSetSize() else 1.0, "compartment")
        for p in m.getListOfParameters():
            constant(p.getId(), p.getValue() if p.isSetValue() else math.nan, "parameter")

        rates: dict[str, sympy.Expr] = {}
        change: dict[str, list[sympy.Expr]] = {s.getId(): [] for s in species}
        for rx in reactions:
            rid = rx.getId()
            local = self._local_parameters(rx, parameters)
            if not rx.isSetKineticLaw() or not rx.getKineticLaw().isSetMath():
                raise self.error(rid, "reaction without a kinetic law")
            rates[rid] = self.math(rx.getKineticLaw().getMath(), rid, local)
            for sign, refs in ((-1, rx.getListOfReactants()), (1, rx.getListOfProducts())):
                for ref in refs:
                    if ref.getSpecies() not in change:
                        raise self.error(rid, f"undefined species '{ref.getSpecies()}'")
                    stoichiometry = self._stoichiometry(ref, rid, constant)
                    change[ref.getSpecies()].append(sign * stoichiometry * symbol(rid))

        states: list[str] = []
        rhs: dict[str, sympy.Expr] = {}
        for s in species:
            sid = s.getId()
            if sid in assigned:
                continue
            states.append(sid)
            at_start[sid] = self._species_start(s, initial_assignments)
            if sid in rated:
                rhs[sid] = self.math(rated[sid].getMath(), sid)
            elif s.getBoundaryCondition() or s.getConstant():
                rhs[sid] = sympy.Integer(0)
            else:
                # Each term divided by V, so that a rate law `V * k * S` reads `k * S` after substitution.
                volume = sympy.Integer(1) if s.getHasOnlySubstanceUnits() else symbol(s.getCompartment())
                rhs[sid] = sympy.Add(*(term / volume for term in change[sid]))
        for name, rule in rated.items():
            if name not in rhs:
                states.append(name)
                rhs[name] = self.math(rule.getMath(), name)
        for name in switched:
            states.append(name)
            rhs[name] = sympy.Integer(0)

        rules = {name: self.math(rule.getMath(), name) for name, rule in assigned.items()}
        for name, assignment in initial_assignments.items():
            if name not in assigned and name not in change and name not in parameters:  # species: _species_start
                at_start[name] = self.math(assignment.getMath(), name)
        at_start |= rules | rates
        start = _resolve({k: v.xreplace({TIME: 0}) for k, v in at_start.items()}, self.origin)
        # What each derived id means at any time: rules, reaction rates, initially assigned constants.
        now = _resolve(rules | {name: start[name] for name in constants} | rates, self.origin)
        by_symbol = {symbol(k): v for k, v in now.items()}

        model = OdeModel(
            name=m.getId() or Path(self.origin).stem,
            states=states,
            parameters=parameters,
            rhs={s: rhs[s].xreplace(by_symbol) for s in states},
            initial={s: start[s] for s in states},
            expressions=now,
            events=[self._event(e, i, by_symbol) for i, e in enumerate(m.getListOfEvents())],
        )
        model.validate(self.origin)
        return model

    def _event_targets(self) -> set[str]:
        """The ids events assign; compartments and stoichiometries among them are not supported."""
        m = self.sbml
        stoichiometries = {r.getId() for rx in m.getListOfReactions() for r in _references(rx) if r.isSetId()}
        compartments = {c.getId() for c in m.getListOfCompartments()}
        targets = set()
        for i, event in enumerate(m.getListOfEvents()):
            for assignment in event.getListOfEventAssignments():
                target = assignment.getVariable()
                if target in compartments or target in stoichiometries:
                    kind = "compartment" if target in compartments else "stoichiometry"
                    raise self.error(_event_id(event, i), f"an event assignment to the {kind} '{target}' "
                                                          "is not supported")
                targets.add(target)
        return targets

    def _event(self, event: libsbml.Event, index: int, by_symbol: Mapping[sympy.Symbol, sympy.Expr]) -> Event:
        """One SBML event with rules and reaction rates substituted (delays were refused before)."""
        eid = _event_id(event, index)
        trigger = event.getTrigger()
        if trigger is None or not trigger.isSetMath():
            raise self.error(eid, "an event without a trigger")
        condition = self.math(trigger.getMath(), eid).xreplace(by_symbol)
        if not isinstance(condition, sympy.logic.boolalg.Boolean):
            raise self.error(eid, f"the trigger '{libsbml.formulaToL3String(trigger.getMath())}' is not a condition")
        if condition.atoms(sympy.Eq, sympy.Ne):
            raise self.error(eid, "an equality (eq, neq) in an event trigger holds for an instant only and "
                                  "is not supported")
        assignments = {}
        for assignment in event.getListOfEventAssignments():
            if assignment.isSetMath():
                assignments[assignment.getVariable()] = self.math(assignment.getMath(), eid).xreplace(by_symbol)
        priority, delay = event.getPriority(), event.getDelay()
        level3 = self.sbml.getLevel() >= 3
        return Event(
            id=eid,
            trigger=condition,
            assignments=assignments,
            priority=self.math(priority.getMath(), eid).xreplace(by_symbol)
            if priority is not None and priority.isSetMath() else None,
            delay=self.math(delay.getMath(), eid).xreplace(by_symbol) if delay is not None and delay.isSetMath()
            else None,
            # Level 2 has neither attribute: its events behave as Level 3's with both true.
            initial_value=trigger.getInitialValue() if level3 else True,
            persistent=trigger.getPersistent() if level3 else True,
            use_values_from_trigger_time=event.getUseValuesFromTriggerTime(),
        )

    def _reject_unsupported(self) -> None:
        m = self.sbml
        for i, rule in enumerate(m.getListOfRules()):
            if rule.isAlgebraic():
                raise self.error(rule.getIdAttribute() or f"algebraicRule {i + 1}",
                                 "algebraic rules are not supported")
        for rx in m.getListOfReactions():
            if rx.isSetFast() and rx.getFast():
                raise self.error(rx.getId(), "fast reactions are not supported")
        if m.isSetConversionFactor() or any(s.isSetConversionFactor() for s in m.getListOfSpecies()):
            raise self.error("conversionFactor", "conversion factors are not supported")

    def _local_parameters(self, rx: libsbml.Reaction,
                          parameters: dict[str, Parameter]) -> dict[str, sympy.Expr]:
        """Reaction-local parameters as global `<reaction>_<parameter>` parameters."""
        law = rx.getKineticLaw()
        if law is None:
            return {}
        local = {}
        level3 = self.sbml.getLevel() >= 3
        for p in law.getListOfLocalParameters() if level3 else law.getListOfParameters():
            name = f"{rx.getId()}_{p.getId()}"
            if name in self.known or name in parameters:
                raise self.error(rx.getId(),
                                 f"renaming local parameter '{p.getId()}' to '{name}' clashes with an id")
            parameters[name] = Parameter(name, p.getValue() if p.isSetValue() else math.nan)
            local[p.getId()] = symbol(name)
        return local

    def _stoichiometry(self, ref: libsbml.SpeciesReference, rid: str,
                       constant: Callable[[str, float, str], None]) -> sympy.Expr:
        """A species reference's stoichiometry: a number, a parameter (its id) or an expression."""
        if ref.isSetStoichiometryMath():
            return self.math(ref.getStoichiometryMath().getMath(), rid)
        value = ref.getStoichiometry()
        if ref.isSetId():
            name = ref.getId()
            rules = [r for r in self.sbml.getListOfRules() if r.getVariable() == name]
            if rules or (ref.isSetConstant() and not ref.getConstant()):
                raise self.error(name, "stoichiometries that change in time are not supported")
            constant(name, value, "stoichiometry")
            return symbol(name)
        if math.isnan(value):
            raise self.error(rid, f"no stoichiometry for species '{ref.getSpecies()}'")
        return _number(value)

    def _species_start(self, s: libsbml.Species,
                       initial_assignments: Mapping[str, libsbml.InitialAssignment]) -> sympy.Expr:
        """The initial value in the species' own units (concentration unless hasOnlySubstanceUnits)."""
        sid = s.getId()
        if sid in initial_assignments:
            return self.math(initial_assignments[sid].getMath(), sid)
        volume = symbol(s.getCompartment())
        start = s.getInitialConcentration() if s.isSetInitialConcentration() else s.getInitialAmount()
        if start < 0:
            raise self.error(sid, f"a negative initial value ({start:g}); concentrations and amounts are ≥ 0")
        if s.isSetInitialConcentration():
            value = _number(s.getInitialConcentration())
            return value * volume if s.getHasOnlySubstanceUnits() else value
        if s.isSetInitialAmount():
            value = _number(s.getInitialAmount())
            return value if s.getHasOnlySubstanceUnits() else value / volume
        raise self.error(sid, "species without an initial value")

    def math(self, node: libsbml.ASTNode, element: str,
             local: Mapping[str, sympy.Expr] | None = None) -> sympy.Expr:
        """A MathML tree as a sympy expression; `local` maps names (bound variables, local parameters)."""
        local = local or {}
        t = node.getType()
        kids = [node.getChild(i) for i in range(node.getNumChildren())]
        # A function call converts its arguments itself (they bind the body's variables).
        args = [self.math(k, element, local) for k in kids] if t != libsbml.AST_FUNCTION else []
        if t == libsbml.AST_NAME:
            name = node.getName()
            if name in local:
                return local[name]
            if name not in self.known:
                raise self.error(element, f"undefined symbol '{name}'")
            return symbol(name)
        if t == libsbml.AST_INTEGER:
            return sympy.Integer(node.getInteger())
        if t in (libsbml.AST_REAL, libsbml.AST_REAL_E):
            return _number(node.getReal())
        if t == libsbml.AST_RATIONAL:
            return sympy.Rational(node.getNumerator(), node.getDenominator())
        if t == libsbml.AST_NAME_TIME:
            return TIME
        if t == libsbml.AST_NAME_AVOGADRO:
            return sympy.Float(AVOGADRO)
        if t == libsbml.AST_CONSTANT_E:
            return sympy.E
        if t == libsbml.AST_CONSTANT_PI:
            return sympy.pi
        if t == libsbml.AST_CONSTANT_TRUE:
            return sympy.true
        if t == libsbml.AST_CONSTANT_FALSE:
            return sympy.false
        if t == libsbml.AST_PLUS:
            return sympy.Add(*args)
        if t == libsbml.AST_TIMES:
            return sympy.Mul(*args)
        if t == libsbml.AST_MINUS:
            return -args[0] if len(args) == 1 else args[0] - args[1]
        if t == libsbml.AST_DIVIDE:
            return args[0] / args[1]
        if t in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
            return args[0] ** args[1]
        if t == libsbml.AST_FUNCTION_ROOT:
            return args[-1] ** (1 / args[0]) if len(args) == 2 else sympy.sqrt(args[0])
        if t == libsbml.AST_FUNCTION_LOG:
            return sympy.log(args[-1], args[0] if len(args) == 2 else 10)
        if t in _UNARY:
            return _UNARY[t](args[0])
        if t in _NARY:
            return _NARY[t](*args)
        if t in _RELATIONAL:
            relation = _RELATIONAL[t]
            return sympy.And(*(relation(a, b) for a, b in zip(args, args[1:])))
        if t == libsbml.AST_FUNCTION_PIECEWISE:
            pieces = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
            if len(args) % 2:
                pieces.append((args[-1], sympy.true))
            return sympy.Piecewise(*pieces)
        if t == libsbml.AST_FUNCTION:
            return self._call(node, kids, element, local)
        what = _UNSUPPORTED_MATH.get(t) or node.getName() or libsbml.formulaToL3String(node)
        raise self.error(element, f"MathML '{what}' is not supported")

    def _call(self, node: libsbml.ASTNode, kids: list[libsbml.ASTNode], element: str,
              local: Mapping[str, sympy.Expr]) -> sympy.Expr:
        """Inline a function definition: its body with the bound variables replaced by the arguments."""
        name = node.getName()
        definition = self.functions.get(name)
        if definition is None or definition.getBody() is None:
            raise self.error(element, f"undefined function '{name}'")
        bound = [definition.getArgument(i).getName() for i in range(definition.getNumArguments())]
        if len(bound) != len(kids):
            raise self.error(element, f"function '{name}' takes {len(bound)} arguments, found {len(kids)}")
        values = {b: self.math(k, element, local) for b, k in zip(bound, kids)}
        return self.math(definition.getBody(), element, values)


def _event_id(event: libsbml.Event, index: int) -> str:
    """An event's id, or `event <n>` (from 1) where it has none (ids are optional on events)."""
    return event.getId() or f"event {index + 1}"


def _references(rx: libsbml.Reaction) -> list[libsbml.SpeciesReference]:
    return list(rx.getListOfReactants()) + list(rx.getListOfProducts())


def _resolve(definitions: Mapping[str, sympy.Expr], origin: str) -> dict[str, sympy.Expr]:
    """Substitute definitions into one another (dependency order) until none refers to another."""
    done: dict[str, sympy.Expr] = {}
    active: set[str] = set()

    def visit(name: str) -> sympy.Expr:
        if name in done:
            return done[name]
        if name in active:
            raise ModelError(origin, element=name, message="circular definition (rules or initial assignments)")
        active.add(name)
        expr = definitions[name]
        needed = sorted({s.name for s in expr.free_symbols} & definitions.keys())
        done[name] = expr.xreplace({symbol(d): visit(d) for d in needed})
        active.discard(name)
        return done[name]

    for name in definitions:
        visit(name)
    return done


# --------------------------------------------------------------------------------- writing


def sbml_text(model: OdeModel) -> str:
    """The model as SBML L3V2 text: rate rules for the right-hand sides (see module docstring)."""
    model.validate()
    names = [*model.states, *model.parameters, *model.expressions]
    for name in names:
        if not _SID.match(name) or name == "time":
            raise ModelError(None, element=name, expected="an SBML id ([A-Za-z_][A-Za-z0-9_]*, not 'time')")
    if len(set(names)) != len(names):
        raise ModelError(None, element=model.name, message="states, parameters and expressions share a name")
    compartment = "default_compartment"
    while compartment in names:
        compartment += "_"

    doc = libsbml.SBMLDocument(3, 2)
    sbml = doc.createModel()
    sbml.setId(model.name if _SID.match(model.name) else re.sub(r"\W", "_", f"_{model.name}"))
    c = sbml.createCompartment()
    c.setId(compartment)
    c.setSize(1.0)
    c.setConstant(True)
    for state in model.states:
        s = sbml.createSpecies()
        s.setId(state)
        s.setCompartment(compartment)
        s.setHasOnlySubstanceUnits(False)
        s.setBoundaryCondition(False)
        s.setConstant(False)
        start = sympy.sympify(model.initial[state])
        if start.is_number and start.is_real:
            s.setInitialConcentration(float(start))
        else:
            assignment = sbml.createInitialAssignment()
            assignment.setSymbol(state)
            assignment.setMath(_ast(start, state))
    for name, parameter in model.parameters.items():
        p = sbml.createParameter()
        p.setId(name)
        p.setValue(parameter.value)
        p.setConstant(True)
    for name, expr in model.expressions.items():
        p = sbml.createParameter()
        p.setId(name)
        p.setConstant(False)
        rule = sbml.createAssignmentRule()
        rule.setVariable(name)
        rule.setMath(_ast(sympy.sympify(expr), name))
    for state in model.states:
        rule = sbml.createRateRule()
        rule.setVariable(state)
        rule.setMath(_ast(sympy.sympify(model.rhs[state]), state))
    for event in model.events:
        _write_event(sbml, event)
    return libsbml.writeSBMLToString(doc)


def _write_event(sbml: libsbml.Model, event: Event) -> None:
    e = sbml.createEvent()
    if _SID.match(event.id):
        e.setId(event.id)
    e.setUseValuesFromTriggerTime(event.use_values_from_trigger_time)
    trigger = e.createTrigger()
    trigger.setInitialValue(event.initial_value)
    trigger.setPersistent(event.persistent)
    trigger.setMath(_ast(sympy.sympify(event.trigger), event.id))
    if event.priority is not None:
        e.createPriority().setMath(_ast(sympy.sympify(event.priority), event.id))
    if event.delay is not None:
        e.createDelay().setMath(_ast(sympy.sympify(event.delay), event.id))
    for target, value in event.assignments.items():
        assignment = e.createEventAssignment()
        assignment.setVariable(target)
        assignment.setMath(_ast(sympy.sympify(value), event.id))


def write_sbml(model: OdeModel, path: str | os.PathLike[str]) -> None:
    """Write `sbml_text(model)` to `path`, atomically."""
    write_text(sbml_text(model), path)


_AST_FUNCTIONS: dict[type, int] = {
    sympy.exp: libsbml.AST_FUNCTION_EXP,
    sympy.log: libsbml.AST_FUNCTION_LN,
    sympy.Abs: libsbml.AST_FUNCTION_ABS,
    sympy.floor: libsbml.AST_FUNCTION_FLOOR,
    sympy.ceiling: libsbml.AST_FUNCTION_CEILING,
    sympy.factorial: libsbml.AST_FUNCTION_FACTORIAL,
    sympy.Min: libsbml.AST_FUNCTION_MIN,
    sympy.Max: libsbml.AST_FUNCTION_MAX,
    **{f: t for t, f in _UNARY.items() if f not in (sympy.exp, sympy.log, sympy.Abs, sympy.floor,
                                                    sympy.ceiling, sympy.factorial)},
    **{f: t for t, f in _NARY.items() if f not in (sympy.Min, sympy.Max)},
    **{f: t for t, f in _RELATIONAL.items()},
}


def _ast(expr: sympy.Basic, element: str) -> libsbml.ASTNode:
    """A sympy expression as a libsbml MathML tree (`element` names the owner in errors)."""

    def node(kind: int, *children: libsbml.ASTNode) -> libsbml.ASTNode:
        n = libsbml.ASTNode(kind)
        for child in children:
            n.addChild(child)
        return n

    def real(x: float) -> libsbml.ASTNode:
        n = libsbml.ASTNode(libsbml.AST_REAL)
        n.setValue(x)
        return n

    def integer(k: int) -> libsbml.ASTNode:
        if abs(k) >= 2**31:  # beyond 32 bits, a real is what every SBML reader takes
            return real(float(k))
        n = libsbml.ASTNode(libsbml.AST_INTEGER)
        n.setValue(int(k))
        return n

    def convert(e: sympy.Basic) -> libsbml.ASTNode:
        if e == TIME:
            n = libsbml.ASTNode(libsbml.AST_NAME_TIME)
            n.setName("time")
            return n
        if e.is_Symbol:
            n = libsbml.ASTNode(libsbml.AST_NAME)
            n.setName(e.name)
            return n
        if e is sympy.true or e is sympy.false:
            return node(libsbml.AST_CONSTANT_TRUE if e is sympy.true else libsbml.AST_CONSTANT_FALSE)
        if e is sympy.E:
            return node(libsbml.AST_CONSTANT_E)
        if e is sympy.pi:
            return node(libsbml.AST_CONSTANT_PI)
        if e.is_Integer:
            return integer(int(e))
        if e.is_Rational:
            return node(libsbml.AST_DIVIDE, integer(e.p), integer(e.q))
        if e.is_Number:
            return real(float(e))
        if e.is_Add:
            return node(libsbml.AST_PLUS, *(convert(a) for a in e.as_ordered_terms()))
        if e.is_Mul:
            return mul(e)
        if e.is_Pow:
            if e.exp.is_number and e.exp.is_negative:
                return node(libsbml.AST_DIVIDE, integer(1), convert(e.base ** -e.exp))
            return node(libsbml.AST_POWER, convert(e.base), convert(e.exp))
        if isinstance(e, sympy.Piecewise):
            n = node(libsbml.AST_FUNCTION_PIECEWISE)
            for value, condition in e.args:
                n.addChild(convert(value))
                if condition is not sympy.true:
                    n.addChild(convert(condition))
            return n
        if e.func in _AST_FUNCTIONS:
            return node(_AST_FUNCTIONS[e.func], *(convert(a) for a in e.args))
        raise ModelError(None, element=element, message=f"'{e.func.__name__}' cannot be written to SBML")

    def mul(e: sympy.Mul) -> libsbml.ASTNode:
        coefficient, factors = e.as_coeff_mul()
        top = [f for f in factors if not (f.is_Pow and f.exp.is_number and f.exp.is_negative)]
        bottom = [f.base ** -f.exp for f in factors if f not in top]
        sign = -1 if coefficient < 0 else 1
        coefficient = abs(coefficient)
        if coefficient != 1:
            top.insert(0, sympy.Integer(coefficient.p) if coefficient.is_Rational else coefficient)
            if coefficient.is_Rational and coefficient.q != 1:
                bottom.insert(0, sympy.Integer(coefficient.q))
        numerator = product(top)
        result = node(libsbml.AST_DIVIDE, numerator, product(bottom)) if bottom else numerator
        return node(libsbml.AST_MINUS, result) if sign < 0 else result

    def product(factors: list[sympy.Basic]) -> libsbml.ASTNode:
        if not factors:
            return integer(1)
        if len(factors) == 1:
            return convert(factors[0])
        return node(libsbml.AST_TIMES, *(convert(f) for f in factors))

    return convert(expr)
