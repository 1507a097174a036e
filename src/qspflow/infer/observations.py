"""Binarized observations for inference: reading and checking them, and mapping them to the two
kinds of data the methods take.

`SteadyStateData`: each experiment's clamps (stimuli, inhibitors, inhibiting doses) and its
readouts at one time. `TimeSeriesData`: consecutive state pairs of every node.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qspflow.boolean import Pkn
from qspflow.errors import ConfigError, DataError
from qspflow.io import format_float

log = logging.getLogger("qspflow.infer")

PathLike = str | os.PathLike[str]

BINARIZED_COLUMNS = ("experiment", "time", "observable", "state")


def read_binarized(path: PathLike) -> pd.DataFrame:
    """Read `prepared/binarized.tsv` (experiment, time, observable, state), checking every cell.

    A state other than 0/1, a time that is not a number and a repeated (experiment, time,
    observable) are `DataError`s naming the file line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, message=f"cannot read the file ({getattr(err, 'strerror', None) or err})") from None
    lines = text.splitlines()
    header = lines[0].split("\t") if lines else []
    missing = [c for c in BINARIZED_COLUMNS if c not in header]
    if missing:
        raise DataError(path, row=1, expected="columns " + ", ".join(BINARIZED_COLUMNS), found=", ".join(header))
    at = {name: header.index(name) for name in BINARIZED_COLUMNS}
    rows: list[tuple[str, float, str, int]] = []
    seen: dict[tuple[str, float, str], int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(path, row=number, expected=f"{len(header)} tab-separated fields",
                            found=f"{len(fields)} fields")
        experiment, time_text, observable, state_text = (fields[at[c]].strip() for c in BINARIZED_COLUMNS)
        try:
            time = float(time_text)
        except ValueError:
            time = math.nan
        if not math.isfinite(time):
            raise DataError(path, row=number, column="time", expected="a number", found=time_text)
        if state_text not in ("0", "1"):
            raise DataError(path, row=number, column="state", expected="0 or 1", found=state_text)
        key = (experiment, time, observable)
        if key in seen:
            raise DataError(path, row=number, expected="one row per experiment, time and observable",
                            found=f"{experiment}, {time_text}, {observable}", message=f"already in row {seen[key]}")
        seen[key] = number
        rows.append((experiment, time, observable, int(state_text)))
    if not rows:
        raise DataError(path, row=2, expected="at least one data row")
    experiments, times, observables, states = zip(*rows, strict=True)
    return pd.DataFrame({
        "experiment": pd.Series(experiments, dtype="str"),
        "time": np.asarray(times, dtype=float),
        "observable": pd.Series(observables, dtype="str"),
        "state": np.asarray(states, dtype=np.int64),
    })


def check_binarized(binarized: pd.DataFrame, source: str | None) -> None:
    """The frame has the binarized columns and only 0/1 states."""
    missing = [c for c in BINARIZED_COLUMNS if c not in binarized.columns]
    if missing:
        raise DataError(source, expected="columns " + ", ".join(BINARIZED_COLUMNS),
                        found=", ".join(map(str, binarized.columns)))
    bad = ~binarized["state"].isin([0, 1])
    if bad.any():
        row = binarized[bad].iloc[0]
        raise DataError(source, column="state", expected="0 or 1", found=row["state"],
                        message=f"experiment '{row['experiment']}', time {row['time']:g}, "
                                f"observable '{row['observable']}'")


@dataclass(frozen=True)
class Experiment:
    """One perturbation experiment: clamped node values and binarized observations (node → 0/1)."""

    name: str
    clamps: Mapping[str, int]
    observed: Mapping[str, int]


@dataclass(frozen=True)
class SteadyStateData:
    """Steady-state perturbation data at one time: experiments in name order, and the stimulus nodes."""

    experiments: tuple[Experiment, ...]
    stimuli: tuple[str, ...]
    time: float

    @property
    def readouts(self) -> tuple[str, ...]:
        """Every observed node, sorted."""
        return tuple(sorted({n for e in self.experiments for n in e.observed}))

    @property
    def inhibited(self) -> tuple[str, ...]:
        """Every node forced to 0 in some experiment (by an inhibitor or an inhibiting dose), sorted."""
        stimuli = set(self.stimuli)
        return tuple(sorted({n for e in self.experiments for n, v in e.clamps.items() if v == 0 and n not in stimuli}))


def perturbations(
    experiments: pd.DataFrame,
    *,
    drug_targets: Mapping[str, str],
    inhibiting_dose: float | None,
    source: str | None,
) -> tuple[dict[str, dict[str, int] | None], tuple[str, ...]]:
    """Clamps per experiment (None: left out, partial inhibition) and the stimulus nodes.

    `stimulus:X` > 0 clamps X to 1 (else 0); `inhibitor:Y` = 1 and `dose:D` ≥ `inhibiting_dose`
    force Y and D's target to 0; an inhibition wins over a stimulus of the same node.
    """
    stimuli = tuple(sorted(c.split(":", 1)[1] for c in experiments.columns if c.startswith("stimulus:")))
    doses = [c for c in experiments.columns if c.startswith("dose:")]
    for column in doses:
        if not (experiments[column] > 0).any():
            continue
        drug = column.split(":", 1)[1]
        if drug not in drug_targets:
            raise ConfigError(None, key="drug.target", expected=f"the node that drug '{drug}' inhibits",
                              message=f"{source or 'the experiment table'} has column '{column}'")
        if inhibiting_dose is None:
            raise ConfigError(None, key="infer.inhibiting_dose",
                              expected="the dose at which the drug is a full inhibitor",
                              message=f"{source or 'the experiment table'} has doses in '{column}'")
    clamps: dict[str, dict[str, int] | None] = {}
    for row in experiments.to_dict("records"):
        name = str(row["experiment"])
        values = {node: int(row[f"stimulus:{node}"] > 0) for node in stimuli}
        for column, level in row.items():
            kind, _, node = str(column).partition(":")
            if kind == "inhibitor" and level == 1:
                values[node] = 0
        partial = []
        for column in doses:
            dose = row[column]
            if dose > 0 and dose >= inhibiting_dose:
                values[drug_targets[column.split(":", 1)[1]]] = 0
            elif dose > 0:
                partial.append(f"{column} = {dose:g}")
        if partial:
            log.warning("experiment '%s' left out: %s is below the inhibiting dose %g "
                        "(partial inhibition is not Boolean)", name, ", ".join(partial), inhibiting_dose)
            clamps[name] = None
        else:
            clamps[name] = values
    return clamps, stimuli


def check_experiments(binarized: pd.DataFrame, experiments: pd.DataFrame,
                       sources: tuple[str | None, str | None]) -> None:
    """Every measured experiment has a row in the experiment table."""
    listed = set(experiments["experiment"].astype(str))
    for name in binarized["experiment"].unique():
        if name not in listed:
            raise DataError(sources[1], column="experiment", expected=f"a row for experiment '{name}'",
                            message=f"{sources[0] or 'the binarized data'} has it")


def steady_state_data(
    binarized: pd.DataFrame,
    experiments: pd.DataFrame,
    *,
    time: float | None = None,
    drug_targets: Mapping[str, str] | None = None,
    inhibiting_dose: float | None = None,
    binarized_source: str | None = None,
    experiments_source: str | None = None,
) -> SteadyStateData:
    """The binarized states at `time` (default: the latest) with each experiment's clamps.

    `experiments` has `experiment` and `stimulus:<node>`, `inhibitor:<node>`, `dose:<drug>`
    columns; `drug_targets` maps a drug to the node it inhibits. An experiment with a dose
    strictly between 0 and `inhibiting_dose` is left out with a warning. The sources name the
    files in error messages.
    """
    check_binarized(binarized, binarized_source)
    check_experiments(binarized, experiments, (binarized_source, experiments_source))
    times = sorted(binarized["time"].unique())
    if time is None:
        time = float(times[-1])
    elif not np.isclose(times, time).any():
        raise DataError(binarized_source, column="time", found=format_float(time),
                        expected="infer.time to be one of the measured times "
                                 + ", ".join(format_float(t) for t in times))
    clamps, stimuli = perturbations(experiments, drug_targets=drug_targets or {}, inhibiting_dose=inhibiting_dose,
                                     source=experiments_source)
    at_time = binarized[np.isclose(binarized["time"], time)]
    found = []
    for name, group in at_time.groupby("experiment", sort=True):
        if clamps[name] is not None:
            observed = dict(zip(group["observable"], group["state"].astype(int)))
            found.append(Experiment(str(name), clamps[name], observed))
    absent = sorted(set(binarized["experiment"]) - set(at_time["experiment"]))
    if absent:
        log.info("experiments without data at time %s: %s", format_float(time), ", ".join(absent))
    if not found:
        raise DataError(binarized_source, column="time",
                        expected=f"data of at least one usable experiment at time {format_float(time)}")
    return SteadyStateData(tuple(found), stimuli, float(time))


def check_nodes(pkn: Pkn, names: Iterable[str], source: str | None, column: str) -> None:
    """Every name is a PKN node, else a `DataError` naming the file and the column."""
    nodes = set(pkn.nodes)
    for name in names:
        if name not in nodes:
            raise DataError(source, column=column, expected="a node of the PKN", found=name)


@dataclass(frozen=True)
class TimeSeriesData:
    """Binarized trajectories of every node: consecutive state pairs with where they came from.

    `before` and `after` are (transitions × nodes) 0/1 arrays in `nodes` order; `fitted` marks
    the (transition, node) pairs that count (a node clamped in the experiment is not fitted);
    `labels` names each transition by (experiment, time of the later state).
    """

    nodes: tuple[str, ...]
    before: np.ndarray
    after: np.ndarray
    fitted: np.ndarray
    labels: tuple[tuple[str, float], ...]


def time_series_data(
    binarized: pd.DataFrame,
    nodes: Sequence[str],
    experiments: pd.DataFrame | None = None,
    *,
    drug_targets: Mapping[str, str] | None = None,
    inhibiting_dose: float | None = None,
    binarized_source: str | None = None,
    experiments_source: str | None = None,
) -> TimeSeriesData:
    """Transitions between consecutive measured times of each experiment, all `nodes` observed.

    A node never observed is a `DataError`; a time point where some node is missing is skipped
    (with its two transitions) and reported. With an experiment table, nodes clamped in an
    experiment (inhibitors, inhibiting doses, stimuli) are not fitted there.
    """
    check_binarized(binarized, binarized_source)
    unobserved = sorted(set(nodes) - set(binarized["observable"]))
    if unobserved:
        raise DataError(binarized_source, column="observable",
                        expected="every PKN node observed (time-series inference)",
                        message=f"never observed: {', '.join(unobserved)}")
    clamps: dict[str, dict[str, int] | None] = {}
    if experiments is not None:
        check_experiments(binarized, experiments, (binarized_source, experiments_source))
        clamps, _ = perturbations(experiments, drug_targets=drug_targets or {}, inhibiting_dose=inhibiting_dose,
                                   source=experiments_source)
    column = {n: i for i, n in enumerate(nodes)}
    before, after, fitted, labels = [], [], [], []
    incomplete = 0
    for name, group in binarized[binarized["observable"].isin(column)].groupby("experiment", sort=True):
        if clamps.get(name, {}) is None:
            continue
        held = np.array([n in clamps.get(name, {}) for n in nodes])
        table = group.pivot(index="time", columns="observable", values="state")
        table = table.reindex(columns=list(nodes)).sort_index()
        complete = table.notna().all(axis=1).to_numpy()
        incomplete += int((~complete).sum())
        states = table.fillna(0).to_numpy(dtype=np.int8)
        for t in range(len(table) - 1):
            if complete[t] and complete[t + 1]:
                before.append(states[t])
                after.append(states[t + 1])
                fitted.append(~held)
                labels.append((str(name), float(table.index[t + 1])))
    if incomplete:
        log.warning("%s: %d time points miss some node's state; their transitions are not used",
                    binarized_source or "binarized data", incomplete)
    if not labels:
        raise DataError(binarized_source, expected="at least one pair of consecutive complete time points")
    n = len(nodes)
    return TimeSeriesData(tuple(nodes), np.array(before, dtype=np.int8).reshape(-1, n),
                          np.array(after, dtype=np.int8).reshape(-1, n), np.array(fitted, dtype=bool).reshape(-1, n),
                          tuple(labels))

