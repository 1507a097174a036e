"""A model's formulas as a person writes them, and the names every model file can use.

`Formulas` keeps named quantities written over each other's names (`production_Akt =
hill_PI3K_Akt` rather than the Hill function spelled out); the `OdeModel` keeps them fully
substituted. The PySB printer (`qspflow.model.pysb`) and the LaTeX printer
(`qspflow.model.equations`) write the formulas; `realize` builds the model they describe.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import sympy

from qspflow.errors import ModelError
from qspflow.model import OdeModel, Parameter, symbol

# An id must be one in SBML, Python and BioNetGen alike, and must not shadow the names model.py imports.
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_NAMES = frozenset({
    "time", "sympy", "model", "Model", "Monomer", "Parameter", "Expression", "Observable", "Rule", "Initial",
    # BioNetGen's built-in functions and constants
    "exp", "ln", "log10", "log2", "sqrt", "abs", "rint", "min", "max", "sum", "avg", "if", "mratio", "TFUN",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "_pi", "_e",
})
ID_EXPECTED = ("an identifier [A-Za-z_][A-Za-z0-9_]* that is not a Python keyword or one of "
               "time, exp, if, min, max, Model, Monomer, … (SBML, PySB and BioNetGen use it as a name)")


def valid_id(name: str) -> bool:
    """Whether `name` can name a state, parameter or quantity in SBML, PySB and BioNetGen alike."""
    return bool(ID_PATTERN.match(name)) and not keyword.iskeyword(name) and name not in RESERVED_NAMES


@dataclass
class Formulas:
    """A model's formulas as a person writes them: over states, parameters, time and each other's names.

    `quantities`: each named quantity (a model expression or observable) → its formula, which
    may use the names of other quantities; `rates`: each state → dx/dt, over the same names.
    Substituting the quantities into each other gives the model's (fully substituted)
    expressions, observables and right-hand sides.
    """

    quantities: dict[str, sympy.Expr]
    rates: dict[str, sympy.Expr]

    @classmethod
    def of(cls, model: OdeModel) -> Formulas:
        """The plain formulas of `model`: quantities fully substituted; a rate that is exactly
        (production_X − X)/tau_X written so, every other rate as the right-hand side."""
        rates = {}
        for state in model.states:
            production, tau = model.expressions.get(f"production_{state}"), f"tau_{state}"
            rates[state] = model.rhs[state]
            if production is not None and tau in model.parameters:
                x, t = symbol(state), symbol(tau)
                if (production - x) / t == model.rhs[state]:
                    rates[state] = (symbol(f"production_{state}") - x) / t
        return cls({**model.expressions, **model.observables}, rates)

    def copy(self) -> Formulas:
        """Formulas whose mappings can be changed without changing these."""
        return Formulas(dict(self.quantities), dict(self.rates))

    def order(self) -> list[str]:
        """The quantities with every one after those its formula uses (else in their own order)."""
        done: dict[str, None] = {}
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                raise ModelError(None, element=name, message="quantities defined in terms of each other (a cycle)")
            visiting.add(name)
            for used in sorted(self.quantities[name].free_symbols, key=str):
                if used.name in self.quantities:
                    visit(used.name)
            visiting.discard(name)
            done[name] = None

        for name in self.quantities:
            visit(name)
        return list(done)

    def resolve(self) -> dict[str, sympy.Expr]:
        """Every quantity with the others substituted: over states, parameters and time only."""
        values: dict[sympy.Symbol, sympy.Expr] = {}
        for name in self.order():
            values[symbol(name)] = sympy.sympify(self.quantities[name]).xreplace(values)
        return {name.name: value for name, value in values.items()}

    def substituted(self, expr: sympy.Expr, resolved: Mapping[str, sympy.Expr] | None = None) -> sympy.Expr:
        """`expr` with every quantity's name replaced by its resolved formula."""
        resolved = self.resolve() if resolved is None else resolved
        return sympy.sympify(expr).xreplace({symbol(n): v for n, v in resolved.items()})


def realize(name: str, states: Sequence[str], parameters: dict[str, Parameter], initial: dict[str, sympy.Expr],
            formulas: Formulas, observables: Collection[str]) -> OdeModel:
    """The OdeModel the formulas describe; quantities in `observables` become its observables."""
    taken = set(states) | set(parameters)
    for quantity in formulas.quantities:
        if quantity in taken:
            raise ModelError(None, element=quantity, expected="names that are unique among states, parameters "
                             "and derived quantities", message="two elements of the model would share it")
    resolved = formulas.resolve()
    model = OdeModel(
        name,
        list(states),
        parameters,
        {s: formulas.substituted(formulas.rates[s], resolved) for s in states},
        initial,
        {q: resolved[q] for q in formulas.quantities if q in observables},
        {q: resolved[q] for q in formulas.quantities if q not in observables},
    )
    model.validate()
    return model


def checked_formulas(model: OdeModel, formulas: Formulas | None, *, ids: bool = True) -> Formulas:
    """`formulas` (default: `Formulas.of(model)`), checked to describe exactly `model`; with `ids`,
    every name also `valid_id` (a model written as source)."""
    formulas = formulas or Formulas.of(model)
    model.validate()
    for name in [*model.states, *model.parameters, *formulas.quantities] if ids else []:
        if not valid_id(name):
            raise ModelError(None, element=name, expected=ID_EXPECTED)
    resolved = formulas.resolve()
    stored = {**model.expressions, **model.observables}
    if set(resolved) != set(stored) or set(formulas.rates) != set(model.states):
        raise ModelError(None, element=model.name, expected="formulas of the model's quantities and states")
    for name, value in resolved.items():
        if value != stored[name]:
            raise ModelError(None, element=name, expected="a formula equal to the model's expression")
    for state in model.states:
        if formulas.substituted(formulas.rates[state], resolved) != model.rhs[state]:
            raise ModelError(None, element=state, expected="a rate equal to the model's right-hand side")
    return formulas


def relaxing_states(model: OdeModel, formulas: Formulas) -> set[str]:
    """States whose rate is written (production_X − X)/tau_X (Odefy's form: synthesis and degradation)."""
    found = set()
    for state in model.states:
        production, tau = f"production_{state}", f"tau_{state}"
        if production in formulas.quantities and tau in model.parameters:
            expected = (symbol(production) - symbol(state)) / symbol(tau)
            if sympy.sympify(formulas.rates[state]) == expected:
                found.add(state)
    return found
