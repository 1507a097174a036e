"""SBML ↔ OdeModel: libroadrunner (CVODE) is the independent reference for both directions."""

from __future__ import annotations

import libsbml
import numpy as np
import pytest
import roadrunner
import sympy

from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel, Parameter, symbol
from qspflow.model.sbml import read_sbml, sbml_text, write_sbml
from qspflow.petab import simulate_condition

DATA = "tests/unit/data/sbml"
# Tight absolute tolerance on both sides: Boehm has states of order 1e-8, where atol 1e-12 alone
# would allow a relative error of 1e-4.
RTOL, ATOL = 1e-10, 1e-14


@pytest.fixture(scope="module")
def data(root):
    return root / DATA


def roadrunner_simulation(sbml: str, selections: list[str], times: np.ndarray) -> np.ndarray:
    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    rr.timeCourseSelections = ["time", *selections]
    return rr.simulate(times=times)[:, 1:]


def max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / |b|; entries where b is exactly 0 must agree exactly (initial zeros)."""
    zero = b == 0
    assert np.all(a[zero] == 0)
    return float(np.max(np.abs(a - b)[~zero] / np.abs(b[~zero])))


def consistency_errors(text: str) -> list[str]:
    doc = libsbml.readSBMLFromString(text)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.checkConsistency()
    return [doc.getError(i).getMessage() for i in range(doc.getNumErrors())
            if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]


def test_boehm_simulates_like_roadrunner_read_and_written_back(cases):
    path = cases / "petab/Boehm_JProteomeRes2014/model_Boehm_JProteomeRes2014.xml"
    model = read_sbml(path)
    times = np.linspace(0, 240, 49)
    ours = simulate_condition(model, {}, times, rtol=RTOL, atol=ATOL)
    concentrations = [f"[{s}]" for s in model.states]

    original = roadrunner_simulation(path.read_text(), concentrations, times)
    text = sbml_text(model)
    written = roadrunner_simulation(text, concentrations, times)

    assert consistency_errors(text) == []
    assert max_relative_difference(ours, original) <= 1e-6
    assert max_relative_difference(ours, written) <= 1e-6
    # Rate laws are in amount per time; a concentration divides by its own volume (cyt → nuc).
    cyt, nuc, k_imp, k_exp, pApA, nucpApA = map(model.symbol, ("cyt", "nuc", "k_imp_homo", "k_exp_homo",
                                                              "pApA", "nucpApA"))
    assert model.rhs["nucpApA"] == cyt * k_imp * pApA / nuc - k_exp * nucpApA


def test_hand_made_model_reads_every_feature_as_roadrunner_does(data):
    model = OdeModel.from_sbml(data / "features.xml")
    times = np.linspace(0, 20, 41)
    ours = simulate_condition(model, {}, times, rtol=RTOL, atol=ATOL)
    # C has hasOnlySubstanceUnits: its state is an amount; the others are concentrations.
    reference = roadrunner_simulation((data / "features.xml").read_text(), ["[A]", "[B]", "C", "[L]", "R"],
                                      times)

    assert model.states == ["A", "B", "C", "L", "R"]
    assert {"import_k", "s_C", "cell", "nucleus"} <= set(model.parameters)
    assert "k3" not in model.parameters and set(model.expressions) >= {"total", "k3", "import", "dose"}
    assert model.initial["B"] == sympy.Float(0.25) / model.symbol("nucleus")
    assert model.breakpoints() == [12.0] and model.breakpoints({"t_on": 5}) == [5.0, 12.0]
    assert max_relative_difference(ours, reference) <= 1e-6


def test_written_hand_made_model_is_valid_and_simulates_the_same(data):
    model = read_sbml(data / "features.xml")
    times = np.linspace(0, 20, 41)
    ours = simulate_condition(model, {}, times, rtol=RTOL, atol=ATOL)
    text = sbml_text(model)
    written = roadrunner_simulation(text, [f"[{s}]" for s in model.states], times)

    assert consistency_errors(text) == []
    assert max_relative_difference(ours, written) <= 1e-6
    # Parameter-dependent initial values travel as initial assignments; the dose stays piecewise.
    doc = libsbml.readSBMLFromString(text)
    assert doc.getLevel() == 3 and doc.getVersion() == 2
    assert doc.getModel().getInitialAssignmentBySymbol("C") is not None
    assert "<piecewise>" in text


def test_written_sbml_is_deterministic_and_reads_back_to_the_same_model(data, tmp_path):
    model = read_sbml(data / "features.xml")
    write_sbml(model, tmp_path / "model.sbml")
    text = (tmp_path / "model.sbml").read_text()
    again = read_sbml(text)

    assert text == sbml_text(read_sbml(data / "features.xml"))
    assert str(tmp_path) not in text and str(data) not in text and "W3CDTF" not in text
    assert again.states == model.states
    assert set(again.parameters) == {*model.parameters, "default_compartment"}
    for state in model.states:
        assert sympy.simplify(again.rhs[state] - model.rhs[state]) == 0
        assert sympy.simplify(again.initial[state] - model.initial[state]) == 0


MATH = {
    "f_pow": "pow(x, y)", "f_exp": "exp(x)", "f_ln": "ln(x)", "f_log10": "log10(y)",
    "f_log2": "log(2, y)", "f_root3": "root(3, y)", "f_sqrt": "sqrt(y)", "f_abs": "abs(x - y)",
    "f_floor": "floor(y)", "f_ceil": "ceil(y)", "f_min": "min(x, y)", "f_max": "max(x, y, 1)",
    "f_sin": "sin(x)", "f_cos": "cos(x)", "f_tan": "tan(x)", "f_sec": "sec(x)", "f_csc": "csc(x)",
    "f_cot": "cot(x)", "f_sinh": "sinh(x)", "f_cosh": "cosh(x)", "f_tanh": "tanh(x)",
    "f_asin": "arcsin(x)", "f_acos": "arccos(x)", "f_atan": "arctan(y)",
    "f_consts": "pi * exponentiale", "f_div": "x * y / (x - y) - x",
    "f_if": "piecewise(x, geq(y, 2), y)",
    "f_logic": "piecewise(1, and(gt(x, 0), lt(y, 3), not(eq(x, y))), 0)",
    "f_or": "piecewise(1, or(leq(y, 1), neq(x, 0.7), false), 2)",
    "f_chain": "piecewise(1, lt(0, x, y), 0) + piecewise(3, true, 4)",
    "f_call": "twice(x) + y",
}


def math_model() -> str:
    """SBML whose parameters f_* are assignment rules in x = 0.7, y = 2.5 (one per MathML function)."""
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    model.setId("math")
    twice = model.createFunctionDefinition()
    twice.setId("twice")
    twice.setMath(libsbml.parseL3Formula("lambda(a, 2 * a)"))
    for name, value in (("x", 0.7), ("y", 2.5)):
        p = model.createParameter()
        p.setId(name)
        p.setValue(value)
        p.setConstant(True)
    for name, formula in MATH.items():
        p = model.createParameter()
        p.setId(name)
        p.setConstant(False)
        rule = model.createAssignmentRule()
        rule.setVariable(name)
        ast = libsbml.parseL3Formula(formula)
        assert ast is not None, formula
        rule.setMath(ast)
    return libsbml.writeSBMLToString(doc)


def test_mathml_functions_evaluate_as_in_roadrunner_and_survive_writing():
    text = math_model()
    rr = roadrunner.RoadRunner(text)
    model = read_sbml(text)
    back = read_sbml(sbml_text(model))
    values = {model.symbol("x"): 0.7, model.symbol("y"): 2.5}
    for name in MATH:
        expected = rr[name]
        assert float(model.expressions[name].xreplace(values)) == pytest.approx(expected, rel=1e-14), name
        assert float(back.expressions[name].xreplace(values)) == pytest.approx(expected, rel=1e-14), name


def test_time_and_piecewise_on_time_keep_their_breakpoints():
    x, k = symbol("x"), symbol("k")
    model = OdeModel("dose", ["x"], {"k": Parameter("k", 1.0)},
                     {"x": sympy.Piecewise((k, (TIME >= 2) & (TIME < 4)), (0, True)) - x}, {"x": k / 2})
    again = read_sbml(sbml_text(model))
    assert again.breakpoints() == [2.0, 4.0]
    assert again.initial["x"] == k / 2


@pytest.mark.parametrize(
    ("file", "element", "what"),
    [
        ("event_delay.xml", "reset", "a delay that depends on the states or on time is not supported"),
        ("delay.xml", "decay", "'delay' is not supported"),
        ("algebraic_rule.xml", "conservation", "algebraic rules are not supported"),
        ("undefined_symbol.xml", "decay", "undefined symbol 'kk'"),
    ],
)
def test_unsupported_or_invalid_sbml_names_file_and_element(data, file, element, what):
    with pytest.raises(ModelError) as caught:
        read_sbml(data / file)
    message = str(caught.value)
    assert message.startswith(str(data / file))
    assert f"element '{element}'" in message and what in message


def test_writing_rejects_names_sbml_cannot_hold():
    model = OdeModel("bad", ["x-1"], {}, {"x-1": sympy.Integer(0)}, {"x-1": sympy.Integer(1)})
    with pytest.raises(ModelError, match="x-1"):
        sbml_text(model)


def test_compartment_volume_and_amount_units_give_concentration_equations():
    """A → B across compartments: d[A]/dt = -v/V_A, d[B]/dt = +v/V_B for v in amount per time."""
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    for cid, size in (("c1", 2.0), ("c2", 0.5)):
        c = m.createCompartment()
        c.setId(cid)
        c.setSize(size)
        c.setConstant(True)
    for sid, cid, amount in (("A", "c1", 4.0), ("B", "c2", 0.0)):
        s = m.createSpecies()
        s.setId(sid)
        s.setCompartment(cid)
        s.setInitialAmount(amount)
        s.setHasOnlySubstanceUnits(False)
        s.setBoundaryCondition(False)
        s.setConstant(False)
    rx = m.createReaction()
    rx.setId("v")
    rx.setReversible(False)
    rx.createReactant().setSpecies("A")
    rx.getReactant(0).setStoichiometry(1)
    rx.getReactant(0).setConstant(True)
    rx.createProduct().setSpecies("B")
    rx.getProduct(0).setStoichiometry(1)
    rx.getProduct(0).setConstant(True)
    rx.createKineticLaw().setMath(libsbml.parseL3Formula("0.1 * A * c1"))
    model = read_sbml(libsbml.writeSBMLToString(doc))

    A, B, c1, c2 = (model.symbol(n) for n in ("A", "B", "c1", "c2"))
    assert sympy.simplify(model.rhs["A"] + 0.1 * A) == 0
    assert sympy.simplify(model.rhs["B"] - 0.1 * A * c1 / c2) == 0
    assert model.initial["A"] == 4 / c1 and model.initial["B"] == 0  # initial amounts → concentrations


def test_libsbml_errors_are_one_line_naming_line_element_and_first_sentence(tmp_path):
    text = sbml_text(OdeModel("m", ["x"], {"k": Parameter("k", 1.0)}, {"x": -symbol("k") * symbol("x")},
                              {"x": sympy.Integer(1)}))
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "<compartment " in line)
    lines[at] = lines[at].replace('size="1"', 'size="big"')
    path = tmp_path / "model.xml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelError) as caught:
        read_sbml(path)
    assert str(caught.value) == (f"{path}, line {at + 1}, element 'compartment': expected valid SBML, "
                                 "libSBML: Data type mismatch for the value of an attribute.")
    path.write_text("not XML\n")
    with pytest.raises(ModelError, match=r"model\.xml, line 1: expected valid SBML, libSBML: XML content is not "
                                         r"well-formed\.$"):
        read_sbml(path)


def test_a_folder_is_not_an_sbml_file(tmp_path):
    with pytest.raises(ModelError, match=r"expected an SBML file, found a folder"):
        read_sbml(tmp_path)
