"""One network of a study to its ODE model and, with data, its PEtab tables (the `convert` step's
library half; `qspflow.steps.models` reads the files and writes the outputs)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from qspflow import options
from qspflow.boolean import BooleanNetwork
from qspflow.convert.odefy import inhibitor_formulas, odefy_formulas
from qspflow.convert.options import (
    DEFAULT_STARTS,
    METHOD_TITLES,
    PKPD_PARAMETERS,
    Drug,
    apply_bounds,
    check_config,
    check_values,
    checked_bounds,
    drug_options,
    kinetics,
    pk_states,
)
from qspflow.convert.pkpd import PK_NAMES, pkpd_formulas
from qspflow.errors import ConfigError, DataError, ModelError, NetworkError
from qspflow.model import OdeModel
from qspflow.model.formulas import ID_EXPECTED, Formulas, valid_id

if TYPE_CHECKING:
    from qspflow.petab.export import PetabTables

log = logging.getLogger(__name__)


@dataclass
class ConvertedModel:
    """One network converted: the model, its readable formulas and, with data, its PEtab tables."""

    name: str
    source: str
    net: BooleanNetwork
    model: OdeModel
    formulas: Formulas
    description: str
    problem: PetabTables | None = None  # with measurements and experiments


def _design_columns(net: BooleanNetwork, experiments: pd.DataFrame, source: str, drug: Drug | None,
                    bnet: str) -> tuple[list[str], list[str]]:
    """The experiment-table columns the model can take, and the nodes to give inhibitors.

    Factors on nodes the network lacks (pruned by inference) are left out with a warning; a
    stimulus on a node that is not an input, or a dose of another drug, is an error.
    """
    keep, inhibited = ["experiment"], []
    inputs = set(net.inputs)
    for column in experiments.columns:
        kind, _, target = column.partition(":")
        if column == "experiment":
            continue
        if kind not in ("stimulus", "inhibitor", "dose") or not target:
            raise DataError(source, column=column, expected="factor columns stimulus:<node>, inhibitor:<node> or "
                            "dose:<drug>")
        if kind == "dose":
            if drug is None:
                raise ConfigError(None, key="drug.target", expected=f"a drug target: {source} has column '{column}'")
            if target != drug.name:
                raise ConfigError(None, key="drug.name", expected=f"'{target}' (the drug of column '{column}' "
                                  f"of {source})", found=drug.name)
        elif target not in net.nodes:
            log.warning("%s: column '%s' left out: node '%s' is not in network %s", source, column, target, bnet)
            continue
        elif kind == "stimulus" and target not in inputs:
            raise NetworkError(bnet, element=target, expected=f"an input node (rule '{target}, {target}') for "
                               f"column '{column}' of {source}")
        elif kind == "inhibitor":
            inhibited.append(target)
        keep.append(column)
    return keep, inhibited


def _check_sd(measurements: pd.DataFrame, readouts: set[str], source: str) -> None:
    """Every value of a readout has its σ in the sd column (convert.noise: data)."""
    rows = measurements[measurements["observable"].isin(readouts) & measurements["value"].notna()]
    sd = pd.to_numeric(rows["sd"], errors="coerce") if "sd" in rows else pd.Series(float("nan"), index=rows.index)
    bad = ~((sd > 0) & (sd < float("inf")))  # NaN too
    if bad.any():
        row = rows[bad.to_numpy()].iloc[0]
        raise DataError(source, column="sd", found=sd[bad].iloc[0],
                        expected=f"a standard deviation > 0 for observable '{row['observable']}' in experiment "
                                 f"'{row['experiment']}' at time {row['time']:g} (convert.noise: data takes σ from "
                                 "the sd column; convert.noise: estimate estimates it)")


def _model_name(path: Path) -> str:
    name = re.sub(r"\W", "_", path.stem)
    return name if valid_id(name) else f"model_{name}"


def convert_network(net: BooleanNetwork, source: str | os.PathLike[str], *,
                    measurements: pd.DataFrame | None = None, experiments: pd.DataFrame | None = None,
                    experiments_source: str = "experiment table", measurements_source: str = "measurement table",
                    method: str = "normalized-hillcube", n: float = DEFAULT_STARTS["n"],
                    k: float = DEFAULT_STARTS["k"], tau: float = DEFAULT_STARTS["tau"],
                    bounds: Mapping[str, Sequence] | None = None, drug: Mapping | None = None,
                    observable_model: str = "direct", noise: str = "data",
                    values: Mapping[str, float] | None = None) -> ConvertedModel:
    """One network of a study: its ODE model and, with data, its PEtab tables.

    `source` is the network's file: the model is named after it, and messages name it. Builds
    the Odefy model (`method`, starting values `n`, `k`, `tau`, `bounds` by kind or parameter
    name as in `boolean_to_ode`, PK/PD parameters included), couples the drug of `drug` (the
    config's `drug:` section: `target` — none if empty —, `name` of its `dose:<name>` column,
    `effect`, `route`, `compartments`, `interval`, `n_doses`, `infusion_duration`, `parameters`
    (values), `estimate` (names of the PK/PD parameters to estimate; the others are fixed)), and
    gives every node inhibited in some experiment an `inh_<node>` (`add_inhibitors`). With
    `measurements` (the tidy table, read from `measurements_source`) and `experiments` (the
    experiment table, read from `experiments_source`), it builds the PEtab tables
    (`qspflow.petab.export.build_problem`): readouts are the measured observables that are
    states of the model; `observable_model` and `noise` as there. Factors on nodes the network
    lacks are left out with a logged warning. `values`: starting values by parameter name (e.g.
    earlier estimates), over `n`, `k`, `tau` and the drug's.

    Options, network and data are checked against each other before the model is built. Raises
    `QspflowError` naming the file, config key or element at fault.
    """
    path = Path(source)
    convert = dict(method=method, n=n, k=k, tau=tau, bounds=bounds, observable_model=observable_model, noise=noise)
    check_config(convert, drug, values=values)
    starts = kinetics(convert)
    bounds = checked_bounds(bounds)
    drug = drug_options(drug)
    for node in net.nodes:
        if not valid_id(node):
            raise NetworkError(path, element=node, expected=f"a node name that is {ID_EXPECTED}")
    if drug:
        if drug.target not in net.nodes:
            raise ConfigError(None, key="drug.target", expected=f"a node of network {path}", found=drug.target)
        for node in net.nodes:
            if node in PK_NAMES:
                raise NetworkError(path, element=node, expected=f"a node name other than the drug's PK names "
                                   f"{', '.join(PK_NAMES)} (drug.target is set)")
    if (experiments is None) != (measurements is None):
        key = "measurements" if measurements is None else "experiments"
        raise DataError(None, key=key, expected="measurements together with the experiment table")
    if measurements is not None:
        columns, inhibited = _design_columns(net, experiments, experiments_source, drug, str(path))
        observed = sorted(set(measurements["observable"].astype(str)))
        states = {*net.nodes, *(pk_states(drug.options["route"], drug.options["compartments"]) if drug else ())}
        if not states & set(observed):
            raise DataError(measurements_source, column="observable",
                            expected=f"an observable that is a node of network {path} ({', '.join(net.nodes)})",
                            found=", ".join(observed))
        if noise == "data":
            _check_sd(measurements, states, measurements_source)

    try:
        model, formulas = odefy_formulas(net, method=method, bounds=bounds, **starts)
        if drug:
            model, formulas = pkpd_formulas(model, formulas, target=drug.target, doses=None, **drug.options)
            for name, value in drug.values.items():
                if name in model.parameters:
                    model.parameters[name].value = value
            for name in PKPD_PARAMETERS:
                if name in model.parameters:
                    model.parameters[name].estimate = name in drug.estimate
    except ModelError as err:
        raise NetworkError(path, element=err.element, expected=err.expected, found=err.found,
                           message=err.detail) from None
    apply_bounds(model, bounds)
    for name, value in (values or {}).items():
        if name not in model.parameters:
            raise ConfigError(None, key=f"values.{name}", expected=f"a parameter of the model of {path}")
        model.parameters[name].value = options.number(f"values.{name}", value)
    check_values(model, bounds, values or {})

    name = _model_name(path)
    drug_text = (f"; {drug.options['route']} {drug.name} ({drug.options['compartments']}-compartment PK) "
                 f"acting on {drug.target}" if drug else "")
    problem = None
    if measurements is not None:
        from qspflow.petab.export import build_problem  # loads petab: only once the inputs are checked

        model, formulas = inhibitor_formulas(model, formulas, inhibited)
        readouts = [o for o in observed if o in model.states]
        for left_out in sorted(set(observed) - set(readouts)):
            log.warning("observable '%s' left out: it is not a state of network %s", left_out, path)
        if not readouts:
            raise DataError(measurements_source, column="observable",
                            expected=f"an observable that is a node of network {path}")
        problem = build_problem(model, measurements, experiments[columns], observables=readouts,
                                observable_model=observable_model, noise=noise, name=name)
    model.name = name
    description = f"{name}: Odefy {METHOD_TITLES[method]} model of the Boolean network {path.name}{drug_text}."
    return ConvertedModel(name, str(path), net, model, formulas, description, problem)
