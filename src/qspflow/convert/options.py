"""The study config's `convert:` and `drug:` sections, checked, and the parameter bounds they set.

Every message names the key as the user writes it (`convert.bounds.tau`, `drug.route`,
`drug.parameters.pk_ka`, `values.tau_ERK`); the workflow also validates the whole config
against `config/schema.yaml` at start-up. `check_config` checks both sections as far as the
config alone tells, and imports nothing heavy (no sympy, pandas or petab), so that the workflow
can call it at start-up and `qspflow convert` before it reads a file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qspflow import options
from qspflow.errors import ConfigError

if TYPE_CHECKING:
    from qspflow.model import OdeModel

log = logging.getLogger(__name__)

METHODS = ("boolecube", "hillcube", "normalized-hillcube")
METHOD_TITLES = {"boolecube": "BooleCube", "hillcube": "HillCube", "normalized-hillcube": "normalized HillCube"}
# (lower, upper, scale) of every parameter of a kind: tau_<node>, k_<source>_<target>, n_<source>_<target>
DEFAULT_BOUNDS: dict[str, tuple[float, float, str]] = {
    "tau": (0.1, 10.0, "log10"),
    "k": (0.1, 1.0, "lin"),
    "n": (1.0, 5.0, "lin"),
}
# Starting value of every parameter of a kind (`convert.n`, `convert.k`, `convert.tau`).
DEFAULT_STARTS = {"n": 3.0, "k": 0.5, "tau": 1.0}
# (value, lower, upper, scale, unit, estimate); PK is usually known from a PK study, PD is fitted.
PKPD_PARAMETERS: dict[str, tuple[float, float, float, str, str, bool]] = {
    "pk_ka": (1.0, 0.01, 100.0, "log10", "1/h", False),
    "pk_cl": (10.0, 0.01, 1000.0, "log10", "L/h", False),
    "pk_vc": (50.0, 0.1, 10000.0, "log10", "L", False),
    "pk_q": (5.0, 0.01, 1000.0, "log10", "L/h", False),
    "pk_vp": (100.0, 0.1, 10000.0, "log10", "L", False),
    "pk_f": (1.0, 0.0, 1.0, "lin", "1", False),
    "pd_emax": (1.0, 0.0, 1.0, "lin", "1", True),
    "pd_ec50": (1.0, 1e-4, 1e4, "log10", "mg/L", True),
    "pd_hill": (1.0, 0.5, 5.0, "lin", "1", True),
}
ROUTES = ("oral", "iv_bolus", "iv_infusion")
EFFECTS = ("inhibit", "activate")
# The states the PK may add (`pk_states`): no node may take their names.
PK_STATES = ("A_c", "A_out", "A_p")
# The PEtab parameter scales (`qspflow.model.SCALES`; that module loads sympy).
SCALES = ("lin", "log", "log10")
# As the schema's drug.name: the drug's column is dose:<name> and its parameter dose_<name>.
_DRUG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The keys of the config's `convert:` section (the options of `convert_network`).
CONVERT_KEYS = ("method", "n", "k", "tau", "bounds", "observable_model", "noise")
# The keys of the `drug` mapping `convert_network` takes (the study config's `drug:` section).
DRUG_KEYS = ("target", "name", "effect", "route", "compartments", "interval", "n_doses", "infusion_duration",
             "parameters", "estimate")
# The values `build_problem` takes for `observable_model` and `noise`.
OBSERVABLE_MODELS = ("direct", "scaled")
NOISE_MODELS = ("data", "estimate")


def pkpd_names(route: str, compartments: int) -> list[str]:
    """The PK/PD parameters a model with this route and number of compartments has."""
    names = ["pk_ka", "pk_cl", "pk_vc", "pk_f"] if route == "oral" else ["pk_cl", "pk_vc"]
    names += ["pk_q", "pk_vp"] if compartments == 2 else []
    return names + ["pd_emax", "pd_ec50", "pd_hill"]


def pk_states(route: str, compartments: int) -> list[str]:
    """The states the PK adds: the central amount (what has left it, for an iv bolus), the peripheral one."""
    return ["A_out" if route == "iv_bolus" else "A_c"] + (["A_p"] if compartments == 2 else [])


def _kind(name: str) -> str | None:
    """The kind (tau, k or n) of a kinetic parameter named `<kind>_…`, or None."""
    kind = name.split("_", 1)[0]
    return kind if kind in DEFAULT_BOUNDS and "_" in name else None


def default_scale(name: str) -> str:
    """The scale of the parameter(s) `name` bounds when its bounds give none."""
    if name in PKPD_PARAMETERS:
        return PKPD_PARAMETERS[name][3]
    kind = name if name in DEFAULT_BOUNDS else _kind(name)
    return DEFAULT_BOUNDS[kind][2] if kind else "lin"


def checked_bounds(bounds: Mapping[str, Sequence] | None) -> dict[str, tuple]:
    """`convert.bounds` entries as (lower, upper[, scale]), checked."""
    if bounds is not None and not isinstance(bounds, Mapping):
        raise ConfigError(None, key="convert.bounds", expected="a mapping of parameter names or kinds (tau, k, n) "
                          "to [lower, upper] or [lower, upper, scale]", found=bounds)
    out = {}
    for name, entry in (bounds or {}).items():
        key = f"convert.bounds.{name}"
        if not isinstance(name, str) or not _DRUG_NAME.match(name):
            raise ConfigError(None, key=key, expected="a parameter name or kind (tau, k, n)")
        if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) not in (2, 3):
            raise ConfigError(None, key=key, expected="[lower, upper] or [lower, upper, scale]", found=entry)
        lower, upper = options.number(key, entry[0]), options.number(key, entry[1])
        scale = options.choice(key, entry[2], SCALES) if len(entry) == 3 else None
        if not lower < upper:
            raise ConfigError(None, key=key, expected="lower < upper", found=entry)
        if (scale or default_scale(name)) != "lin" and lower <= 0:
            raise ConfigError(None, key=key, expected=f"lower > 0 on the scale {scale or default_scale(name)}",
                              found=entry)
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


def _outside(value: float, lower: float, upper: float) -> str | None:
    """What a value outside [lower, upper] was expected to be; None when it is inside."""
    if lower <= value <= upper:
        return None
    from qspflow.io import format_float  # loads pandas: only for a message

    return f"a value within the bounds [{format_float(lower)}, {format_float(upper)}]"


def check_values(model: OdeModel, bounds: Mapping[str, tuple], values: Mapping[str, float]) -> None:
    """Every starting value within its bounds; the error names the config key that set either."""
    for name, p in model.parameters.items():
        expected = _outside(p.value, p.lower, p.upper)
        if expected is None:
            continue
        if name in bounds:
            key = f"convert.bounds.{name}"
        elif name in values:
            key = f"values.{name}"
        elif name in PKPD_PARAMETERS:
            key = f"drug.parameters.{name}"
        else:
            key = f"convert.{name.split('_', 1)[0]}"  # tau, k or n, bounded by kind
        raise ConfigError(None, key=key, element=name, found=p.value, expected=expected)


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
    if drug is None:
        return None
    if not isinstance(drug, Mapping):
        raise ConfigError(None, key="drug", expected=f"a mapping of the keys {list(DRUG_KEYS)}", found=drug)
    options.check_keys("drug", [str(key) for key in drug], DRUG_KEYS)
    target = drug.get("target") or ""
    if not isinstance(target, str):
        raise ConfigError(None, key="drug.target", expected="a node name (empty: no drug)", found=target)
    name = drug.get("name") or "drug"
    if not isinstance(name, str) or not _DRUG_NAME.match(name):
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
    elif duration is not None:
        options.number("drug.infusion_duration", duration, positive=True)
    given = drug.get("parameters") or {}
    if not isinstance(given, Mapping):
        raise ConfigError(None, key="drug.parameters", expected=f"a mapping of PK/PD parameters "
                          f"{list(PKPD_PARAMETERS)} to values", found=given)
    values = {}
    for parameter, value in given.items():
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
    if not target:
        return None
    settings = dict(effect=effect, route=route, compartments=compartments, interval=interval, n_doses=n_doses,
                    infusion_duration=duration, dose_parameter=f"dose_{name}")
    return Drug(target, name, settings, values, set(estimate))


def kinetics(convert: Mapping) -> dict[str, float]:
    """The starting values n, k and tau of the `convert:` section (defaults where absent), checked."""
    return {kind: options.number(f"convert.{kind}", convert.get(kind, default), positive=True)
            for kind, default in DEFAULT_STARTS.items()}


def check_config(convert: Mapping | None, drug: Mapping | None, *, values: Mapping[str, float] | None = None,
                 source: str | None = None) -> None:
    """The study config's `convert:` and `drug:` sections checked as far as the config alone tells.

    Beyond what the schema checks: known keys; bounds with lower < upper, lower > 0 on a log
    scale; every starting value (convert.n/k/tau, drug.parameters, PK/PD defaults) within the
    bounds of the parameters it starts (those the method, route and compartments give); known
    PK/PD parameters. Absent keys take `convert_network`'s defaults; `values` are starting values
    by parameter name that override those (`convert`'s `values`). A failure raises `ConfigError`
    naming `source` (the config file, if given) and the key (`convert.bounds.tau`).
    """
    try:
        _check_sections(convert, drug, values or {})
    except ConfigError as err:
        if source is None or err.source is not None:
            raise
        raise ConfigError(source, key=err.key, element=err.element, expected=err.expected, found=err.found,
                          message=err.detail) from None


def _check_sections(convert: Mapping | None, drug: Mapping | None, values: Mapping[str, float]) -> None:
    convert = {} if convert is None else convert
    if not isinstance(convert, Mapping):
        raise ConfigError(None, key="convert", expected=f"a mapping of the keys {list(CONVERT_KEYS)}", found=convert)
    options.check_keys("convert", [str(key) for key in convert], CONVERT_KEYS)
    method = options.choice("convert.method", convert.get("method", "normalized-hillcube"), METHODS)
    starts = kinetics(convert)
    bounds = checked_bounds(convert.get("bounds"))
    options.choice("convert.observable_model", convert.get("observable_model", "direct"), OBSERVABLE_MODELS)
    options.choice("convert.noise", convert.get("noise", "data"), NOISE_MODELS)
    checked = drug_options(drug)

    kinds = ["tau"] if method == "boolecube" else ["tau", "k", "n"]  # BooleCubes have no k, n
    for kind in kinds:
        if any(_kind(name) == kind for name in values):  # the model tells whether every one is set
            continue
        lower, upper = bounds.get(kind, DEFAULT_BOUNDS[kind])[:2]
        expected = _outside(starts[kind], lower, upper)
        if expected:
            raise ConfigError(None, key=f"convert.{kind}", expected=f"{expected} (convert.bounds.{kind})",
                              found=starts[kind])
    for name, (lower, upper, *_) in bounds.items():
        if _kind(name) in kinds and name not in values:
            expected = _outside(starts[_kind(name)], lower, upper)
            if expected:
                raise ConfigError(None, key=f"convert.bounds.{name}", found=f"[{lower:g}, {upper:g}]",
                                  expected=f"bounds that hold the starting value convert.{_kind(name)} = "
                                           f"{starts[_kind(name)]:g}")
    if checked is None:
        return
    for name in pkpd_names(checked.options["route"], checked.options["compartments"]):
        value, lower, upper = PKPD_PARAMETERS[name][:3]
        value = checked.values.get(name, value)
        lower, upper = bounds.get(name, (lower, upper))[:2]
        expected = _outside(value, lower, upper)
        if expected and name not in values:
            if name in bounds:  # blamed as check_values does
                raise ConfigError(None, key=f"convert.bounds.{name}", found=f"[{lower:g}, {upper:g}]",
                                  expected=f"bounds that hold the starting value drug.parameters.{name} = {value:g}")
            raise ConfigError(None, key=f"drug.parameters.{name}", expected=expected, found=value)
