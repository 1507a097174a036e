"""Measurements for the `prepare` step: tidy tables and MIDAS, validation, normalization, binarization.

Input formats
-------------
* Tidy measurements (CSV/TSV): `experiment, time, observable, value` and optional `sd`;
  unknown extra columns are ignored with a warning; an empty (or `NA`/`NaN`) value is missing.
* Experiment table (CSV/TSV, optional): `experiment` and factor columns `stimulus:<Node>`,
  `inhibitor:<Node>` (0/1) and `dose:<drug>`, one row per experiment.
* MIDAS (CellNOpt): `TR:` treatment, `DA:` time and `DV:` value columns, one condition per
  treatment combination; it yields both the tidy table and the experiment table.

Every failure caused by the input raises `DataError` naming the file, the row as the file line
number (the header is line 1) and the column. Files are parsed with the `csv` module and every
cell is checked before it becomes a number, so no pandas or numpy error reaches the user.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from qspflow.errors import ConfigError, DataError
from qspflow.io import atomic_path, table_text, write_text

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


@dataclass(frozen=True)
class PreparedData:
    """Everything the `prepare` step produces, ready to be written by `write_prepared`."""

    measurements: pd.DataFrame  # experiment, time, observable, value, sd, normalized
    binarized: pd.DataFrame  # experiment, time, observable, state (0/1)
    thresholds: pd.DataFrame  # observable, method, threshold, low_centre, high_centre, n_values
    experiments: pd.DataFrame  # experiment + factor columns


@dataclass(frozen=True)
class Binarization:
    """One observable's binarization: 0/1 states and the threshold that separates them.

    `low_centre` and `high_centre` are the cluster centres of k-means (NaN for a fixed threshold).
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
    # .txt and anything else: the most frequent candidate in the header (ties prefer tab)
    counts = {d: header.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _read_table(path: PathLike) -> _Table:
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise DataError(source, message=f"cannot read the file ({err.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(source, expected="UTF-8 text", found=f"byte 0x{raw[err.start]:02x} at offset {err.start}") from None
    # MIDAS files from CellNOpt use bare CR; normalize all three conventions before csv sees them
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = next((line for line in text.split("\n") if line.strip()), None)
    if first is None:
        raise DataError(source, row=1, expected="a header line", message="the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(Path(path), first))
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            fields = [f.strip() for f in fields]
            if not any(fields):
                continue
            if header is None:
                header, header_line = fields, reader.line_num
            else:
                rows.append((reader.line_num, fields))
    except csv.Error as err:
        raise DataError(source, row=reader.line_num + 1, expected="well-formed delimited text", message=str(err)) from None
    assert header is not None  # a non-blank line exists
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(source, row=header_line, column=name, expected="unique column names", message="the column appears twice")
        seen.add(name)
    if not rows:
        raise DataError(source, row=header_line + 1, expected="at least one data row", message="the file has only a header")
    for line, fields in rows:
        if len(fields) != len(header):
            raise DataError(source, row=line, expected=f"{len(header)} fields as in the header", found=f"{len(fields)} fields")
    return _Table(source, header, header_line, rows)


def _number(source: str, line: int, column: str, text: str, *, expected: str, missing_ok: bool = False) -> float:
    """One cell as a finite float; an empty/NA cell is NaN only where `missing_ok`."""
    lowered = text.lower()
    if lowered in _MISSING:
        if missing_ok:
            return math.nan
    elif _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise DataError(source, row=line, column=column, expected="a finite number", found=text)  # overflow, e.g. 1e999
    elif lowered.lstrip("+-") in _INFINITE:
        raise DataError(source, row=line, column=column, expected="a finite number", found=text)
    raise DataError(source, row=line, column=column, expected=expected, found=text)


def _check_id(source: str, line: int, column: str, text: str) -> None:
    if not _ID.fullmatch(text):
        raise DataError(source, row=line, column=column, expected="an id of letters, digits, '_' or '-'", found=text)


def _level(source: str, line: int, column: str, text: str) -> float:
    kind = column.split(":", 1)[0]
    if kind == "inhibitor":
        level = _number(source, line, column, text, expected="0 or 1")
        if level not in (0.0, 1.0):
            raise DataError(source, row=line, column=column, expected="0 or 1", found=text)
        return level
    level = _number(source, line, column, text, expected="a number ≥ 0")
    if level < 0:
        raise DataError(source, row=line, column=column, expected="a number ≥ 0", found=text)
    return level


def _measurement_frame(records: list[tuple[int, str, float, str, float, float]]) -> pd.DataFrame:
    rows, experiments, times, observables, values, sds = zip(*records, strict=True) if records else ([],) * 6
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
        raise DataError(
            source,
            row=table.header_line,
            column=", ".join(missing),
            expected="columns experiment, time, observable, value (and optionally sd)",
            found=", ".join(table.header),
        )
    extra = [c for c in table.header if c not in REQUIRED_COLUMNS and c != "sd"]
    if extra:
        log.warning("%s: ignoring unknown columns %s", source, ", ".join(extra))
    sd_index = index.get("sd")
    first_seen: dict[tuple[str, float, str], int] = {}
    records = []
    for line, fields in table.rows:
        experiment = fields[index["experiment"]]
        _check_id(source, line, "experiment", experiment)
        time = _number(source, line, "time", fields[index["time"]], expected="a number ≥ 0")
        if time < 0:
            raise DataError(source, row=line, column="time", expected="a number ≥ 0", found=fields[index["time"]])
        observable = fields[index["observable"]]
        if not observable:
            raise DataError(source, row=line, column="observable", expected="an observable name", found="")
        value = _number(source, line, "value", fields[index["value"]], expected="a number or an empty cell", missing_ok=True)
        sd = math.nan
        if sd_index is not None:
            text = fields[sd_index]
            sd = _number(source, line, "sd", text, expected="a number > 0 or an empty cell", missing_ok=True)
            if sd <= 0:
                raise DataError(source, row=line, column="sd", expected="a number > 0 or an empty cell", found=text)
        key = (experiment, time, observable)
        if key in first_seen:
            raise DataError(
                source,
                row=line,
                expected="one row per experiment, time and observable",
                found=f"{experiment}, {fields[index['time']]}, {observable}",
                message=f"already in row {first_seen[key]}",
            )
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
    source = table.source
    treatments: list[tuple[int, str, str]] = []  # (field index, column, factor column)
    times: dict[str, int] = {}
    values: dict[str, int] = {}
    ignored = []
    for i, name in enumerate(table.header):
        prefix, _, rest = name.partition(":")
        if prefix == "TR" and rest and not rest.endswith(":CellLine"):
            factor = _treatment_factor(rest)
            if factor.endswith(":") or factor in {f for _, _, f in treatments}:
                raise DataError(source, row=table.header_line, column=name, expected="one TR column per treated node", found=factor)
            treatments.append((i, name, factor))
        elif prefix == "DA" and rest:
            times[rest] = i
        elif prefix == "DV" and rest:
            values[rest] = i
        elif not (prefix == "TR" or prefix == "ID"):  # cell-line and ID columns carry nothing we use
            ignored.append(name)
    if ignored:
        log.warning("%s: ignoring columns that are not MIDAS TR/DA/DV columns: %s", source, ", ".join(ignored))
    if not values:
        raise DataError(source, row=table.header_line, expected="at least one DV:<readout> column", found=", ".join(table.header))
    for readout in times:
        if readout != "ALL" and readout not in values:
            raise DataError(source, row=table.header_line, column=f"DA:{readout}", expected=f"a matching DV:{readout} column")
    for readout in values:
        if readout not in times and "ALL" not in times:
            raise DataError(source, row=table.header_line, column=f"DV:{readout}", expected=f"a matching DA:{readout} or DA:ALL column")

    # one entry per DV cell: (line, treatment levels, time, readout, value)
    cells = []
    for line, fields in table.rows:
        levels = tuple(_level(source, line, factor, fields[i]) for i, _, factor in treatments)
        for readout, vi in values.items():
            time_key = readout if readout in times else "ALL"
            da = f"DA:{time_key}"
            text = fields[times[time_key]]
            time = _number(source, line, da, text, expected="a number ≥ 0")
            if time < 0:
                raise DataError(source, row=line, column=da, expected="a number ≥ 0", found=text)
            value = _number(source, line, f"DV:{readout}", fields[vi], expected="a number or an empty cell", missing_ok=True)
            cells.append((line, levels, time, readout, value))

    untreated = (0.0,) * len(treatments)

    def is_baseline(levels: tuple[float, ...], time: float) -> bool:
        return time == 0 and levels == untreated

    conditions: dict[tuple[float, ...], str] = {}
    for _, levels, time, _, _ in cells:
        if not is_baseline(levels, time):
            conditions.setdefault(levels, "")
    width = max(2, len(str(len(conditions))))
    for n, levels in enumerate(conditions, start=1):
        conditions[levels] = f"c{n:0{width}d}"

    own: dict[tuple[str, float, str], tuple[int, float]] = {}
    baseline: dict[str, tuple[int, float]] = {}
    for line, levels, time, readout, value in cells:
        target = own if levels in conditions else baseline
        key = (conditions[levels], time, readout) if levels in conditions else readout
        if key in target:
            raise DataError(
                source,
                row=line,
                column=f"DV:{readout}",
                expected="one value per condition, time and readout (replicates are not averaged)",
                message=f"row {target[key][0]} has the same treatments and time",
            )
        target[key] = (line, value)
    # CellNOpt shares the untreated t=0 row among all conditions that lack their own t=0 row
    for experiment in conditions.values():
        for readout, cell in baseline.items():
            own.setdefault((experiment, 0.0, readout), cell)

    records = [(line, e, t, r, v, math.nan) for (e, t, r), (line, v) in own.items()]
    experiments = pd.DataFrame({"experiment": pd.Series(list(conditions.values()), dtype="str")})
    for j, (_, _, factor) in enumerate(treatments):
        experiments[factor] = np.asarray([levels[j] for levels in conditions], dtype=float)
    return _measurement_frame(records), experiments


def _is_midas(table: _Table) -> bool:
    return any(name.startswith(("TR:", "DA:", "DV:")) for name in table.header)


def _load(path: PathLike, fmt: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Parse a measurement file; the tidy frame keeps the file line of each value in `row`."""
    if fmt not in FORMATS:
        raise ConfigError(None, key="format", expected=" or ".join(repr(f) for f in FORMATS), found=fmt)
    table = _read_table(path)
    if fmt == "midas" or (fmt == "auto" and _is_midas(table)):
        return _parse_midas(table)
    return _parse_tidy(table), None


def _check_observables(
    frame: pd.DataFrame, source: str, known_nodes: Iterable[str] | None, policy: str
) -> pd.DataFrame:
    """Drop or reject observables unknown to the PKN; reject observables with no value at all."""
    if policy not in UNKNOWN_OBSERVABLE_POLICIES:
        raise ConfigError(None, key="unknown_observables", expected="'error' or 'warn'", found=policy)
    if known_nodes is not None:
        known = set(known_nodes)
        unknown = frame[~frame["observable"].isin(known)]
        if len(unknown):
            if policy == "error":
                first = unknown.iloc[0]
                raise DataError(source, row=int(first["row"]), column="observable", expected="a node of the PKN", found=first["observable"])
            names = sorted(unknown["observable"].unique())
            log.warning("%s: dropping %d rows of observables not in the PKN: %s", source, len(unknown), ", ".join(names))
            frame = frame[frame["observable"].isin(known)].reset_index(drop=True)
            if frame.empty:
                raise DataError(source, column="observable", expected="at least one observable that is a node of the PKN")
    present = frame.dropna(subset=["value"])["observable"].unique()
    for observable, rows in frame[~frame["observable"].isin(present)].groupby("observable", sort=True)["row"]:
        listed = ", ".join(str(r) for r in rows.head(5))
        raise DataError(source, column="value", message=f"observable '{observable}' has only missing values (rows {listed})")
    return frame


def read_measurements(path: PathLike, fmt: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read and validate a measurement file: `(tidy table, experiment table or None)`.

    `fmt="auto"` reads MIDAS when the header has `TR:`/`DA:`/`DV:` columns, else the tidy
    format; only MIDAS carries its own experiment table. The tidy table has the columns
    experiment, time, observable, value, sd (NaN where not given).
    """
    frame, experiments = _load(path, fmt)
    frame = _check_observables(frame, str(path), None, "error")
    return frame[_MEASUREMENT_COLUMNS], experiments


def _parse_experiments(table: _Table) -> pd.DataFrame:
    source = table.source
    if "experiment" not in table.header:
        raise DataError(source, row=table.header_line, column="experiment", expected="an 'experiment' column", found=", ".join(table.header))
    factors = [c for c in table.header if c != "experiment"]
    for column in factors:
        kind, _, name = column.partition(":")
        if kind not in FACTOR_KINDS or not name:
            raise DataError(
                source,
                row=table.header_line,
                column=column,
                expected="factor columns named stimulus:<Node>, inhibitor:<Node> or dose:<drug>",
                found=column,
            )
    index = {name: i for i, name in enumerate(table.header)}
    first_seen: dict[str, int] = {}
    data: dict[str, list] = {"experiment": [], "row": [], **{c: [] for c in factors}}
    for line, fields in table.rows:
        experiment = fields[index["experiment"]]
        _check_id(source, line, "experiment", experiment)
        if experiment in first_seen:
            raise DataError(source, row=line, column="experiment", expected="one row per experiment", found=experiment,
                            message=f"already in row {first_seen[experiment]}")
        first_seen[experiment] = line
        data["experiment"].append(experiment)
        data["row"].append(line)
        for column in factors:
            data[column].append(_level(source, line, column, fields[index[column]]))
    frame = pd.DataFrame({"experiment": pd.Series(data["experiment"], dtype="str")})
    for column in factors:
        frame[column] = np.asarray(data[column], dtype=float)
    frame["row"] = np.asarray(data["row"], dtype=np.int64)
    return frame


def read_experiments(path: PathLike) -> pd.DataFrame:
    """Read and validate an experiment table: `experiment` plus stimulus:/inhibitor:/dose: factors."""
    return _parse_experiments(_read_table(path)).drop(columns="row")


def _match_experiments(measurements: pd.DataFrame, data_source: str, experiments: pd.DataFrame, source: str) -> None:
    """Every measured experiment has a row in the experiment table, and every row is measured."""
    listed = set(experiments["experiment"])
    for experiment, line in measurements.groupby("experiment", sort=False)["row"].min().items():
        if experiment not in listed:
            raise DataError(source, column="experiment", expected=f"a row for experiment '{experiment}'",
                            message=f"{data_source} uses it in row {line}")
    measured = set(measurements["experiment"])
    for experiment, line in zip(experiments["experiment"], experiments["row"], strict=True):
        if experiment not in measured:
            raise DataError(source, row=int(line), column="experiment", expected=f"an experiment measured in {data_source}",
                            found=experiment)


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


def _control_ids(experiments: pd.DataFrame | None, controls: Iterable[str] | None, measured: set[str], source: str | None) -> list[str]:
    if controls is not None:
        ids = list(controls)
        for experiment in ids:
            if experiment not in measured:
                raise DataError(source, key="controls", expected="ids of measured experiments", found=experiment)
        if not ids:
            raise DataError(source, key="controls", expected="at least one control experiment for fold_change")
        return ids
    factors = [] if experiments is None else [c for c in experiments.columns if c.partition(":")[0] in FACTOR_KINDS]
    if not factors:
        raise DataError(source, key="controls", expected="control experiments for fold_change",
                        message="give them, or an experiment table whose controls have all factor levels 0")
    untreated = experiments.loc[(experiments[factors] == 0).all(axis=1), "experiment"].tolist()
    if not untreated:
        raise DataError(source, key="controls", expected="control experiments for fold_change",
                        message="no experiment has all factor levels 0; give the controls explicitly")
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
    if method not in NORMALIZATIONS:
        raise ConfigError(None, key="normalization", expected="'minmax' or 'fold_change'", found=method)
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
            raise DataError(source, key="controls", expected="a positive mean control value",
                            found="no control value" if math.isnan(mean) else format(mean, "g"),
                            message=f"observable '{bad['observable']}' at time {bad['time']:g} (controls: {', '.join(ids)})")
        values = values / denominator
    frame["normalized"] = _minmax(values, frame["observable"])
    return frame


# --------------------------------------------------------------------------- binarization


def kmeans_1d(values: np.ndarray) -> tuple[float, float]:
    """Exact two-cluster k-means of 1-D values: `(low_centre, high_centre)`.

    The optimal 1-D partition is a split of the sorted values, so trying every split between
    distinct values and keeping the one with the smallest within-cluster sum of squares (the
    first one on ties) finds the global optimum without random starts.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0 or x[0] == x[-1]:
        centre = x[0] if n else math.nan
        return centre, centre
    centred = x - x.mean()  # centring keeps the prefix sums well conditioned
    low_sum = np.cumsum(centred)[:-1]
    low_n = np.arange(1, n)
    # minimizing the within-cluster SS is maximizing the between-cluster term
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
    if method not in BINARIZATIONS:
        raise ConfigError(None, key="binarization", expected="'kmeans' or 'threshold'", found=method)
    if not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
        raise ConfigError(None, key="threshold", expected="a number in [0, 1]", found=threshold)
    present = measurements.dropna(subset=["normalized"])
    states = pd.Series(0, index=present.index, dtype=np.int64)
    rows = []
    for observable, group in present.groupby("observable", sort=True):
        values = group["normalized"].rename(observable)
        result = binarize_kmeans(values, seed=seed) if method == "kmeans" else binarize_threshold(values, threshold)
        states.loc[result.states.index] = result.states
        rows.append((observable, result.method, result.threshold, result.low_centre, result.high_centre, len(values)))
    binarized = present[["experiment", "time", "observable"]].assign(state=states).reset_index(drop=True)
    names = ["observable", "method", "threshold", "low_centre", "high_centre", "n_values"]
    thresholds = pd.DataFrame(rows, columns=names).astype(
        {"observable": "str", "method": "str", "threshold": float, "low_centre": float, "high_centre": float, "n_values": np.int64}
    )
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
    the measured experiments. See `normalize` and `binarize` for the methods.
    """
    source = str(data_path)
    for key, value, allowed in (
        ("normalization", normalization, NORMALIZATIONS),
        ("binarization", binarization, BINARIZATIONS),
        ("unknown_observables", unknown_observables, UNKNOWN_OBSERVABLE_POLICIES),
    ):
        if value not in allowed:
            raise ConfigError(None, key=key, expected=" or ".join(repr(a) for a in allowed), found=value)
    frame, experiments = _load(data_path, fmt)
    if experiments is not None and experiments_path is not None:
        raise DataError(str(experiments_path), message=f"{source} is MIDAS, which carries its own treatments; give no experiment table")
    if experiments_path is not None:
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

    frame = frame.sort_values(["experiment", "observable", "time"], kind="stable").reset_index(drop=True)
    measurements = normalize(frame[_MEASUREMENT_COLUMNS], normalization, experiments=experiments, controls=controls, source=source)
    binarized, thresholds = binarize(measurements, binarization, threshold=threshold, seed=seed)
    log.info(
        "%s: %d values (%d missing) of %d observables in %d experiments",
        source, len(measurements), int(measurements["value"].isna().sum()),
        measurements["observable"].nunique(), len(experiments),
    )
    return PreparedData(measurements, binarized, thresholds, experiments)


def render_qc(prepared: PreparedData) -> bytes:
    """The QC figure as PNG bytes: normalized value over time per observable, with its threshold.

    Byte-stable: Agg rendering, no software tag or timestamp in the PNG metadata.
    """
    measurements = prepared.measurements
    observables = sorted(measurements["observable"].unique())
    experiments = sorted(measurements["experiment"].unique())
    colour = {e: f"C{i % 10}" for i, e in enumerate(experiments)}
    thresholds = dict(zip(prepared.thresholds["observable"], prepared.thresholds["threshold"], strict=True))
    ncols = min(4, len(observables))
    nrows = math.ceil(len(observables) / ncols)
    fig = Figure(figsize=(2.4 * ncols, 1.9 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, observable in zip(axes.flat, observables):
        subset = measurements[measurements["observable"] == observable].dropna(subset=["normalized"])
        for experiment, series in subset.groupby("experiment", sort=True):
            ax.plot(series["time"], series["normalized"], marker="o", markersize=2.5, linewidth=1,
                    color=colour[experiment], label=experiment)
        ax.axhline(thresholds[observable], linestyle="--", linewidth=0.8, color="0.3")
        ax.set_title(observable, fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.tick_params(labelsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("time", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("normalized", fontsize=7)
    for ax in axes.flat[len(observables):]:
        ax.set_visible(False)
    if len(experiments) <= 12:  # beyond that a legend hides the data
        axes[0, 0].legend(fontsize=5, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def write_prepared(prepared: PreparedData, out_dir: PathLike) -> None:
    """Write measurements.tsv, binarized.tsv, thresholds.tsv, experiments.tsv and qc.png.

    Every file is rendered before the first is written, and each is written atomically, so a
    failure leaves no file behind.
    """
    out = Path(out_dir)
    texts = {
        "measurements.tsv": table_text(prepared.measurements),
        "binarized.tsv": table_text(prepared.binarized),
        "thresholds.tsv": table_text(prepared.thresholds),
        "experiments.tsv": table_text(prepared.experiments),
    }
    png = render_qc(prepared)
    for name, text in texts.items():
        write_text(text, out / name)
    with atomic_path(out / "qc.png") as tmp:
        tmp.write_bytes(png)
