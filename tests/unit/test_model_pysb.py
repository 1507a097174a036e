"""OdeModel ↔ PySB: the dynamics survive a round trip through BioNetGen, and a rule-based
model's network matches PySB's own simulator."""

from __future__ import annotations

import importlib.util

import numpy as np
import pysb
import pytest
from pysb.core import time as pysb_time
from pysb.simulator import ScipyOdeSimulator

from qspflow.boolean import BooleanNetwork
from qspflow.convert import boolean_to_ode, couple_pkpd
from qspflow.model import TIME
from qspflow.model.pysb import from_pysb, pysb_source, to_pysb
from qspflow.model.sbml import read_sbml
from qspflow.petab import simulate_condition

RTOL, ATOL = 1e-10, 1e-14


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


@pytest.mark.parametrize(
    ("path", "values", "t_end"),
    [
        ("tests/unit/data/sbml/features.xml", {}, 20.0),
        ("petab/Fujita_SciSignal2010/model_Fujita_SciSignal2010.xml", {"EGF_0": 1.0, "EGF_end": 600.0}, 1800.0),
    ],
)
def test_round_trip_through_pysb_keeps_the_dynamics(root, cases, path, values, t_end):
    model = read_sbml(root / path if path.startswith("tests") else cases / path)
    back = from_pysb(to_pysb(model))
    times = np.linspace(0, t_end, 31)

    assert back.states == model.states
    assert relative_difference(
        simulate_condition(back, values, times, rtol=RTOL, atol=ATOL),
        simulate_condition(model, values, times, rtol=RTOL, atol=ATOL),
    ) <= 1e-8


def test_to_pysb_encodes_each_state_as_one_zero_order_rule(root):
    model = read_sbml(root / "tests/unit/data/sbml/features.xml")
    converted = to_pysb(model)

    assert [m.name for m in converted.monomers] == model.states
    rule = converted.rules["dynamics_A"]
    assert rule.reactant_pattern.complex_patterns == [] and rule.rate_forward.name == "rate_A"
    # The rate is the right-hand side over the state observables, parameter-dependent x(0) an Expression.
    back = {converted.observables[f"{s}_obs"]: model.symbol(s) for s in model.states}
    back |= {p: model.symbol(p.name) for p in converted.parameters} | {pysb_time: TIME}
    assert converted.expressions["rate_A"].expr.xreplace(back) == model.rhs["A"]
    assert [i.pattern.monomer_patterns[0].monomer.name for i in converted.initials] == model.states
    assert converted.expressions["C_0"].expr.free_symbols >= {converted.parameters["c0"]}
    assert {p.name: p.value for p in converted.parameters}["import_k"] == 0.7


def binding_model() -> pysb.Model:
    """A + B ⇌ AB with synthesis of A and degradation of the complex (rule-based, bonds)."""
    model = pysb.Model("binding", _export=False)
    a = pysb.Monomer("A", ["b"], _export=False)
    b = pysb.Monomer("B", ["a"], _export=False)
    params = {name: pysb.Parameter(name, value, _export=False)
              for name, value in (("kf", 2.0), ("kr", 0.5), ("ks", 0.3), ("kd", 0.1), ("A0", 1.0), ("B0", 2.0))}
    for component in (a, b, *params.values()):
        model.add_component(component)
    model.add_component(pysb.Rule("bind", a(b=None) + b(a=None) | a(b=1) % b(a=1),
                                  params["kf"], params["kr"], _export=False))
    model.add_component(pysb.Rule("make_A", None >> a(b=None), params["ks"], _export=False))
    model.add_component(pysb.Rule("lose_AB", a(b=1) % b(a=1) >> None, params["kd"], _export=False))
    model.add_component(pysb.Observable("A_total", a(), _export=False))
    model.add_initial(pysb.Initial(a(b=None), params["A0"], _export=False))
    model.add_initial(pysb.Initial(b(a=None), params["B0"], _export=False))
    return model


def test_from_pysb_matches_pysb_simulator_on_a_rule_based_model():
    pysb_model = binding_model()
    model = from_pysb(pysb_model)
    times = np.linspace(0, 10, 21)
    ours = simulate_condition(model, {}, times, rtol=RTOL, atol=ATOL)
    theirs = ScipyOdeSimulator(pysb_model, tspan=times, compiler="python",
                               integrator_options={"rtol": RTOL, "atol": ATOL}).run()

    assert model.states == ["A_b_None", "B_a_None", "A_b_1_B_a_1"]
    assert set(model.parameters) == {"kf", "kr", "ks", "kd", "A0", "B0"}
    assert relative_difference(ours, np.asarray(theirs.species)) <= 1e-6
    A, AB = model.symbol("A_b_None"), model.symbol("A_b_1_B_a_1")
    assert model.observables["A_total"] == A + AB


def test_to_pysb_builds_the_model_file_pysb_source_writes(tmp_path):
    """One encoding: the objects `to_pysb` builds are the components model.py defines (and
    every state has an Initial there), and BioNetGen gives back the model's ODEs from both."""
    net = BooleanNetwork.from_rules({"u": "u", "a": "u", "b": "a & !u"})
    model = couple_pkpd(boolean_to_ode(net), target="b", route="iv_bolus", compartments=2, doses=[(0.0, 2.0)])
    built = to_pysb(model)
    path = tmp_path / "encoded.py"
    path.write_text(pysb_source(model))
    spec = importlib.util.spec_from_file_location("qspflow_test_encoded", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.model

    for kind in ("monomers", "parameters", "observables", "expressions", "rules"):
        ours = {c.name for c in getattr(built, kind)}
        theirs = {c.name for c in getattr(written, kind)}
        assert theirs <= ours and ours - theirs <= {f"{s}_0" for s in model.states}, kind
    assert {r.name for r in built.rules} == {"synthesis_a", "degradation_a", "synthesis_b", "degradation_b",
                                             "dynamics_A_out", "dynamics_A_p"}
    assert [i.pattern.monomer_patterns[0].monomer.name for i in built.initials] == model.states
    times = np.linspace(0, 12, 25)
    values = {"input_u": 1.0}
    expected = simulate_condition(model, values, times, rtol=RTOL, atol=ATOL)
    back = from_pysb(built)
    assert back.states == model.states
    assert relative_difference(simulate_condition(back, values, times, rtol=RTOL, atol=ATOL)[:, 1:],
                               expected[:, 1:]) <= 1e-8
