"""Measurements for the `prepare` step: tidy tables and MIDAS, validation, normalization, binarization.

Input formats
-------------
* Tidy measurements (CSV/TSV): `experiment, time, observable, value` and optional `sd`;
  unknown extra columns are ignored with a warning; an empty (or `NA`/`NaN`) value is missing.
* Experiment table (CSV/TSV, optional): `experiment` and factor columns `stimulus:<Node>`,
  `inhibitor:<Node>` (0/1) and `dose:<drug>`, one row per experiment.
* MIDAS (CellNOpt): `TR:` treatment (0/1), `DA:` time and `DV:` value columns, one condition per
  treatment combination; it yields both the tidy table and the experiment table.

The delimiter comes from the extension (`.csv` comma, `.tsv` tab) or, for `.txt` and others,
from the header (the most frequent of tab, comma, semicolon). CR, LF and CRLF line ends are all
read. Every failure caused by the input raises `DataError` naming the file, the row as the file
line number (the header is row 1) and the column. Files are parsed with the `csv` module and
every cell is checked before it becomes a number, so no pandas or numpy error reaches the user.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qspflow import options
from qspflow.errors import DataError
from qspflow.io import read_user_text

log = logging.getLogger("qspflow.data")

PathLike = str | os.PathLike[str]

REQUIRED_COLUMNS = ("experiment", "time", "observable", "value")
FACTOR_KINDS = ("stimulus", "inhibitor", "dose")
FORMATS = ("auto", "tidy", "midas")
NORMALIZATIONS = ("minmax", "fold_change")
BINARIZATIONS = ("kmeans", "threshold")
UNKNOWN_OBSERVABLE_POLICIES = ("error", "warn")

_ID = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MISSING = frozenset({"", "na", "nan", "n/a"})
_INFINITE = frozenset({"inf", "infinity"})
_MEASUREMENT_COLUMNS = ["experiment", "time", "observable", "value", "sd"]
_SORT = ["experiment", "observable", "time"]


@dataclass(frozen=True)
class PreparedData:
    """Everything the `prepare` step produces (`qspflow.steps.prepare` writes it)."""

    measurements: pd.DataFrame  # experiment, time, observable, value, sd, normalized
    binarized: pd.DataFrame  # experiment, time, observable, state (0/1)
    thresholds: pd.DataFrame  # observable, method, threshold, low_centre, high_centre, n_values
    experiments: pd.DataFrame  # experiment + factor columns


@dataclass(frozen=True)
class Binarization:
    """One observable's binarization: 0/1 states and the threshold that separates them.

    `low_centre` and `high_centre` are the k-means cluster centres (NaN for a fixed threshold).
    """

    states: pd.Series
    method: str
    threshold: float
    low_centre: float
    high_centre: float


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Table:
    """A delimited file split into stripped fields, each row with its file line number."""

    source: str
    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]]


def _delimiter(path: Path, header: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix == ".tsv":
        return "\t"
    counts = {d: header.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.__getitem__)  # ties go to the first: tab
    return best if counts[best] else ","


def _read_table(path: PathLike) -> _Table:
    source = str(path)
    text = read_user_text(path, DataError, place="row")
    # CellNOpt's MIDAS files end lines with a bare CR; normalize CR, LF and CRLF before csv
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = next((line for line in text.split("\n") if line.strip()), None)
    if first is None:
        raise DataError(source, row=1, expected="a header line", message="the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(Path(path), first))
    header: list[str] = []
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            fields = [f.strip() for f in fields]
            if not any(fields):
                continue
            if not header:
                header, header_line = fields, reader.line_num
            else:
                rows.append((reader.line_num, fields))
    except csv.Error as err:
        raise DataError(source, row=reader.line_num + 1, expected="well-formed delimited text",
                        message=str(err)) from None
    for i, name in enumerate(header):
        if name in header[:i]:
            raise DataError(source, row=header_line, column=name, expected="unique column names",
                            message="the column appears twice")
    if not rows:
        raise DataError(source, row=header_line + 1, expected="at least one data row",
                        message="the file has only a header")
    for line, fields in rows:
        if len(fields) != len(header):
            raise DataError(source, row=line, expected=f"{len(header)} fields as in the header",
                            found=f"{len(fields)} fields")
    return _Table(source, header, header_line, rows)


def _number(
    source: str,
    line: int,
    column: str,
    text: str,
    *,
    expected: str,
    valid: Callable[[float], bool] = lambda v: True,
    missing_ok: bool = False,
) -> float:
    """One cell as a finite float that passes `valid`; an empty/NA cell is NaN where `missing_ok`."""
    lowered = text.lower()
    if lowered in _MISSING:
        if missing_ok:
            return math.nan
    elif _NUMBER.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):  # overflow, e.g. 1e999
            raise DataError(source, row=line, column=column, expected="a finite number", found=text)
        if valid(value):
            return value
    elif lowered.lstrip("+-") in _INFINITE:
        raise DataError(source, row=line, column=column, expected="a finite number", found=text)
    raise DataError(source, row=line, column=column, expected=expected, found=text)


def _time(source: str, line: int, column: str, text: str) -> float:
    return _number(source, line, column, text, expected="a number ≥ 0", valid=lambda v: v >= 0)


def _value(source: str, line: int, column: str, text: str) -> float:
    return _number(source, line, column, text, expected="a number or an empty cell", missing_ok=True)


def _level(source: str, line: int, column: str, text: str, *, factor: str) -> float:
    """A factor level: an inhibitor is 0 or 1, a stimulus or dose any number ≥ 0."""
    if factor.startswith("inhibitor:"):
        return _number(source, line, column, text, expected="0 or 1", valid=lambda v: v in (0, 1))
    return _number(source, line, column, text, expected="a number ≥ 0", valid=lambda v: v >= 0)


def _cue(source: str, line: int, column: str, text: str) -> float:
    """A MIDAS treatment (TR:) cell: CellNOpt's cues are absent (0) or present (1), nothing else."""
    return _number(source, line, column, text, expected="0 or 1 (a MIDAS cue is absent or present)",
                   valid=lambda v: v in (0, 1))


def _check_id(source: str, line: int, column: str, text: str) -> None:
    if not _ID.fullmatch(text):
        raise DataError(source, row=line, column=column, expected="an id of letters, digits, '_' or '-'",
                        found=text)


def _measurement_frame(records: list[tuple[int, str, float, str, float, float]]) -> pd.DataFrame:
    rows, experiments, times, observables, values, sds = zip(*records, strict=True)
    return pd.DataFrame(
        {
            "experiment": pd.Series(experiments, dtype="str"),
            "time": np.asarray(times, dtype=float),
            "observable": pd.Series(observables, dtype="str"),
            "value": np.asarray(values, dtype=float),
            "sd": np.asarray(sds, dtype=float),
            "row": np.asarray(rows, dtype=np.int64),
        }
    )


def _parse_tidy(table: _Table) -> pd.DataFrame:
    source = table.source
    index = {name: i for i, name in enumerate(table.header)}
    missing = [c for c in REQUIRED_COLUMNS if c not in index]
    if missing:
        raise DataError(source, row=table.header_line, column=", ".join(missing),
                        expected="columns experiment, time, observable, value (and optionally sd)",
                        found=", ".join(table.header))
    # `normalized` is what the prepare step adds; reading its own output back is not a surprise
    extra = [c for c in table.header if c not in REQUIRED_COLUMNS and c not in ("sd", "normalized")]
    if extra:
        log.warning("%s: ignoring unknown columns %s", source, ", ".join(extra))
    first_seen: dict[tuple[str, float, str], int] = {}
    records = []
    for line, fields in table.rows:
        experiment = fields[index["experiment"]]
        _check_id(source, line, "experiment", experiment)
        time = _time(source, line, "time", fields[index["time"]])
        observable = fields[index["observable"]]
        if not observable:
            raise DataError(source, row=line, column="observable", expected="an observable name", found="")
        value = _value(source, line, "value", fields[index["value"]])
        sd = math.nan
        if "sd" in index:
            sd = _number(source, line, "sd", fields[index["sd"]], expected="a number > 0 or an empty cell",
                         valid=lambda v: v > 0, missing_ok=True)
        key = (experiment, time, observable)
        if key in first_seen:
            raise DataError(source, row=line, expected="one row per experiment, time and observable",
                            found=f"{experiment}, {fields[index['time']]}, {observable}",
                            message=f"already in row {first_seen[key]}")
        first_seen[key] = line
        records.append((line, experiment, time, observable, value, sd))
    return _measurement_frame(records)


def _treatment_factor(name: str) -> str:
    """CellNOptR's naming: `X:Inhibitors` or a bare name ending in `i` inhibits; the rest stimulate."""
    base, sep, suffix = name.partition(":")
    if suffix == "Inhibitors":
        return f"inhibitor:{base}"
    if not sep and len(base) > 1 and base.endswith("i"):
        return f"inhibitor:{base[:-1]}"
    return f"stimulus:{base}"


def _parse_midas(table: _Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    source, header_line = table.source, table.header_line
    treatments: list[tuple[int, str, str]] = []  # (field index, column, factor column)
    times: dict[str, int] = {}
    values: dict[str, int] = {}
    ignored = []
    for i, name in enumerate(table.header):
        prefix, _, rest = name.partition(":")
        if prefix == "TR" and rest and not rest.endswith(":CellLine"):
            factor = _treatment_factor(rest)
            if factor.endswith(":") or factor in {f for _, _, f in treatments}:
                raise DataError(source, row=header_line, column=name, expected="one TR column per treated node",
                                found=factor)
            treatments.append((i, name, factor))
        elif prefix == "DA" and rest:
            times[rest] = i
        elif prefix == "DV" and rest:
            values[rest] = i
        elif prefix not in ("TR", "ID"):  # cell-line and ID columns carry nothing used here
            ignored.append(name)
    if ignored:
        log.warning("%s: ignoring columns that are not MIDAS TR/DA/DV columns: %s", source, ", ".join(ignored))
    if not values:
        raise DataError(source, row=header_line, expected="at least one DV:<readout> column",
                        found=", ".join(table.header))
    for readout in times:
        if readout != "ALL" and readout not in values:
            raise DataError(source, row=header_line, column=f"DA:{readout}",
                            expected=f"a matching DV:{readout} column")
    for readout in values:
        if readout not in times and "ALL" not in times:
            raise DataError(source, row=header_line, column=f"DV:{readout}",
                            expected=f"a matching DA:{readout} or DA:ALL column")

    cells = []  # one per DV cell: (line, treatment levels, time, readout, value)
    for line, fields in table.rows:
        levels = tuple(_cue(source, line, name, fields[i]) for i, name, _ in treatments)
        for readout, vi in values.items():
            time_key = readout if readout in times else "ALL"
            time = _time(source, line, f"DA:{time_key}", fields[times[time_key]])
            cells.append((line, levels, time, readout, _value(source, line, f"DV:{readout}", fields[vi])))

    untreated = (0.0,) * len(treatments)

    def is_baseline(levels: tuple[float, ...], time: float) -> bool:
        return time == 0 and levels == untreated

    conditions: dict[tuple[float, ...], str] = {}
    for _, levels, time, _, _ in cells:
        if not is_baseline(levels, time):
            conditions.setdefault(levels, "")
    if not conditions:
        raise DataError(source, row=header_line + 1, expected="a treated or later (t > 0) row",
                        message="all rows are the untreated t=0 baseline")
    width = max(2, len(str(len(conditions))))
    for n, levels in enumerate(conditions, start=1):
        conditions[levels] = f"c{n:0{width}d}"

    own: dict[tuple[str, float, str], tuple[int, float]] = {}
    baseline: dict[str, tuple[int, float]] = {}
    for line, levels, time, readout, value in cells:
        if is_baseline(levels, time):
            target, key = baseline, readout
        else:
            target, key = own, (conditions[levels], time, readout)
        if key in target:
            raise DataError(source, row=line, column=f"DV:{readout}",
                            expected="one value per condition, time and readout (replicates are not averaged)",
                            message=f"row {target[key][0]} has the same treatments and time")
        target[key] = (line, value)
    # CellNOpt shares the untreated t=0 row among all conditions that lack their own t=0 row
    # (the untreated condition itself, if measured later, gets it this way too)
    for experiment in conditions.values():
        for readout, cell in baseline.items():
            own.setdefault((experiment, 0.0, readout), cell)

    records = [(line, e, t, r, v, math.nan) for (e, t, r), (line, v) in own.items()]
    experiments = pd.DataFrame({"experiment": pd.Series(list(conditions.values()), dtype="str")})
    for j, (_, _, factor) in enumerate(treatments):
        experiments[factor] = np.asarray([levels[j] for levels in conditions], dtype=float)
    return _measurement_frame(records), experiments


def _load(path: PathLike, fmt: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Parse a measurement file; the tidy frame keeps the file line of each value in `row`."""
    options.choice("data.format", fmt, FORMATS)
    table = _read_table(path)
    is_midas = any(name.startswith(("TR:", "DA:", "DV:")) for name in table.header)
    if fmt == "midas" or (fmt == "auto" and is_midas):
        frame, experiments = _parse_midas(table)
    else:
        frame, experiments = _parse_tidy(table), None
    return frame.sort_values(_SORT, kind="stable").reset_index(drop=True), experiments


def _check_observables(
    frame: pd.DataFrame, source: str, known_nodes: Iterable[str] | None, policy: str
) -> pd.DataFrame:
    """Drop or reject observables unknown to the PKN; reject observables with no value at all."""
    options.choice("prepare.unknown_observables", policy, UNKNOWN_OBSERVABLE_POLICIES)
    if known_nodes is not None:
        known = frame["observable"].isin(set(known_nodes))
        if not known.all():
            unknown = frame[~known]
            if policy == "error":
                first = unknown.loc[unknown["row"].idxmin()]
                raise DataError(source, row=int(first["row"]), column="observable", expected="a node of the PKN",
                                found=first["observable"])
            names = ", ".join(sorted(unknown["observable"].unique()))
            log.warning("%s: dropping %d rows of observables not in the PKN: %s", source, len(unknown), names)
            frame = frame[known].reset_index(drop=True)
            if frame.empty:
                raise DataError(source, column="observable", expected="at least one observable that is a PKN node")
    present = frame.dropna(subset=["value"])["observable"].unique()
    empty = frame[~frame["observable"].isin(present)]
    if len(empty):
        observable = min(empty["observable"])
        rows = ", ".join(str(r) for r in sorted(empty.loc[empty["observable"] == observable, "row"])[:5])
        raise DataError(source, column="value",
                        message=f"observable '{observable}' has only missing values (rows {rows})")
    return frame


def read_measurements(path: PathLike, fmt: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read and validate a measurement file: `(tidy table, experiment table or None)`.

    `fmt="auto"` reads MIDAS when the header has `TR:`/`DA:`/`DV:` columns, else the tidy
    format; only MIDAS carries its own experiment table. The tidy table has the columns
    experiment, time, observable, value, sd (NaN where not given), sorted by experiment,
    observable and time.
    """
    frame, experiments = _load(path, fmt)
    frame = _check_observables(frame, str(path), None, "error")
    return frame[_MEASUREMENT_COLUMNS], experiments


def _parse_experiments(table: _Table) -> pd.DataFrame:
    source = table.source
    if "experiment" not in table.header:
        raise DataError(source, row=table.header_line, column="experiment", expected="an 'experiment' column",
                        found=", ".join(table.header))
    factors = [c for c in table.header if c != "experiment"]
    for column in factors:
        kind, _, name = column.partition(":")
        if kind not in FACTOR_KINDS or not name:
            raise DataError(source, row=table.header_line, column=column,
                            expected="factor columns named stimulus:<Node>, inhibitor:<Node> or dose:<drug>",
                            found=column)
    index = {name: i for i, name in enumerate(table.header)}
    first_seen: dict[str, int] = {}
    levels: dict[str, list[float]] = {c: [] for c in factors}
    for line, fields in table.rows:
        experiment = fields[index["experiment"]]
        _check_id(source, line, "experiment", experiment)
        if experiment in first_seen:
            raise DataError(source, row=line, column="experiment", expected="one row per experiment",
                            found=experiment, message=f"already in row {first_seen[experiment]}")
        first_seen[experiment] = line
        for column in factors:
            levels[column].append(_level(source, line, column, fields[index[column]], factor=column))
    frame = pd.DataFrame({"experiment": pd.Series(list(first_seen), dtype="str")})
    for column in factors:
        frame[column] = np.asarray(levels[column], dtype=float)
    frame["row"] = np.asarray(list(first_seen.values()), dtype=np.int64)
    return frame


def read_experiments(path: PathLike) -> pd.DataFrame:
    """Read and validate an experiment table: `experiment` plus stimulus:/inhibitor:/dose: factors."""
    return _parse_experiments(_read_table(path)).drop(columns="row")


def _match_experiments(measurements: pd.DataFrame, data_source: str, experiments: pd.DataFrame,
                       source: str) -> None:
    """Every measured experiment has a row in the experiment table, and every row is measured."""
    listed = set(experiments["experiment"])
    for experiment, line in measurements.groupby("experiment")["row"].min().sort_values().items():
        if experiment not in listed:
            raise DataError(source, column="experiment", expected=f"a row for experiment '{experiment}'",
                            message=f"{data_source} uses it in row {line}")
    measured = set(measurements["experiment"])
    for experiment, line in zip(experiments["experiment"], experiments["row"], strict=True):
        if experiment not in measured:
            raise DataError(source, row=int(line), column="experiment",
                            expected=f"an experiment measured in {data_source}", found=experiment)


# --------------------------------------------------------------------------- normalization


def _minmax(values: pd.Series, observables: pd.Series) -> pd.Series:
    out = pd.Series(np.nan, index=values.index)
    for observable, index in values.groupby(observables, sort=True).groups.items():
        group = values.loc[index]
        low, high = group.min(), group.max()
        if high > low:
            out.loc[index] = (group - low) / (high - low)
        else:
            log.warning("observable '%s' is constant; its normalized values are all 0", observable)
            out.loc[index] = group.where(group.isna(), 0.0)
    return out


_CONTROLS_HOW = "--controls EXPERIMENT... (a study config's prepare.controls)"


def _control_ids(experiments: pd.DataFrame | None, controls: Iterable[str] | None, measured: set[str],
                 source: str | None) -> list[str]:
    if controls is not None:
        ids = list(controls)
        for experiment in ids:
            if experiment not in measured:
                raise DataError(source, key="prepare.controls", expected="ids of measured experiments",
                                found=experiment)
        if not ids:
            raise DataError(source, key="prepare.controls", expected="at least one control experiment for fold_change")
        return ids
    columns = [] if experiments is None else experiments.columns
    factors = [c for c in columns if c.partition(":")[0] in FACTOR_KINDS]
    if not factors:
        raise DataError(source, key="prepare.controls", expected="control experiments for fold_change",
                        message=f"give them with {_CONTROLS_HOW}, or an experiment table whose controls have all "
                                "factor levels 0")
    untreated = experiments.loc[(experiments[factors] == 0).all(axis=1), "experiment"].tolist()
    if not untreated:
        raise DataError(source, key="prepare.controls", expected="control experiments for fold_change",
                        message=f"no experiment has all factor levels 0; give the controls with {_CONTROLS_HOW}")
    return untreated


def normalize(
    measurements: pd.DataFrame,
    method: str = "minmax",
    *,
    experiments: pd.DataFrame | None = None,
    controls: Iterable[str] | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Add a `normalized` column in [0, 1], per observable, to a copy of the tidy table.

    `minmax`: (v − min)/(max − min) over the observable's non-missing values (a constant
    observable gives 0 with a warning). `fold_change`: v divided by the mean of the control
    experiments at the same time (default controls: experiments whose factor levels are all 0
    in `experiments`), then min-max scaled. `source` names the data in error messages.
    """
    options.choice("prepare.normalization", method, NORMALIZATIONS)
    frame = measurements.copy()
    values = frame["value"]
    if method == "fold_change":
        ids = _control_ids(experiments, controls, set(frame["experiment"]), source)
        control = frame[frame["experiment"].isin(ids)].dropna(subset=["value"])
        means = control.groupby(["observable", "time"])["value"].mean()
        keys = pd.MultiIndex.from_arrays([frame["observable"], frame["time"]])
        denominator = pd.Series(means.reindex(keys).to_numpy(), index=frame.index)
        unusable = values.notna() & ~(denominator > 0)
        if unusable.any():
            bad = frame[unusable].sort_values(["observable", "time"], kind="stable").iloc[0]
            mean = denominator[bad.name]
            raise DataError(source, key="prepare.controls", expected="a positive mean control value",
                            found="no control value" if math.isnan(mean) else format(mean, "g"),
                            message=f"observable '{bad['observable']}' at time {bad['time']:g} "
                                    f"(controls: {', '.join(ids)})")
        values = values / denominator
    frame["normalized"] = _minmax(values, frame["observable"])
    return frame


# --------------------------------------------------------------------------- binarization


def kmeans_1d(values: np.ndarray) -> tuple[float, float]:
    """Exact two-cluster k-means of 1-D values: `(low_centre, high_centre)`.

    The optimal 1-D partition is a split of the sorted values, so trying every split between
    distinct values and keeping the one with the smallest within-cluster sum of squares (the
    first one on ties) finds the global optimum without random starts. Equal values give
    equal centres.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0 or x[0] == x[-1]:
        centre = float(x[0]) if n else math.nan
        return centre, centre
    centred = x - x.mean()  # centring keeps the prefix sums well conditioned
    low_sum = np.cumsum(centred)[:-1]
    low_n = np.arange(1, n)
    # minimizing the within-cluster sum of squares is maximizing the between-cluster term
    between = low_sum**2 / low_n + (centred.sum() - low_sum) ** 2 / (n - low_n)
    between[x[1:] == x[:-1]] = -np.inf
    split = int(np.argmax(between)) + 1
    return float(x[:split].mean()), float(x[split:].mean())


def binarize_kmeans(values: pd.Series, *, seed: int = 0) -> Binarization:
    """Two-cluster k-means on one observable's normalized values (Putnins et al. 2022).

    Returns the 0/1 series (value > threshold is 1) and the threshold halfway between the
    cluster centres, as BoolNet's `binarizeTimeSeries(method="kmeans")`. The clustering is the
    exact 1-D optimum (`kmeans_1d`), so `seed` is accepted for a uniform API but not used.
    Missing values are left out; if all values are equal, all states are 0 (with a warning).
    """
    present = values.dropna()
    low, high = kmeans_1d(present.to_numpy())
    if low == high:
        log.warning("observable '%s': all %d values are equal; all states are 0", values.name, len(present))
    threshold = (low + high) / 2
    return Binarization((present > threshold).astype(np.int64), "kmeans", threshold, low, high)


def binarize_threshold(values: pd.Series, threshold: float = 0.5) -> Binarization:
    """A fixed threshold on normalized values: value > threshold is 1; missing values are left out."""
    present = values.dropna()
    return Binarization((present > threshold).astype(np.int64), "threshold", float(threshold), math.nan, math.nan)


def binarize(
    measurements: pd.DataFrame, method: str = "kmeans", *, threshold: float = 0.5, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Binarize each observable's `normalized` values: `(binarized, thresholds)`.

    `binarized` has experiment, time, observable, state (rows with missing values omitted);
    `thresholds` has observable, method, threshold, low_centre, high_centre, n_values.
    """
    options.choice("prepare.binarization", method, BINARIZATIONS)
    options.number("prepare.threshold", threshold, minimum=0, maximum=1)
    present = measurements.dropna(subset=["normalized"])
    states = pd.Series(0, index=present.index, dtype=np.int64)
    rows = []
    for observable, group in present.groupby("observable", sort=True):
        values = group["normalized"].rename(observable)
        if method == "kmeans":
            result = binarize_kmeans(values, seed=seed)
        else:
            result = binarize_threshold(values, threshold)
        states.loc[result.states.index] = result.states
        rows.append((observable, result.method, result.threshold, result.low_centre, result.high_centre,
                     len(values)))
    binarized = present[["experiment", "time", "observable"]].assign(state=states).reset_index(drop=True)
    thresholds = pd.DataFrame(
        rows, columns=["observable", "method", "threshold", "low_centre", "high_centre", "n_values"]
    ).astype({"observable": "str", "method": "str", "threshold": float, "low_centre": float,
              "high_centre": float, "n_values": np.int64})
    return binarized, thresholds


# --------------------------------------------------------------------------- the step


def prepare(
    data_path: PathLike,
    *,
    fmt: str = "auto",
    experiments_path: PathLike | None = None,
    known_nodes: Iterable[str] | None = None,
    unknown_observables: str = "error",
    normalization: str = "minmax",
    controls: Iterable[str] | None = None,
    binarization: str = "kmeans",
    threshold: float = 0.5,
    seed: int = 0,
) -> PreparedData:
    """Read, validate, normalize and binarize a study's measurements.

    `known_nodes` (the PKN's nodes) restricts the observables: unknown ones are an error, or
    with `unknown_observables="warn"` are dropped with a warning. A MIDAS file brings its own
    experiment table; tidy data may come with one (`experiments_path`) that must list exactly
    the measured experiments. See `normalize` and `binarize` for the methods; `seed` is passed
    to the binarization.
    """
    # options first, so that a bad option is not hidden behind a data error
    options.choice("data.format", fmt, FORMATS)
    options.choice("prepare.unknown_observables", unknown_observables, UNKNOWN_OBSERVABLE_POLICIES)
    options.choice("prepare.normalization", normalization, NORMALIZATIONS)
    options.choice("prepare.binarization", binarization, BINARIZATIONS)
    options.number("prepare.threshold", threshold, minimum=0, maximum=1)
    source = str(data_path)
    frame, experiments = _load(data_path, fmt)
    if experiments_path is not None:
        if experiments is not None:
            raise DataError(str(experiments_path),
                            message=f"{source} is MIDAS, which carries its own treatments; "
                                    "give no experiment table")
        table = _parse_experiments(_read_table(experiments_path))
        _match_experiments(frame, source, table, str(experiments_path))
        experiments = table.drop(columns="row")
    frame = _check_observables(frame, source, known_nodes, unknown_observables)
    measured = frame["experiment"].unique()
    if experiments is None:
        experiments = pd.DataFrame({"experiment": pd.Series(measured, dtype="str")})
    # dropping unknown observables may leave an experiment without measurements
    experiments = experiments[experiments["experiment"].isin(measured)]
    experiments = experiments.sort_values("experiment", kind="stable").reset_index(drop=True)

    measurements = normalize(frame[_MEASUREMENT_COLUMNS], normalization, experiments=experiments,
                             controls=controls, source=source)
    binarized, thresholds = binarize(measurements, binarization, threshold=threshold, seed=seed)
    log.info("%s: %d values (%d missing) of %d observables in %d experiments", source, len(measurements),
             int(measurements["value"].isna().sum()), measurements["observable"].nunique(), len(experiments))
    return PreparedData(measurements, binarized, thresholds, experiments)
