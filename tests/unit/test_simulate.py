"""The batch simulator against analytic solutions, scipy's Radau, and its own invariants."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
from scipy.integrate import solve_ivp

from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel, Parameter, symbol
from qspflow.petab import load_problem
from qspflow.simulate import compile_model, default_cache_dir
from qspflow.simulate.codegen import generate

VARYING = ("k", "r", "L0", "om2", "q", "kr1", "kr2", "kr3")
NOMINAL = dict(k=0.7, r=1.3, L0=0.1, om2=4.0, q=0.0, kr1=0.04, kr2=0.0, kr3=0.0)
ROBERTSON = dict(kr1=0.04, kr2=3e7, kr3=1e4)
K_CAP, ZETA, DOSE_TIME, INFLOW, K_OUT = 2.0, 0.1, 1.5, 3.0, 0.5
STATES = ("y", "L", "u", "v", "w", "z", "r1", "r2", "r3", "g", "s")
BOEHM = "petab/Boehm_JProteomeRes2014"
FUJITA = "petab-collection/Fujita_SciSignal2010"


def _test_model() -> OdeModel:
    """Independent blocks, each with a known solution, so the whole suite compiles once.

    y: decay; L: logistic (initial value a varying parameter); u, v: damped oscillator
    (ω² = om2); w: an input switched on at t = 1.5 (a breakpoint); z: z' = q·z², which blows
    up at t = 1/q; r1–r3: Robertson's kinetics, stiff with kr2 = 3e7, kr3 = 1e4, and plain
    decay of r1 into r2 with kr2 = kr3 = 0; g, s: s' = √|g| with g = t, whose Jacobian is
    infinite at t = 0.
    """
    s = {name: symbol(name) for name in STATES + VARYING + ("K", "zeta", "a", "kw")}
    fixed = dict(K=K_CAP, zeta=ZETA, a=INFLOW, kw=K_OUT)
    parameters = {n: Parameter(n, v) for n, v in {**NOMINAL, **fixed}.items()}
    rhs = {
        "y": -s["k"] * s["y"],
        "L": s["r"] * s["L"] * (1 - s["L"] / s["K"]),
        "u": s["v"],
        "v": -2 * s["zeta"] * sympy.sqrt(s["om2"]) * s["v"] - s["om2"] * s["u"],
        "w": -s["kw"] * s["w"] + sympy.Piecewise((s["a"], TIME >= DOSE_TIME), (0, True)),
        "z": s["q"] * s["z"] ** 2,
        "r1": -s["kr1"] * s["r1"] + s["kr3"] * s["r2"] * s["r3"],
        "r2": s["kr1"] * s["r1"] - s["kr3"] * s["r2"] * s["r3"] - s["kr2"] * s["r2"] ** 2,
        "r3": s["kr2"] * s["r2"] ** 2,
        "g": sympy.Integer(1),
        "s": sympy.sqrt(sympy.Abs(s["g"])),
    }
    one, zero = sympy.Integer(1), sympy.Integer(0)
    initial = dict(y=one, L=s["L0"], u=one, v=zero, w=zero, z=one, r1=one, r2=zero, r3=zero, g=zero, s=zero)
    observables = {"total": s["y"] + s["L"], "w_half": s["w"] / 2}
    return OdeModel("blocks", list(STATES), parameters, rhs, initial, observables)


def _analytic(p: dict[str, float], t: np.ndarray) -> dict[str, np.ndarray]:
    om = np.sqrt(p["om2"])
    wd = om * np.sqrt(1 - ZETA**2)
    after = np.clip(t - DOSE_TIME, 0.0, None)
    return {
        "y": np.exp(-p["k"] * t),
        "L": K_CAP / (1 + (K_CAP / p["L0"] - 1) * np.exp(-p["r"] * t)),
        "u": np.exp(-ZETA * om * t) * (np.cos(wd * t) + ZETA * om / wd * np.sin(wd * t)),
        "w": np.where(t >= DOSE_TIME, INFLOW / K_OUT * (1 - np.exp(-K_OUT * after)), 0.0),
        "r1": np.exp(-p["kr1"] * t),
        "s": 2.0 / 3.0 * t**1.5,
    }


def _params(*sets: dict[str, float]) -> np.ndarray:
    return np.array([[{**NOMINAL, **s}[name] for name in VARYING] for s in sets])


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    return compile_model(_test_model(), varying=VARYING, cache_dir=tmp_path_factory.mktemp("simulate-cache"))


@pytest.mark.parametrize("method", ["explicit", "implicit", "auto"])
def test_every_method_matches_the_analytic_solutions(compiled, method):
    sets = [{}, dict(k=2.0, r=0.5, L0=1.5, om2=9.0)]
    times = np.linspace(0.0, 6.0, 25)
    result = compiled.simulate(_params(*sets), times, rtol=1e-9, atol=1e-11, method=method, what="states")
    assert (result.status == 0).all()
    assert result.stiff.tolist() == [method == "implicit"] * 2
    for i, s in enumerate(sets):
        for name, exact in _analytic({**NOMINAL, **s}, times).items():
            assert np.abs(result.values[i, :, STATES.index(name)] - exact).max() < 1e-7, (method, i, name)


def test_no_step_crosses_a_breakpoint(compiled):
    # The input of w switches on at t = 1.5: before that w is exactly 0 if no step straddled it.
    times = np.linspace(0.0, 3.0, 61)
    w = compiled.simulate(_params({}), times, what="states").values[0, :, STATES.index("w")]
    assert compiled.breakpoints == (DOSE_TIME,)
    assert (w[times <= DOSE_TIME] == 0.0).all() and (w[times > DOSE_TIME] > 0).all()


def test_robertson_matches_radau_and_is_finished_by_the_implicit_method(compiled):
    k1, k2, k3 = ROBERTSON.values()

    def f(t, r):
        return [-k1 * r[0] + k3 * r[1] * r[2], k1 * r[0] - k3 * r[1] * r[2] - k2 * r[1] ** 2, k2 * r[1] ** 2]

    times = np.array([0.0, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5])
    reference = solve_ivp(f, (0, times[-1]), [1, 0, 0], method="Radau", rtol=1e-12, atol=1e-16, t_eval=times).y.T
    result = compiled.simulate(_params(ROBERTSON), times, rtol=1e-8, atol=1e-12, what="states")
    robertson = result.values[0][:, [STATES.index(s) for s in ("r1", "r2", "r3")]]
    assert result.status[0] == 0 and result.stiff[0]
    assert np.abs(robertson - reference).max() < 1e-8
    assert np.abs(robertson[:, 1] - reference[:, 1]).max() < 1e-11  # r2 is of order 1e-5 and below


def test_stiffness_is_detected_per_set(compiled):
    result = compiled.simulate(_params({}, ROBERTSON, dict(k=3.0), ROBERTSON), np.linspace(0, 10, 11))
    assert result.stiff.tolist() == [False, True, False, True]
    assert (result.status == 0).all()


def test_results_do_not_depend_on_the_number_of_threads(compiled):
    rng = np.random.default_rng(7)
    params = _params(*[{}] * 300) * 2.0 ** rng.uniform(-1, 1, size=(300, len(VARYING)))
    params[::17, VARYING.index("kr2")] = ROBERTSON["kr2"]  # a few stiff sets in the mix
    params[::17, VARYING.index("kr3")] = ROBERTSON["kr3"]
    times = np.linspace(0, 5, 20)
    one = compiled.simulate(params, times, threads=1)
    two = compiled.simulate(params, times, threads=2)
    assert one.stiff.any() and not one.stiff.all()
    assert np.array_equal(one.values, two.values) and np.array_equal(one.status, two.status)
    assert np.array_equal(one.stiff, two.stiff)


def test_a_failing_set_is_marked_and_the_batch_goes_on(compiled):
    # z' = z² from z(0) = 1 blows up at t = 1; ω² < 0 makes the rhs NaN from the start.
    result = compiled.simulate(_params({}, dict(q=1.0), dict(om2=-1.0), {}), np.linspace(0, 2, 5), max_steps=5000)
    assert result.status.tolist() == [0, 1, 3, 0]
    assert np.isnan(result.values[1:3]).all() and np.isfinite(result.values[[0, 3]]).all()
    assert "underflow" in result.message(1) and "non-finite" in result.message(2)
    few = compiled.simulate(_params({}), np.linspace(0, 2, 5), max_steps=3)
    assert few.status[0] == 2 and "maximum number of steps" in few.message(0)


def test_outputs_are_observables_unless_states_are_asked_for(compiled):
    times = np.array([0.5, 1.0, 1.0, 2.5])  # need not start at 0; may repeat
    observed = compiled.simulate(_params({}), times, rtol=1e-9, atol=1e-11)
    exact = _analytic(NOMINAL, times)
    assert np.array_equal(observed.values[0, 1], observed.values[0, 2])
    assert observed.names == compiled.outputs == ("total", "w_half")
    assert np.abs(observed.values[0, :, 0] - (exact["y"] + exact["L"])).max() < 1e-7
    assert np.abs(observed.values[0, :, 1] - exact["w"] / 2).max() < 1e-7
    assert compiled.simulate(_params({}), times, what="states").names == STATES


def test_chunks_give_the_same_values_as_one_call(compiled):
    params = _params(*[dict(k=k) for k in np.linspace(0.1, 3, 7)])
    times = np.linspace(0, 3, 4)
    chunks = list(compiled.simulate_chunks(params, times, chunk_size=3))
    assert [len(c.status) for c in chunks] == [3, 3, 1]
    assert np.array_equal(np.concatenate([c.values for c in chunks]), compiled.simulate(params, times).values)
    with pytest.raises(ModelError, match="method"):
        compiled.simulate_chunks(params, times, method="euler")  # raised before any block runs


@pytest.mark.parametrize(
    ("params", "times", "match"),
    [
        (np.ones((2, 3)), np.linspace(0, 1, 3), "shape"),
        (_params({}, dict(k=np.nan)), np.linspace(0, 1, 3), "row 1, column 'k'"),
        (_params({}), np.array([0.0, 2.0, 1.0]), "sorted"),
        (_params({}), np.array([-1.0, 1.0]), "sorted times ≥ 0"),
        (_params({}), np.array([]), "non-empty"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(compiled, params, times, match):
    with pytest.raises(ModelError, match=match):
        compiled.simulate(params, times)


def test_module_is_cached_under_the_hash_of_its_text(compiled, tmp_path):
    text = compiled.path.read_text()
    assert compiled.path.name == hashlib.sha256(text.encode()).hexdigest() + ".py"
    again = compile_model(_test_model(), varying=VARYING, cache_dir=compiled.path.parent)
    assert again.path == compiled.path
    assert list((compiled.path.parent / "__pycache__").glob(f"{compiled.path.stem}.rhs-*.nbi"))
    # The integrators, compiled once for every model, in the default cache.
    assert list((default_cache_dir() / "__pycache__").glob("kernel-*.run_batch-*.nbi"))
    assert generate(_test_model(), VARYING[:-1]).source != text  # folding kr3 changes the module


def test_the_integrators_go_to_the_models_folder_where_the_default_cache_cannot_be_written(compiled, tmp_path,
                                                                                           monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("QSPFLOW_CACHE", str(blocked))  # the default cache's folder cannot be made
    again = compile_model(_test_model(), varying=VARYING, cache_dir=tmp_path / "models")
    assert [p.name for p in (tmp_path / "models").glob("kernel-*.py")] == [Path(compiled._kernel.__file__).name]
    assert blocked.read_text() == ""
    values = again.simulate(np.array([list(NOMINAL.values())]), np.array([0.0, 1.0]), what="states").values
    assert values[0, 1, STATES.index("y")] == pytest.approx(np.exp(-NOMINAL["k"]), rel=1e-6)


def test_a_second_cache_folder_gets_the_module_its_index_names(compiled, tmp_path):
    # Loaded in this process from the first folder, the same module is still written into the second.
    other = compile_model(_test_model(), varying=VARYING, cache_dir=tmp_path)
    assert other.path == tmp_path / compiled.path.name and other.path.read_text() == compiled.path.read_text()
    assert [json.loads(f.read_text())["digest"] for f in (tmp_path / "inputs").glob("*.json")] == [other.path.stem]
    again = compile_model(_test_model(), varying=VARYING, cache_dir=tmp_path)  # now found through the index
    assert again.path == other.path


def test_a_pickled_model_simulates_the_same(compiled):
    params, times = _params({}, dict(k=2.0)), np.linspace(0, 2, 5)
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy.varying == compiled.varying and copy.outputs == compiled.outputs
    assert np.array_equal(copy.simulate(params, times).values, compiled.simulate(params, times).values)


def test_fixed_parameters_are_folded_into_constants():
    x, k, n, tau = (symbol(s) for s in ("x", "k", "n", "tau"))
    model = OdeModel("hill", ["x"], {"k": Parameter("k", 0.5), "n": Parameter("n", 3.0), "tau": Parameter("tau", 2.0)},
                     {"x": (x**n / (x**n + k**n) - x) / tau}, {"x": sympy.Integer(0)})
    source = generate(model, ["tau"]).source
    derive, rhs = source.split("def derive")[1].split("def rhs")
    rhs = rhs.split("def jac")[0]
    assert "(y_0*y_0*y_0)" in rhs and "0.125" in rhs and "**" not in rhs
    assert "/" not in rhs.replace("c_0/(c_0 + 0.125)", "")  # 1/tau is computed once per set, in derive
    assert "q[1] = (1.0/(p_0))" in derive


def test_unknown_varying_parameter_is_an_error():
    with pytest.raises(ModelError, match="varying parameters"):
        generate(_test_model(), ["k", "nope"])


@pytest.fixture(scope="session")
def boehm(cases, tmp_path_factory):
    """Boehm_JProteomeRes2014 with its PEtab nominal values, compiled for its kinetic parameters."""
    model = load_problem(cases / BOEHM / "Boehm_JProteomeRes2014.yaml").model
    varying = [name for name, p in model.parameters.items() if p.estimate]
    return model, compile_model(model, varying=varying, cache_dir=tmp_path_factory.mktemp("simulate-boehm"))


def test_boehm_is_found_stiff_and_matches_roadrunner(boehm, cases):
    # Two compartments (cyt 1.4, nuc 0.45), nuclear import ~1e5/min: stiff from the first minute.
    import roadrunner

    model, compiled = boehm
    nominal = np.array([model.parameters[name].value for name in compiled.varying])
    params = nominal * 2.0 ** np.vstack([np.zeros(len(nominal)),
                                         np.random.default_rng(3).uniform(-1, 1, (3, len(nominal)))])
    times = np.linspace(0.0, 240.0, 49)
    rr = roadrunner.RoadRunner(str(cases / BOEHM / "model_Boehm_JProteomeRes2014.xml"))
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-16
    rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in model.states]  # concentrations, as read
    ids = list(rr.model.getGlobalParameterIds())
    reference = []
    for p in params:
        rr.resetAll()
        rr.model.setGlobalParameterValues([ids.index(name) for name in compiled.varying], p)
        reference.append(rr.simulate(times=times)[:, 1:])
    reference = np.array(reference)
    zero = reference == 0.0  # the complexes at t = 0

    for method in ("auto", "implicit"):
        result = compiled.simulate(params, times, rtol=1e-10, atol=1e-14, method=method, what="states")
        assert (result.status == 0).all() and result.stiff.all(), method
        assert (result.values[zero] == 0.0).all()
        # Every state, also pApA and pBpB of order 1e-5: atol 1e-14 keeps them under relative control.
        relative = np.abs(result.values - reference)[~zero] / np.abs(reference[~zero])
        assert relative.max() <= 1e-7, method


LOAD_AND_SIMULATE = """
import hashlib, sys
import numpy as np
from qspflow.calibrate.options import calibration_options
from qspflow.calibrate.session import CalibrationSession
compiled = CalibrationSession(sys.argv[1], calibration_options({})).gradient.simulator.compiled  # as a calibration has it
if len(sys.argv) > 2:
    assert sum(compiled._kernel.run_batch.stats.cache_misses.values()) == 0, "integrators not loaded from the cache"
    assert compiled._module.rhs.cache_hits == 1, "the model's functions not loaded from the cache"
params = np.exp(np.random.default_rng(0).normal(0.0, 0.3, (3, len(compiled.varying))))
for method in ("explicit", "implicit"):
    result = compiled.simulate(params, np.linspace(0.0, 50.0, 11), rtol=1e-8, atol=1e-10, method=method, what="states")
    print(hashlib.sha256(np.nan_to_num(result.values).tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_a_module_compiled_in_a_process_simulates_bit_for_bit_as_its_cached_copy(cases, tmp_path):
    # An auditor's cold rebuild compiles what the sponsor's run may have loaded from its cache: both must give
    # the same bits. With LLVM free to fuse a*b + c (fastmath "contract"), the JIT of the compiling process and
    # the cached object code fused differently, and Rodas's results on Fujita's sensitivity system differed
    # in the last digits (the states' explicit integration did not).
    env = dict(os.environ, QSPFLOW_CACHE=str(tmp_path))
    problem = str(cases / FUJITA / "Fujita_SciSignal2010.yaml")
    runs = [subprocess.run([sys.executable, "-c", LOAD_AND_SIMULATE, problem, *extra], capture_output=True, text=True,
                           timeout=900, env=env) for extra in ([], ["cached"])]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr[-3000:]
    compiled, cached = (r.stdout.split() for r in runs)
    assert len(compiled) == 2 and compiled == cached


COMPILE_ONCE = """
import sys
import sympy
from qspflow.model import OdeModel, Parameter, symbol
from qspflow.simulate import compile_model, default_cache_dir
x, k = symbol("x"), symbol("k")
model = OdeModel("decay_once", ["x"], {"k": Parameter("k", 1.0)}, {"x": -k * x}, {"x": sympy.Integer(1)})
compiled = compile_model(model, varying=["k"], cache_dir=sys.argv[1])
print(compiled._module.rhs.cache_hits, sum(compiled._kernel.run_batch.stats.cache_misses.values()))
"""


def test_processes_that_compile_one_module_together_compile_it_once(tmp_path):
    # Chunk jobs start together on a cold cache: one compiles, the others wait for its lock and load; so too
    # for the integrators, compiled once for every model.
    env = dict(os.environ, QSPFLOW_CACHE=str(tmp_path / "default"))
    procs = [subprocess.Popen([sys.executable, "-c", COMPILE_ONCE, str(tmp_path / "models")], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outputs = sorted(tuple(int(n) for n in p.communicate(timeout=600)[0].split()[-2:]) for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    (model_loaded, kernel_compiled), (model_compiled, kernel_loaded) = sorted(outputs, key=lambda o: -o[0])
    assert (model_loaded, model_compiled) == (1, 0), outputs
    assert sorted([kernel_compiled, kernel_loaded])[0] == 0 and max(kernel_compiled, kernel_loaded) > 0, outputs


def test_a_pulse_at_a_varying_time_is_resolved_where_the_call_names_its_breakpoints(tmp_path):
    # A 0.01-wide input at t_on, a varying parameter (a condition table's dose time): the compiled model's
    # own breakpoints cannot hold it, and the steps grown on the slow decay before it step over it.
    x, t_on = symbol("x"), symbol("t_on")
    pulse = sympy.Piecewise((100, (TIME >= t_on) & (TIME < t_on + 0.01)), (0, True))
    model = OdeModel("pulse", ["x"], {"t_on": Parameter("t_on", 0.0)}, {"x": -0.1 * x + pulse}, {"x": sympy.Integer(1)})
    compiled = compile_model(model, varying=["t_on"], cache_dir=tmp_path)
    at_end = 1000 + (np.exp(-0.5) - 1000) * np.exp(-0.001)
    exact = at_end * np.exp(-0.1 * 4.99)
    assert compiled.breakpoints == ()
    assert model.breakpoints({"t_on": 5.0}) == pytest.approx([5.0, 5.01])
    times = np.array([10.0])
    named = compiled.simulate(np.array([[5.0]]), times, rtol=1e-10, atol=1e-12, breakpoints=(5.0, 5.01))
    assert named.values[0, 0, 0] == pytest.approx(exact, rel=1e-8)
    unnamed = compiled.simulate(np.array([[5.0]]), times, rtol=1e-10, atol=1e-12)
    assert abs(unnamed.values[0, 0, 0] - exact) > 0.1 * exact


@pytest.mark.slow
def test_python_m_qspflow_simulate_compiles_the_integrators_into_the_default_cache(tmp_path):
    # What bin/setup runs, so that a first workflow run does not compile them: into $QSPFLOW_CACHE/simulate.
    env = {**os.environ, "QSPFLOW_CACHE": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "qspflow.simulate"], check=True, env=env, capture_output=True)
    kernels = list((tmp_path / "simulate").glob("kernel-*.py"))
    assert len(kernels) == 1
    assert list((tmp_path / "simulate" / "__pycache__").glob(f"{kernels[0].stem}.run_batch-*.nbi"))


def test_python_m_qspflow_simulate_says_in_one_line_that_the_cache_cannot_be_written(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    proc = subprocess.run([sys.executable, "-m", "qspflow.simulate"], env={**os.environ, "QSPFLOW_CACHE": str(blocked)},
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"qspflow.simulate: the integrators cannot be compiled into {blocked / 'simulate'}: "
        f"[Errno 20] Not a directory: '{blocked / 'simulate'}'"]
    assert blocked.read_text() == ""
