"""Compile an `OdeModel` into a batch simulator, cached on disk by content; run batches.

`compile_model` takes the model's module text from `codegen.generate` (the model's functions as
numba cfuncs), stores it in the cache as `<sha256 of the text>.py` and loads it; numba compiles
it and caches the machine code beside it, so a changed model or changed folded constants give a
new file. The integrators are compiled once for all models: kernel.py's copy `kernel-<sha256>.py`
in the default cache (`codegen.kernel_source`). `CompiledModel` checks a batch and hands it, with
the model as cfunc addresses, sizes and flags, to the kernel's `run_batch`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numba
import numpy as np
import sympy

from qspflow.errors import ModelError
from qspflow.model import OdeModel, Parameter, symbol
from qspflow.simulate import codegen, kernel
from qspflow.simulate.codegen import generate

METHODS = {"auto": kernel.AUTO, "explicit": kernel.EXPLICIT, "implicit": kernel.IMPLICIT}
OUTPUTS = ("observables", "states")
STATUS_MESSAGES = {
    kernel.OK: "ok",
    kernel.UNDERFLOW: "step size underflow (the solution may blow up or have a discontinuity in time)",
    kernel.MAX_STEPS: "maximum number of steps reached",
    kernel.NON_FINITE: "non-finite values (initial values or right-hand side are NaN or infinite)",
    kernel.SINGULAR: "iteration matrix of the implicit method repeatedly singular",
    kernel.ENDLESS_EVENTS: f"events keep firing at one instant (more than {kernel.MAX_EXECUTIONS} executions)",
    kernel.BAD_DELAY: f"an event's delay is negative, or more than {kernel.MAX_QUEUED} delayed executions are pending",
}
# Sets a thread claims at a time: small, so that a thread descheduled by another process delays
# only its current chunk; large enough that claiming (one atomic add) costs nothing.
SCHEDULE_CHUNK = 8

_modules: dict[str, ModuleType] = {}


def default_cache_dir() -> Path:
    """`$QSPFLOW_CACHE/simulate`, by default `~/.cache/qspflow/simulate`."""
    return Path(os.environ.get("QSPFLOW_CACHE", Path.home() / ".cache" / "qspflow")) / "simulate"


@dataclass
class SimulationResult:
    """Outputs of a batch: `values[i, j, k]` is output `names[k]` of set i at time j."""

    values: np.ndarray
    status: np.ndarray
    stiff: np.ndarray
    names: tuple[str, ...]

    def message(self, i: int) -> str:
        """What happened to parameter set i, in words."""
        code = int(self.status[i])
        text = STATUS_MESSAGES.get(code, f"unknown status {code}")
        method = "the implicit method (stiff)" if self.stiff[i] else "the explicit method"
        return f"parameter set {i}: {text}; last integrated by {method}"


def _vector(values: np.ndarray) -> np.ndarray:
    """The layout the compiled functions were specialized for (no recompilation per layout)."""
    return np.ascontiguousarray(values, dtype=np.float64)


def _load(path: Path, digest: str) -> ModuleType:
    name = f"qspflow_simulate_{digest.replace('-', '_')[:23]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _write_once(path: Path, text: str) -> None:
    """Write atomically, and only if absent: an unchanged file keeps numba's cache valid.

    Not `qspflow.io.write_text`: that module imports pandas, which a simulating process need not load.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class CompiledModel:
    """A model compiled for batches of the `varying` parameters (see `compile_model`)."""

    def __init__(self, module: ModuleType, path: Path, states: tuple[str, ...], varying: tuple[str, ...],
                 observables: tuple[str, ...], breakpoints: tuple[float, ...]) -> None:
        self._kernel = _kernel(path.parent)
        # The model as the kernel's `_model` takes it: cfunc addresses, sizes, flags (the module stays loaded).
        self._model = (np.array([getattr(module, name).address for name in kernel.SIGNATURES], dtype=np.int64),
                       np.array([getattr(module, name.upper()) for name in kernel.SIZES], dtype=np.int64),
                       np.array([getattr(module, name.upper()) for name in kernel.FLAGS], dtype=np.bool_))
        self._module = module
        self.path = path
        self.states = states
        self.varying = varying
        self.observables = observables
        self.outputs = observables or states
        self.breakpoints = breakpoints

    def __reduce__(self) -> tuple:
        # Pickled by path (for process pools): the receiving process loads the cached module.
        return _reload, (self.path, self.states, self.varying, self.observables, self.breakpoints)

    def __repr__(self) -> str:
        return f"CompiledModel({len(self.states)} states, varying={self.varying}, path={str(self.path)!r})"

    def _derived(self, params: np.ndarray) -> np.ndarray:
        q = np.empty(self._module.N_DERIVED)
        self._kernel.derive_at(*self._model, _vector(params), q)
        return q

    def rhs(self, t: float, y: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The compiled dy/dt at one point for one parameter set (for checks and other solvers)."""
        dy = np.empty(len(self.states))
        self._kernel.rhs_at(*self._model, float(t), _vector(y), self._derived(params), dy)
        return dy

    def jacobian(self, t: float, y: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The compiled analytic Jacobian df/dy at one point for one parameter set (of a sensitivity
        system, its first block column: the rest repeats the states' block on the diagonal)."""
        jac = np.empty((len(self.states), self._module.BLOCK))
        self._kernel.jac_at(*self._model, float(t), _vector(y), self._derived(params), jac, np.empty(len(self.states)))
        return jac

    def _check(self, params: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        params = np.asarray(params, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        expected = f"an array of shape (N, {len(self.varying)}) for the varying parameters {list(self.varying)}"
        if params.ndim != 2 or params.shape[1] != len(self.varying):
            raise ModelError(None, element="params", expected=expected, found=f"shape {params.shape}")
        bad = np.argwhere(~np.isfinite(params))
        if bad.size:
            i, k = bad[0]
            raise ModelError(None, element="params", row=int(i), column=self.varying[k],
                             expected="finite values", found=params[i, k])
        if times.ndim != 1 or times.size == 0:
            raise ModelError(None, element="times", expected="a non-empty 1-D array", found=f"shape {times.shape}")
        if not np.all(np.isfinite(times)) or times[0] < 0 or np.any(np.diff(times) < 0):
            raise ModelError(None, element="times", expected="finite, sorted times ≥ 0",
                             found=np.array2string(times, threshold=8))
        return np.ascontiguousarray(params), np.ascontiguousarray(times)

    def simulate(self, params: np.ndarray, times: np.ndarray, *, rtol: float = 1e-6, atol: float = 1e-8,
                 method: str = "auto", threads: int | None = None, what: str = "observables",
                 max_steps: int = 100_000, breakpoints: Sequence[float] = ()) -> SimulationResult:
        """Simulate each row of `params` (values of `varying`, in order) from time 0.

        `method`: "auto" (explicit until Hairer's test finds the set stiff, then implicit),
        "explicit" or "implicit". `what`: "observables" (`outputs`) or "states". `threads`:
        threads for this call (default: numba's thread count, `NUMBA_NUM_THREADS`). `max_steps` counts attempted
        steps of one set. `breakpoints`: times at which the integration restarts besides the model's own,
        those of switches at a varying parameter's value (a condition's dose time), the same for every row.
        A set that fails gets its status and NaN values; nothing is raised.
        """
        params, times = self._check(params, times)
        if method not in METHODS:
            raise ModelError(None, element="method", expected=f"one of {list(METHODS)}", found=method)
        if what not in OUTPUTS:
            raise ModelError(None, element="what", expected=f"one of {list(OUTPUTS)}", found=what)
        if not (rtol > 0 and atol > 0):
            raise ModelError(None, element="tolerances", expected="rtol > 0 and atol > 0", found=f"{rtol}, {atol}")
        if max_steps < 1:
            raise ModelError(None, element="max_steps", expected="a positive integer", found=max_steps)
        if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise ModelError(None, element="threads", expected=f"1 to {numba.config.NUMBA_NUM_THREADS}",
                             found=threads)
        t_end = float(times[-1])
        stops = np.array(sorted({float(b) for b in (*self.breakpoints, *breakpoints) if 0.0 < b < t_end})
                         + ([t_end] if t_end > 0 else []))
        states_out = what == "states" or not self.observables
        names = self.states if states_out else self.observables
        n = params.shape[0]
        values = np.empty((n, times.size, len(names)))
        status = np.zeros(n, dtype=np.int8)
        stiff = np.zeros(n, dtype=np.bool_)
        args = (*self._model, params, times, stops, float(rtol), float(atol), METHODS[method], states_out,
                int(max_steps), values, status, stiff, np.zeros(1, dtype=np.intp), SCHEDULE_CHUNK)
        workers = min(threads or numba.get_num_threads(), -(-n // SCHEDULE_CHUNK))
        if workers <= 1:
            self._kernel.run_batch(*args)
        else:
            pool = _threads(workers)
            calls = [pool.submit(self._kernel.run_batch, *args) for _ in range(workers)]
            for call in calls:
                call.result()
        return SimulationResult(values, status, stiff, names)

    def simulate_chunks(self, params: np.ndarray, times: np.ndarray, *, chunk_size: int = 10_000,
                        **kwargs: object) -> Iterator[SimulationResult]:
        """`simulate` on consecutive blocks of `chunk_size` rows, to bound memory; in order.

        Bad input raises here, before the first block is simulated.
        """
        params, times = self._check(params, times)
        if chunk_size < 1:
            raise ModelError(None, element="chunk_size", expected="a positive integer", found=chunk_size)
        self.simulate(params[:0], times, **kwargs)  # checks the options
        return (self.simulate(params[start:start + chunk_size], times, **kwargs)
                for start in range(0, params.shape[0], chunk_size))


@functools.cache
def _threads(workers: int) -> ThreadPoolExecutor:
    """The threads that run batches `workers` at a time, made once per process (solve_batch releases the GIL)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qspflow-simulate")


def _kernel(folder: Path) -> ModuleType:
    """The integrators' module, shared by every model: kernel.py's cached copy in the default cache
    (in `folder`, the model's, where the default cannot be written)."""
    text = codegen.kernel_source()
    name = f"kernel-{hashlib.sha256(text.encode()).hexdigest()}.py"
    try:
        return _module(default_cache_dir() / name, text)
    except OSError:
        return _module(folder / name, text)


def _module(path: Path, text: str | None = None) -> ModuleType:
    """The loaded module of a generated file (written first when `text` is given)."""
    digest = path.stem
    if text is not None:
        _write_once(path, text)
    if digest not in _modules:
        _modules[digest] = _load(path, digest)
    return _modules[digest]


def _reload(path: Path, *metadata: tuple) -> CompiledModel:
    return CompiledModel(_module(path), path, *metadata)


def inputs_digest(model: OdeModel, varying: Sequence[str], block: int | None = None,
                  error_states: int | None = None) -> str:
    """sha256 of everything `generate` reads (the model, the options, codegen.py): the key
    under which the generated module's name is remembered, so another process skips the sympy work."""
    text = [inspect.getsource(codegen), model.name, repr(list(model.states)),
            repr(sorted((n, p.value) for n, p in model.parameters.items())), repr(list(varying)), repr(block),
            repr(error_states)]
    for part in (model.rhs, model.initial, model.observables):
        text += [f"{k}={sympy.srepr(sympy.sympify(v))}" for k, v in part.items()]
    for e in model.events:
        text += [repr((e.id, e.initial_value, e.persistent, e.use_values_from_trigger_time)),
                 sympy.srepr(sympy.sympify(e.trigger)), sympy.srepr(e.priority), sympy.srepr(e.delay),
                 *(f"{k}={sympy.srepr(sympy.sympify(v))}" for k, v in e.assignments.items())]
    return hashlib.sha256("\n".join(text).encode()).hexdigest()


def compile_model(model: OdeModel, *, varying: Sequence[str], cache_dir: str | Path | None = None,
                  block: int | None = None, error_states: int | None = None) -> CompiledModel:
    """Generate, compile (or load from the cache) and return the simulator of `model`.

    `varying`: the parameters that `simulate` takes per set, in that order; every other
    parameter is folded in at its value. The module is written to `cache_dir` (default
    `default_cache_dir()`) as `<sha256 of its text>.py`; numba caches the machine code beside it,
    and `inputs/<sha256 of the inputs>.json` names the module generated from the same inputs.
    `block`: the state block size of a sensitivity system (`qspflow.simulate.sensitivity`);
    `error_states`: the leading states the step size control sees (default all).
    """
    return compile_built(lambda: model, inputs_digest(model, varying, block, error_states), varying=varying,
                         cache_dir=cache_dir, block=block, error_states=error_states)


def compile_built(build: Callable[[], OdeModel], inputs: str, *, varying: Sequence[str],
                  cache_dir: str | Path | None = None, block: int | None = None,
                  error_states: int | None = None) -> CompiledModel:
    """`compile_model` of the model that `build` returns, built only where the cache does not know
    `inputs` (a digest of everything the model is built from): building a model derived from another
    (a sensitivity system) and hashing it cost seconds that a cached module does not need."""
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
    index = folder / "inputs" / f"{inputs}.json"
    known = json.loads(index.read_text()) if index.exists() else None
    if known is not None and (folder / f"{known['digest']}.py").exists():
        path = folder / f"{known['digest']}.py"
        metadata = tuple(tuple(known[k]) for k in ("states", "varying", "observables", "breakpoints"))
    else:
        generated = generate(build(), varying, block, error_states)
        digest = hashlib.sha256(generated.source.encode()).hexdigest()
        path = folder / f"{digest}.py"
        _write_once(path, generated.source)
        metadata = (generated.states, generated.varying, generated.observables, generated.breakpoints)
        _write_once(index, json.dumps(dict(zip(("digest", "states", "varying", "observables", "breakpoints"),
                                               (digest, *metadata)))))
    with _one_at_a_time(path.with_suffix(".lock")):
        compiled = CompiledModel(_module(path), path, *metadata)  # numba compiles its functions (or loads them)
    with _one_at_a_time(Path(compiled._kernel.__file__).with_suffix(".lock")):
        # The integrators: compiled once for every model (or loaded), now rather than at the first batch.
        compiled.simulate(np.empty((0, len(compiled.varying))), np.zeros(1))
    return compiled


def compile_integrators() -> None:
    """Compile the integrators into the default cache, or find them there: `bin/setup` runs this
    (`python -m qspflow.simulate`), so that a first workflow run does not spend ≈35 s on it. They
    compile with a one-state model, whose small module is cached beside them."""
    x, k = symbol("x"), symbol("k")
    compile_model(OdeModel("integrators", ["x"], {"k": Parameter("k", 1.0)}, {"x": -k * x}, {"x": sympy.Integer(1)}),
                  varying=["k"])


@contextlib.contextmanager
def _one_at_a_time(lock: Path) -> Iterator[None]:
    """One process at a time compiles a module; the others wait, then load what it cached: the chunk jobs of a
    workflow start together, and on a cold cache each would compile the same module (≈ 15 s apiece).
    Unlocked where the lock file cannot be made (a read-only cache)."""
    try:
        handle = open(lock, "a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
