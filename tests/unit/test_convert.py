"""Odefy's conversions against hand-computed values, the PK inputs against closed forms, inhibitors,
and the PySB file against BioNetGen's network of it."""

from __future__ import annotations

import importlib.util
import itertools
import math
import warnings

import numpy as np
import pytest
import sympy
from pysb.core import ModelExistsWarning
from scipy.integrate import solve_ivp

from qspflow.boolean import BooleanNetwork, evaluate, parse_bnet, random_network, read_bnet
from qspflow.convert import add_inhibitors, boolean_to_ode, couple_pkpd
from qspflow.convert.odefy import inhibitor_formulas, odefy_formulas
from qspflow.convert.pkpd import pkpd_formulas
from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel, Parameter
from qspflow.model.equations import equations_markdown
from qspflow.model.pysb import from_pysb, pysb_source

GATES = {"a": "a", "b": "b", "c": "c", "AND": "a & b", "OR": "a | b", "NOT": "!a", "GATE": "a & (b | !c)"}
POINT = {"a": 0.3, "b": 0.6, "c": 0.8}
N, K = 3.0, 0.5


def _hill(x: float, normalized: bool) -> float:
    return x**N / (x**N + K**N) * ((1 + K**N) if normalized else 1.0)


def _rhs_at(model: OdeModel, node: str, values: dict[str, float]) -> float:
    subs = {model.symbol(name): value for name, value in values.items()}
    subs.update({model.symbol(name): p.value for name, p in model.parameters.items()})
    return float(model.rhs[node].xreplace(subs))


def _true_rows_sum(net: BooleanNetwork, node: str, f: dict[str, float]) -> float:
    """Odefy's definition verbatim: Σ over the true rows of Π f or (1 − f)."""
    regulators = net.regulators(node)
    total = 0.0
    for bits in itertools.product((0, 1), repeat=len(regulators)):
        if evaluate(net.rules[node], dict(zip(regulators, bits))):
            total += math.prod(f[r] if bit else 1 - f[r] for r, bit in zip(regulators, bits))
    return total


def test_boolecube_of_and_or_not_matches_hand_computed_values():
    model = boolean_to_ode(BooleanNetwork.from_rules(GATES), method="boolecube")
    at = {**POINT, "AND": 0.0, "OR": 0.0, "NOT": 0.0, "GATE": 0.0}
    assert _rhs_at(model, "AND", at) == pytest.approx(0.3 * 0.6)
    assert _rhs_at(model, "OR", at) == pytest.approx(0.3 + 0.6 - 0.3 * 0.6)
    assert _rhs_at(model, "NOT", at) == pytest.approx(0.7)
    # a·b·(1−c) + a·b·c + a·(1−b)·(1−c) = 0.144 + 0.036 + 0.024
    assert _rhs_at(model, "GATE", at) == pytest.approx(0.204)


@pytest.mark.parametrize("method", ["boolecube", "hillcube", "normalized-hillcube"])
def test_every_conversion_is_the_multilinear_form_over_transformed_inputs(method):
    net = BooleanNetwork.from_rules(GATES)
    model = boolean_to_ode(net, method=method, n=N, k=K, tau=2.0)
    for a, b, c in [(0.3, 0.6, 0.8), (0.0, 1.0, 0.5), (0.9, 0.1, 0.05)]:
        point = {"a": a, "b": b, "c": c}
        f = point if method == "boolecube" else {x: _hill(v, method == "normalized-hillcube") for x, v in point.items()}
        for node in ("AND", "OR", "NOT", "GATE"):
            state = {**point, node: 0.25}
            expected = (_true_rows_sum(net, node, f) - 0.25) / 2.0
            assert _rhs_at(model, node, state) == pytest.approx(expected, rel=1e-12, abs=1e-15), (node, point)


def test_parameters_inputs_and_bounds():
    net = BooleanNetwork.from_rules(GATES)
    model = boolean_to_ode(net, bounds={"tau": (0.5, 5.0), "k_a_AND": (0.2, 0.8, "log10")})
    assert model.rhs["a"] == 0 and model.initial["a"] == model.symbol("input_a")
    assert model.initial["AND"] == 0 and model.parameters["input_a"].value == 0.0
    tau, k, n, k_default = (model.parameters[p] for p in ("tau_AND", "k_a_AND", "n_b_OR", "k_b_AND"))
    assert (tau.lower, tau.upper, tau.scale) == (0.5, 5.0, "log10")
    assert (k.lower, k.upper, k.scale) == (0.2, 0.8, "log10")
    assert (n.lower, n.upper, n.scale, n.value) == (1.0, 5.0, "lin", 3.0)
    assert (k_default.lower, k_default.upper, k_default.scale, k_default.value) == (0.1, 1.0, "lin", 0.5)
    assert "k_a_AND" not in boolean_to_ode(net, method="boolecube").parameters


def test_boolean_steady_states_of_the_cell_cycle_are_ode_steady_states(cases):
    net = read_bnet(cases / "boolnet_cellcycle" / "cellcycle.bnet")
    fixed = [s for s in itertools.product((0, 1), repeat=len(net.nodes)) if net.step(s) == s]
    assert fixed
    for method in ("boolecube", "normalized-hillcube"):
        model = boolean_to_ode(net, method=method)
        values = {model.symbol(n): p.value for n, p in model.parameters.items()}
        rhs = sympy.lambdify([model.state_symbols], [sympy.sympify(e).xreplace(values) for e in model.rhs.values()])
        for state in fixed:
            assert np.abs(rhs(state)).max() < 1e-12, (method, state)


# --- PK/PD ---------------------------------------------------------------------------------------

KA, CL, VC, F = 1.2, 8.0, 40.0, 0.7


def _pk_model(**kwargs) -> OdeModel:
    model = couple_pkpd(boolean_to_ode(BooleanNetwork.from_rules({"u": "u", "T": "u"})), target="T", **kwargs)
    for name, value in dict(pk_ka=KA, pk_cl=CL, pk_vc=VC, pk_f=F).items():
        if name in model.parameters:
            model.parameters[name].value = value
    return model


def _integrate(model: OdeModel, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States and C_drug by scipy's DOP853 at tight tolerances, restarted at the model's breakpoints."""
    values = {model.symbol(n): p.value for n, p in model.parameters.items()}
    states = model.state_symbols
    f = sympy.lambdify([TIME, states], [sympy.sympify(model.rhs[s]).xreplace(values) for s in model.states])
    c = sympy.lambdify([TIME, states], model.observables["C_drug"].xreplace(values))
    y = [float(sympy.sympify(model.initial[s]).xreplace(values)) for s in model.states]
    edges = sorted({0.0, times[-1], *(b for b in model.breakpoints() if 0 < b < times[-1])})
    out, conc = np.empty((times.size, len(y))), np.empty(times.size)
    for a, b in zip(edges[:-1], edges[1:]):
        inside = (times >= a) & (times <= b)
        sol = solve_ivp(f, (a, b), y, method="DOP853", rtol=1e-12, atol=1e-14, dense_output=True)
        out[inside] = sol.sol(times[inside]).T
        conc[inside] = [c(t, sol.sol(t)) for t in times[inside]]
        y = sol.y[:, -1]
    return out, conc


def _concentration(model: OdeModel, times: np.ndarray) -> np.ndarray:
    return _integrate(model, times)[1]


def _bateman(dose: float, t: np.ndarray) -> np.ndarray:
    k = CL / VC
    after = np.clip(t, 0.0, None)
    return np.where(t >= 0, F * dose * KA / (VC * (KA - k)) * (np.exp(-k * after) - np.exp(-KA * after)), 0.0)


def test_single_oral_dose_follows_the_bateman_function():
    times = np.linspace(0.0, 24.0, 49)
    model = _pk_model(route="oral", doses=[(0.0, 100.0)])
    c = _concentration(model, times)
    assert model.states == ["u", "T", "A_c"]
    np.testing.assert_allclose(c[1:], _bateman(100.0, times)[1:], rtol=1e-6)


def test_repeated_oral_doses_superpose():
    times = np.linspace(0.0, 24.0, 97)
    model = _pk_model(route="oral", doses=[(0.0, 100.0), (6.0, 50.0), (12.5, 80.0)])
    assert model.breakpoints() == [0.0, 6.0, 12.5]
    expected = _bateman(100.0, times) + _bateman(50.0, times - 6.0) + _bateman(80.0, times - 12.5)
    np.testing.assert_allclose(_concentration(model, times)[1:], expected[1:], rtol=1e-6)


def test_iv_bolus_and_infusion_follow_their_closed_forms():
    times = np.linspace(0.0, 24.0, 49)
    k = CL / VC
    bolus = _pk_model(route="iv_bolus", doses=[(0.0, 100.0), (8.0, 100.0)])
    expected = 100.0 / VC * (np.exp(-k * times) + np.where(times >= 8, np.exp(-k * (times - 8.0)), 0.0))
    np.testing.assert_allclose(_concentration(bolus, times), expected, rtol=1e-6)
    infusion = _pk_model(route="iv_infusion", doses=[(2.0, 60.0)], infusion_duration=3.0)
    rate = 60.0 / 3.0
    during = rate / CL * (1 - np.exp(-k * np.clip(times - 2.0, 0, 3.0)))
    expected = np.where(times <= 5.0, during, during * np.exp(-k * (times - 5.0)))
    assert infusion.breakpoints() == [2.0, 5.0]
    np.testing.assert_allclose(_concentration(infusion, times), expected, rtol=1e-6, atol=1e-12)


def test_two_compartments_conserve_the_dose():
    model = _pk_model(route="iv_bolus", compartments=2, doses=[(0.0, 100.0)])
    values = {model.symbol(n): p.value for n, p in model.parameters.items()}
    a_c = 100 - model.symbol("A_out")
    # d(A_c + A_p)/dt = −CL/Vc·A_c: what leaves the body is only the elimination.
    total = (-model.rhs["A_out"] + model.rhs["A_p"]).subs(TIME, 1.0)
    assert sympy.simplify(total.subs(values) + (CL / VC * a_c).subs(values)) == 0


@pytest.mark.parametrize("effect", ["inhibit", "activate"])
def test_drug_effect_scales_the_target_production(effect):
    model = _pk_model(route="oral", doses=[(0.0, 100.0)], compartments=2, effect=effect)
    p = {n: q.value for n, q in model.parameters.items()}
    c = 0.8
    e = p["pd_emax"] * c ** p["pd_hill"] / (p["pd_ec50"] ** p["pd_hill"] + c ** p["pd_hill"])
    b = _hill(0.6, normalized=True)  # T = u through a normalized Hill function
    production = b * (1 - e) if effect == "inhibit" else b + (1 - b) * e
    at = {"u": 0.6, "T": 0.2, "A_c": c * VC, "A_p": 0.0}
    assert _rhs_at(model, "T", at) == pytest.approx((production - 0.2) / p["tau_T"], rel=1e-12)
    assert {"pk_q", "pk_vp", "pd_emax", "pd_ec50", "pd_hill"} <= set(model.parameters)


def test_regimen_amount_is_a_parameter_conditions_can_set():
    model = _pk_model(route="oral", interval=12.0, n_doses=3)
    assert model.parameters["dose_drug"].value == 0.0 and model.breakpoints() == [0.0, 12.0, 24.0]
    assert "dose_x" in _pk_model(route="oral", interval=12.0, n_doses=1, dose_parameter="dose_x").parameters
    with pytest.raises(ModelError, match="either `doses`"):
        _pk_model(route="oral", doses=[(0.0, 1.0)], n_doses=2)
    with pytest.raises(ModelError, match="tau_<node>"):
        couple_pkpd(boolean_to_ode(BooleanNetwork.from_rules({"u": "u", "T": "u"})), target="u", doses=[(0, 1)])


def test_converted_example_network_reproduces_the_example_generator():
    """The bundled example's truth, simulated by `qspflow.example` (its own Radau code), is
    the normalized HillCube of its network with 2-compartment oral PK inhibiting MEK."""
    from qspflow import example

    net = parse_bnet(example.bnet_text())
    model = couple_pkpd(boolean_to_ode(net), target=example.DRUG_TARGET, compartments=2, route="oral",
                        interval=example.DOSE_INTERVAL_H, n_doses=example.N_DOSES, dose_parameter="dose_drug")
    condition = {"stimulus:EGF": 1, "stimulus:TNFa": 1, "inhibitor:PI3K": 0, "dose:drug": 100}
    values = {**example.true_parameters(), "input_EGF": 1.0, "input_TNFa": 1.0, "dose_drug": 100.0}
    assert set(example.true_parameters()) <= set(model.parameters)
    for name, value in values.items():
        model.parameters[name].value = value
    times = np.array(example.MEASUREMENT_TIMES)
    states, conc = _integrate(model, times)
    truth = example.simulate_truth(example.true_parameters(), condition, times)
    nodes = [model.states.index(node) for node in example.INTERNAL]
    np.testing.assert_allclose(states[:, nodes], truth[list(example.INTERNAL)].to_numpy(), atol=1e-7)
    np.testing.assert_allclose(conc, truth[example.CONCENTRATION].to_numpy(), rtol=1e-7, atol=1e-10)


def test_fractional_hill_exponents_stay_real_just_below_zero():
    # An integrator's stage values may dip below 0 by less than its absolute tolerance.
    model = boolean_to_ode(BooleanNetwork.from_rules(GATES), n=2.5)
    at = {"a": -1e-12, "b": 0.6, "c": -1e-12, "AND": 0.0, "OR": 0.0, "NOT": 0.0, "GATE": 0.0}
    assert all(math.isfinite(_rhs_at(model, node, at)) for node in ("AND", "OR", "NOT", "GATE"))


# --- named quantities, inhibitors ----------------------------------------------------------------


def test_productions_and_hill_functions_are_named_expressions_of_the_rates():
    model = boolean_to_ode(BooleanNetwork.from_rules(GATES), tau=2.0)
    assert set(model.expressions) == {"production_AND", "production_OR", "production_NOT", "production_GATE",
                                      *(f"hill_{s}_{t}" for t, s in [("AND", "a"), ("AND", "b"), ("OR", "a"),
                                                                     ("OR", "b"), ("NOT", "a"), ("GATE", "a"),
                                                                     ("GATE", "b"), ("GATE", "c")])}
    for node in ("AND", "OR", "NOT", "GATE"):
        x, tau = model.symbol(node), model.symbol(f"tau_{node}")
        assert model.rhs[node] == (model.expressions[f"production_{node}"] - x) / tau
    at = {**POINT, "AND": 0.0, "OR": 0.0, "NOT": 0.0, "GATE": 0.0}
    subs = {model.symbol(n): v for n, v in at.items()} | {model.symbol(n): p.value for n, p in model.parameters.items()}
    assert float(model.expressions["hill_b_OR"].xreplace(subs)) == pytest.approx(_hill(0.6, normalized=True))


def test_inhibitor_switches_a_production_off_and_an_input_to_zero():
    net = BooleanNetwork.from_rules({"u": "u", "T": "u", "Y": "T"})
    model = add_inhibitors(couple_pkpd(boolean_to_ode(net), target="T", doses=[(0.0, 10.0)]), ["T", "u"])
    inh_t = model.parameters["inh_T"]
    assert (inh_t.value, inh_t.lower, inh_t.upper, inh_t.estimate) == (0.0, 0.0, 1.0, False)
    assert model.initial["u"] == model.symbol("input_u") * (1 - model.symbol("inh_u"))
    at = {"u": 0.6, "T": 0.2, "Y": 0.1, "A_c": 5.0}
    off = {**at, "inh_T": 1.0}
    subs = {model.symbol(n): p.value for n, p in model.parameters.items() if n != "inh_T"}
    rhs = model.rhs["T"].xreplace(subs)
    assert float(rhs.xreplace({model.symbol(n): v for n, v in off.items()})) == pytest.approx(-0.2)  # tau_T = 1
    on = float(rhs.xreplace({model.symbol(n): v for n, v in {**at, "inh_T": 0.0}.items()}))
    assert on == pytest.approx(_rhs_at(couple_pkpd(boolean_to_ode(net), target="T", doses=[(0.0, 10.0)]), "T", at))
    with pytest.raises(ModelError, match="'Z'"):
        add_inhibitors(boolean_to_ode(net), ["Z"])


# --- the PySB file ------------------------------------------------------------------------------


def _import_source(source: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"qspflow_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelExistsWarning)  # every file's Model() replaces PySB's default model
        spec.loader.exec_module(module)
    return module.model


def assert_same_odes(model: OdeModel, other: OdeModel, seed: int = 0) -> None:
    """The right-hand sides agree at random states, parameters and times (other may have extra parameters)."""
    assert set(other.states) == set(model.states)
    rng = np.random.default_rng(seed)
    symbols = [*model.state_symbols, *model.parameter_symbols, TIME]
    extra = [other.symbol(p) for p in other.parameters if p not in model.parameters]
    ours = sympy.lambdify(symbols, [model.rhs[s] for s in model.states])
    theirs = sympy.lambdify(symbols + extra, [other.rhs[s] for s in model.states])
    for _ in range(20):
        point = [*rng.uniform(0.01, 1.5, len(model.states)), *rng.uniform(0.2, 4.0, len(model.parameters)),
                 rng.uniform(0.0, 30.0)]
        a = np.array(ours(*point))
        b = np.array(theirs(*point, *(other.parameters[str(e)].value for e in extra)))
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("method", "drug", "inhibited"),
    [
        ("normalized-hillcube", dict(route="oral", compartments=2, interval=12.0, n_doses=2), ["ERK", "EGF"]),
        ("hillcube", dict(route="iv_bolus", compartments=2, effect="activate", doses=[(0.0, 5.0), (6.0, 5.0)]), []),
        ("boolecube", dict(route="iv_infusion", compartments=1, doses=[(1.0, 5.0)], infusion_duration=2.0), ["NFkB"]),
    ],
)
def test_pysb_file_gives_the_model_odes_through_bionetgen(example, tmp_path, method, drug, inhibited):
    net = read_bnet(example / "truth" / "network.bnet")
    model, formulas = odefy_formulas(net, method=method, n=2.5, k=0.4, tau=1.5, bounds=None)
    defaults = dict(effect="inhibit", doses=None, dose_parameter=None, interval=None, n_doses=None,
                    infusion_duration=None)
    model, formulas = pkpd_formulas(model, formulas, target="MEK", **{**defaults, **drug})
    model, formulas = inhibitor_formulas(model, formulas, inhibited)
    source = pysb_source(model, formulas)
    assert source == pysb_source(model, formulas)  # deterministic text
    pysb_model = _import_source(source, tmp_path, method.replace("-", "_"))

    rules = {r.name for r in pysb_model.rules}
    assert {"synthesis_MEK", "degradation_MEK", f"dynamics_{model.states[10]}"} <= rules
    assert not any(rule.endswith("EGF") for rule in rules)  # an input
    assert pysb_model.rules["degradation_MEK"].reactant_pattern.complex_patterns  # MEK() >> None
    assert "drug_effect" in str(pysb_model.expressions["production_MEK"].expr)
    assert_same_odes(model, from_pysb(pysb_model))  # BioNetGen's network, equations as PySB builds them


def test_pysb_file_of_any_model_uses_zero_order_rules(tmp_path):
    model = couple_pkpd(boolean_to_ode(BooleanNetwork.from_rules(GATES), method="hillcube"), target="GATE",
                        route="oral", doses=[(0.0, 3.0)])
    pysb_model = _import_source(pysb_source(model), tmp_path, "plain")
    assert {r.name for r in pysb_model.rules} >= {"synthesis_GATE", "degradation_AND", "dynamics_A_c"}
    assert_same_odes(model, from_pysb(pysb_model), seed=1)


def test_pysb_file_keeps_a_constant_state_and_sympy_functions(tmp_path):
    x, y, k = (sympy.Symbol(n, real=True) for n in ("x", "y", "k"))
    model = OdeModel("generic", ["x", "y"], {"k": Parameter("k", 0.5)},
                     {"x": -k * sympy.Max(x, k) + sympy.Piecewise((1, TIME >= 2.5), (0, True)), "y": sympy.Integer(0)},
                     {"x": sympy.Integer(1), "y": sympy.Integer(0)})
    back = from_pysb(_import_source(pysb_source(model), tmp_path, "generic"))
    assert back.states == ["x", "y"] and back.rhs["y"] == 0  # y: no rule, so an explicit Initial of 0
    assert_same_odes(model, back, seed=3)


@pytest.mark.filterwarnings("ignore:Model does not contain any initial conditions")  # no input nodes
def test_pysb_file_of_a_random_network_gives_its_odes(tmp_path):
    net = random_network(9, seed=7)
    model, formulas = odefy_formulas(net, method="normalized-hillcube", n=3.0, k=0.5, tau=1.0, bounds=None)
    assert_same_odes(model, from_pysb(_import_source(pysb_source(model, formulas), tmp_path, "random")), seed=2)


def test_formulas_that_do_not_describe_the_model_are_refused():
    model, formulas = odefy_formulas(BooleanNetwork.from_rules(GATES), method="boolecube", n=3.0, k=0.5, tau=1.0,
                             bounds=None)
    formulas.quantities["production_AND"] = model.symbol("a")
    with pytest.raises(ModelError, match="production_AND"):
        pysb_source(model, formulas)


def test_equations_markdown_has_one_line_per_state_and_the_parameter_table():
    model, formulas = odefy_formulas(BooleanNetwork.from_rules(GATES), method="normalized-hillcube", n=3.0, k=0.5,
                             tau=1.0, bounds=None)
    text = equations_markdown(model, formulas)
    for state in model.states:
        line = rf"$$\frac{{d\mathrm{{{state}}}}}{{dt}} = "
        assert text.count(line) == 1, state
    assert (r"$$\frac{d\mathrm{AND}}{dt} = \frac{\mathrm{production\_AND} - \mathrm{AND}}{\tau_{\mathrm{AND}}}$$"
            in text)
    assert r"$$\mathrm{production\_OR} = " in text and "| `k_a_AND` | 0.5 | 0.1 | 1 | lin |  | yes |" in text
