"""Step `prepare`: a study's measurements validated, normalized and binarized (`qspflow prepare`)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from qspflow import plots
from qspflow.boolean import read_sif
from qspflow.data import prepare as prepare_measurements
from qspflow.io import table_text, write_bytes, write_text

PathLike = str | os.PathLike[str]

FILES = {"measurements": "measurements.tsv", "binarized": "binarized.tsv", "thresholds": "thresholds.tsv",
         "design": "experiments.tsv", "qc": "qc.png"}


def prepare(
    *,
    data: PathLike,
    measurements: PathLike,
    binarized: PathLike,
    thresholds: PathLike,
    design: PathLike,
    qc: PathLike,
    experiments: PathLike | None = None,
    pkn: PathLike | None = None,
    fmt: str = "auto",
    unknown_observables: str = "error",
    normalization: str = "minmax",
    controls: Iterable[str] = (),
    binarization: str = "kmeans",
    threshold: float = 0.5,
) -> None:
    """Read measurement file `data` (tidy or MIDAS, `fmt`) with the optional experiment table
    `experiments`, keep the observables that are nodes of the SIF `pkn` (if given; see
    `unknown_observables`), normalize and binarize them (`qspflow.data.prepare`).

    Writes the tidy normalized `measurements`, the `binarized` states, the per-observable
    `thresholds`, the experiment `design` (the experiment table of the prepared data) and the `qc`
    figure (PNG). Everything is rendered before the first file is written and each file is
    written atomically, so a failure leaves no output behind. Empty `controls`: the experiments
    whose factor levels are all 0.
    """
    prepared = prepare_measurements(
        data,
        fmt=fmt,
        experiments_path=experiments,
        known_nodes=read_sif(pkn).nodes if pkn else None,
        unknown_observables=unknown_observables,
        normalization=normalization,
        controls=list(controls) or None,
        binarization=binarization,
        threshold=threshold,
    )
    texts = {
        measurements: table_text(prepared.measurements),
        binarized: table_text(prepared.binarized),
        thresholds: table_text(prepared.thresholds),
        design: table_text(prepared.experiments),
    }
    png = plots.png_bytes(plots.qc_figure(prepared.measurements, prepared.thresholds))
    for path, text in texts.items():
        write_text(text, path)
    write_bytes(png, qc)
