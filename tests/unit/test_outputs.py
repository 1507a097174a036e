"""Model outputs (`qspflow.outputs`) against analytic solutions of a one-compartment model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy
from scipy.optimize import brentq

from qspflow.errors import ConfigError
from qspflow.model import OdeModel, Parameter, symbol
from qspflow.outputs import OutputModel, parse_outputs
from qspflow.petab import Observable, PetabProblem


def one_compartment_problem() -> PetabProblem:
    """A (depot) → x (central) → ∅, with zero-order input k_in; x(0) = x0, A(0) = 0.

    Condition `decay`: x0 = 10, no input (x = 10 e^{−kt}); `dosed`: A(0) = 10, x0 = 0 (Bateman).
    Estimated: k (log10), x0 (lin). Observable `obs_x` = x; expression `conc` = x / V.
    """
    A, x, k, ka, k_in, x0, V = (symbol(n) for n in ("A", "x", "k", "ka", "k_in", "x0", "V"))
    parameters = {
        "k": Parameter("k", 0.5, 0.01, 10.0, "log10", True),
        "ka": Parameter("ka", 2.0),
        "k_in": Parameter("k_in", 0.0),
        "x0": Parameter("x0", 10.0, 0.0, 100.0, "lin", True),
        "V": Parameter("V", 2.0),
    }
    model = OdeModel("one", ["A", "x"], parameters, {"A": -ka * A, "x": ka * A - k * x + k_in},
                     {"A": sympy.Integer(0), "x": x0}, expressions={"conc": x / V})
    extra = {"sigma": Parameter("sigma", 1.0, 0.1, 10.0, "log10", True)}
    observables = {"obs_x": Observable("obs_x", x, symbol("sigma"), "lin", "normal", (), ())}
    conditions = pd.DataFrame({"x0": [10.0, 0.0], "A": [math.nan, 10.0]},
                              index=pd.Index(["decay", "dosed"], name="conditionId"))
    table = pd.DataFrame({"parameterId": [*parameters, "sigma"]}).set_index("parameterId")
    return PetabProblem(Path("problem.yaml"), model, {**parameters, **extra}, observables, conditions,
                        pd.DataFrame(), pd.DataFrame(), table, {"condition_files": "conditions.tsv",
                                                                  "parameter_file": "parameters.tsv"})


SPEC = [
    {"name": "x_2h", "kind": "value", "of": "obs_x", "condition": "decay", "time": 2.0},
    {"name": "conc_2h", "kind": "value", "of": "conc", "condition": "decay", "time": 2.0},
    {"name": "auc", "kind": "auc", "of": "x", "condition": "decay", "window": [1.0, 3.0]},
    {"name": "cmax", "kind": "cmax", "of": "x", "condition": "decay", "window": [1.0, 3.0]},
    {"name": "above", "kind": "time_above", "of": "x", "condition": "decay", "window": [0.5, 8.0], "threshold": 2.0},
    {"name": "steady", "kind": "steady_state", "of": "x", "condition": {"k_in": 3.0, "x0": 10.0}},
    {"name": "cmax_oral", "kind": "cmax", "of": "x", "condition": "dosed", "window": [0.0, 6.0]},
    {"name": "auc_oral", "kind": "auc", "of": "x", "condition": "dosed", "window": [0.0, 4.0]},
    {"name": "above_oral", "kind": "time_above", "of": "x", "condition": "dosed", "window": [0.0, 6.0],
     "threshold": 2.0},
]


def analytic(k: float, x0: float, ka: float = 2.0) -> list[float]:
    tmax = math.log(ka / k) / (ka - k)

    def bateman(t: float) -> float:
        return 10 * ka / (ka - k) * (math.exp(-k * t) - math.exp(-ka * t))

    auc_oral = 10 * ka / (ka - k) * ((1 - math.exp(-4 * k)) / k - (1 - math.exp(-4 * ka)) / ka)
    crossing = math.log(x0 / 2.0) / k
    # The Bateman curve rises through 2 before its maximum and falls through it after.
    up = brentq(lambda t: bateman(t) - 2.0, 0.0, tmax, xtol=1e-15, rtol=1e-15)
    down = brentq(lambda t: bateman(t) - 2.0, tmax, 100.0, xtol=1e-15, rtol=1e-15)
    return [x0 * math.exp(-2 * k), x0 * math.exp(-2 * k) / 2, x0 / k * (math.exp(-k) - math.exp(-3 * k)),
            x0 * math.exp(-k), min(max(crossing, 0.5), 8.0) - 0.5, 3.0 / k, bateman(tmax), auc_oral,
            min(down, 6.0) - up]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return OutputModel(one_compartment_problem(), parse_outputs(SPEC), ["k"],
                       cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_outputs_match_the_analytic_one_compartment_solution(model):
    ks = np.linspace(0.15, 2.5, 200)[:, None]
    values, failed = model.evaluate(ks, base={"x0": 10.0})
    assert not failed.any()
    expected = np.array([analytic(k, 10.0) for k in ks[:, 0]])
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)
    # Times above a threshold: the crossings located by root-finding, 1e-8 relative at most over these
    # rates (at rtol 1e-8). With [x > threshold] in the rhs, the step control found them to 1e-5 only.
    above = [k for k, o in enumerate(SPEC) if o["kind"] == "time_above"]
    np.testing.assert_allclose(values[:, above], expected[:, above], rtol=1e-7)


def test_base_sets_the_parameters_that_do_not_vary(model):
    values, _ = model.evaluate(np.array([[0.5]]), base={"x0": 20.0})
    # the `decay` condition sets x0 = 10 itself; the mapping condition of `steady` sets x0 = 10 too
    np.testing.assert_allclose(values[0], analytic(0.5, 10.0), rtol=1e-6, atol=1e-6)


def test_chunks_give_the_same_bits_as_one_batch(model):
    ks = np.linspace(0.1, 1.5, 9)[:, None]
    whole, _ = model.evaluate(ks, threads=2)
    parts = np.vstack([model.evaluate(ks[i:i + 4], threads=1)[0] for i in range(0, 9, 4)])
    assert whole.tobytes() == parts.tobytes()


def test_failed_simulations_are_nan_and_flagged(model):
    values, failed = model.evaluate(np.array([[0.5], [math.inf], [0.5]]))
    assert failed[1].all() and np.isnan(values[1]).all()
    assert not failed[[0, 2]].any()


def test_steady_state_not_reached_is_a_failure_of_that_output_only(model):
    values, failed = model.evaluate(np.array([[1e-12], [1.0]]))  # k ≈ 0: x grows as 3 t, never settles
    steady = model.names.index("steady")
    assert failed[:, steady].tolist() == [True, False]
    assert not np.delete(failed, steady, axis=1).any()
    assert values[1, steady] == pytest.approx(3.0, rel=1e-6)


@pytest.mark.parametrize(("items", "key"), [
    ([{"name": "a", "kind": "value", "of": "x"}], "sensitivity.outputs[0].time"),
    ([{"name": "a", "kind": "auc", "of": "x", "window": [3, 1]}], "sensitivity.outputs[0].window"),
    ([{"name": "a", "kind": "value", "of": "x", "time": 1}, {"name": "a", "kind": "value", "of": "x", "time": 1}],
     "sensitivity.outputs[1].name"),
    ([{"name": "a", "kind": "value", "of": "x", "time": 1},
      {"name": "b", "kind": "value", "of": "x", "time": "soon"}], "sensitivity.outputs[1].time"),
    ([{"name": "a", "kind": "mean", "of": "x"}], "sensitivity.outputs[0].kind"),
    ([{"name": "a", "kind": "steady_state", "of": "x", "time": 3}], "sensitivity.outputs[0].time"),
    ([{"name": "a", "kind": "time_above", "of": "x", "window": [0, 1]}], "sensitivity.outputs[0].threshold"),
    ([{"name": "a", "kind": "value", "of": "x", "time": 1, "colour": "red"}], "sensitivity.outputs[0].colour"),
    ([], "sensitivity.outputs"),
])
def test_bad_output_specs_name_the_key(items, key):
    with pytest.raises(ConfigError, match=re_key(key)):
        parse_outputs(items)


@pytest.mark.parametrize(("item", "key"), [
    ({"name": "a", "kind": "value", "of": "ERK", "time": 1}, "sensitivity.outputs[0].of"),
    ({"name": "a", "kind": "value", "of": "x", "time": 1, "condition": "egf"}, "sensitivity.outputs[0].condition"),
    ({"name": "a", "kind": "value", "of": "x", "time": 1, "condition": {"nope": 1}},
     "sensitivity.outputs[0].condition.nope"),
])
def test_unknown_ids_name_the_key(item, key, tmp_path):
    with pytest.raises(ConfigError, match=re_key(key)):
        OutputModel(one_compartment_problem(), parse_outputs([item]), ["k"], cache_dir=str(tmp_path))


def re_key(key: str) -> str:
    return "key '" + key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.") + "'"


def test_a_formula_over_states_and_parameters_is_an_output(tmp_path):
    # x / V under `decay` is the model expression `conc`: 5 e^{-2k} at 2 h; its AUC over [1, 3] is the
    # analytic AUC of x over V. The formula's own name never reaches the compiled model's identifiers.
    spec = [{"name": "c_2h", "kind": "value", "of": "x / V", "condition": "decay", "time": 2.0},
            {"name": "c_auc", "kind": "auc", "of": "x/V", "condition": "decay", "window": [1.0, 3.0]},
            {"name": "c_max", "kind": "cmax", "of": "x / V", "condition": "decay", "window": [1.0, 3.0]}]
    formula = OutputModel(one_compartment_problem(), parse_outputs(spec), ["k"], cache_dir=str(tmp_path))
    values, failed = formula.evaluate(np.array([[0.5], [1.2]]), base={"x0": 10.0})
    assert not failed.any()
    for row, k in zip(values, (0.5, 1.2)):
        np.testing.assert_allclose(row, [5 * math.exp(-2 * k), 5 / k * (math.exp(-k) - math.exp(-3 * k)),
                                         5 * math.exp(-k)], rtol=1e-6)


@pytest.mark.parametrize("formula", ["x / nope", "x +* V", "x < V"])
def test_a_formula_with_unknown_names_or_bad_syntax_names_the_key(formula, tmp_path):
    item = {"name": "a", "kind": "value", "of": formula, "time": 1}
    with pytest.raises(ConfigError, match=re_key("sensitivity.outputs[0].of")):
        OutputModel(one_compartment_problem(), parse_outputs([item]), ["k"], cache_dir=str(tmp_path))
