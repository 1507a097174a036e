"""A model as Markdown with LaTeX (the `convert` step's equations.md): rate equations, named
quantities, initial values and the parameter table, written by the model's `Formulas`."""

from __future__ import annotations

from collections.abc import Collection

import sympy

from qspflow.io import format_float
from qspflow.model import TIME, OdeModel, symbol
from qspflow.model.formulas import Formulas, checked_formulas, relaxing_states


def _latex_names(names: Collection[str]) -> dict[sympy.Symbol, str]:
    """How each name prints in LaTeX: tau_X as τ_X, time as t, others upright with `_` escaped."""

    def upright(text: str) -> str:
        return r"\mathrm{" + text.replace("_", r"\_") + "}"

    out: dict[sympy.Symbol, str] = {TIME: "t"}
    for name in names:
        tau = name.startswith("tau_") and len(name) > 4
        out[symbol(name)] = rf"\tau_{{{upright(name[4:])}}}" if tau else upright(name)
    return out


def equations_markdown(model: OdeModel, formulas: Formulas | None = None, *, description: str | None = None) -> str:
    """The model as Markdown with LaTeX: one line dX/dt = … per state, the named quantities
    (productions, Hill functions, drug), the initial values and the parameter table."""
    formulas = checked_formulas(model, formulas)
    names = _latex_names([*model.states, *model.parameters, *formulas.quantities])

    def tex(expr: sympy.Expr) -> str:
        return sympy.latex(sympy.sympify(expr), symbol_names=names)

    lines = [f"# Model `{model.name}`", ""]
    if description:
        lines += [description, ""]
    lines += ["## Rate equations", ""]
    relaxing = relaxing_states(model, formulas)
    for state in model.states:
        x = names[symbol(state)]
        if state in relaxing:  # as written by hand: (B − x)/τ, not sympy's (−x + B)/τ
            rate = rf"\frac{{{names[symbol(f'production_{state}')]} - {x}}}{{{names[symbol(f'tau_{state}')]}}}"
        else:
            rate = tex(formulas.rates[state])
        lines.append(rf"$$\frac{{d{x}}}{{dt}} = {rate}$$")
    lines += ["", "## Production terms and other named quantities", ""]
    lines += [f"$${names[symbol(q)]} = {tex(formulas.quantities[q])}$$" for q in formulas.order()]
    lines += ["", "## Initial values", "", "States not listed start at 0.", ""]
    lines += [f"$${names[symbol(s)]}(0) = {tex(model.initial[s])}$$"
              for s in model.states if sympy.sympify(model.initial[s]) != 0]
    lines += ["", "## Parameters", "", "| parameter | value | lower | upper | scale | unit | estimate |",
              "|---|---|---|---|---|---|---|"]
    for name, p in model.parameters.items():
        lines.append(f"| `{name}` | {format_float(p.value)} | {format_float(p.lower)} | {format_float(p.upper)} "
                     f"| {p.scale} | {p.unit} | {'yes' if p.estimate else 'no'} |")
    return "\n".join(lines) + "\n"
