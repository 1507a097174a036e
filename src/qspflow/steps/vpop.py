"""Steps of virtual populations: the rules `vpop_candidates` (one chunk of candidates, a separate job
each) and `vpop_select` (gather, select, fit, plot), and `qspflow vpop` (`vpop_folder`).

Config keys (the `vpop:` section; `target` is the cohort path, given to the steps as a file):
outputs, plausible, parameters, candidates, chunks, n_vps, and the algorithm options of
`qspflow.lib.OPTION_DEFAULTS`. A chunk's result is a TSV of its plausible patients written with
`EXACT_FORMAT` after one `# {json}` line of counts, so gathered chunks give the one-process result
bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qspflow import options as opt
from qspflow import vpop as lib
from qspflow.errors import ConfigError, DataError
from qspflow.io import (
    EXACT_FORMAT,
    parse_user_yaml,
    read_table,
    read_user_text,
    table_text,
    write_bytes,
    write_table,
    write_text,
)
from qspflow.plots import png_bytes, vpop_figure
from qspflow.steps import in_folder

FilePath = str | os.PathLike[str]
log = logging.getLogger("qspflow.vpop")

#: the outputs of `vpop_folder` (`qspflow vpop --out DIR`)
FILES = {"plausible": "plausible.tsv", "vpop": "vpop.tsv", "fit": "fit.tsv", "plot": "vpop.png"}

#: the `vpop:` keys besides the algorithm options: default and meaning
STEP_KEYS = {
    "target": (None, "the clinical cohort: TSV with a `patient` column and one column per output"),
    "outputs": (None, "the outputs the cohort measured, as `sensitivity.outputs` (name, kind, of, condition, …)"),
    "ranges": (None, "per output name: its plausible range [lower, upper] (Allen et al. 2016's l_i, u_i)"),
    "parameters": (None, "parameters to vary: {name: [lower, upper]} (linear; sampled on the PEtab scale) or a "
                         "list of names (their PEtab bounds); default: the problem's estimated parameters"),
    "n_candidates": (100000, "candidates in all (starting points, MH proposals, or surrogate-screened draws)"),
    "chunks": (10, "chunks of candidates, each a separate job"),
    "n_vps": (1000, "virtual patients to select (at most)"),
}
KEYS = {**STEP_KEYS, **lib.OPTION_DEFAULTS}


def _algorithm(options: Mapping[str, object]) -> lib.Options:
    opt.check_keys("vpop", options, KEYS)
    return lib.make_options(**{k: v for k, v in options.items() if k in lib.OPTION_DEFAULTS})


def _space(problem, parameters: object) -> lib.Space:
    params = problem.model.parameters
    if parameters is None:
        names = [n for n, p in params.items() if p.estimate]
        bounds = {n: (params[n].lower, params[n].upper) for n in names}
    elif isinstance(parameters, Mapping):
        names, bounds = list(parameters), {}
        for name, pair in parameters.items():
            if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
                raise ConfigError(None, key=f"vpop.parameters.{name}", expected="[lower, upper]", found=pair)
            bounds[name] = tuple(opt.number(f"vpop.parameters.{name}", v) for v in pair)
    else:
        names = list(opt.names("vpop.parameters", parameters))
        bounds = {}
    names = sorted(names)  # canonical: the same population whatever the order of the config's keys
    for name in names:
        if name not in params:
            raise ConfigError(None, key=f"vpop.parameters.{name}", expected="a parameter of the model",
                              found=name)
        bounds.setdefault(name, (params[name].lower, params[name].upper))
    return lib.Space.make(names, [bounds[n][0] for n in names], [bounds[n][1] for n in names],
                           [params[n].scale for n in names])


def _ranges(names: Sequence[str], plausible: object) -> lib.Ranges:
    if not isinstance(plausible, Mapping):
        raise ConfigError(None, key="vpop.ranges", expected="a mapping output name → [lower, upper]",
                          found=plausible)
    opt.check_keys("vpop.ranges", plausible, names)
    lower, upper = [], []
    for name in names:
        pair = plausible.get(name)
        if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
            raise ConfigError(None, key=f"vpop.ranges.{name}", expected="[lower, upper]", found=pair)
        lower.append(opt.number(f"vpop.ranges.{name}", pair[0]))
        upper.append(opt.number(f"vpop.ranges.{name}", pair[1]))
    return lib.Ranges.make(names, lower, upper, key="vpop.ranges")


def read_target(path: FilePath, names: Sequence[str]) -> np.ndarray:
    """The cohort's outputs (rows: patients, columns: `names`), checked numeric and large enough."""
    frame = read_table(path, required=["patient", *names])
    values = np.empty((len(frame), len(names)))
    for j, name in enumerate(names):
        column = pd.to_numeric(frame[name], errors="coerce")
        bad = np.flatnonzero(column.isna() & frame[name].notna())
        if bad.size:
            raise DataError(path, row=int(bad[0]) + 2, column=name, expected="a number", found=frame[name].iloc[bad[0]])
        values[:, j] = column.to_numpy(dtype=float)
    lib.Density(values, str(path), "target")  # too few patients → one-line error here, before any simulation
    return values


def _base(estimates: FilePath | None) -> dict[str, float] | None:
    if estimates is None:
        return None
    table = read_table(estimates, required=["parameter", "estimate"])
    return dict(zip(table["parameter"].astype(str), table["estimate"].astype(float), strict=True))


def _model(problem: FilePath, options: Mapping[str, object], estimates: FilePath | None):
    """(evaluator, space, ranges) of a PEtab problem under the `vpop:` options."""
    from qspflow.outputs import OutputModel, parse_outputs
    from qspflow.petab import load_problem

    outputs = parse_outputs(options.get("outputs"), key="vpop.outputs")
    names = [o.name for o in outputs]
    ranges = _ranges(names, options.get("ranges"))
    loaded = load_problem(problem)
    space = _space(loaded, options.get("parameters"))
    model = OutputModel(loaded, outputs, space.names)
    return model, space, ranges, _base(estimates)


def _sizes(options: Mapping[str, object]) -> tuple[int, int, int]:
    candidates = opt.integer("vpop.n_candidates", options.get("n_candidates", STEP_KEYS["n_candidates"][0]), 1)
    chunks = opt.integer("vpop.chunks", options.get("chunks", STEP_KEYS["chunks"][0]), 1)
    n_vps = opt.integer("vpop.n_vps", options.get("n_vps", STEP_KEYS["n_vps"][0]), 1)
    if chunks > candidates:
        raise ConfigError(None, key="vpop.chunks", expected=f"at most vpop.n_candidates ({candidates})", found=chunks)
    return candidates, chunks, n_vps


def vpop_candidates(*, problem: FilePath, estimates: FilePath | None, target: FilePath, chunk: int, n_chunks: int,
                    result: FilePath, seed: int, threads: int = 1, **options: object) -> None:
    """Chunk `chunk` of `n_chunks`: its plausible patients and counts, to `result`."""
    algorithm = _algorithm(options)
    candidates, _, _ = _sizes(options)
    model, space, ranges, base = _model(problem, options, estimates)
    data = read_target(target, ranges.names)

    def evaluate(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return model.evaluate(P, base=base, threads=threads)

    found = lib.candidate_chunk(evaluate, space, ranges, chunk=chunk, n_chunks=n_chunks, candidates=candidates,
                                 seed=seed, options=algorithm, target=data)
    log.info("vpop chunk %d/%d: %d candidates, %d simulations (%d failed), %d plausible", chunk + 1, n_chunks,
             found.candidates, found.simulations, found.failed, found.params.shape[0])
    write_chunk(found, space, ranges, result)


def write_chunk(found: lib.Chunk, space: lib.Space, ranges: lib.Ranges, path: FilePath) -> None:
    counts = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in found.stats().items()}
    frame = pd.DataFrame(np.column_stack([found.params, found.outputs]), columns=[*space.names, *ranges.names])
    write_text("# " + json.dumps(counts, sort_keys=True) + "\n" + table_text(frame, EXACT_FORMAT), path)


def read_chunk(path: FilePath, space_names: Sequence[str] | None = None,
               output_names: Sequence[str] | None = None) -> tuple[lib.Chunk, list[str]]:
    """A chunk file back: (chunk, its column names)."""
    text = Path(path).read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    try:
        counts = json.loads(first[2:]) if first.startswith("# ") else None
    except json.JSONDecodeError:
        counts = None
    if counts is None:
        raise DataError(path, line=1, expected="a vpop_candidates result (a `# {counts}` line, then a TSV)")
    import io

    frame = pd.read_csv(io.StringIO(rest), sep="\t")
    columns = list(frame.columns)
    values = frame.to_numpy(dtype=float)
    n_out = len([k for k in counts if k.startswith("best_") and k != "best_g"])
    best = np.array([np.inf if counts[f"best_{i}"] is None else counts[f"best_{i}"] for i in range(n_out)])
    chunk = lib.Chunk(values[:, : values.shape[1] - n_out], values[:, values.shape[1] - n_out:],
                       candidates=counts["candidates"], simulations=counts["simulations"], failed=counts["failed"],
                       best=best, best_g=math.inf if counts["best_g"] is None else counts["best_g"],
                       screened_true=counts["screened_true"], accepted=counts["accepted"],
                       recall=math.nan if counts["recall"] is None else counts["recall"])
    return chunk, columns


def vpop_select(*, candidates: Sequence[FilePath], target: FilePath, plausible: FilePath, vpop: FilePath,
                fit: FilePath, plot: FilePath, seed: int, **options: object) -> dict[str, float]:
    """Gather the chunk files (in order), select the VPs against the cohort `target`, write the tables and
    figure. Returns the summary (candidates, simulations, plausible, vps, plausible_per_vp, …)."""
    algorithm = _algorithm(options)
    _, _, n_vps = _sizes(options)
    chunks, columns = [], None
    for path in candidates:
        chunk, cols = read_chunk(path)
        if columns is not None and cols != columns:
            raise DataError(path, expected=f"the columns {columns} of the other chunks", found=cols)
        columns = cols
        chunks.append(chunk)
    if columns is None:
        raise ConfigError(None, key="vpop.chunks", expected="at least one chunk of candidates")
    n_out = chunks[0].outputs.shape[1]
    space_names, output_names = columns[: len(columns) - n_out], columns[len(columns) - n_out:]
    data = read_target(target, output_names)
    space = lib.Space(tuple(space_names), np.zeros(len(space_names)), np.ones(len(space_names)),
                       ("lin",) * len(space_names))
    ranges = lib.Ranges(tuple(output_names), np.zeros(n_out), np.zeros(n_out))
    result = _select(chunks, data, space, ranges, seed=seed, n_vps=n_vps, algorithm=algorithm, source=str(target))
    _write(result, data, plausible=plausible, vpop_table=vpop, fit=fit, plot=plot)
    return result.summary()


def _select(chunks, data, space, ranges, *, seed, n_vps, algorithm, source) -> lib.VirtualPopulation:
    result = lib.virtual_population(chunks, data, space, ranges, seed=seed, n_vps=n_vps, options=algorithm,
                                     target_source=source)
    summary = result.summary()
    log.info("vpop: %d candidates, %d simulations (%d failed), %d plausible, %d VPs (%.1f plausible per VP), "
             "alpha %.4g, summed KS %.4f", summary["candidates"], summary["simulations"], summary["failed"],
             summary["plausible"], summary["vps"], summary["plausible_per_vp"], summary["alpha"], summary["ks_sum"])
    if not math.isnan(summary["surrogate_precision"]):
        log.info("vpop surrogate: precision %.3f, held-out recall %.3f, %.1fx fewer full simulations",
                 summary["surrogate_precision"], summary["surrogate_recall"],
                 summary["candidates"] / max(summary["simulations"], 1))
    return result


def _write(result: lib.VirtualPopulation, data: np.ndarray, *, plausible: FilePath, vpop_table: FilePath,
           fit: FilePath, plot: FilePath) -> None:
    names = list(result.ranges.names)
    write_table(result.plausible_table(), plausible)
    write_table(result.vpop_table(), vpop_table)
    write_table(result.fit, fit)
    vp = pd.DataFrame(result.outputs, columns=names)
    write_bytes(png_bytes(vpop_figure(vp, pd.DataFrame(data, columns=names), names)), plot)


def vpop_folder(*, problem: FilePath, spec: FilePath, out: FilePath, estimates: FilePath | None = None,
                seed: int = 0, threads: int = 1) -> dict[str, float]:
    """`qspflow vpop PROBLEM.yaml --spec SPEC.yaml --out DIR`: every chunk in one process, then the
    selection; the `FILES` outputs in `out`. `spec`: YAML with a `vpop:` section (`target` relative to it)."""
    config = parse_user_yaml(read_user_text(spec, ConfigError), spec, ConfigError) or {}
    options = dict(config.get("vpop") or {}) if isinstance(config, Mapping) else {}
    if "target" not in options:
        raise ConfigError(spec, key="vpop.target", expected="the cohort TSV")
    target = Path(spec).parent / str(options.pop("target"))
    algorithm = _algorithm(options)
    candidates, n_chunks, n_vps = _sizes(options)
    model, space, ranges, base = _model(problem, options, estimates)
    data = read_target(target, ranges.names)

    def evaluate(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return model.evaluate(P, base=base, threads=threads)

    chunks = lib.generate(evaluate, space, ranges, candidates=candidates, n_chunks=n_chunks, seed=seed,
                           options=algorithm, target=data)
    result = _select(chunks, data, space, ranges, seed=seed, n_vps=n_vps, algorithm=algorithm, source=str(target))
    paths = in_folder(out, FILES)
    Path(out).mkdir(parents=True, exist_ok=True)
    _write(result, data, plausible=paths["plausible"], vpop_table=paths["vpop"], fit=paths["fit"],
           plot=paths["plot"])
    return result.summary()
