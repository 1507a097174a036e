"""Generate the source of one model's module, and of the integrators' cached copy (used by `qspflow.simulate.compile`).

A model's module holds its sizes, its events' flags and its functions: `derive`, `rhs`, `jac`,
`initial`, `observe` and the events' `instants`, `triggers`, `assign`, `apply`, `priority`, `delay`,
generated from the sympy expressions with common subexpressions eliminated, each a numba cfunc of
the signature `kernel.SIGNATURES` gives, which the integrators (`kernel.py`, compiled once for all
models) call through its address. Parameters that do not vary are folded in as numbers; subexpressions
of the varying parameters alone are computed once per parameter set by `derive`. A sensitivity
system's blocks (`block`) are A·s_k + g_k with one A: `rhs` and `jac` compute A, ∂A/∂x and each g_k
once and loop over the blocks, so their source grows with the nonzero g_k, not with blocks × states.

Each file is named by the sha256 of its text, so a change to the model or to the folded constants
gives a new model module, and a change to kernel.py a new cached copy of it: a fresh compilation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from importlib import resources

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from qspflow.errors import ModelError
from qspflow.model import TIME, Event, OdeModel, derivative, jacobian_entry, right_limit, symbol, trigger_relations
from qspflow.simulate.kernel import SIGNATURES

MAX_UNROLLED_POWER = 8  # x**n with integer |n| up to this becomes multiplications
# The lines of kernel.py that its cached copy replaces, markers included.
JIT_BEGIN, JIT_END = "# >>> jit", "# <<< jit"
# numba's options for every compiled function. No fastmath, not even "contract": where LLVM may fuse
# a*b + c, the compiling process and the cached code fused differently (other last bits).
OPTIONS = 'cache=True, error_model="numpy"'


class _Printer(PythonCodePrinter):
    """Python source that numba compiles well: small integer powers as products, float literals."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True})
        self._not_supported = set()

    def _print_Pow(self, expr: sympy.Pow, rational: bool = False) -> str:
        base, exp = expr.as_base_exp()
        if exp.is_Integer and 0 < abs(int(exp)) <= MAX_UNROLLED_POWER:
            factor = self.parenthesize(base, PRECEDENCE["Mul"], strict=True)
            product = "*".join([factor] * abs(int(exp)))
            # Parenthesized: the caller may put it in a denominator (`a/(x*x)`).
            return f"({product})" if exp > 0 else f"(1.0/({product}))"
        if exp == sympy.S.Half:
            return f"math.sqrt({self._print(base)})"
        if exp == -sympy.S.Half:
            return f"(1.0/math.sqrt({self._print(base)}))"
        return super()._print_Pow(expr, rational)

    def _print_sign(self, expr: sympy.sign) -> str:
        x = self._print(expr.args[0])
        return f"(0.0 if {x} == 0 else math.copysign(1.0, {x}))"

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return repr(float(expr))

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def text(self, expr: sympy.Expr, element: str) -> str:
        code = self._print(expr)
        if self._not_supported:
            found = ", ".join(sorted(str(e) for e in self._not_supported))
            raise ModelError(None, element=element, expected="functions the simulator can compile", found=found)
        return code


@dataclasses.dataclass(frozen=True)
class Generated:
    """The source of one model's simulator module and what the caller needs to run it."""

    source: str
    states: tuple[str, ...]
    varying: tuple[str, ...]
    observables: tuple[str, ...]
    breakpoints: tuple[float, ...]


def _constant(value: float) -> sympy.Number:
    """An exact sympy number: integers stay integers so `x**n` can be unrolled."""
    if float(value).is_integer() and abs(value) < 2**31:
        return sympy.Integer(int(value))
    return sympy.Float(value)


def _block(printer: _Printer, assignments: Sequence[tuple[str, sympy.Expr]], element: str,
           loads: Mapping[sympy.Symbol, str]) -> list[str]:
    """Body lines: loads of the symbols used, cse temporaries, then the assignments."""
    targets = [target for target, _ in assignments]
    exprs = [expr for _, expr in assignments]
    temporaries, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("c_"), order="none")
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    lines = [f"    {symbol} = {loads[symbol]}" for symbol in sorted(used & loads.keys(), key=str)]
    lines += [f"    {symbol} = {printer.text(expr, element)}" for symbol, expr in temporaries]
    lines += [f"    {target} = {printer.text(expr, element)}" for target, expr in zip(targets, reduced)]
    return lines


class _Hoist:
    """Moves subexpressions of the varying parameters alone out of the per-step functions.

    `x/tau` becomes `x*d_0` with d_0 = 1/tau computed once per parameter set: a division
    less in every right-hand-side evaluation. Sums and products are split into their
    parameter-only part and the rest; the hoisted expressions are `derived`, in order.
    """

    def __init__(self, parameters: Sequence[sympy.Symbol]) -> None:
        self.parameters = frozenset(parameters)
        self.derived: dict[sympy.Expr, sympy.Symbol] = {}

    def _only_parameters(self, e: sympy.Basic) -> bool:
        return bool(e.free_symbols) and e.free_symbols <= self.parameters

    def _name(self, e: sympy.Expr) -> sympy.Expr:
        if e.is_Symbol:
            return e
        if e not in self.derived:
            self.derived[e] = symbol(f"d_{len(self.derived)}")
        return self.derived[e]

    def __call__(self, e: sympy.Basic) -> sympy.Basic:
        if e.is_Atom:
            return e
        if self._only_parameters(e) and isinstance(e, sympy.Expr):
            return self._name(e)
        if isinstance(e, (sympy.Add, sympy.Mul)):
            # Numbers go with the parameters: 60*ka*exp(-ka*t) hoists 60*ka.
            inner = [a for a in e.args if self._only_parameters(a) or a.is_Number]
            if any(not a.is_Number for a in inner):
                rest = [self(a) for a in e.args if a not in inner]
                return e.func(self._name(e.func(*inner)), *rest)
        return e.func(*[self(a) for a in e.args])


def _function(name: str, args: str, doc: str, body: list[str]) -> str:
    header = [f'@cfunc("{SIGNATURES[name]}", {OPTIONS})', f"def {name}({args}):", f'    """{doc}"""']
    return "\n".join(header + (body or ["    pass"])) + "\n"


def _per_event(bodies: Sequence[list[str]]) -> list[str]:
    """`if k == 0: … elif k == 1: …` around each event's body lines."""
    lines = []
    for k, body in enumerate(bodies):
        lines.append(f"    {'if' if k == 0 else 'elif'} k == {k}:")
        lines += ["    " + line for line in body] or ["        pass"]
    return lines


def _event_functions(printer: _Printer, events: Sequence[Event], states: Sequence[sympy.Symbol],
                     rename: Mapping[sympy.Symbol, sympy.Symbol], loads: Mapping[sympy.Symbol, str]) -> tuple[
                         list[str], list[str]]:
    """The kernel's event functions (`instants`, `triggers`, `assign`, `apply`, `priority`) and the
    interface lines of the events' sizes and flags; `events` have fixed parameters folded in."""
    instants: dict[sympy.Basic, sympy.Symbol] = {}
    at: list[sympy.Expr] = []
    conditions = []
    for event in events:
        relations = trigger_relations(event.trigger, states)
        limits = {}
        for relation, instant in relations.times:
            if relation not in instants:
                instants[relation] = symbol(f"ti_{len(at)}")
                at.append(instant)
            limits[relation] = right_limit(relation, instants[relation])
        conditions.append(sympy.Piecewise((sympy.Float(1.0), sympy.sympify(event.trigger).xreplace(limits)),
                                          (sympy.Float(0.0), True)).xreplace(rename))
    position = {y: i for i, y in enumerate(states)}
    event_loads = {**loads, **{s: f"ti[{i}]" for i, s in enumerate(instants.values())}}
    assign, apply, priority, delay = [], [], [], []
    for event in events:
        wait = sympy.Integer(0) if event.delay is None else sympy.sympify(event.delay).xreplace(rename)
        delay.append(_block(printer, [("value", wait)], event.id, loads) + ["    return value"])
        targets = [(position[symbol(name)], sympy.sympify(e).xreplace(rename)) for name, e in event.assignments.items()]
        assign.append(_block(printer, [(f"v[{i}]", e) for i, e in targets], event.id, event_loads))
        apply.append([f"    y[{i}] = v[{i}]" for i, _ in targets])
        if event.priority is None:
            priority.append(["    return -math.inf"])
        else:
            value = sympy.sympify(event.priority).xreplace(rename)
            priority.append(_block(printer, [("value", value)], event.id, event_loads) + ["    return value"])
    functions = [
        _function("instants", "q, ti", "ti = the instants of the triggers' relations in time alone",
                  _block(printer, [(f"ti[{i}]", e.xreplace(rename)) for i, e in enumerate(at)], "events", loads)),
        _function("triggers", "t, y, q, ti, out", "out[k] = 1.0 where event k's trigger is true, else 0.0",
                  _block(printer, [(f"out[{k}]", c) for k, c in enumerate(conditions)], "events", event_loads)),
        _function("assign", "k, t, y, q, v", "v = the values event k assigns, at its targets' positions",
                  _per_event(assign)),
        _function("apply", "k, v, y", "y = v at event k's targets", _per_event(apply)),
        _function("priority", "k, t, y, q", "event k's priority (-inf: none)",
                  _per_event(priority) + ["    return -math.inf"]),
        _function("delay", "k, q", "event k's delay (0.0: none)", _per_event(delay) + ["    return 0.0"]),
    ]

    def flags(values: Sequence[bool]) -> str:
        return f"np.array({[bool(v) for v in values]}, dtype=np.bool_)"

    interface = [
        f"N_EVENTS = {len(events)}",
        f"N_INSTANTS = {len(at)}",
        f"INITIAL_VALUE = {flags([e.initial_value for e in events])}",
        f"PERSISTENT = {flags([e.persistent for e in events])}",
        f"USE_TRIGGER_VALUES = {flags([e.use_values_from_trigger_time for e in events])}",
        f"N_DELAYED = {sum(e.delay is not None for e in events)}",
    ]
    return functions, interface


@dataclasses.dataclass(frozen=True)
class _Blocks:
    """A right-hand side split by its blocks: the states' own f₀ (the first BLOCK rows) and, for each of
    `count` sensitivity blocks k, f_k = A·s_k + g_k, with one coefficient matrix A for every block.
    A plain model is one block (count 0)."""

    states: list[sympy.Expr]
    count: int
    coefficients: dict[tuple[int, int], sympy.Expr]  # A[i, j] ≠ 0
    inhomogeneous: dict[int, sympy.Expr]  # g_k[i] ≠ 0, by its row in the whole system


def _split(f: Sequence[sympy.Expr], ys: Sequence[sympy.Symbol], block: int, name: str) -> _Blocks:
    """`f` as `_Blocks`, checked: block 0 depends on its own states only; block k > 0 on block 0's and
    linearly on its own, with the coefficients of block 1 (the structure of a sensitivity system)."""
    if len(ys) % block:
        raise ModelError(None, element=name, expected=f"a number of states divisible by the block size {block}",
                         found=len(ys))
    states, base = frozenset(ys), frozenset(ys[:block])
    first = ys[block:2 * block]
    first_set = frozenset(first)
    homogeneous: list[sympy.Expr] = []
    inhomogeneous = {}
    for i, fi in enumerate(f):
        start = i // block * block
        own = frozenset(ys[start:start + block]) if start else frozenset()
        outside = fi.free_symbols & states - base - own
        if outside:
            raise ModelError(None, element=name, expected="the Jacobian structure of a sensitivity system",
                             found=f"df[{i}]/d{sorted(outside, key=str)[0]} ≠ 0")
        if not start:
            continue
        terms = sympy.Add.make_args(fi)
        linear = sympy.Add(*[a for a in terms if a.free_symbols & own]).xreplace(dict(zip(ys[start:], first)))
        if start == block:
            homogeneous.append(linear)
        elif linear != homogeneous[i % block]:
            raise ModelError(None, element=name, expected="sensitivity blocks with the coefficients of the first",
                             found=f"row {i}")
        rest = sympy.Add(*[a for a in terms if not a.free_symbols & own])
        if rest != 0:
            inhomogeneous[i] = rest
    coefficients = {}
    for i, linear in enumerate(homogeneous):
        for j, s in enumerate(first):
            a = derivative(linear, s)
            if a.free_symbols & first_set:
                raise ModelError(None, element=name, expected="sensitivities that enter their equations linearly",
                                 found=f"row {block + i}")
            if a != 0:
                coefficients[i, j] = a
    return _Blocks(list(f[:block]), len(ys) // block - 1, coefficients, inhomogeneous)


def _over_blocks(block: int, count: int, rows: Mapping[str, Sequence[tuple[int, str]]]) -> list[str]:
    """A loop over the sensitivity blocks (o: a block's first row) setting each of `rows`, a target
    such as `dy[o + 2]`, to its Σ coefficient·y[o + j]: one line per row, not one per row and block."""
    if not count or not rows:
        return []
    lines = [f"    for o in range({block}, {block * (count + 1)}, {block}):"]
    for target, terms in rows.items():
        lines.append(f"        {target} = " + (" + ".join(f"{c}*y[o + {j}]" for j, c in terms) or "0.0"))
    return lines


def generate(model: OdeModel, varying: Sequence[str], block: int | None = None,
             error_states: int | None = None) -> Generated:
    """The simulator source for `model` with `varying` read from a parameter vector.

    Every other parameter is substituted by its value before differentiation and code
    generation, so sympy folds it into constants (kⁿ computed once, integer n unrolled).
    `block`: the state block size of a sensitivity system (`qspflow.simulate.sensitivity`), whose
    structure the implicit method then uses (checked here). `error_states`: the leading states that
    the step size control sees (default all).
    """
    model.validate()
    varying = tuple(varying)
    unknown = [name for name in varying if name not in model.parameters]
    if unknown:
        raise ModelError(None, element=model.name, expected="varying parameters of the model",
                         found=", ".join(unknown))
    if len(set(varying)) != len(varying):
        raise ModelError(None, element=model.name, expected="distinct varying parameters", found=", ".join(varying))

    fixed = {model.symbol(name): _constant(p.value) for name, p in model.parameters.items() if name not in varying}
    states = tuple(model.states)
    # The names the generated code uses: y_i = y[i], p_i = p[i], t.
    y = {model.symbol(s): symbol(f"y_{i}") for i, s in enumerate(states)}
    p = {model.symbol(name): symbol(f"p_{i}") for i, name in enumerate(varying)}
    t = symbol("t")
    rename = {**y, **p, TIME: t}
    loads = {**{s: f"y[{i}]" for i, s in enumerate(y.values())}, **{s: f"p[{i}]" for i, s in enumerate(p.values())}}

    folded = {s: sympy.sympify(model.rhs[s]).xreplace(fixed) for s in states}
    breakpoints = tuple(dataclasses.replace(model, rhs=folded, observables={}).breakpoints())
    f = [folded[s].xreplace(rename) for s in states]
    ys = list(y.values())
    size = block or len(ys)
    blocks = _split(f, ys, size, model.name)
    x, all_states = ys[:size], frozenset(ys)
    hoist = _Hoist(p.values())

    def nonzero(entries: Mapping[tuple, sympy.Expr]) -> dict[tuple, sympy.Expr]:
        return {key: hoist(e) for key, e in entries.items() if e != 0}

    def state_derivatives(e: sympy.Expr) -> list[tuple[int, sympy.Expr]]:
        """(m, ∂e/∂x_m) for the states x_m in e, finite at x = 0 (`jacobian_entry`)."""
        return [(m, jacobian_entry(e, xm, all_states)) for m, xm in enumerate(x) if xm in e.free_symbols]

    # f₀, then A and g of the sensitivity blocks as scalars that one loop over the blocks combines.
    a = nonzero(blocks.coefficients)
    g = nonzero({(r,): e for r, e in blocks.inhomogeneous.items()})
    rhs = [(f"dy[{i}]", hoist(e)) for i, e in enumerate(blocks.states)]
    rhs += [(f"a_{i}_{j}", e) for (i, j), e in a.items()] + [(f"g_{r}", e) for (r,), e in g.items()]
    rows: dict[str, list[tuple[int, str]]] = {f"dy[o + {i}]": [] for i in range(size)}  # every row is set
    for i, j in a:
        rows[f"dy[o + {i}]"].append((j, f"a_{i}_{j}"))
    rhs_tail = _over_blocks(size, blocks.count, rows)
    rhs_tail += [f"    dy[{r}] += g_{r}" for (r,) in g]
    # Of a sensitivity system only the first block column: the integrator needs no more (kernel._solve_w):
    # ∂f₀/∂x, and per block ∂(A·s_k + g_k)/∂x = (∂A/∂x)·s_k + ∂g_k/∂x; ft = ∂f/∂t likewise.
    jx = nonzero({(i, m): d for i, fi in enumerate(blocks.states) for m, d in state_derivatives(fi)})
    jt = nonzero({(i,): sympy.powsimp(derivative(fi, t)) for i, fi in enumerate(blocks.states)})
    ax = nonzero({(i, m, j): d for (i, j), e in blocks.coefficients.items() for m, d in state_derivatives(e)})
    at = nonzero({(i, j): derivative(e, t) for (i, j), e in blocks.coefficients.items()})
    gx = nonzero({(r, m): d for r, e in blocks.inhomogeneous.items() for m, d in state_derivatives(e)})
    gt = nonzero({(r,): sympy.powsimp(derivative(e, t)) for r, e in blocks.inhomogeneous.items()})
    jac = [(f"J[{i}, {m}]", e) for (i, m), e in jx.items()] + [(f"ft[{i}]", e) for (i,), e in jt.items()]
    jac += [(f"ax_{i}_{m}_{j}", e) for (i, m, j), e in ax.items()] + [(f"at_{i}_{j}", e) for (i, j), e in at.items()]
    jac += [(f"gx_{r}_{m}", e) for (r, m), e in gx.items()] + [(f"gt_{r}", e) for (r,), e in gt.items()]
    loops: dict[str, list[tuple[int, str]]] = {}
    for i, m, j in ax:
        loops.setdefault(f"J[o + {i}, {m}]", []).append((j, f"ax_{i}_{m}_{j}"))
    for i, j in at:
        loops.setdefault(f"ft[o + {i}]", []).append((j, f"at_{i}_{j}"))
    jac_tail = _over_blocks(size, blocks.count, loops)
    jac_tail += [f"    J[{r}, {m}] += gx_{r}_{m}" for r, m in gx] + [f"    ft[{r}] += gt_{r}" for (r,) in gt]

    initial = [sympy.sympify(model.initial[s]).xreplace(fixed).xreplace({TIME: sympy.Integer(0)}) for s in states]
    by_state = dict(zip(y, initial))
    for _ in states:  # an initial value may refer to other states' initial values
        initial = [e.xreplace(by_state) for e in initial]
        by_state = dict(zip(y, initial))
    for name, expr in zip(states, initial):
        if expr.free_symbols & set(y):
            raise ModelError(None, element=name, expected="initial values that do not depend on each other cyclically")
    initial = [e.xreplace(rename) for e in initial]

    observables = tuple(model.observables)
    observe = [sympy.sympify(model.observables[o]).xreplace(fixed).xreplace(rename) for o in observables]
    if not observables:
        observe = ys

    # The per-step functions read q = (p, derived); `derive` fills it once per parameter set.
    observe = [hoist(e) for e in observe]
    q_loads = {**{s: f"q[{i}]" for i, s in enumerate(p.values())},
               **{d: f"q[{len(p) + i}]" for i, d in enumerate(hoist.derived.values())}}
    q_loads.update({s: f"y[{i}]" for i, s in enumerate(ys)})
    derive = [(f"q[{i}]", s) for i, s in enumerate(p.values())]
    derive += [(f"q[{len(p) + i}]", e) for i, e in enumerate(hoist.derived)]

    printer = _Printer()
    folded_events = [dataclasses.replace(
        e, trigger=sympy.sympify(e.trigger).xreplace(fixed),
        assignments={k: sympy.sympify(v).xreplace(fixed) for k, v in e.assignments.items()},
        priority=None if e.priority is None else sympy.sympify(e.priority).xreplace(fixed),
        delay=None if e.delay is None else sympy.sympify(e.delay).xreplace(fixed)) for e in model.events]
    event_functions, event_interface = _event_functions(printer, folded_events, model.state_symbols, rename,
                                                        q_loads)
    functions = [
        _function("derive", "p, q", "q = (p, the parameter-only subexpressions)",
                  _block(printer, derive, "parameters", loads)),
        _function("rhs", "t, y, q, dy", "dy = f(t, y, p)",
                  _block(printer, rhs, "rhs", q_loads) + rhs_tail),
        _function("jac", "t, y, q, J, ft", "J = df/dy (its first BLOCK columns), ft = df/dt",
                  ["    J[:, :] = 0.0", "    ft[:] = 0.0"]
                  + _block(printer, jac, "jacobian", q_loads) + jac_tail),
        # Zeros (most of a sensitivity system's initial values) in one statement.
        _function("initial", "p, y", "y = x(0)",
                  ["    y[:] = 0.0"] * (0 in initial)
                  + _block(printer, [(f"y[{i}]", e) for i, e in enumerate(initial) if e != 0], "initial", loads)),
        # Without observables `observe` copies the states: one statement, not one per state, as the
        # many states of a sensitivity system would cost seconds of numba compilation.
        _function("observe", "t, y, q, out", "out = observables(t, y, p)",
                  _block(printer, [(f"out[{i}]", e) for i, e in enumerate(observe)], "observables", q_loads)
                  if observables else [f"    out[:] = y[:{len(states)}]"]),
        *event_functions,
    ]
    header = [
        f'"""The functions of model {model.name!r}, generated by qspflow.simulate.codegen; do not edit this file.',
        "",
        f"states: {', '.join(states)}",
        f"varying: {', '.join(varying) or '(none)'}",
        '"""',
        "",
        "import math",
        "",
        "import numpy as np",
        "from numba import cfunc",
        "",
        f"N_STATES = {len(states)}",
        f"N_OBSERVABLES = {len(observe)}",
        f"N_DERIVED = {len(p) + len(hoist.derived)}",
        f"BLOCK = {block or len(states)}",
        f"N_ERROR = {error_states or len(states)}",
        *event_interface,
        "",
        "",
    ]
    source = "\n".join(header) + "\n\n".join(functions)
    return Generated(source, states, varying, observables, breakpoints)


@functools.cache
def kernel_source() -> str:
    """kernel.py's text with its `jit` block filled in: numba's njit, cached beside the file, padded so
    that every line keeps its number (a traceback or numba error in the cached copy reads as kernel.py)."""
    lines = (resources.files(__package__) / "kernel.py").read_text(encoding="utf-8").splitlines()
    begin = [i for i, line in enumerate(lines) if line.startswith(JIT_BEGIN)]
    end = [i for i, line in enumerate(lines) if line.startswith(JIT_END)]
    if len(begin) != 1 or len(end) != 1 or end[0] <= begin[0]:
        raise RuntimeError(f"kernel.py must have one jit block ({JIT_BEGIN!r} ... {JIT_END!r})")
    block = [f"{JIT_BEGIN}, filled in by qspflow.simulate.codegen; do not edit this file.",
             "from numba import njit", "", "", "def jit(**options):",
             f"    return njit({OPTIONS}, **options)"]
    room = end[0] - begin[0]
    if len(block) > room:
        raise RuntimeError(f"kernel.py's jit block needs at least {len(block) + 1} lines")
    block += [""] * (room - len(block))
    return "\n".join(lines[:begin[0]] + block + lines[end[0]:]) + "\n"
