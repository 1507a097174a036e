"""`OdeModel` ↔ PySB: one encoding, written as a readable model file or built as a `pysb.Model`.

The encoding (`_encode`): each state `X` is a site-less Monomer `X()` counted by an Observable
`X_obs`, through which expressions use its amount; each parameter a Parameter; each named
quantity an Expression, written by the model's `Formulas`. A state whose rate is
(production_X − X)/tau_X gets a synthesis rule `None >> X()` at rate production_X/tau_X and a
degradation rule `X() >> None` at rate 1/tau_X; a state whose rate is 0 (an input) has no rule;
any other state one zero-order rule `None >> X()` whose rate is its dx/dt (a zero-order rule adds
its rate to dX/dt unchanged, whatever its sign). BioNetGen's network of the model gives back
exactly the model's ODEs.

`pysb_source` writes it as Python source (the `convert` step's model.py), `to_pysb` builds it;
`from_pysb` reads any PySB model back through the reaction network BioNetGen generates. PySB is
imported only by `to_pysb` and `from_pysb`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sympy
from sympy.printing.str import StrPrinter

from qspflow.errors import ModelError
from qspflow.io import format_float
from qspflow.model import TIME, OdeModel, Parameter, symbol, unique_name
from qspflow.model.formulas import Formulas, checked_formulas, relaxing_states, valid_id

if TYPE_CHECKING:
    import pysb


@dataclass
class _Rule:
    """A rule making (`None >> X()`) or removing (`X() >> None`) one state at the rate of an Expression."""

    name: str
    state: str
    makes: bool
    rate: str


@dataclass
class _Encoding:
    """The PySB components of a model, in the order they are defined.

    Expressions are over the model's names (states as their symbols); `observables` says which
    Observable stands for each state in them. An Initial's value is the name of a model parameter
    (`value` None), a number (a new Parameter) or an expression (a new Expression).
    """

    observables: dict[str, str]
    initials: list[tuple[str, str, sympy.Expr | None]] = field(default_factory=list)
    quantities: list[tuple[str, sympy.Expr]] = field(default_factory=list)
    #: per state with rules: its rate Expressions (name, formula, source text or None) and its rules
    rules: list[tuple[list[tuple[str, sympy.Expr, str | None]], list[_Rule]]] = field(default_factory=list)


def _encode(model: OdeModel, formulas: Formulas, *, every_initial: bool) -> _Encoding:
    """The encoding of the module docstring; helper names get a trailing `_` where they would clash.

    States that start at 0 and that a rule makes need no Initial; with `every_initial` they get
    one anyway, so that BioNetGen numbers the species in the model's state order.
    """
    if model.events:
        raise ModelError(None, element=model.events[0].id, expected="a model without events",
                         message="PySB has no events; keep the model as SBML")
    taken = {*model.states, *model.parameters, *formulas.quantities}

    def fresh(name: str) -> str:
        return unique_name(name, taken, valid_id)

    encoding = _Encoding({s: fresh(f"{s}_obs") for s in model.states})
    relaxing = relaxing_states(model, formulas)
    ruled = relaxing | {s for s in model.states if sympy.sympify(formulas.rates[s]) != 0}
    for state in model.states:
        start = sympy.sympify(model.initial[state])
        if start == 0 and state in ruled and not every_initial:  # a species no rule makes would be left out
            continue
        if isinstance(start, sympy.Symbol) and start.name in model.parameters:
            encoding.initials.append((state, start.name, None))
        else:
            encoding.initials.append((state, fresh(f"{state}_0"), start))
    encoding.quantities = [(name, sympy.sympify(formulas.quantities[name])) for name in formulas.order()]
    for state in model.states:
        rate = sympy.sympify(formulas.rates[state])
        if state in relaxing:
            production, tau = symbol(f"production_{state}"), symbol(f"tau_{state}")
            make, lose = fresh(f"synthesis_rate_{state}"), fresh(f"degradation_rate_{state}")
            encoding.rules.append((
                [(make, production / tau, f"production_{state} / tau_{state}"), (lose, 1 / tau, f"1 / tau_{state}")],
                [_Rule(fresh(f"synthesis_{state}"), state, True, make),
                 _Rule(fresh(f"degradation_{state}"), state, False, lose)],
            ))
        elif rate != 0:
            name = fresh(f"rate_{state}")
            encoding.rules.append(([(name, rate, None)], [_Rule(fresh(f"dynamics_{state}"), state, True, name)]))
    return encoding


# ------------------------------------------------------------------------------------ source


class _PySBPrinter(StrPrinter):
    """Python source for a PySB Expression: sympy functions by their module name, exact floats."""

    def _print_Function(self, expr: sympy.Basic) -> str:
        return f"sympy.{type(expr).__name__}({', '.join(self._print(a) for a in expr.args)})"

    _print_Basic = _print_Min = _print_Max = _print_Function  # sympy classes StrPrinter writes bare

    def _print_Relational(self, expr: sympy.core.relational.Relational) -> str:
        if expr.rel_op in ("==", "!="):  # Python's == and != would compare, not build
            return self._print_Function(expr)
        return super()._print_Relational(expr)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        pieces = ", ".join(f"({self._print(e)}, {self._print(c)})" for e, c in expr.args)
        return f"sympy.Piecewise({pieces})"

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return f"sympy.Rational({expr.p}, {expr.q})"

    def _print_BooleanTrue(self, expr: sympy.logic.boolalg.BooleanTrue) -> str:
        return "True"

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return "sympy.E"

    def _print_Pi(self, expr: sympy.Expr) -> str:
        return "sympy.pi"


def _parameter_comment(p: Parameter) -> str:
    bounds = f"[{format_float(p.lower)}, {format_float(p.upper)}] {p.scale}"
    return f"{p.unit + ', ' if p.unit else ''}{bounds}, {'estimated' if p.estimate else 'fixed'}"


def pysb_source(model: OdeModel, formulas: Formulas | None = None, *, description: str | None = None) -> str:
    """A readable PySB model file (Python source) with the ODEs of `model`, deterministic text.

    The encoding of this module, with each named quantity written by `formulas` (default: fully
    substituted). States with a non-zero initial value or no rule get an Initial.
    """
    formulas = checked_formulas(model, formulas)
    encoding = _encode(model, formulas, every_initial=False)
    printer = _PySBPrinter()
    in_source = {symbol(s): symbol(o) for s, o in encoding.observables.items()}

    def code(expr: sympy.Expr) -> str:
        return printer.doprint(sympy.sympify(expr).xreplace(in_source))

    doc = [*textwrap.wrap(description or f"PySB model '{model.name}', written by qspflow.convert.", 100), "",
           "Every state is a site-less Monomer; `<state>_obs` counts it for use in expressions."]
    if relaxing_states(model, formulas):
        doc += ["A node X relaxes towards its production: `None >> X()` at rate production_X/tau_X and",
                "`X() >> None` at rate 1/tau_X, so dX/dt = (production_X - X)/tau_X."]
    doc += ["A state whose dX/dt is 0 (an input) has no rule; any other state has one zero-order rule",
            "whose rate is its dX/dt. States without an Initial start at 0.",
            "Import and extend it as any PySB model (`from model import model`)."]
    lines = [
        '"""' + doc[0],
        *doc[1:],
        '"""',
        "",
        "import sympy",
        "from pysb import Expression, Initial, Model, Monomer, Observable, Parameter, Rule",
        "from pysb.core import time",
        "",
        "Model()",
        "",
        "# States",
        *(f'{s} = Monomer("{s}")' for s in model.states),
        "",
        "# Parameters: value  # unit, [lower, upper] scale, estimated or fixed",
        *(f'{n} = Parameter("{n}", {float(p.value)!r})  # {_parameter_comment(p)}'
          for n, p in model.parameters.items()),
        "",
        "# Observables: the amount of each state",
        *(f'{o} = Observable("{o}", {s}())' for s, o in encoding.observables.items()),
        "",
        "# Initial values",
    ]
    for state, name, start in encoding.initials:
        if start is not None:
            kind, value = ("Parameter", repr(float(start))) if start.is_number else ("Expression", code(start))
            lines.append(f'{name} = {kind}("{name}", {value})')
        lines.append(f"Initial({state}(), {name})")
    lines += ["", "# Named quantities (Hill functions per edge, productions, drug)"]
    lines += [f'{name} = Expression("{name}", {code(formula)})' for name, formula in encoding.quantities]
    lines += ["", "# Rules"]
    for rates, rules in encoding.rules:
        lines += [f'{name} = Expression("{name}", {text or code(formula)})' for name, formula, text in rates]
        lines += [f'Rule("{r.name}", {"None >> " + r.state + "()" if r.makes else r.state + "() >> None"}, {r.rate})'
                  for r in rules]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ objects


def to_pysb(model: OdeModel, formulas: Formulas | None = None) -> pysb.Model:
    """The model as a `pysb.Model` with the same ODEs: the encoding `pysb_source` writes.

    Every state has an Initial, so BioNetGen's species are the model's states in their order.
    Names need not be `valid_id`: no source is written.
    """
    import pysb
    from pysb.core import time as pysb_time

    formulas = checked_formulas(model, formulas, ids=False)
    encoding = _encode(model, formulas, every_initial=True)
    out = pysb.Model(name=model.name, _export=False)

    def add(component):
        out.add_component(component)
        return component

    monomers = {s: add(pysb.Monomer(s, _export=False)) for s in model.states}
    components: dict[sympy.Symbol, sympy.Basic] = {TIME: pysb_time}
    for name, parameter in model.parameters.items():
        components[symbol(name)] = add(pysb.Parameter(name, parameter.value, _export=False))
    for state, name in encoding.observables.items():
        components[symbol(state)] = add(pysb.Observable(name, monomers[state](), _export=False))

    def expression(name: str, formula: sympy.Expr) -> pysb.Expression:
        components[symbol(name)] = add(pysb.Expression(name, sympy.sympify(formula).xreplace(components),
                                                       _export=False))
        return components[symbol(name)]

    for state, name, start in encoding.initials:
        if start is None:
            value = components[symbol(name)]
        elif start.is_number:
            value = add(pysb.Parameter(name, float(start), _export=False))
        else:
            value = expression(name, start)
        out.add_initial(pysb.Initial(monomers[state](), value, _export=False))
    for name, formula in encoding.quantities:
        expression(name, formula)
    for rates, rules in encoding.rules:
        for name, formula, _ in rates:
            expression(name, formula)
        for rule in rules:
            pattern = None >> monomers[rule.state]() if rule.makes else monomers[rule.state]() >> None
            add(pysb.Rule(rule.name, pattern, components[symbol(rule.rate)], _export=False))
    return out


def from_pysb(pysb_model: pysb.Model) -> OdeModel:
    """An OdeModel from the reaction network BioNetGen generates for a PySB model.

    States are the network's species, named after their pattern (`A(b=1) % B(a=1)` →
    `A_b_1_B_a_1`, made unique); Parameters keep their names and values; Expressions become
    `expressions` and Observables `observables`, both written over the states.
    """
    from pysb.bng import generate_equations
    from pysb.core import time as pysb_time

    generate_equations(pysb_model)
    parameters = {p.name: Parameter(p.name, float(p.value)) for p in pysb_model.parameters}
    taken = {*parameters, *(e.name for e in pysb_model.expressions), *(o.name for o in pysb_model.observables)}
    states = [unique_name(re.sub(r"\W+", "_", str(species)).strip("_") or "species", taken)
              for species in pysb_model.species]

    # PySB's species symbols `__s<i>` carry no assumptions: they are PySB's, not the model's symbols.
    symbols = {sympy.Symbol(f"__s{i}"): symbol(s) for i, s in enumerate(states)}
    symbols.update({p: symbol(p.name) for p in pysb_model.parameters})
    symbols[pysb_time] = TIME
    expanded = {e: e.expand_expr(expand_observables=True).xreplace(symbols) for e in pysb_model.expressions}

    def over_states(expr: sympy.Expr) -> sympy.Expr:
        return sympy.sympify(expr).xreplace(expanded).xreplace(symbols)

    initial: dict[str, sympy.Expr] = {s: sympy.Integer(0) for s in states}
    for ic in pysb_model.initials:
        initial[states[pysb_model.get_species_index(ic.pattern)]] = over_states(ic.value)
    return OdeModel(
        name=pysb_model.name or "pysb_model",
        states=states,
        parameters=parameters,
        rhs={s: over_states(ode) for s, ode in zip(states, pysb_model.odes)},
        initial=initial,
        observables={o.name: over_states(o.expand_obs()) for o in pysb_model.observables},
        expressions={e.name: expanded[e] for e in pysb_model.expressions},
    )
