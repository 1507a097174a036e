"""Generate the numba source of one model's batch simulator (used by `qspflow.simulate`).

The module text is the model's functions (`derive`, `rhs`, `jac`, `initial`, `observe`,
generated from the sympy expressions with common subexpressions eliminated) followed by the
integrators in `KERNEL`. Parameters that do not vary are folded in as numbers; subexpressions
of the varying parameters alone are computed once per parameter set by `derive`.

Everything lives in one file because numba can only cache functions whose callees are resolved
at compile time; the file is named by the sha256 of its text, so a change to the model, to the
folded constants or to the integrators gives a new file and a fresh compilation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel

MAX_UNROLLED_POWER = 8  # x**n with integer |n| up to this becomes multiplications


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
            self.derived[e] = sympy.Symbol(f"d_{len(self.derived)}", real=True)
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
    # "contract" lets LLVM fuse a*b + c into one instruction; the same code runs for every set.
    decorator = '@njit(cache=True, error_model="numpy", fastmath={"contract"})'
    header = [decorator, f"def {name}({args}):", f'    """{doc}"""']
    return "\n".join(header + (body or ["    pass"])) + "\n"


def generate(model: OdeModel, varying: Sequence[str]) -> Generated:
    """The simulator source for `model` with `varying` read from a parameter vector.

    Every other parameter is substituted by its value before differentiation and code
    generation, so sympy folds it into constants (kⁿ computed once, integer n unrolled).
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
    y = {model.symbol(s): sympy.Symbol(f"y_{i}", real=True) for i, s in enumerate(states)}
    p = {model.symbol(name): sympy.Symbol(f"p_{i}", real=True) for i, name in enumerate(varying)}
    t = sympy.Symbol("t", real=True)
    rename = {**y, **p, TIME: t}
    loads = {**{s: f"y[{i}]" for i, s in enumerate(y.values())}, **{s: f"p[{i}]" for i, s in enumerate(p.values())}}

    folded = {s: sympy.sympify(model.rhs[s]).xreplace(fixed) for s in states}
    breakpoints = tuple(dataclasses.replace(model, rhs=folded, observables={}).breakpoints())
    f = [folded[s].xreplace(rename) for s in states]
    ys = list(y.values())
    # powsimp turns sympy's d(xⁿ)/dx = n·xⁿ/x into n·xⁿ⁻¹, which is finite at x = 0.
    jac = [(f"J[{i}, {j}]", sympy.powsimp(sympy.diff(fi, yj))) for i, fi in enumerate(f) for j, yj in enumerate(ys)]
    jac += [(f"ft[{i}]", sympy.powsimp(sympy.diff(fi, t))) for i, fi in enumerate(f)]

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
    hoist = _Hoist(p.values())
    f = [hoist(e) for e in f]
    jac = [(target, hoist(e)) for target, e in jac if e != 0]
    observe = [hoist(e) for e in observe]
    q_loads = {**{s: f"q[{i}]" for i, s in enumerate(p.values())},
               **{d: f"q[{len(p) + i}]" for i, d in enumerate(hoist.derived.values())}}
    q_loads.update({s: f"y[{i}]" for i, s in enumerate(ys)})
    derive = [(f"q[{i}]", s) for i, s in enumerate(p.values())]
    derive += [(f"q[{len(p) + i}]", e) for i, e in enumerate(hoist.derived)]

    printer = _Printer()
    functions = [
        _function("derive", "p, q", "q = (p, the parameter-only subexpressions)",
                  _block(printer, derive, "parameters", loads)),
        _function("rhs", "t, y, q, dy", "dy = f(t, y, p)",
                  _block(printer, [(f"dy[{i}]", e) for i, e in enumerate(f)], "rhs", q_loads)),
        _function("jac", "t, y, q, J, ft", "J = df/dy, ft = df/dt",
                  ["    J[:, :] = 0.0", "    ft[:] = 0.0"] + _block(printer, jac, "jacobian", q_loads)),
        _function("initial", "p, y", "y = x(0)",
                  _block(printer, [(f"y[{i}]", e) for i, e in enumerate(initial)], "initial", loads)),
        _function("observe", "t, y, q, out", "out = observables(t, y, p)",
                  _block(printer, [(f"out[{i}]", e) for i, e in enumerate(observe)], "observables", q_loads)),
    ]
    header = [
        f"# qspflow simulator for model {model.name!r}; generated, do not edit.",
        f"# states: {', '.join(states)}",
        f"# varying: {', '.join(varying) or '(none)'}",
        "import math",
        "",
        "import numpy as np",
        "from numba import njit, prange, types",
        "from numba.extending import intrinsic",
        "",
        f"N_STATES = {len(states)}",
        f"N_OBSERVABLES = {len(observe)}",
        f"N_DERIVED = {len(p) + len(hoist.derived)}",
        "",
        "",
    ]
    source = "\n".join(header) + "\n\n".join(functions) + "\n" + KERNEL
    return Generated(source, states, varying, observables, breakpoints)


KERNEL = r'''
# ------------------------------------------------------------------------------------------
# Integrators: the same text in every generated module.
# ------------------------------------------------------------------------------------------

EPS = 2.220446049250313e-16
AUTO, EXPLICIT, IMPLICIT = 0, 1, 2
OK, UNDERFLOW, MAX_STEPS, NON_FINITE, SINGULAR = 0, 1, 2, 3, 4
N_WORK = 12  # state-sized work vectors per parameter set

# Dormand-Prince 5(4), coefficients and dense output as in Hairer's DOPRI5.
C2, C3, C4, C5 = 0.2, 0.3, 0.8, 8.0 / 9.0
A21 = 0.2
A31, A32 = 3.0 / 40.0, 9.0 / 40.0
A41, A42, A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
A51, A52, A53, A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
A61, A62, A63, A64, A65 = 9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0
A71, A73, A74, A75, A76 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
E1, E3, E4, E5, E6, E7 = (71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0,
                          22.0 / 525.0, -1.0 / 40.0)
D1, D3, D4, D5, D6, D7 = (-12715105075.0 / 11282082432.0, 87487479700.0 / 32700410799.0,
                          -10690763975.0 / 1880347072.0, 701980252875.0 / 199316789632.0,
                          -1453857185.0 / 822651844.0, 69997945.0 / 29380423.0)
SAFE, BETA, EXPO1 = 0.9, 0.04, 0.2 - 0.04 * 0.75
FACC1, FACC2 = 5.0, 0.1  # step growth between 1/10 and 5 per step
# Hairer's test (DOPRI5): stiff after 15 accepted steps with h*|lambda| above a threshold, unless 6
# steps below it come first. His threshold is 3.25, near DOPRI5's stability limit (~3.3), but the
# estimate (a difference quotient along one direction) measured 2.2-2.8 on a set held at that limit,
# leaving it explicit for 700 steps; at rtol 1e-6 non-stiff sets stay below 0.7.
STIFF_HLAMBDA, STIFF_STEPS, NONSTIFF_STEPS = 2.0, 15, 6

# Rodas4 (Hairer & Wanner, RODAS, METH=1): stiffly accurate Rosenbrock 4(3), W = I/(h*gamma) - J.
R_GAMMA = 0.25
R_C2, R_C3, R_C4 = 0.386, 0.21, 0.63
R_D1, R_D2, R_D3, R_D4 = 0.25, -0.1043, 0.1035, -0.3620000000000023e-01
R_A21 = 1.544
R_A31, R_A32 = 0.9466785280815826, 0.2557011698983284
R_A41, R_A42, R_A43 = 3.314825187068521, 2.896124015972201, 0.9986419139977817
R_A51, R_A52, R_A53, R_A54 = 1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950
R_C21 = -5.6688
R_C31, R_C32 = -2.430093356833875, -0.2063599157091915
R_C41, R_C42, R_C43 = -0.1073529058151375, -9.594562251023355, -20.47028614809616
R_C51, R_C52, R_C53, R_C54 = 7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160
R_C61, R_C62, R_C63, R_C64, R_C65 = (8.083246795921522, -7.981132988064893, -31.52159432874371,
                                     16.31930543123136, -6.058818238834054)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _all_finite(v):
    for x in v:
        if not math.isfinite(x):
            return False
    return True


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _emit(t, y, q, states_out, row):
    if states_out:
        for i in range(N_STATES):
            row[i] = y[i]
    else:
        observe(t, y, q, row)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hinit(q, t, b, tl, y, f0, rtol, atol, order, f1, y1):
    """Hairer's initial step: from |f| and a difference estimate of the second derivative."""
    dnf = 0.0
    dny = 0.0
    for i in range(N_STATES):
        sk = atol + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    hmax = b - t
    h = 1e-6 if dnf <= 1e-10 or dny <= 1e-10 else 0.01 * math.sqrt(dny / dnf)
    h = min(h, hmax)
    for i in range(N_STATES):
        y1[i] = y[i] + h * f0[i]
    rhs(min(t + h, tl), y1, q, f1)
    der2 = 0.0
    for i in range(N_STATES):
        sk = atol + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der12 = max(math.sqrt(der2) / h, math.sqrt(dnf))
    h1 = max(1e-6, h * 1e-3) if der12 <= 1e-15 else (0.01 / der12) ** (1.0 / order)
    h = min(100.0 * h, h1, hmax)
    return h if h > 0.0 else 1e-6 * hmax  # also when a non-finite f1 made h NaN


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _dopri(q, t, b, y, times, j, rtol, atol, detect, max_steps, steps, states_out, out, w):
    """Dormand-Prince 5(4) from t to the breakpoint b; y is updated in place.

    Outputs in (t, b] come from the dense output. Returns (status, t, j, h, steps, stiff):
    with `detect`, it stops early once Hairer's test finds the problem stiff.
    """
    n = N_STATES
    k1, k2, k3, k4, k5, k6, k7 = w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    y1, ys, yd = w[8], w[9], w[10]
    tl = np.nextafter(b, -np.inf)  # stages that land on b see the rhs left of the switch
    rhs(t, y, q, k1)
    if not _all_finite(k1):
        return NON_FINITE, t, j, 0.0, steps, False
    h = _hinit(q, t, b, tl, y, k1, rtol, atol, 5.0, k2, ys)
    facold = 1e-4
    iasti = 0
    nonsti = 0
    reject = False
    bad = False
    while t < b:
        if steps >= max_steps:
            return MAX_STEPS, t, j, h, steps, False
        if 0.1 * h <= EPS * max(abs(t), abs(b)):
            return (NON_FINITE if bad else UNDERFLOW), t, j, h, steps, False
        last = t + 1.01 * h >= b
        if last:
            h = b - t
        te = tl if last else t + h
        for i in range(n):
            ys[i] = y[i] + h * A21 * k1[i]
        rhs(t + C2 * h, ys, q, k2)
        for i in range(n):
            ys[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i])
        rhs(t + C3 * h, ys, q, k3)
        for i in range(n):
            ys[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i])
        rhs(t + C4 * h, ys, q, k4)
        for i in range(n):
            ys[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
        rhs(t + C5 * h, ys, q, k5)
        for i in range(n):
            ys[i] = y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i])
        rhs(te, ys, q, k6)
        for i in range(n):
            y1[i] = y[i] + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i])
        rhs(te, y1, q, k7)
        steps += 1
        err = 0.0
        for i in range(n):
            sk = atol + rtol * max(abs(y[i]), abs(y1[i]))
            e = h * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i])
            err += (e / sk) ** 2
        err = math.sqrt(err / n)
        if not err <= 1e300:  # NaN or inf somewhere: retry with a much smaller step
            bad = True
            reject = True
            h *= 0.1
            continue
        bad = False
        fac11 = err**EXPO1
        if err <= 1.0:
            hnew = h / max(FACC2, min(FACC1, fac11 / facold**BETA / SAFE))
            facold = max(err, 1e-4)
            stiff = False
            if detect:
                # h*|lambda| estimated from the last two stages, which share their time point.
                stnum = 0.0
                stden = 0.0
                for i in range(n):
                    stnum += (k7[i] - k6[i]) ** 2
                    stden += (y1[i] - ys[i]) ** 2
                if stden > 0.0 and h * h * stnum > STIFF_HLAMBDA**2 * stden:
                    nonsti = 0
                    iasti += 1
                    stiff = iasti == STIFF_STEPS
                else:
                    nonsti += 1
                    if nonsti == NONSTIFF_STEPS:
                        iasti = 0
            tn = b if last else t + h
            while j < times.size and times[j] <= tn:
                if times[j] == tn:
                    _emit(tn, y1, q, states_out, out[j])
                else:
                    theta = (times[j] - t) / h
                    theta1 = 1.0 - theta
                    for i in range(n):
                        ydiff = y1[i] - y[i]
                        bspl = h * k1[i] - ydiff
                        rc5 = h * (D1 * k1[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i])
                        yd[i] = y[i] + theta * (ydiff + theta1 * (bspl + theta * (ydiff - h * k7[i] - bspl
                                                                                   + theta1 * rc5)))
                    _emit(times[j], yd, q, states_out, out[j])
                j += 1
            for i in range(n):
                y[i] = y1[i]
                k1[i] = k7[i]
            t = tn
            if reject:
                hnew = min(hnew, h)
            reject = False
            h = hnew
            if stiff:
                return OK, t, j, h, steps, True
        else:
            h = h / min(FACC1, fac11 / SAFE)
            reject = True
    return OK, t, j, h, steps, False


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _finite_or_zero(jm, fx):
    """Zero the derivatives that are infinite or NaN where the rhs is not differentiable.

    E.g. d(x^h)/dx with h < 1 at x = 0. The step is then a W-method step with an approximate
    Jacobian, still judged by the error estimate, instead of a failure.
    """
    n = fx.size
    for r in range(n):
        if not math.isfinite(fx[r]):
            fx[r] = 0.0
        for c in range(n):
            if not math.isfinite(jm[r, c]):
                jm[r, c] = 0.0


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _lu(a, piv):
    """In-place LU with partial pivoting; False if a pivot is zero or not finite."""
    n = a.shape[0]
    for k in range(n):
        m = k
        big = abs(a[k, k])
        for i in range(k + 1, n):
            if abs(a[i, k]) > big:
                big = abs(a[i, k])
                m = i
        if not (big > 0.0 and big < math.inf):
            return False
        piv[k] = m
        if m != k:
            for c in range(n):
                a[k, c], a[m, c] = a[m, c], a[k, c]
        inv = 1.0 / a[k, k]
        for i in range(k + 1, n):
            f = a[i, k] * inv
            a[i, k] = f
            if f != 0.0:
                for c in range(k + 1, n):
                    a[i, c] -= f * a[k, c]
    return True


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _lu_solve(a, piv, x):
    n = a.shape[0]
    for k in range(n):
        m = piv[k]
        if m != k:
            x[k], x[m] = x[m], x[k]
    for i in range(n):
        s = x[i]
        for c in range(i):
            s -= a[i, c] * x[c]
        x[i] = s
    for i in range(n - 1, -1, -1):
        s = x[i]
        for c in range(i + 1, n):
            s -= a[i, c] * x[c]
        x[i] = s / a[i, i]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _rodas(q, t, b, y, h, times, j, rtol, atol, max_steps, steps, states_out, out, w):
    """Rodas4 with the analytic Jacobian from t to the breakpoint b, stepping onto each output time.

    Returns (status, t, j, h, steps); y is updated in place.
    """
    n = N_STATES
    dy1, dy, fx, yn = w[1], w[2], w[3], w[4]
    ak1, ak2, ak3, ak4, ak5, ak6 = w[5], w[6], w[7], w[8], w[9], w[10]
    jm = np.empty((n, n))
    e = np.empty((n, n))
    piv = np.empty(n, dtype=np.int64)
    tl = np.nextafter(b, -np.inf)
    if h <= 0.0:
        rhs(t, y, q, dy1)
        if not _all_finite(dy1):
            return NON_FINITE, t, j, h, steps
        h = _hinit(q, t, b, tl, y, dy1, rtol, atol, 4.0, dy, yn)
    reject = False
    bad = False
    singular = 0
    while t < b:
        if steps >= max_steps:
            return MAX_STEPS, t, j, h, steps
        if 0.1 * h <= EPS * max(abs(t), abs(b)):
            return (NON_FINITE if bad else UNDERFLOW), t, j, h, steps
        target = times[j] if j < times.size and times[j] < b else b
        last = t + 1.01 * h >= target
        hh = target - t if last else h
        tn = target if last else t + hh
        te = tl if tn == b else tn
        if not reject:
            rhs(t, y, q, dy1)
            jac(t, y, q, jm, fx)
            _finite_or_zero(jm, fx)
        fac = 1.0 / (hh * R_GAMMA)
        for r in range(n):
            for c in range(n):
                e[r, c] = -jm[r, c]
            e[r, r] += fac
        if not _lu(e, piv):
            singular += 1
            if singular >= 5:
                return SINGULAR, t, j, h, steps
            h = 0.5 * hh
            reject = True
            continue
        hd1, hd2, hd3, hd4 = hh * R_D1, hh * R_D2, hh * R_D3, hh * R_D4
        for i in range(n):
            ak1[i] = dy1[i] + hd1 * fx[i]
        _lu_solve(e, piv, ak1)
        for i in range(n):
            yn[i] = y[i] + R_A21 * ak1[i]
        rhs(t + R_C2 * hh, yn, q, dy)
        for i in range(n):
            ak2[i] = dy[i] + hd2 * fx[i] + R_C21 / hh * ak1[i]
        _lu_solve(e, piv, ak2)
        for i in range(n):
            yn[i] = y[i] + R_A31 * ak1[i] + R_A32 * ak2[i]
        rhs(t + R_C3 * hh, yn, q, dy)
        for i in range(n):
            ak3[i] = dy[i] + hd3 * fx[i] + (R_C31 * ak1[i] + R_C32 * ak2[i]) / hh
        _lu_solve(e, piv, ak3)
        for i in range(n):
            yn[i] = y[i] + R_A41 * ak1[i] + R_A42 * ak2[i] + R_A43 * ak3[i]
        rhs(t + R_C4 * hh, yn, q, dy)
        for i in range(n):
            ak4[i] = dy[i] + hd4 * fx[i] + (R_C41 * ak1[i] + R_C42 * ak2[i] + R_C43 * ak3[i]) / hh
        _lu_solve(e, piv, ak4)
        for i in range(n):
            yn[i] = y[i] + R_A51 * ak1[i] + R_A52 * ak2[i] + R_A53 * ak3[i] + R_A54 * ak4[i]
        rhs(te, yn, q, dy)
        for i in range(n):
            ak5[i] = dy[i] + (R_C51 * ak1[i] + R_C52 * ak2[i] + R_C53 * ak3[i] + R_C54 * ak4[i]) / hh
        _lu_solve(e, piv, ak5)
        for i in range(n):
            yn[i] += ak5[i]  # the embedded solution
        rhs(te, yn, q, dy)
        for i in range(n):
            ak6[i] = dy[i] + (R_C61 * ak1[i] + R_C62 * ak2[i] + R_C63 * ak3[i] + R_C64 * ak4[i]
                              + R_C65 * ak5[i]) / hh
        _lu_solve(e, piv, ak6)
        steps += 1
        err = 0.0
        for i in range(n):
            yn[i] += ak6[i]  # ak6 is the difference to the embedded solution
            sk = atol + rtol * max(abs(y[i]), abs(yn[i]))
            err += (ak6[i] / sk) ** 2
        err = math.sqrt(err / n)
        if not err <= 1e300:
            bad = True
            reject = True
            h = 0.1 * hh
            continue
        bad = False
        hnew = hh / max(1.0 / 6.0, min(5.0, err**0.25 / SAFE))
        if err <= 1.0:
            for i in range(n):
                y[i] = yn[i]
            t = tn
            while j < times.size and times[j] <= t:
                _emit(times[j], y, q, states_out, out[j])
                j += 1
            if reject:
                hnew = min(hnew, hh)
            # A step shortened to land on an output time says little about the next one.
            h = max(hnew, h) if last and not reject else hnew
            reject = False
        else:
            h = hnew
            reject = True
    return OK, t, j, h, steps


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _solve(p, times, stops, rtol, atol, method, states_out, max_steps, out):
    """One parameter set: explicit until stiff (or throughout), then Rodas4; restarts at stops."""
    w = np.empty((N_WORK, N_STATES))
    y = w[0]
    initial(p, y)
    q = np.empty(N_DERIVED)
    derive(p, q)
    if not _all_finite(y):
        out[:, :] = np.nan
        return NON_FINITE, False
    j = 0
    while j < times.size and times[j] <= 0.0:
        _emit(0.0, y, q, states_out, out[j])
        j += 1
    t = 0.0
    h = 0.0
    steps = 0
    status = OK
    implicit = method == IMPLICIT
    for s in range(stops.size):
        b = stops[s]
        if not implicit:
            status, t, j, h, steps, implicit = _dopri(q, t, b, y, times, j, rtol, atol, method == AUTO,
                                                      max_steps, steps, states_out, out, w)
            if status != OK:
                break
        if implicit and t < b:
            status, t, j, h, steps = _rodas(q, t, b, y, h, times, j, rtol, atol, max_steps, steps,
                                            states_out, out, w)
            if status != OK:
                break
    if status != OK:
        out[:, :] = np.nan
    return status, implicit


@intrinsic
def _claim(typingctx, counter, amount):
    """Atomically add `amount` to counter[0]; returns the previous value."""
    signature = types.intp(counter, types.intp)

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", array.data, args[1], "monotonic")

    return signature, codegen


@njit(cache=True, parallel=True, error_model="numpy", fastmath={"contract"})
def solve_batch(params, times, stops, rtol, atol, method, states_out, max_steps, values, status, stiff,
                workers, chunk):
    """Every parameter set (row of params), each on its own.

    One loop per thread claims `chunk` sets at a time from a shared counter: a thread that the
    operating system deschedules delays only the chunk it holds, not a fixed share of the batch.
    """
    n = params.shape[0]
    counter = np.zeros(1, dtype=np.intp)
    for _ in prange(workers):
        start = _claim(counter, chunk)
        while start < n:
            for i in range(start, min(start + chunk, n)):
                s, implicit = _solve(params[i], times, stops, rtol, atol, method, states_out, max_steps, values[i])
                status[i] = s
                stiff[i] = implicit
            start = _claim(counter, chunk)
'''
