"""Compile an `OdeModel` once, then simulate many parameter sets fast.

`compile_model` generates numba source for the model (right-hand side, analytic Jacobian,
initial values, observables; parameters that do not vary are folded into constants), compiled
as cfuncs into a module cached on disk by the sha256 of its text; the integrators, compiled
once for every model and cached beside, call them through their addresses.
`CompiledModel.simulate` integrates every parameter set independently in a parallel loop
whose threads claim a few sets at a time: adaptive Dormand–Prince 5(4) with Hairer's
stiffness test, and a set found stiff is finished by Rodas4 (Rosenbrock, analytic Jacobian)
from where it was. Integration restarts at the model's breakpoints (dose times) and never
steps across one. Events (`qspflow.model.Event`) stop it at the instants of time-triggered ones and
where a state-triggered one's trigger changes (bisection on the step's interpolant, the step redone
to end there), execute as SBML says and restart it. A set that fails is marked with a status and
NaN values; the batch goes on.
Results do not depend on the number of threads.

Modules: `compile` (CompiledModel, compile_model, the content-hash cache), `codegen` (the
model's generated functions and the module texts), `kernel` (the integrators, real Python that
numba compiles once, in a cached copy, for every model).
"""

from qspflow.simulate.compile import (
    METHODS,
    OUTPUTS,
    SCHEDULE_CHUNK,
    STATUS_MESSAGES,
    CompiledModel,
    SimulationResult,
    compile_model,
    default_cache_dir,
)

__all__ = [
    "METHODS",
    "OUTPUTS",
    "SCHEDULE_CHUNK",
    "STATUS_MESSAGES",
    "CompiledModel",
    "SimulationResult",
    "compile_model",
    "default_cache_dir",
]
