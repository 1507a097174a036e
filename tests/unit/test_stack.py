"""The pinned stack really works here: Ipopt through Pyomo solves, BioNetGen generates, roadrunner simulates."""

from __future__ import annotations

import math

from qspflow.calibrate.solvers import configure_pyomo

configure_pyomo()

import pyomo.environ as pyo  # noqa: E402  (PYOMO_CONFIG_DIR must be set first)


def test_ipopt_through_cyipopt_solves_a_least_squares_fit() -> None:
    # y = exp(-k t) sampled at k = 0.7: the fit must return k exactly
    times = [0.5, 1.0, 2.0, 3.0]
    m = pyo.ConcreteModel()
    m.k = pyo.Var(initialize=0.1, bounds=(0.01, 5))
    m.obj = pyo.Objective(expr=sum((pyo.exp(-m.k * t) - math.exp(-0.7 * t)) ** 2 for t in times))
    result = pyo.SolverFactory("cyipopt").solve(m)
    assert result.solver.termination_condition == pyo.TerminationCondition.optimal
    assert abs(pyo.value(m.k) - 0.7) < 1e-6


def test_bionetgen_generates_equations_for_a_pysb_model() -> None:
    from pysb import Initial, Model, Monomer, Parameter, Rule
    from pysb.bng import generate_equations

    model = Model("decay", _export=False)
    a = Monomer("A", _export=False)
    k = Parameter("k", 2.0, _export=False)
    a0 = Parameter("A0", 1.0, _export=False)
    for component in (a, k, a0):
        model.add_component(component)
    model.add_initial(Initial(a(), a0, _export=False))
    model.add_component(Rule("decay", a() >> None, k, _export=False))
    generate_equations(model)
    assert len(model.species) == 1 and len(model.odes) == 1
    ode = model.odes[0]
    values = {sym: {"k": 2.0, "__s0": 3.0}[sym.name] for sym in ode.free_symbols}
    assert float(ode.subs(values)) == -6.0


def test_libroadrunner_simulates_sbml(cases) -> None:
    import roadrunner

    rr = roadrunner.RoadRunner(str(cases / "petab/Boehm_JProteomeRes2014/model_Boehm_JProteomeRes2014.xml"))
    result = rr.simulate(0, 10, 11)
    assert result.shape[0] == 11 and all(math.isfinite(v) for v in result[-1])
