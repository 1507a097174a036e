"""Profile likelihoods and the confidence intervals they give.

A parameter's profile fixes it on a path away from the best optimum and re-optimizes the others,
warm-started from the previous point, until the log-likelihood falls χ²(1, 0.95)/2 = 1.92 below the
optimum (`THRESHOLD`) or the path hits a bound; the 95 % confidence interval ends where the profile
crosses that threshold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import chi2

from qspflow.calibrate.spec import CalibrationSpec, to_linear

THRESHOLD = float(chi2.ppf(0.95, 1)) / 2  # profile drop that ends a 95 % confidence interval
# A step that drops the profile by more than this many THRESHOLDs is retried shorter: the root is
# then 2× the crossing's, and a kinked profile's bracket this wide can misplace the end.
OVERSHOOT = 4
CI_SECANT_STEPS = 3  # extra solves that place each CI end on the threshold crossing
# A point this close to the crossing in the root √(2·(top − llh)) ends the secant: the interval end
# is then within 0.005 standard errors (the root's slope is 1/σ where the profile is quadratic).
CI_ROOT_TOLERANCE = 0.005


# Re-optimizes the other parameters with the profiled one fixed at a value, warm-started from a
# previous point's state: returns (converged, log-likelihood, state to warm-start the next from).
Reoptimize = Callable[[float, object], tuple[bool, float, object]]


def profile_path(solve: Reoptimize, lower: float, upper: float, x_best: float, optimum: object, top: float, *,
                 first_step: float, max_steps: int) -> list[tuple[float, float]]:
    """The profile of one parameter (bounds `lower`, `upper` on its scale): [(scaled value, llh)]
    sorted by value, from the optimum (warm state `optimum`, log-likelihood `top`) down both sides;
    `first_step` is a fraction of the bound width, and each side takes at most `max_steps` steps.

    Steps aim just past the interval's end: the root √(2·(top − llh)) is nearly linear in the
    parameter, so its slope over the last step predicts where it reaches the threshold's root (1.96);
    a side then ends with the crossing bracketed and closed in on (`_secant`). Where the profile is
    flat the steps grow fourfold towards the bound.
    """
    crossing = _root(top - THRESHOLD, top)
    width = upper - lower
    points = [(x_best, top)]
    for direction in (-1.0, 1.0):
        bound = lower if direction < 0 else upper
        value, llh, warm = x_best, top, optimum
        step = first_step * width
        smallest = step / 16
        beyond = None  # the nearest point found far past the end (overshot): later steps stop short of it
        for _ in range(max_steps):
            if value == bound:
                break
            trial = float(np.clip(value + direction * step, lower, upper))
            if beyond is not None and direction * (trial - beyond) >= 0:
                if abs(beyond - value) > 2 * smallest:
                    trial = (value + beyond) / 2
                else:  # that close to it, re-solve past it from here: a solve from afar may have failed there
                    beyond = None
            converged, new, state = solve(trial, warm)
            if not converged or (new < top - OVERSHOOT * THRESHOLD and step > smallest):
                # failed, or overshot so far that the bracket would misplace the end: a shorter step
                if step <= smallest:
                    break
                if converged:
                    beyond = trial
                step = max(abs(trial - value) / 2, smallest)
                continue
            points.append((trial, new))
            if new < top - THRESHOLD:
                points += _secant(solve, (value, llh, warm), (trial, new, state), top)
                break
            step = _next_step(abs(trial - value), _root(llh, top), _root(new, top), crossing, smallest)
            value, llh, warm = trial, new, state
    return sorted(points)


def _next_step(step: float, root_before: float, root_after: float, crossing: float, smallest: float) -> float:
    """The step after one of length `step` that moved the root from `root_before` to `root_after`:
    to 1.15 × the crossing's root along the root's slope, within [step/2, 4·step] (a profile's
    curvature changes along the path) and never below `smallest`."""
    slope = (root_after - root_before) / step
    wanted = (1.15 * crossing - root_after) / slope if slope > 0 else math.inf
    return max(min(max(wanted, step / 2), 4 * step), smallest)


def _root(llh: float, top: float) -> float:
    """The signed-root likelihood ratio's size √(2·(top − llh)): nearly linear in the parameter where
    the profile is nearly quadratic, so interpolating it finds the crossing of THRESHOLD in a step or
    two where interpolating the log-likelihood itself needs several."""
    return math.sqrt(2.0 * max(top - llh, 0.0))


def _secant(solve: Reoptimize, inside: tuple, outside: tuple, top: float) -> list[tuple[float, float]]:
    """Extra profile points closing in on where the profile crosses top − THRESHOLD between an
    inside and an outside point (value, llh, warm state): Illinois method on the root `_root`
    (regula falsi that halves the weight of an end kept twice), each solve warm-started from the
    bracket's end nearer to it."""
    (a, fa, warm_a), (c, fc, warm_c) = inside, outside
    crossing = _root(top - THRESHOLD, top)
    ga, gc = _root(fa, top) - crossing, _root(fc, top) - crossing
    replaced = None
    points = []
    for _ in range(CI_SECANT_STEPS):
        trial = a - ga * (c - a) / (gc - ga)
        converged, new, state = solve(trial, warm_a if abs(trial - a) <= abs(trial - c) else warm_c)
        if not converged:
            break
        points.append((trial, new))
        g = _root(new, top) - crossing
        if abs(g) < CI_ROOT_TOLERANCE:
            break
        if g <= 0:
            a, ga, warm_a = trial, g, state
            gc = gc / 2 if replaced == "inside" else gc
            replaced = "inside"
        else:
            c, gc, warm_c = trial, g, state
            ga = ga / 2 if replaced == "outside" else ga
            replaced = "outside"
    return points


def confidence_interval(points: Sequence[tuple[float, float]], optimum: float,
                        top: float) -> tuple[float, float]:
    """Ends of the 95 % interval where a profile [(value, llh)] crosses top − 1.92 on either side of
    the optimum (interpolated linearly in the root √(2·(top − llh)), exact for a quadratic profile);
    NaN where it does not cross within the profiled range.
    """
    target = top - THRESHOLD
    crossing = _root(target, top)
    ends = []
    for side in (-1, 1):
        path = sorted((p for p in points if side * (p[0] - optimum) >= 0), key=lambda p: side * (p[0] - optimum))
        end = math.nan
        for (a, fa), (c, fc) in itertools.pairwise(path):
            if fa >= target > fc:
                ra, rc = _root(fa, top), _root(fc, top)
                end = a + (crossing - ra) * (c - a) / (rc - ra)
                break
        ends.append(end)
    return ends[0], ends[1]


def estimates_table(spec: CalibrationSpec, x_best: np.ndarray, profiles: Mapping[int, tuple]) -> pd.DataFrame:
    """parameter, estimate (linear scale), lower_95, upper_95, identifiable (NA where not profiled)."""
    rows = []
    for i, (name, scale) in enumerate(zip(spec.names, spec.scales)):
        low = high = math.nan
        identifiable = pd.NA
        if i in profiles:
            points, top = profiles[i]
            low, high = confidence_interval(points, x_best[i], top)
            identifiable = bool(math.isfinite(low) and math.isfinite(high))
        rows.append((name, float(to_linear(scale, x_best[i])), float(to_linear(scale, low)),
                     float(to_linear(scale, high)), identifiable))
    frame = pd.DataFrame(rows, columns=["parameter", "estimate", "lower_95", "upper_95", "identifiable"])
    return frame.astype({"identifiable": "boolean"})


def profiles_table(spec: CalibrationSpec, profiles: Mapping[int, tuple]) -> pd.DataFrame:
    """parameter, value (scaled), llh: every profile point, parameters in order."""
    rows = [(spec.names[i], float(v), float(llh)) for i in sorted(profiles) for v, llh in profiles[i][0]]
    return pd.DataFrame(rows, columns=["parameter", "value", "llh"]).astype({"value": float, "llh": float})
