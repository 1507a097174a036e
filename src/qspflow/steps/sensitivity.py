"""Steps of the sensitivity analysis: the rules `sensitivity_sample`, `sensitivity_simulate` (one job
per chunk: scatter) and `sensitivity_analyze` (gather), and `qspflow sensitivity` (`sensitivity_folder`).

`options` are the keys of the study config's `sensitivity:` section (`qspflow.sensitivity.DEFAULTS`).
One samples table holds every method's rows (`method`, `row`, then one column per sampled parameter
on its PEtab scale); the simulation is chunked over all its rows; each chunk's result table has
`method`, `row` and one column per output (empty where the simulation failed). Samples and results
are written with `EXACT_FORMAT`, so that the gathered results are the floats the chunks computed:
chunked and one-process runs give the same bytes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from qspflow.errors import ConfigError, DataError
from qspflow.io import EXACT_FORMAT, parse_user_yaml, read_table, read_user_text, write_bytes, write_table
from qspflow.outputs import OutputModel, check_outputs
from qspflow.petab import PetabProblem, load_problem
from qspflow.plots import morris_figure, png_bytes, sobol_figure
from qspflow.sensitivity import (
    ParameterRange,
    SensitivityOptions,
    analyze_morris,
    analyze_sobol,
    chunk_rows,
    empty_table,
    evaluate_chunk,
    parameter_ranges,
    sample,
    sensitivity_options,
    summary_table,
)
from qspflow.steps import in_folder

FilePath = str | os.PathLike[str]
log = logging.getLogger("qspflow.sensitivity")

#: the outputs of `sensitivity_folder` (`qspflow sensitivity --out DIR`)
FILES = {
    "samples": "samples.tsv",
    "results": "results.tsv",
    "morris": "morris.tsv",
    "sobol": "sobol.tsv",
    "summary": "summary.tsv",
    "sobol_plot": "sobol.png",
    "morris_plot": "morris.png",
}
KEY_COLUMNS = ["method", "row"]
ESTIMATES_COLUMNS = ["parameter", "estimate"]


def sensitivity_sample(*, problem: FilePath, estimates: FilePath | None, samples: FilePath, seed: int,
                       **options: object) -> None:
    """The sample matrices of every method (`sensitivity.method`) around the estimates (or the
    problem's nominal values when `estimates` is None), to `samples`. Checks the outputs against the
    problem first."""
    loaded, opts, ranges, _ = _setup(problem, estimates, options)
    X = sample(ranges, opts, seed=seed)
    write_table(samples_table(X, ranges), samples, float_format=EXACT_FORMAT)


def sensitivity_simulate(*, problem: FilePath, estimates: FilePath | None, samples: FilePath, chunk: int,
                         n_chunks: int, result: FilePath, threads: int = 1, **options: object) -> None:
    """Chunk `chunk` (0-based) of `n_chunks` of the `samples` rows simulated: its outputs to `result`."""
    loaded, opts, ranges, table = _setup(problem, estimates, options)
    X, keys = _read_samples(samples, ranges)
    model = OutputModel(loaded, opts.outputs, [r.name for r in ranges])
    result_table = _simulate(model, X, keys, ranges, table, chunk=chunk, n_chunks=n_chunks, threads=threads)
    write_table(result_table, result, float_format=EXACT_FORMAT)


def sensitivity_analyze(*, samples: FilePath, results: Sequence[FilePath], morris: FilePath, sobol: FilePath,
                        summary: FilePath, sobol_plot: FilePath, morris_plot: FilePath, seed: int,
                        **options: object) -> None:
    """The gathered chunk results analyzed: the Morris and Sobol tables (header only for a method not
    run), the summary (samples and failed simulations per method and output) and both figures.
    Refuses (nothing written) if an analyzed output has failed simulations."""
    opts = sensitivity_options(options)
    frame = read_table(samples, required=KEY_COLUMNS)
    names = [c for c in frame.columns if c not in KEY_COLUMNS]
    outputs = [o.name for o in opts.outputs]
    gathered = pd.concat([read_table(path, required=[*KEY_COLUMNS, *outputs]) for path in results],
                         ignore_index=True)
    merged = frame[KEY_COLUMNS].merge(gathered, on=KEY_COLUMNS, how="left", indicator=True, validate="one_to_one")
    if len(gathered) != len(frame) or (merged["_merge"] != "both").any():
        missing = int((merged["_merge"] != "both").sum())
        raise DataError(results[0] if results else samples, expected=f"results for every one of the {len(frame)} "
                        "sample rows, each once (every chunk)", found=f"{len(gathered)} rows, {missing} missing")
    tables = _analyze(frame, merged, names, outputs, opts, seed)
    _write(tables, morris=morris, sobol=sobol, summary=summary, sobol_plot=sobol_plot, morris_plot=morris_plot)


def sensitivity_folder(*, problem: FilePath, spec: FilePath, out: FilePath, estimates: FilePath | None = None,
                       seed: int = 0, threads: int = 1) -> None:
    """Everything in one process (`qspflow sensitivity PROBLEM.yaml --spec SPEC.yaml --out DIR`): the
    options are the `sensitivity:` section of `spec`; outputs in `out` under their `FILES` names."""
    options = read_spec(spec)
    loaded, opts, ranges, table = _setup(problem, estimates, options)
    X = sample(ranges, opts, seed=seed)
    frame = samples_table(X, ranges)
    Xs, keys = frame[[r.name for r in ranges]].to_numpy(dtype=float), frame[KEY_COLUMNS]
    model = OutputModel(loaded, opts.outputs, [r.name for r in ranges])
    results = _simulate(model, Xs, keys, ranges, table, chunk=0, n_chunks=1, threads=threads)
    tables = _analyze(frame, results, [r.name for r in ranges], [o.name for o in opts.outputs], opts, seed)
    paths = in_folder(out, FILES)
    write_table(frame, paths["samples"], float_format=EXACT_FORMAT)
    write_table(results, paths["results"], float_format=EXACT_FORMAT)
    _write(tables, **{k: paths[k] for k in ("morris", "sobol", "summary", "sobol_plot", "morris_plot")})


# ------------------------------------------------------------------------------ reading, writing


def read_spec(path: FilePath) -> dict:
    """The `sensitivity:` section of a YAML spec (a study config or a file with that section only)."""
    spec = parse_user_yaml(read_user_text(path, ConfigError), path, ConfigError)
    if not isinstance(spec, Mapping) or not isinstance(spec.get("sensitivity"), Mapping):
        raise ConfigError(path, key="sensitivity", expected="a mapping of the sensitivity options (with outputs)")
    return dict(spec["sensitivity"])


def samples_table(X: Mapping[str, np.ndarray], ranges: Sequence[ParameterRange]) -> pd.DataFrame:
    """method, row, one column per parameter (its PEtab scale): every method's sample, in order."""
    frames = []
    for method in sorted(X):
        frame = pd.DataFrame(X[method], columns=[r.name for r in ranges])
        frame.insert(0, "row", np.arange(len(frame)))
        frame.insert(0, "method", method)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _setup(problem: FilePath, estimates: FilePath | None, options: Mapping[str, object]) \
        -> tuple[PetabProblem, SensitivityOptions, list[ParameterRange], pd.DataFrame | None]:
    opts = sensitivity_options(options)
    loaded = load_problem(problem)
    check_outputs(loaded, opts.outputs)
    table = read_table(estimates, required=ESTIMATES_COLUMNS) if estimates is not None else None
    if table is not None:
        for column in ("lower_95", "upper_95"):
            if column not in table:
                table[column] = np.nan
    return loaded, opts, parameter_ranges(loaded, opts, estimates=table), table


def _read_samples(path: FilePath, ranges: Sequence[ParameterRange]) -> tuple[np.ndarray, pd.DataFrame]:
    names = [r.name for r in ranges]
    frame = read_table(path, required=[*KEY_COLUMNS, *names])
    extra = [c for c in frame.columns if c not in KEY_COLUMNS and c not in names]
    if extra:
        raise DataError(path, column=extra[0], expected=f"only the sampled parameters {names} (the samples were "
                        "drawn with other options)")
    return frame[names].to_numpy(dtype=float), frame[KEY_COLUMNS]


def _simulate(model: OutputModel, X: np.ndarray, keys: pd.DataFrame, ranges: Sequence[ParameterRange],
              estimates: pd.DataFrame | None, *, chunk: int, n_chunks: int, threads: int) -> pd.DataFrame:
    base = {}
    if estimates is not None:
        known = set(model.problem.parameters)
        base = {str(p): float(v) for p, v in zip(estimates["parameter"], estimates["estimate"]) if p in known}
    rows = chunk_rows(len(X), chunk, n_chunks)
    start = time.perf_counter()
    values, failed = evaluate_chunk(model, X, ranges, chunk=chunk, n_chunks=n_chunks, base=base, threads=threads)
    log.info("chunk %d of %d: %d parameter sets simulated in %.1f s; failed per output: %s", chunk + 1, n_chunks,
             len(values), time.perf_counter() - start,
             ", ".join(f"{n} {int(f)}" for n, f in zip(model.names, failed.sum(axis=0))))
    frame = keys.iloc[rows].reset_index(drop=True)
    for k, name in enumerate(model.names):
        frame[name] = values[:, k]
    return frame


def _analyze(samples: pd.DataFrame, results: pd.DataFrame, names: list[str], outputs: list[str],
             opts: SensitivityOptions, seed: int) -> dict[str, pd.DataFrame]:
    Ys = {}
    tables = {"morris": empty_table(), "sobol": empty_table()}
    for method in opts.methods:
        mask = (samples["method"] == method).to_numpy()
        if not mask.any():
            raise DataError(None, element=method, expected=f"{method} rows in the samples (sensitivity.method)")
        Ys[method] = results.loc[mask, outputs].to_numpy(dtype=float)
    summary = summary_table(Ys, outputs)
    for row in summary.itertuples():
        log.info("%s: %s: %d samples, %d failed", row.method, row.output, row.samples, row.failed)
    for method, Y in Ys.items():
        mask = (samples["method"] == method).to_numpy()
        if method == "morris":
            tables["morris"] = analyze_morris(names, samples.loc[mask, names].to_numpy(dtype=float), Y, outputs, opts,
                                              seed=seed)
        else:
            tables["sobol"] = analyze_sobol(names, Y, outputs, opts, seed=seed)
    tables["summary"] = summary
    return tables


def _write(tables: Mapping[str, pd.DataFrame], *, morris: FilePath, sobol: FilePath, summary: FilePath,
           sobol_plot: FilePath, morris_plot: FilePath) -> None:
    write_table(tables["morris"], morris)
    write_table(tables["sobol"], sobol)
    write_table(tables["summary"], summary)
    write_bytes(png_bytes(sobol_figure(tables["sobol"])), sobol_plot)
    write_bytes(png_bytes(morris_figure(tables["morris"])), morris_plot)
