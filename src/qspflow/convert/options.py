"""The study config's `convert:` and `drug:` sections, checked, and the parameter bounds they set.

Every message names the key as the user writes it (`convert.bounds.tau`, `drug.route`,
`drug.parameters.pk_ka`, `values.tau_ERK`); the workflow also validates the whole config
against `config/schema.yaml` at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qspflow import options
from qspflow.convert.odefy import DEFAULT_BOUNDS
from qspflow.convert.pkpd import EFFECTS, PKPD_PARAMETERS, ROUTES
from qspflow.errors import ConfigError
from qspflow.io import format_float
from qspflow.model import SCALES, OdeModel
from qspflow.model.formulas import ID_PATTERN

log = logging.getLogger(__name__)

# The keys of the config's `convert:` section (the options of `convert_network`).
CONVERT_KEYS = ("method", "n", "k", "tau", "bounds", "observable_model", "noise")
# The keys of the `drug` mapping `convert_network` takes (the study config's `drug:` section).
DRUG_KEYS = ("target", "name", "effect", "route", "compartments", "interval", "n_doses", "infusion_duration",
             "parameters", "estimate")


def checked_bounds(bounds: Mapping[str, Sequence] | None) -> dict[str, tuple]:
    """`convert.bounds` entries as (lower, upper[, scale]), checked."""
    out = {}
    for name, entry in (bounds or {}).items():
        key = f"convert.bounds.{name}"
        if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) not in (2, 3):
            raise ConfigError(None, key=key, expected="[lower, upper] or [lower, upper, scale]", found=entry)
        lower, upper = options.number(key, entry[0]), options.number(key, entry[1])
        scale = options.choice(key, entry[2], SCALES) if len(entry) == 3 else None
        if not lower < upper or ((scale or DEFAULT_BOUNDS.get(name, (0, 0, "lin"))[2]) != "lin" and lower <= 0):
            raise ConfigError(None, key=key, expected="lower < upper, and lower > 0 on a log scale", found=entry)
        out[name] = (lower, upper) if scale is None else (lower, upper, scale)
    return out


def apply_bounds(model: OdeModel, bounds: Mapping[str, tuple]) -> None:
    """Bounds given by parameter name (PK/PD included) onto the model; names it lacks are logged."""
    for name, (lower, upper, *scale) in bounds.items():
        if name in DEFAULT_BOUNDS:
            continue
        if name not in model.parameters:
            log.warning("convert.bounds.%s: model '%s' has no such parameter; ignored", name, model.name)
            continue
        p = model.parameters[name]
        p.lower, p.upper = lower, upper
        p.scale = scale[0] if scale else p.scale


def check_values(model: OdeModel, bounds: Mapping[str, tuple], values: Mapping[str, float]) -> None:
    """Every starting value within its bounds; the error names the config key that set either."""
    for name, p in model.parameters.items():
        if p.lower <= p.value <= p.upper:
            continue
        if name in bounds:
            key = f"convert.bounds.{name}"
        elif name in values:
            key = f"values.{name}"
        elif name in PKPD_PARAMETERS:
            key = f"drug.parameters.{name}"
        else:
            key = f"convert.{name.split('_', 1)[0]}"  # tau, k or n, bounded by kind
        raise ConfigError(None, key=key, element=name, found=p.value,
                          expected=f"a value within the bounds [{format_float(p.lower)}, {format_float(p.upper)}]")


@dataclass
class Drug:
    """The `drug:` section checked: its target node, name, `couple_pkpd` options, parameter values
    and the PK/PD parameters to estimate."""

    target: str
    name: str
    options: dict
    values: dict[str, float]
    estimate: set[str]


def drug_options(drug: Mapping | None) -> Drug | None:
    """The `drug` mapping (config section `drug:`) checked; None when it names no target."""
    if not drug or not drug.get("target"):
        return None
    options.check_keys("drug", drug, DRUG_KEYS)
    target = str(drug["target"])
    name = str(drug.get("name") or "drug")
    if not ID_PATTERN.match(name):
        raise ConfigError(None, key="drug.name", expected="a drug name [A-Za-z_][A-Za-z0-9_]*", found=name)
    effect = options.choice("drug.effect", drug.get("effect", "inhibit"), EFFECTS)
    route = options.choice("drug.route", drug.get("route", "oral"), ROUTES)
    compartments = options.integer("drug.compartments", drug.get("compartments", 1), minimum=1)
    if compartments > 2:
        raise ConfigError(None, key="drug.compartments", expected="1 or 2", found=compartments)
    interval = options.number("drug.interval", drug.get("interval", 24.0), positive=True)
    n_doses = options.integer("drug.n_doses", drug.get("n_doses", 1), minimum=1)
    duration = drug.get("infusion_duration")
    if route == "iv_infusion":
        duration = options.number("drug.infusion_duration", duration, positive=True)
    values = {}
    for parameter, value in (drug.get("parameters") or {}).items():
        if parameter not in PKPD_PARAMETERS:
            raise ConfigError(None, key=f"drug.parameters.{parameter}",
                              expected=f"a PK/PD parameter {list(PKPD_PARAMETERS)}")
        values[parameter] = options.number(f"drug.parameters.{parameter}", value)
    estimate = drug.get("estimate")
    if estimate is None:
        estimate = [p for p, spec in PKPD_PARAMETERS.items() if spec[5]]
    for parameter in options.names("drug.estimate", estimate):
        if parameter not in PKPD_PARAMETERS:
            raise ConfigError(None, key="drug.estimate", expected=f"PK/PD parameters {list(PKPD_PARAMETERS)}",
                              found=parameter)
    settings = dict(effect=effect, route=route, compartments=compartments, interval=interval, n_doses=n_doses,
                    infusion_duration=duration, dose_parameter=f"dose_{name}")
    return Drug(target, name, settings, values, set(estimate))
