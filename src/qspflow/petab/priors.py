"""Objective priors of PEtab (v1) parameters: the log-density, its gradient and Fisher information.

A prior is a density of one estimated parameter, as the PEtab 1 specification defines it for the
parameter table's `objectivePriorType` and `objectivePriorParameters`:

| type | variable u | density of | parameters |
|---|---|---|---|
| uniform, normal, laplace | θ (linear) | θ | lower; upper · mean; sd · location; scale (linear) |
| logNormal, logLaplace | log θ | θ (log θ normal / Laplace) | of the normal / Laplace distribution of log θ |
| parameterScaleUniform, …Normal, …Laplace | x (the parameter's scale) | x | on the parameter scale |

Densities are normalized and not truncated at the bounds (the PEtab 1 specification does not
truncate; libpetab ≥ 0.5 does, which shifts its log-prior by the log of the mass within the
bounds). parameterScaleUniform without parameters spans the bounds. An empty cell is no prior at all
(no term), as the specification's default (`parameterScaleUniform` on the bounds) is "equivalent
to no prior". Only estimated parameters have a prior term: a fixed parameter's would be a constant.

`Prior.terms` gives, at values on the parameter's scale, −log p, its derivative and its Fisher
information (the Gauss–Newton curvature: (du/dx)²/σ² for normal, (du/dx)²/b² for Laplace, 0 for
uniform), which calibration adds to the negative log-likelihood's (a MAP estimate). `log_prior`
sums the log-densities of a problem's priors at given parameter values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from petab.v1 import C

LN10 = math.log(10.0)
PRIOR_TYPES = (C.UNIFORM, C.NORMAL, C.LAPLACE, C.LOG_NORMAL, C.LOG_LAPLACE, C.PARAMETER_SCALE_UNIFORM,
               C.PARAMETER_SCALE_NORMAL, C.PARAMETER_SCALE_LAPLACE)
PARAMETER_NAMES = {C.UNIFORM: "lower bound;upper bound", C.NORMAL: "mean;standard deviation",
                   C.LAPLACE: "location;scale"}


@dataclass(frozen=True)
class Prior:
    """The objective prior `type` (a PEtab prior type) with its two `parameters` of a parameter on `scale`."""

    type: str
    parameters: tuple[float, float]
    scale: str

    @property
    def family(self) -> str:
        """uniform, normal or laplace: the distribution of u."""
        name = self.type.removeprefix("parameterScale").removeprefix("log")
        return name[0].lower() + name[1:]

    def _variable(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(u, du/dx, j, dj/dx) at scaled x: the prior's variable and the log-Jacobian j = log θ of a
        log-type prior (whose density is of θ, not of u = log θ); j is 0 for the others."""
        zero, one = np.zeros_like(x), np.ones_like(x)
        if self.type.startswith("parameterScale"):
            return x, one, zero, zero
        factor = {C.LOG: 1.0, C.LOG10: LN10}.get(self.scale)
        if self.type in (C.LOG_NORMAL, C.LOG_LAPLACE):
            with np.errstate(divide="ignore", invalid="ignore"):
                u, du = (x * factor, factor * one) if factor else (np.log(x), 1.0 / x)
            return u, du, u, du
        if factor:
            theta = np.exp(x * factor)
            return theta, theta * factor, zero, zero
        return x, one, zero, zero

    def terms(self, x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(−log p, d(−log p)/dx, Fisher information) elementwise at values x on the parameter's scale;
        −log p is inf outside the support (a uniform prior's interval, θ ≤ 0 for a log-type prior)."""
        x = np.asarray(x, dtype=float)
        u, du, j, dj = self._variable(x)
        a, b = self.parameters
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.family == C.NORMAL:
                value = 0.5 * math.log(2 * math.pi) + math.log(b) + 0.5 * ((u - a) / b) ** 2
                slope, information = (u - a) / b**2, 1.0 / b**2
            elif self.family == C.LAPLACE:
                value = math.log(2 * b) + np.abs(u - a) / b
                slope, information = np.sign(u - a) / b, 1.0 / b**2
            else:
                value = np.where((a <= u) & (u <= b), math.log(b - a), np.inf)
                slope, information = 0.0, 0.0
            value = np.where(np.isfinite(u), value + j, np.inf)
        return value, slope * du + dj, information * du**2


def scaled(scale: str, value: float) -> float:
    """A linear value on a PEtab parameter scale (lin, log, log10); −inf for 0 on a log scale."""
    if scale == C.LIN:
        return value
    if value <= 0:
        return -math.inf if value == 0 else math.nan
    return math.log(value) if scale == C.LOG else math.log10(value)
