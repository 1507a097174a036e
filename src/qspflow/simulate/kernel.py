"""The integrators of qspflow's batch simulator: real Python that numba compiles once for every model.

This text is `qspflow/simulate/kernel.py`. `qspflow.simulate.compile` writes it to the cache as
`kernel-<sha256>.py` with the `jit` block below filled in (numba's njit, cached beside that file) and
compiles it once for all models: a model reaches the integrators as a `Model`, its sizes and flags and
its functions (`derive`, `rhs`, `jac`, `initial`, `observe` and the events' `instants`, `triggers`,
`assign`, `apply`, `priority`, `delay`), each a numba cfunc of the fixed signature in `SIGNATURES`
generated per model by `qspflow.simulate.codegen`. numba types such a function by its signature only
(a first-class function called through its address), so the integrators' machine code, cached once,
serves every model, and a model's own module compiles in seconds. Imported as
`qspflow.simulate.kernel`, `jit` compiles nothing and the integrators run as plain Python on a `Model`
of Python functions (the unit tests use small hand-written ones).

Status codes and method numbers are defined here once; `qspflow.simulate` maps them to words.
"""

import collections
import math

import numpy as np
from numba import types
from numba.core import cgutils, sigutils
from numba.extending import intrinsic

# >>> jit: the cached copy replaces this block, line for line.


def jit(**options):
    """numba's njit with on-disk caching and the kernel's options (`qspflow.simulate.codegen.kernel_source`);
    here it leaves the function as it is."""
    return lambda function: function


# <<< jit

# What the integrators know of a model. Sizes: n_states (length of y), n_observables (a row of
# observables), n_derived (length of q: the varying parameters, then their parameter-only
# subexpressions), block (the Jacobian's block size: n_states, or n of a sensitivity system, see
# _solve_w), n_error (the leading states the step size control sees), n_events, n_instants (instants
# at which a relation in time alone of a trigger switches), n_delayed (events with a delay). Flags,
# per event: initial_value (its trigger's value before time 0), persistent (executes even if its
# trigger turned false meanwhile), use_trigger_values (assignments evaluated when it fires).
SIZES = ("n_states", "n_observables", "n_derived", "block", "n_error", "n_events", "n_instants", "n_delayed")
FLAGS = ("initial_value", "persistent", "use_trigger_values")
# The model's functions, each a cfunc of this numba signature (1-D arrays of float64, C-contiguous; J 2-D):
SIGNATURES = {
    "derive": "void(float64[::1], float64[::1])",  # (p, q): q = (p, the parameter-only subexpressions)
    "rhs": "void(float64, float64[::1], float64[::1], float64[::1])",  # (t, y, q, dy): dy = f(t, y, p)
    # (t, y, q, J, ft): J = df/dy (its first `block` columns), ft = df/dt (both fully overwritten)
    "jac": "void(float64, float64[::1], float64[::1], float64[:, ::1], float64[::1])",
    "initial": "void(float64[::1], float64[::1])",  # (p, y): y = x(0)
    "observe": "void(float64, float64[::1], float64[::1], float64[::1])",  # (t, y, q, out): the observables
    "instants": "void(float64[::1], float64[::1])",  # (q, ti): the instants (unsorted) of relations in time alone
    # (t, y, q, ti, out): out[k] = 1.0 where event k's trigger is true, else 0.0; a relation in time alone
    # has at its instant the value it has right after
    "triggers": "void(float64, float64[::1], float64[::1], float64[::1], float64[::1])",
    # (k, t, y, q, v): v = the values event k assigns (at its targets' positions; the others are left)
    "assign": "void(int64, float64, float64[::1], float64[::1], float64[::1])",
    "apply": "void(int64, float64[::1], float64[::1])",  # (k, v, y): y = v at event k's targets
    "priority": "float64(int64, float64, float64[::1], float64[::1])",  # (k, t, y, q): -inf for none
    "delay": "float64(int64, float64[::1])",  # (k, q): 0.0 for none
}
Model = collections.namedtuple("Model", [*SIZES, *FLAGS, *SIGNATURES])

EPS = 2.220446049250313e-16
AUTO, EXPLICIT, IMPLICIT = 0, 1, 2
OK, UNDERFLOW, MAX_STEPS, NON_FINITE, SINGULAR, ENDLESS_EVENTS, BAD_DELAY = 0, 1, 2, 3, 4, 5, 6
N_WORK = 13  # state-sized work vectors per parameter set
# Executions of events at one instant after which a cascade counts as endless.
MAX_EXECUTIONS = 10_000
# Delayed executions pending at once (per parameter set) that the simulator holds.
MAX_QUEUED = 64

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


@jit()
def _all_finite(v):
    for x in v:
        if not math.isfinite(x):
            return False
    return True


@jit()
def _emit(m, t, y, q, states_out, row):
    if states_out:
        for i in range(m.n_states):
            row[i] = y[i]
    else:
        m.observe(t, y, q, row)


@jit()
def _differs(a, b):
    for k in range(a.size):
        if a[k] != b[k]:
            return True
    return False


@jit()
def _dense(m, theta, h, y, y1, k1, k3, k4, k5, k6, k7, yd):
    """yd = DOPRI5's continuous output at t + theta·h of the step y → y1."""
    theta1 = 1.0 - theta
    for i in range(m.n_states):
        ydiff = y1[i] - y[i]
        bspl = h * k1[i] - ydiff
        rc5 = h * (D1 * k1[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i])
        yd[i] = y[i] + theta * (ydiff + theta1 * (bspl + theta * (ydiff - h * k7[i] - bspl + theta1 * rc5)))


@jit()
def _hermite(m, theta, h, y, f, y1, f1, yd):
    """yd = the cubic Hermite interpolant at t + theta·h of the step y → y1 (slopes f, f1)."""
    t2 = theta * theta
    t3 = t2 * theta
    a, b, c, d = 2.0 * t3 - 3.0 * t2 + 1.0, t3 - 2.0 * t2 + theta, 3.0 * t2 - 2.0 * t3, t3 - t2
    for i in range(m.n_states):
        yd[i] = a * y[i] + h * (b * f[i] + d * f1[i]) + c * y1[i]


@jit()
def _first_change(m, t, h, q, ti, ev, w, rodas):
    """θ ∈ (0, 1]: where in the accepted step [t, t + h] the first trigger changes, by bisection on
    the step's interpolant (DOPRI5's dense output, or Hermite's for Rodas4). ev[0] holds the
    triggers at t; θ is the right end of the last bracket, so the triggers have changed there.
    w[12] gets the interpolant there: `_solve` falls back to it if the step redone to end at θ
    lands a rounding error short of the change."""
    lo, hi = 0.0, 1.0
    yd = w[12]
    while (hi - lo) * h > 4.0 * EPS * max(abs(t), abs(t + h)):
        mid = 0.5 * (lo + hi)
        _interpolate(m, mid, h, w, rodas)
        m.triggers(t + mid * h, yd, q, ti, ev[2])
        if _differs(ev[0], ev[2]):
            hi = mid
        else:
            lo = mid
    _interpolate(m, hi, h, w, rodas)
    return hi


@jit()
def _interpolate(m, theta, h, w, rodas):
    """w[12] = the accepted step's interpolant at θ (see _first_change)."""
    if rodas:
        _hermite(m, theta, h, w[0], w[1], w[4], w[11], w[12])
    else:
        _dense(m, theta, h, w[0], w[8], w[1], w[3], w[4], w[5], w[6], w[7], w[12])


@jit()
def _start(m, t, y, q, turned, now, ev, v, queue_t, queue_k, queue_v, count):
    """Events k with turned[k] > now-before: due at once (pending) or queued until their delay ends,
    with their values where taken at the trigger; delayed non-persistent ones whose trigger `now`
    is false are dropped. Returns False if a delay is negative or the queue is full."""
    pending, stored = ev[5], ev[6]
    if m.n_delayed > 0:
        kept = 0
        for i in range(int(count[0])):
            k = int(queue_k[i])
            if m.persistent[k] or now[k] > 0.0:
                queue_t[kept], queue_k[kept] = queue_t[i], queue_k[i]
                queue_v[kept] = queue_v[i]
                kept += 1
        count[0] = kept
    for k in range(m.n_events):
        if turned[k] == 0.0:
            continue
        wait = m.delay(k, q) if m.n_delayed > 0 else 0.0
        if wait < 0.0:
            return False
        if wait > 0.0:
            n = int(count[0])
            if n == queue_t.size:
                return False
            queue_t[n], queue_k[n] = t + wait, k
            if m.use_trigger_values[k]:
                m.assign(k, t, y, q, queue_v[n])
            count[0] = n + 1
        else:
            pending[k] = 1.0
            stored[k] = 1.0 if m.use_trigger_values[k] else 0.0
            if m.use_trigger_values[k]:
                m.assign(k, t, y, q, v[k])
    return True


@jit()
def _execute(m, t, y, q, ti, ev, v, queue_t, queue_k, queue_v, count):
    """Execute the events due at t (qspflow.model.Event): those whose triggers turn true without a
    delay and those whose delay ends, by priority, every trigger evaluated again after each; a
    delayed one joins the queue (due times queue_t, events queue_k, values queue_v, count[0] of
    them; floats, as the queue lives in _solve's one work array). ev[3] holds the triggers' values
    before t and gets those after. Returns 1 if some event executed, 0 if none, -1 for an endless
    cascade, -2 for a negative delay or a full queue."""
    before, now, pending, stored, turned = ev[3], ev[4], ev[5], ev[6], ev[2]
    m.triggers(t, y, q, ti, now)
    for k in range(m.n_events):
        pending[k] = 0.0
        turned[k] = 1.0 if now[k] > before[k] else 0.0
    if not _start(m, t, y, q, turned, now, ev, v, queue_t, queue_k, queue_v, count):
        return -2
    if m.n_delayed > 0:
        kept = 0
        for i in range(int(count[0])):
            if queue_t[i] == t:
                k = int(queue_k[i])
                pending[k] = 1.0
                stored[k] = 1.0 if m.use_trigger_values[k] else 0.0
                v[k] = queue_v[i]
            else:
                queue_t[kept], queue_k[kept] = queue_t[i], queue_k[i]
                queue_v[kept] = queue_v[i]
                kept += 1
        count[0] = kept
    fired = 0
    for _ in range(MAX_EXECUTIONS):
        best = -1
        top = -math.inf
        for k in range(m.n_events):
            if pending[k] > 0.0:
                rank = m.priority(k, t, y, q)
                if best < 0 or rank > top:
                    best = k
                    top = rank
        if best < 0:
            for k in range(m.n_events):
                before[k] = now[k]
            return fired
        pending[best] = 0.0
        if not m.persistent[best] and now[best] == 0.0:
            continue
        if stored[best] == 0.0:
            m.assign(best, t, y, q, v[best])
        m.apply(best, v[best], y)
        fired = 1
        later = ev[1]
        m.triggers(t, y, q, ti, later)
        for k in range(m.n_events):
            turned[k] = 1.0 if later[k] > now[k] else 0.0
            now[k] = later[k]
        if not _start(m, t, y, q, turned, now, ev, v, queue_t, queue_k, queue_v, count):
            return -2
    return -1


@jit()
def _hinit(m, q, t, b, tl, y, f0, rtol, atol, order, f1, y1):
    """Hairer's initial step: from |f| and a difference estimate of the second derivative."""
    dnf = 0.0
    dny = 0.0
    for i in range(m.n_error):
        sk = atol + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    hmax = b - t
    h = 1e-6 if dnf <= 1e-10 or dny <= 1e-10 else 0.01 * math.sqrt(dny / dnf)
    h = min(h, hmax)
    for i in range(m.n_states):
        y1[i] = y[i] + h * f0[i]
    m.rhs(min(t + h, tl), y1, q, f1)
    der2 = 0.0
    for i in range(m.n_error):
        sk = atol + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der12 = max(math.sqrt(der2) / h, math.sqrt(dnf))
    h1 = max(1e-6, h * 1e-3) if der12 <= 1e-15 else (0.01 / der12) ** (1.0 / order)
    h = min(100.0 * h, h1, hmax)
    return h if h > 0.0 else 1e-6 * hmax  # also when a non-finite f1 made h NaN


@jit()
def _dopri(m, q, t, b, y, times, j, rtol, atol, detect, max_steps, steps, states_out, out, w, ti, ev):
    """Dormand-Prince 5(4) from t to the breakpoint b; y is updated in place.

    Outputs in (t, b] come from the dense output. Returns (status, t, j, h, steps, stiff, rooted):
    with `detect`, it stops early once Hairer's test finds the problem stiff; it stops where an
    event's trigger changes (`rooted`), the step redone to end there.
    """
    n = m.n_states
    k1, k2, k3, k4, k5, k6, k7 = w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    y1, ys, yd = w[8], w[9], w[10]
    tl = np.nextafter(b, -np.inf)  # stages that land on b see the rhs left of the switch
    m.rhs(t, y, q, k1)
    if not _all_finite(k1):
        return NON_FINITE, t, j, 0.0, steps, False, False
    h = _hinit(m, q, t, b, tl, y, k1, rtol, atol, 5.0, k2, ys)
    facold = 1e-4
    iasti = 0
    nonsti = 0
    reject = False
    bad = False
    rooted = False
    if m.n_events > 0:
        m.triggers(t, y, q, ti, ev[0])
    while t < b:
        if steps >= max_steps:
            return MAX_STEPS, t, j, h, steps, False, rooted
        if 0.1 * h <= EPS * max(abs(t), abs(b)):
            return (NON_FINITE if bad else UNDERFLOW), t, j, h, steps, False, rooted
        last = t + 1.01 * h >= b
        if last:
            h = b - t
        te = tl if last else t + h
        for i in range(n):
            ys[i] = y[i] + h * A21 * k1[i]
        m.rhs(t + C2 * h, ys, q, k2)
        for i in range(n):
            ys[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i])
        m.rhs(t + C3 * h, ys, q, k3)
        for i in range(n):
            ys[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i])
        m.rhs(t + C4 * h, ys, q, k4)
        for i in range(n):
            ys[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
        m.rhs(t + C5 * h, ys, q, k5)
        for i in range(n):
            ys[i] = y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i])
        m.rhs(te, ys, q, k6)
        for i in range(n):
            y1[i] = y[i] + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i])
        m.rhs(te, y1, q, k7)
        steps += 1
        err = 0.0
        for i in range(m.n_error):
            sk = atol + rtol * max(abs(y[i]), abs(y1[i]))
            e = h * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i])
            err += (e / sk) ** 2
        err = math.sqrt(err / m.n_error)
        if not err <= 1e300:  # NaN or inf somewhere: retry with a much smaller step
            bad = True
            reject = True
            h *= 0.1
            continue
        bad = False
        fac11 = err**EXPO1
        if err <= 1.0:
            if m.n_events > 0 and not rooted:
                m.triggers(tl if last else t + h, y1, q, ti, ev[1])
                if _differs(ev[0], ev[1]):
                    # Redo the step to end where the trigger changes (the step's error allows the longer one).
                    rooted = True
                    theta = _first_change(m, t, h, q, ti, ev, w, False)
                    if theta < 1.0:
                        b = t + theta * h
                        tl = np.nextafter(b, -np.inf)
                        h = b - t
                        continue
                    if not last:
                        b = t + h
                for k in range(m.n_events):
                    ev[0, k] = ev[1, k]
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
                    _emit(m, tn, y1, q, states_out, out[j])
                else:
                    _dense(m, (times[j] - t) / h, h, y, y1, k1, k3, k4, k5, k6, k7, yd)
                    _emit(m, times[j], yd, q, states_out, out[j])
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
                return OK, t, j, h, steps, True, rooted
        else:
            h = h / min(FACC1, fac11 / SAFE)
            reject = True
    return OK, t, j, h, steps, False, rooted


@jit()
def _finite_or_zero(jm, fx):
    """Zero the derivatives that are infinite or NaN where the rhs is not differentiable.

    E.g. d(x^h)/dx with h < 1 at x = 0. The step is then a W-method step with an approximate
    Jacobian, still judged by the error estimate, instead of a failure.
    """
    for r in range(jm.shape[0]):
        if not math.isfinite(fx[r]):
            fx[r] = 0.0
        for c in range(jm.shape[1]):
            if not math.isfinite(jm[r, c]):
                jm[r, c] = 0.0


@jit()
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


@jit()
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


@jit()
def _lu_w(m, e, piv):
    """LU of the iteration matrix, or of its first diagonal block when it is block-structured."""
    if m.block == m.n_states:
        return _lu(e, piv)
    return _lu(e[:m.block, :m.block], piv)


@jit()
def _solve_w(m, e, piv, x):
    """x = W⁻¹x with W factored by _lu_w.

    A sensitivity system (states, then one block of `block` sensitivities per parameter) has a block
    lower-triangular Jacobian whose diagonal blocks all equal the states' J: block k of W z = b is
    W₀ z_k = b_k − W_k0 z_0, so one LU of block × block serves all (CVODES's simultaneous corrector
    with the same structure), instead of one of the whole system, and W is stored by its first block
    column (n_states × block) only.
    """
    if m.block == m.n_states:
        _lu_solve(e, piv, x)
        return
    d = e[:m.block, :m.block]
    _lu_solve(d, piv, x[:m.block])
    for k in range(m.block, m.n_states, m.block):
        for r in range(k, k + m.block):
            s = x[r]
            for c in range(m.block):
                s -= e[r, c] * x[c]
            x[r] = s
        _lu_solve(d, piv, x[k:k + m.block])


@jit()
def _rodas(m, q, t, b, y, h, times, j, rtol, atol, max_steps, steps, states_out, out, w, ti, ev):
    """Rodas4 with the analytic Jacobian from t to the breakpoint b, stepping onto each output time.

    Returns (status, t, j, h, steps, rooted); y is updated in place. It stops where an event's
    trigger changes (`rooted`), the step redone to end there.
    """
    n = m.n_states
    dy1, dy, fx, yn = w[1], w[2], w[3], w[4]
    ak1, ak2, ak3, ak4, ak5, ak6 = w[5], w[6], w[7], w[8], w[9], w[10]
    jm = np.empty((n, m.block))  # a sensitivity system's J: its first block column is all it needs
    e = np.empty((n, m.block))
    piv = np.empty(m.block, dtype=np.int64)
    tl = np.nextafter(b, -np.inf)
    if h <= 0.0:
        m.rhs(t, y, q, dy1)
        if not _all_finite(dy1):
            return NON_FINITE, t, j, h, steps, False
        h = _hinit(m, q, t, b, tl, y, dy1, rtol, atol, 4.0, dy, yn)
    reject = False
    bad = False
    singular = 0
    rooted = False
    if m.n_events > 0:
        m.triggers(t, y, q, ti, ev[0])
    while t < b:
        if steps >= max_steps:
            return MAX_STEPS, t, j, h, steps, rooted
        if 0.1 * h <= EPS * max(abs(t), abs(b)):
            return (NON_FINITE if bad else UNDERFLOW), t, j, h, steps, rooted
        target = times[j] if j < times.size and times[j] < b else b
        last = t + 1.01 * h >= target
        hh = target - t if last else h
        tn = target if last else t + hh
        te = tl if tn == b else tn
        if not reject:
            m.rhs(t, y, q, dy1)
            m.jac(t, y, q, jm, fx)
            _finite_or_zero(jm, fx)
        fac = 1.0 / (hh * R_GAMMA)
        for r in range(n):
            for c in range(m.block):
                e[r, c] = -jm[r, c]
        for r in range(m.block):
            e[r, r] += fac
        if not _lu_w(m, e, piv):
            singular += 1
            if singular >= 5:
                return SINGULAR, t, j, h, steps, rooted
            h = 0.5 * hh
            reject = True
            continue
        hd1, hd2, hd3, hd4 = hh * R_D1, hh * R_D2, hh * R_D3, hh * R_D4
        for i in range(n):
            ak1[i] = dy1[i] + hd1 * fx[i]
        _solve_w(m, e, piv, ak1)
        for i in range(n):
            yn[i] = y[i] + R_A21 * ak1[i]
        m.rhs(t + R_C2 * hh, yn, q, dy)
        for i in range(n):
            ak2[i] = dy[i] + hd2 * fx[i] + R_C21 / hh * ak1[i]
        _solve_w(m, e, piv, ak2)
        for i in range(n):
            yn[i] = y[i] + R_A31 * ak1[i] + R_A32 * ak2[i]
        m.rhs(t + R_C3 * hh, yn, q, dy)
        for i in range(n):
            ak3[i] = dy[i] + hd3 * fx[i] + (R_C31 * ak1[i] + R_C32 * ak2[i]) / hh
        _solve_w(m, e, piv, ak3)
        for i in range(n):
            yn[i] = y[i] + R_A41 * ak1[i] + R_A42 * ak2[i] + R_A43 * ak3[i]
        m.rhs(t + R_C4 * hh, yn, q, dy)
        for i in range(n):
            ak4[i] = dy[i] + hd4 * fx[i] + (R_C41 * ak1[i] + R_C42 * ak2[i] + R_C43 * ak3[i]) / hh
        _solve_w(m, e, piv, ak4)
        for i in range(n):
            yn[i] = y[i] + R_A51 * ak1[i] + R_A52 * ak2[i] + R_A53 * ak3[i] + R_A54 * ak4[i]
        m.rhs(te, yn, q, dy)
        for i in range(n):
            ak5[i] = dy[i] + (R_C51 * ak1[i] + R_C52 * ak2[i] + R_C53 * ak3[i] + R_C54 * ak4[i]) / hh
        _solve_w(m, e, piv, ak5)
        for i in range(n):
            yn[i] += ak5[i]  # the embedded solution
        m.rhs(te, yn, q, dy)
        for i in range(n):
            ak6[i] = dy[i] + (R_C61 * ak1[i] + R_C62 * ak2[i] + R_C63 * ak3[i] + R_C64 * ak4[i]
                              + R_C65 * ak5[i]) / hh
        _solve_w(m, e, piv, ak6)
        steps += 1
        for i in range(n):
            yn[i] += ak6[i]  # ak6 is the difference to the embedded solution
        err = 0.0
        for i in range(m.n_error):
            sk = atol + rtol * max(abs(y[i]), abs(yn[i]))
            err += (ak6[i] / sk) ** 2
        err = math.sqrt(err / m.n_error)
        if not err <= 1e300:
            bad = True
            reject = True
            h = 0.1 * hh
            continue
        bad = False
        hnew = hh / max(1.0 / 6.0, min(5.0, err**0.25 / SAFE))
        if err <= 1.0:
            if m.n_events > 0 and not rooted:
                m.triggers(te, yn, q, ti, ev[1])
                if _differs(ev[0], ev[1]):
                    # Redo the step to end where the trigger changes (the step's error allows the longer one).
                    rooted = True
                    m.rhs(te, yn, q, w[11])
                    theta = _first_change(m, t, hh, q, ti, ev, w, True)
                    if theta < 1.0:
                        b = t + theta * hh
                        tl = np.nextafter(b, -np.inf)
                        h = b - t
                        reject = True
                        continue
                    b = tn
                for k in range(m.n_events):
                    ev[0, k] = ev[1, k]
            for i in range(n):
                y[i] = yn[i]
            t = tn
            while j < times.size and times[j] <= t:
                _emit(m, times[j], y, q, states_out, out[j])
                j += 1
            if reject:
                hnew = min(hnew, hh)
            # A step shortened to land on an output time says little about the next one.
            h = max(hnew, h) if last and not reject else hnew
            reject = False
        else:
            h = hnew
            reject = True
    return OK, t, j, h, steps, rooted


@jit()
def _solve(m, p, times, stops, rtol, atol, method, states_out, max_steps, out):
    """One parameter set: explicit until stiff (or throughout), then Rodas4; restarts at stops, at
    the instants of time-triggered events and where a state-triggered event's trigger changes."""
    w = np.empty((N_WORK, m.n_states))
    y = w[0]
    m.initial(p, y)
    q = np.empty(m.n_derived)
    m.derive(p, q)
    if not _all_finite(y):
        out[:, :] = np.nan
        return NON_FINITE, False
    # Events' work, in one allocation (a model without events makes one of a single number): their
    # instants and those sorted, trigger values (ev[0-2] the integrators', ev[3] before now, ev[4-6]
    # _execute's), values to assign per event, and the queue of delayed executions (due times, events,
    # values) with its length.
    queue_size = MAX_QUEUED if m.n_delayed > 0 else 0
    n, events, instants = m.n_states, m.n_events, m.n_instants
    work = np.empty(2 * instants + events * (7 + n) + queue_size * (2 + n) + 1)
    ti = work[:instants]
    upcoming = work[instants:2 * instants]
    at = 2 * instants
    ev = work[at:at + 7 * events].reshape((7, events))
    at += 7 * events
    v = work[at:at + events * n].reshape((events, n))
    at += events * n
    queue_t = work[at:at + queue_size]
    queue_k = work[at + queue_size:at + 2 * queue_size]
    at += 2 * queue_size
    queue_v = work[at:at + queue_size * n].reshape((queue_size, n))
    count = work[work.size - 1:]
    count[0] = 0.0
    status = OK
    if m.n_events > 0:
        m.instants(q, ti)
        upcoming[:] = np.sort(ti)
        for k in range(m.n_events):
            ev[3, k] = 1.0 if m.initial_value[k] else 0.0
        fired = _execute(m, 0.0, y, q, ti, ev, v, queue_t, queue_k, queue_v, count)
        if fired < 0:
            status = ENDLESS_EVENTS if fired == -1 else BAD_DELAY
    j = 0
    while j < times.size and times[j] <= 0.0:
        _emit(m, 0.0, y, q, states_out, out[j])
        j += 1
    t = 0.0
    h = 0.0
    steps = np.int64(0)  # not the literal 0: numba would compile _dopri once more for it
    implicit = method == IMPLICIT
    s = 0
    next_instant = 0
    while s < stops.size and status == OK:
        b = stops[s]
        while next_instant < m.n_instants and upcoming[next_instant] <= t:
            next_instant += 1
        if next_instant < m.n_instants and upcoming[next_instant] < b:
            b = upcoming[next_instant]
        for i in range(int(count[0])):
            if t < queue_t[i] < b:
                b = queue_t[i]
        rooted = False
        if not implicit:
            status, t, j, h, steps, implicit, rooted = _dopri(m, q, t, b, y, times, j, rtol, atol, method == AUTO,
                                                              max_steps, steps, states_out, out, w, ti, ev)
            if status != OK:
                break
        if implicit and t < b and not rooted:
            status, t, j, h, steps, rooted = _rodas(m, q, t, b, y, h, times, j, rtol, atol, max_steps, steps,
                                                    states_out, out, w, ti, ev)
            if status != OK:
                break
        if t >= stops[s]:
            s += 1
        if rooted:
            m.triggers(t, y, q, ti, ev[1])
            if not _differs(ev[0], ev[1]):
                y[:] = w[12]
        if m.n_events > 0:
            fired = _execute(m, t, y, q, ti, ev, v, queue_t, queue_k, queue_v, count)
            if fired < 0:
                status = ENDLESS_EVENTS if fired == -1 else BAD_DELAY
            elif fired > 0:
                if not _all_finite(y):
                    status = NON_FINITE
                h = 0.0
                # An output at the instant of an event sees the states after it.
                k = j
                while k > 0 and times[k - 1] == t:
                    k -= 1
                    _emit(m, t, y, q, states_out, out[k])
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


@jit(nogil=True)
def solve_batch(m, params, times, stops, rtol, atol, method, states_out, max_steps, values, status, stiff,
                counter, chunk):
    """The parameter sets (rows of params) this call claims from the shared counter, `chunk` at a
    time, each solved on its own, until none is left.

    `qspflow.simulate` runs one call per thread, without the GIL: a thread that the operating system
    deschedules delays only the chunk it holds, not a fixed share of the batch. Python threads, not
    numba's parallel=True: compiling the parallel loop cost 3–7 s of every module's compilation.
    """
    n = params.shape[0]
    start = _claim(counter, chunk)
    while start < n:
        for i in range(start, min(start + chunk, n)):
            s, implicit = _solve(m, params[i], times, stops, rtol, atol, method, states_out, max_steps, values[i])
            status[i] = s
            stiff[i] = implicit
        start = _claim(counter, chunk)


@intrinsic
def _function(typingctx, address, name):
    """The model's function `name` (a string literal, a key of SIGNATURES) as numba's first-class
    function of its signature, called through `address` (the cfunc's): a plain pointer that the
    caller passes as an integer, so no Python object crosses into compiled code."""
    if not isinstance(name, types.StringLiteral):
        return None
    arguments, result = sigutils.normalize_signature(SIGNATURES[name.literal_value])
    function = types.FunctionType(result(*arguments))

    def codegen(context, builder, sig, args):
        value = cgutils.create_struct_proxy(function)(context, builder)
        value.c_addr = builder.inttoptr(args[0], cgutils.voidptr_t)
        value.py_addr = cgutils.voidptr_t(None)
        value.jit_addr = cgutils.voidptr_t(None)
        return value._getvalue()

    return function(types.int64, name), codegen


@jit()
def _model(functions, sizes, flags):
    """The Model of `sizes` (in SIZES' order), `flags` (one row per FLAGS) and the cfuncs at the
    addresses `functions` (in SIGNATURES' order). Arrays cross from Python at no cost, where a
    Model of cfunc objects cost 0.35 ms per call in numba's typing of its arguments."""
    return Model(sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], sizes[5], sizes[6], sizes[7],
                 flags[0], flags[1], flags[2],
                 _function(functions[0], "derive"), _function(functions[1], "rhs"), _function(functions[2], "jac"),
                 _function(functions[3], "initial"), _function(functions[4], "observe"),
                 _function(functions[5], "instants"), _function(functions[6], "triggers"),
                 _function(functions[7], "assign"), _function(functions[8], "apply"),
                 _function(functions[9], "priority"), _function(functions[10], "delay"))


@jit(nogil=True)
def run_batch(functions, sizes, flags, params, times, stops, rtol, atol, method, states_out, max_steps, values,
              status, stiff, counter, chunk):
    """`solve_batch` for the model given as `_model` takes it."""
    solve_batch(_model(functions, sizes, flags), params, times, stops, rtol, atol, method, states_out, max_steps,
                values, status, stiff, counter, chunk)


@jit()
def derive_at(functions, sizes, flags, p, q):
    """The model's `derive`, called from Python."""
    _model(functions, sizes, flags).derive(p, q)


@jit()
def rhs_at(functions, sizes, flags, t, y, q, dy):
    """The model's `rhs`, called from Python."""
    _model(functions, sizes, flags).rhs(t, y, q, dy)


@jit()
def jac_at(functions, sizes, flags, t, y, q, J, ft):
    """The model's `jac`, called from Python."""
    _model(functions, sizes, flags).jac(t, y, q, J, ft)
