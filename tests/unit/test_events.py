"""SBML events: SBML test-suite-style models built with libsbml, checked against their analytic
solutions and libroadrunner, in the compiled simulator (both methods), its sensitivities and the
PEtab reference simulation; the collection's event models against their references."""

from __future__ import annotations

import math
from pathlib import Path

import libsbml
import numpy as np
import pandas as pd
import pytest
import roadrunner
import sympy

from qspflow.calibrate.derivatives import GradientProblem
from qspflow.calibrate.objective import BatchProblem
from qspflow.calibrate.spec import CalibrationSpec
from qspflow.calibrate.transcription import PyomoProblem, check_transcribable
from qspflow.errors import ConfigError, ModelError
from qspflow.model import TIME, Event, OdeModel, Parameter, symbol
from qspflow.model.pysb import to_pysb
from qspflow.model.sbml import read_sbml, sbml_text
from qspflow.petab import load_problem, log_likelihood
from qspflow.petab.reference import simulate_condition
from qspflow.simulate import compile_model
from qspflow.simulate.sensitivity import compile_sensitivities
from test_calibrate import write_problem  # tests/unit is on sys.path (pytest prepend import mode)

K, DOSE, VOLUME, DOSE_TIMES = 0.5, 2.0, 4.0, (1.0, 3.0, 5.0)
REFILL_AT, K_BEFORE, K_AFTER, SWITCH = 0.3, 0.5, 2.0, 2.0
TIMES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0])


def sbml_document(*, species: dict[str, float], parameters: dict[str, float], rates: dict[str, str],
                  events: list[dict], variable: tuple[str, ...] = (), reactions: dict[str, tuple[str, str]] = {},
                  level: int = 3) -> str:
    """An SBML model: species (amounts in compartment `V`, hasOnlySubstanceUnits) and parameters
    (those in `variable` not constant), rate rules `rates`, reactions {id: (reactant, rate law)} and
    events {id, trigger, assign: {variable: formula}, priority, delay, initial, persistent, uvftt}."""
    doc = libsbml.SBMLDocument(level, 2 if level == 3 else 4)
    m = doc.createModel()
    m.setId("events")
    c = m.createCompartment()
    c.setId("V")
    c.setSize(VOLUME)
    c.setConstant(True)
    for sid, amount in species.items():
        s = m.createSpecies()
        s.setId(sid)
        s.setCompartment("V")
        s.setInitialAmount(amount)
        s.setHasOnlySubstanceUnits(True)
        s.setBoundaryCondition(False)
        s.setConstant(False)
    for pid, value in parameters.items():
        p = m.createParameter()
        p.setId(pid)
        p.setValue(value)
        p.setConstant(pid not in variable)
    for target, formula in rates.items():
        rule = m.createRateRule()
        rule.setVariable(target)
        rule.setMath(libsbml.parseL3Formula(formula))
    for rid, (reactant, law) in reactions.items():
        rx = m.createReaction()
        rx.setId(rid)
        rx.setReversible(False)
        ref = rx.createReactant()
        ref.setSpecies(reactant)
        ref.setStoichiometry(1.0)
        ref.setConstant(True)
        rx.createKineticLaw().setMath(libsbml.parseL3Formula(law))
    for spec in events:
        e = m.createEvent()
        e.setId(spec["id"])
        e.setUseValuesFromTriggerTime(spec.get("uvftt", True))
        trigger = e.createTrigger()
        trigger.setMath(libsbml.parseL3Formula(spec["trigger"]))
        trigger.setInitialValue(spec.get("initial", True))
        trigger.setPersistent(spec.get("persistent", True))
        if "priority" in spec:
            e.createPriority().setMath(libsbml.parseL3Formula(spec["priority"]))
        if "delay" in spec:
            e.createDelay().setMath(libsbml.parseL3Formula(spec["delay"]))
        for target, formula in spec["assign"].items():
            a = e.createEventAssignment()
            a.setVariable(target)
            a.setMath(libsbml.parseL3Formula(formula))
    assert doc.checkInternalConsistency() == 0, doc.getErrorLog().toString()
    return libsbml.writeSBMLToString(doc)


def roadrunner_states(text: str, times: np.ndarray, names: list[str]) -> np.ndarray:
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    return np.array(rr.simulate(times=times, selections=names))


def reference_states(model: OdeModel, times: np.ndarray) -> np.ndarray:
    return simulate_condition(model, {}, times)


# --------------------------- execution order of simultaneous events (compiled with SUITE below)

def order_events(i: int, *, uvftt: bool, persistent: bool) -> list[dict]:
    """At t = 1 `double` (priority 2) doubles z, then `add` (priority 1) adds 1 to the z it sees;
    `gate` (priority 3) closes g, which `gated`'s trigger (time ≥ 1 and g > 0.5) needs."""
    z, w, g = f"z{i}", f"w{i}", f"g{i}"
    return [
        {"id": f"add{i}", "trigger": "time >= 1", "assign": {z: f"{z} + 1"}, "priority": "1", "uvftt": uvftt},
        {"id": f"double{i}", "trigger": "time >= 1", "assign": {z: f"2 * {z}"}, "priority": "2"},
        {"id": f"gate{i}", "trigger": "time >= 1", "assign": {g: "0"}, "priority": "3"},
        {"id": f"gated{i}", "trigger": f"time >= 1 && {g} > 0.5", "assign": {w: "1"}, "persistent": persistent},
    ]


# Three copies of the same events (states z_i, w_i, g_i) differing in useValuesFromTriggerTime and
# persistence; two triggers true at time 0, one initially false, one initially true; delays: u gains
# 1 at 1.5, and of two executions delayed to 1.75 the non-persistent one is dropped when h closes at 1.5.
SEMANTICS = {
    "species": {**{f"z{i}": 1.0 for i in range(3)}, **{f"w{i}": 0.0 for i in range(3)}, "s0": 1.0, "s1": 1.0,
                "u": 0.0, "c0": 0.0, "c1": 0.0},
    "parameters": {**{f"g{i}": 1.0 for i in range(3)}, "h": 1.0},
    "variable": (*(f"g{i}" for i in range(3)), "h"),
    "rates": {name: "0" for name in (*(f"z{i}" for i in range(3)), *(f"w{i}" for i in range(3)), "s0", "s1", "u",
                                     "c0", "c1")},
    "events": [
        *order_events(0, uvftt=False, persistent=True),
        *order_events(1, uvftt=True, persistent=True),
        *order_events(2, uvftt=True, persistent=False),
        {"id": "start0", "trigger": "s0 > 0.5", "assign": {"s0": "5"}, "initial": False},
        {"id": "start1", "trigger": "s1 > 0.5", "assign": {"s1": "5"}, "initial": True},
        {"id": "lagged", "trigger": "time >= 1", "assign": {"u": "u + 1"}, "delay": "0.5"},
        {"id": "close", "trigger": "time >= 1.5", "assign": {"h": "0"}},
        {"id": "dropped", "trigger": "time >= 1 && h > 0.5", "assign": {"c0": "1"}, "delay": "0.75",
         "persistent": False},
        {"id": "kept", "trigger": "time >= 1 && h > 0.5", "assign": {"c1": "1"}, "delay": "0.75"},
    ],
}
# After t = 1: add sees double's z (2·1 + 1), gated runs although g closed; add's value taken at the
# trigger (1 + 1) and executed last; not persistent: gated dropped once gate closes g. start0 fired at 0.
SEMANTICS_AFTER = {"z0": 3.0, "w0": 1.0, "z1": 2.0, "w1": 1.0, "z2": 2.0, "w2": 0.0, "s0": 5.0, "s1": 1.0,
                   "u": 1.0, "c0": 0.0, "c1": 1.0}


# ------------------------------------------------- dosing, a threshold, a switched parameter

# A: one-compartment PK (amount), a bolus at each of DOSE_TIMES; x: refilled to 1 whenever it falls
# below REFILL_AT, `n` counting the refills (a parameter that thereby becomes a state); y: decays at a
# rate `kp` that an event switches at SWITCH.
SUITE = {
    "species": {"A": 0.0, "x": 1.0, "y": 1.0},
    "parameters": {"k": K, "D": DOSE, "a": REFILL_AT, "n": 0.0, "kp": K_BEFORE},
    "variable": ("n", "kp"),
    "rates": {"x": "-k * x", "y": "-kp * y"},
    "reactions": {"elimination": ("A", "k * A")},
    "events": [
        *({"id": f"dose_{i}", "trigger": f"time >= {t}", "assign": {"A": "A + D"}} for i, t in enumerate(DOSE_TIMES)),
        {"id": "refill", "trigger": "x < a", "assign": {"x": "1", "n": "n + 1"}},
        {"id": "switch", "trigger": f"time >= {SWITCH}", "assign": {"kp": str(K_AFTER)}},
    ],
}
REFILL_PERIOD = math.log(1 / REFILL_AT) / K


def suite_analytic(t: np.ndarray) -> dict[str, np.ndarray]:
    """The suite's exact solution; at an event's instant, the value after it."""
    amount = sum(DOSE * np.exp(-K * (t - d)) * (t >= d) for d in DOSE_TIMES)
    refills = np.floor(t / REFILL_PERIOD + 1e-12)
    x = np.exp(-K * (t - refills * REFILL_PERIOD))
    y = np.where(t < SWITCH, np.exp(-K_BEFORE * t), np.exp(-K_BEFORE * SWITCH - K_AFTER * (t - SWITCH)))
    return {"A": amount, "x": x, "y": y, "n": refills, "kp": np.where(t < SWITCH, K_BEFORE, K_AFTER)}


@pytest.fixture(scope="module")
def suite_text() -> str:
    """SUITE and SEMANTICS in one model: independent parts, one compilation."""
    parts = (SUITE, SEMANTICS)
    merged = {key: {k: v for part in parts for k, v in part.get(key, {}).items()}
              for key in ("species", "parameters", "rates", "reactions")}
    return sbml_document(**merged, variable=SUITE["variable"] + SEMANTICS["variable"],
                         events=SUITE["events"] + SEMANTICS["events"])


@pytest.fixture(scope="module")
def suite(suite_text) -> OdeModel:
    return read_sbml(suite_text)


@pytest.fixture(scope="module")
def compiled_suite(suite, tmp_path_factory):
    return compile_model(suite, varying=["k", "D"], cache_dir=tmp_path_factory.mktemp("events-cache"))


def test_events_are_read_with_their_attributes_and_an_assigned_parameter_becomes_a_state(suite):
    assert suite.states[:3] == ["A", "x", "y"] and {"n", "kp"} <= set(suite.states)
    assert "n" not in suite.parameters and "kp" not in suite.parameters
    assert suite.rhs["n"] == 0 and suite.initial["kp"] == K_BEFORE
    refill = suite.events[3]
    assert (refill.id, refill.trigger, refill.assignments) == (
        "refill", symbol("x") < symbol("a"), {"x": 1, "n": symbol("n") + 1})
    assert (refill.priority, refill.initial_value, refill.persistent, refill.use_values_from_trigger_time) == (
        None, True, True, True)


@pytest.mark.parametrize("method", ["explicit", "implicit"])
def test_compiled_doses_threshold_and_switch_match_the_analytic_solution(compiled_suite, suite, method):
    result = compiled_suite.simulate(np.array([[K, DOSE]]), TIMES, method=method, what="states", rtol=1e-9,
                                     atol=1e-12)
    assert result.status[0] == 0
    for name, exact in suite_analytic(TIMES).items():
        values = result.values[0, :, suite.states.index(name)]
        np.testing.assert_allclose(values, exact, rtol=1e-7, atol=1e-9, err_msg=name)


def test_reference_simulation_matches_the_analytic_solution(suite):
    states = reference_states(suite, TIMES)
    for name, exact in suite_analytic(TIMES).items():
        np.testing.assert_allclose(states[:, suite.states.index(name)], exact, rtol=1e-8, atol=1e-10, err_msg=name)


def test_libroadrunner_agrees_between_events(suite_text, suite, compiled_suite):
    """At instants other than the events' (where libroadrunner reports the value before the event)."""
    times = np.linspace(0.0, 8.0, 33) + 0.1
    times = np.concatenate([[0.0], times])
    ours = compiled_suite.simulate(np.array([[K, DOSE]]), times, what="states", rtol=1e-9, atol=1e-12).values[0]
    theirs = roadrunner_states(suite_text, times, suite.states)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


def test_a_batch_gives_each_set_its_own_doses(compiled_suite):
    sets = np.array([[K, DOSE], [2 * K, 3 * DOSE], [K / 2, 0.0]])
    result = compiled_suite.simulate(sets, TIMES, what="states", rtol=1e-9, atol=1e-12)
    for (k, dose), values in zip(sets, result.values):
        exact = sum(dose * np.exp(-k * (TIMES - d)) * (TIMES >= d) for d in DOSE_TIMES)
        np.testing.assert_allclose(values[:, 0], exact, rtol=1e-7, atol=1e-9)


def test_priorities_trigger_time_values_persistence_initial_values_and_delays(suite_text, suite, compiled_suite):
    names = list(SEMANTICS_AFTER)
    times = np.array([0.0, 0.5, 1.0, 2.0])
    before = {name: 1.0 if name.startswith("z") or name == "s1" else 0.0 for name in names} | {"s0": 5.0}
    # At t = 1 the delayed executions are still pending.
    at_one = {**SEMANTICS_AFTER, "u": 0.0, "c0": 0.0, "c1": 0.0}
    expected = np.array([[before[n] for n in names]] * 2 + [[at_one[n] for n in names]]
                        + [[SEMANTICS_AFTER[n] for n in names]])
    columns = [suite.states.index(n) for n in names]
    for method in ("explicit", "implicit"):
        ours = compiled_suite.simulate(np.array([[K, DOSE]]), times, what="states", method=method).values[0]
        np.testing.assert_array_equal(ours[:, columns], expected)
    np.testing.assert_array_equal(reference_states(suite, times)[:, columns], expected)
    np.testing.assert_array_equal(roadrunner_states(suite_text, np.array([0.0, 2.0]), names)[-1], expected[-1])


def test_level_2_triggers_are_initially_true_and_persistent():
    text = sbml_document(species={"z": 1.0}, parameters={}, rates={"z": "0"}, level=2,
                         events=[{"id": "start", "trigger": "z > 0.5", "assign": {"z": "5"}}])
    event = read_sbml(text).events[0]
    assert (event.initial_value, event.persistent, event.use_values_from_trigger_time) == (True, True, True)
    assert reference_states(read_sbml(text), np.array([0.0, 1.0]))[-1, 0] == 1.0
    assert roadrunner_states(text, np.array([0.0, 1.0]), ["z"])[-1, 0] == 1.0


# ------------------------------------------------------------------------------ sensitivities

def test_sensitivities_jump_at_doses_and_move_with_a_state_triggered_event_time(tmp_path):
    """dA/dk, dA/dD, dA/dt_dose of a bolus at t_dose; dx/dk, dx/da across a refill at τ = ln(1/a)/k."""
    A, x, k, dose, t_dose, a = (symbol(n) for n in ("A", "x", "k", "D", "t_dose", "a"))
    parameters = {n: Parameter(n, v) for n, v in (("k", K), ("D", DOSE), ("t_dose", 1.0), ("a", REFILL_AT))}
    model = OdeModel("sensitivities", ["A", "x"], parameters, {"A": -k * A, "x": -k * x},
                     {"A": sympy.Integer(0), "x": sympy.Integer(1)},
                     events=[Event("dose", TIME >= t_dose, {"A": A + dose}),
                             Event("refill", x < a, {"x": sympy.Integer(1)})])
    compiled = compile_sensitivities(model, varying=list(parameters), cache_dir=tmp_path)
    t = np.array([0.5, 1.5, 2.0, 3.0, 4.0])
    result = compiled.simulate(np.array([[K, DOSE, 1.0, REFILL_AT]]), t)
    s = result.sensitivities[0]
    after = np.exp(-K * (t - 1.0)) * (t >= 1.0)
    np.testing.assert_allclose(s[:, 0, :3], np.c_[-(t - 1.0) * DOSE * after, after, K * DOSE * after], atol=1e-7)
    tau = REFILL_PERIOD
    since = np.exp(-K * (t - tau))
    dx_dk = np.where(t < tau, -t * np.exp(-K * t), since * (-(t - tau) - tau))
    dx_da = np.where(t < tau, 0.0, since * K * (-1.0 / (K * REFILL_AT)))
    np.testing.assert_allclose(s[:, 1, [0, 3]], np.c_[dx_dk, dx_da], atol=1e-7)


def test_sensitivities_refuse_a_moving_trigger_of_several_conditions(tmp_path):
    x, a = symbol("x"), symbol("a")
    model = OdeModel("two", ["x"], {"a": Parameter("a", 0.5)}, {"x": -x}, {"x": sympy.Integer(1)},
                     events=[Event("both", (x < a) & (TIME >= 1), {"x": sympy.Integer(1)})])
    with pytest.raises(ModelError, match="element 'both'.*several conditions"):
        compile_sensitivities(model, varying=["a"], cache_dir=tmp_path)


# ----------------------------------------------------------------- writing, refusals, errors

def test_events_survive_writing_and_libroadrunner_reads_them(suite, suite_text):
    text = sbml_text(suite)
    again = read_sbml(text)
    assert [(e.id, e.trigger, e.assignments) for e in again.events] == [
        (e.id, e.trigger, e.assignments) for e in suite.events]
    times = np.array([0.0, 2.5, 4.5, 8.0])
    np.testing.assert_allclose(roadrunner_states(text, times, suite.states),
                               roadrunner_states(suite_text, times, suite.states), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("event", "words"), [
    ({"id": "eq", "trigger": "x == 0.5", "assign": {"x": "1"}}, "element 'eq'.*equality"),
    ({"id": "size", "trigger": "time >= 1", "assign": {"V": "2"}}, "element 'size'.*compartment 'V'"),
])
def test_unsupported_events_name_the_event_and_what(event, words):
    text = sbml_document(species={"x": 1.0}, parameters={}, rates={"x": "-x"}, events=[event])
    if event["id"] == "size":
        text = text.replace('<compartment id="V" size="4" constant="true"/>',
                            '<compartment id="V" size="4" constant="false"/>')
    with pytest.raises(ModelError, match=words):
        read_sbml(text)


def test_pysb_refuses_events(suite):
    with pytest.raises(ModelError, match="element 'dose_0'.*PySB has no events"):
        to_pysb(suite)


# ------------------------------------------------------------ the collection's event models

@pytest.fixture(scope="module")
def liu(cases):
    return load_problem(cases / "petab-collection" / "Liu_IFACPapersOnLine2025" / "Liu_IFACPapersOnLine2025.yaml")


def test_liu_state_triggered_extinction_gives_libroadrunners_log_likelihood(liu):
    """Liu et al. 2025: U is set to 0 once it falls below 1e-8; −723.357491346638 is libroadrunner's
    (rtol 1e-12, atol 1e-14) at the nominal parameters, u_2 set per condition."""
    assert [e.id for e in liu.model.events] == ["_E0"]
    assert log_likelihood(liu) == pytest.approx(-723.357491346638, abs=1e-6)


@pytest.mark.slow
def test_liu_compiled_objective_and_gradient_agree_with_the_reference(liu, tmp_path):
    """The batch objective (compiled kernels) at the nominal parameters is the reference's; the
    gradient by sensitivities matches central differences of the reference log-likelihood. ~40 s
    (two compilations)."""
    spec = CalibrationSpec(liu)
    batch = BatchProblem(spec, rtol=1e-10, atol=1e-12, cache_dir=str(tmp_path))
    assert -batch.objective(spec.nominal[None, :])[0] == pytest.approx(-723.357491346638, abs=1e-5)
    gradient = GradientProblem(batch).evaluate(spec.nominal).gradient
    step = 1e-5
    for i in range(spec.dimension):
        up, down = spec.nominal.copy(), spec.nominal.copy()
        up[i] += step
        down[i] -= step
        central = -(spec.simulated_llh(up) - spec.simulated_llh(down)) / (2 * step)
        assert gradient[i] == pytest.approx(central, rel=1e-4, abs=1e-4), spec.names[i]


def test_the_transcription_refuses_a_state_triggered_event_naming_it(liu):
    with pytest.raises(ConfigError, match="local_method.*'_E0' is not triggered by `time >= c`.*local_method: shooting"):
        check_transcribable(CalibrationSpec(liu))


@pytest.mark.slow
def test_smith_insulin_pulses_give_amicis_log_likelihood(cases, tmp_path):
    """Smith et al. 2013: time-triggered events end the insulin stimulation at t_ins (per condition); the
    compiled objective gives AMICI's reference −888198.436541014 (to 1e-6 relative; the reference
    simulation's value is checked in tests/cases/test_petab_collection.py)."""
    problem = load_problem(cases / "petab-collection" / "Smith_BMCSystBiol2013" / "Smith_BMCSystBiol2013.yaml")
    spec = CalibrationSpec(problem)
    batch = BatchProblem(spec, rtol=1e-10, atol=1e-12, cache_dir=str(tmp_path))
    assert -batch.objective(spec.nominal[None, :])[0] == pytest.approx(-888198.436541014, rel=1e-6)


# ----------------------------------------------------------------- the Pyomo transcription

def dosing_problem(folder: Path) -> Path:
    """A' = −k·A with a dose D at t_dose (per condition: 1 or 3) and A → 2A + D at 3 (lower priority, its
    values taken when it executes: at `late`'s t_dose = 3 it sees the dose); exact data at times that
    include the instants of the events."""
    A, k, dose, t_dose = (symbol(n) for n in ("A", "k", "D", "t_dose"))
    model = OdeModel("dosing", ["A"], {n: Parameter(n, v) for n, v in (("k", 1.0), ("D", DOSE), ("t_dose", 1.0))},
                     {"A": -k * A}, {"A": sympy.Integer(0)},
                     events=[Event("first", TIME >= t_dose, {"A": A + dose}, priority=sympy.Integer(2)),
                             Event("second", TIME >= 3, {"A": 2 * A + dose}, priority=sympy.Integer(1),
                                   use_values_from_trigger_time=False)])
    starts = {"early": 1.0, "late": 3.0}
    times = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    rows = [(c, t, dosing_analytic(np.array([t]), K, t0)[0]) for c, t0 in starts.items() for t in times]
    tables = {
        "conditions": pd.DataFrame({"conditionId": list(starts), "t_dose": list(starts.values())}),
        "observables": pd.DataFrame({"observableId": ["amount"], "observableFormula": ["A"], "noiseFormula": ["0.05"],
                                     "observableTransformation": ["lin"], "noiseDistribution": ["normal"]}),
        "measurements": pd.DataFrame(rows, columns=["simulationConditionId", "time", "measurement"]).assign(
            observableId="amount"),
        "parameters": pd.DataFrame({"parameterId": ["k"], "parameterScale": ["log10"], "lowerBound": [1e-2],
                                    "upperBound": [1e2], "nominalValue": [1.0], "estimate": [1]}),
    }
    return write_problem(folder, model, **tables)


def dosing_analytic(t: np.ndarray, k: float, t_dose: float) -> np.ndarray:
    """`first` at t_dose, then `second` (A → 2A + D) at 3; both at 3 when t_dose = 3 (first, then second)."""
    first = DOSE * np.exp(-k * (t - t_dose)) * (t >= t_dose)
    at_3 = DOSE * np.exp(-k * (3.0 - t_dose)) if t_dose <= 3.0 else 0.0
    return np.where(t < 3.0, first, (2 * at_3 + DOSE) * np.exp(-k * (t - 3.0)))


@pytest.mark.slow
def test_transcription_jumps_at_doses_and_finds_the_rate(tmp_path):
    """~40 s (a compilation for the initial states, two Ipopt solves)."""
    problem = load_problem(dosing_problem(tmp_path / "dosing"))
    assert log_likelihood(problem, {"k": K}) == pytest.approx(14 * -0.5 * math.log(2 * math.pi * 0.05**2), abs=1e-8)
    spec = CalibrationSpec(problem)
    nlp = PyomoProblem(spec, BatchProblem(spec, threads=1, cache_dir=str(tmp_path / "cache")), n_elements=8)
    x = np.array([math.log10(K)])
    assert nlp.initialize(x)
    fixed = nlp.solve({0: x[0]})
    assert fixed.status == "optimal"
    assert -fixed.nll == pytest.approx(log_likelihood(problem, {"k": K}), abs=1e-4)
    found = nlp.estimate(x + 0.3, half_width=0.5)
    assert found is not None and found.x[0] == pytest.approx(x[0], abs=1e-4)
