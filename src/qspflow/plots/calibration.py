"""Figures the report notebooks add to the steps' own: the calibrated trajectories against the data
with their noise, and the virtual population's distributions and acceptance.

Like `qspflow.plots`, they take the plain tables of `qspflow.report.results` and return Agg
figures for `png_bytes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D


def _grid(n: int, ncols: int, width: float, height: float, *, top: float = 0.5) -> tuple[Figure, np.ndarray]:
    """A figure of n panels of `width` × `height` inches in rows of at most `ncols` (unused ones
    hidden), with fixed margins (`top` inches above): a layout engine would double the drawing time."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    left, right, bottom = 0.75, 0.15, 0.55
    size = (left + right + width * ncols, top + bottom + height * nrows)
    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False, gridspec_kw={
        "left": left / size[0], "right": 1 - right / size[0], "bottom": bottom / size[1], "top": 1 - top / size[1],
        "wspace": 0.3, "hspace": 0.45})
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return figure, axes


def trajectory_figure(fit: pd.DataFrame) -> Figure:
    """One panel per experiment: each observable's measurements with ±σ error bars (points) and the
    simulation at the optimum (line through the measurement times), one colour per observable."""
    experiments = sorted(fit["experiment"].unique())
    observables = sorted(fit["observableId"].unique())
    colour = {o: f"C{i % 10}" for i, o in enumerate(observables)}
    figure, axes = _grid(len(experiments), 4, 2.7, 2.1, top=0.6)
    for ax, experiment in zip(axes.flat, experiments):
        part = fit[fit["experiment"] == experiment].sort_values(["observableId", "time"], kind="stable")
        colours = part["observableId"].map(colour).to_numpy()
        ax.vlines(part["time"], part["low"], part["high"], colors=colours, linewidth=0.7)
        ax.scatter(part["time"], part["measurement"], s=6, c=colours, zorder=3)
        for observable, curve in part.drop_duplicates(["observableId", "time"]).groupby("observableId", sort=True):
            ax.plot(curve["time"], curve["simulation"], color=colour[observable], linewidth=1)
        ax.set_title(experiment, fontsize=8)
        ax.tick_params(labelsize=6)
    figure.supxlabel("time", fontsize=8)
    figure.supylabel("observable (points: measured ± σ, lines: simulated)", fontsize=8)
    handles = [Line2D([], [], color=colour[o], marker="o", markersize=3, linewidth=1) for o in observables]
    figure.legend(handles, observables, loc="upper center", ncols=min(len(observables), 6), fontsize=7,
                  frameon=False)
    return figure


def _ecdf(ax, values: pd.Series, **style) -> None:
    x = np.sort(values.dropna().to_numpy(dtype=float))
    if x.size:
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", **style)


def ecdf_figure(target: pd.DataFrame, plausible: pd.DataFrame, vp: pd.DataFrame, outputs: Sequence[str],
                fit: pd.DataFrame, ranges: Mapping[str, Sequence[float]]) -> Figure:
    """Per output the empirical CDFs of the target cohort, the plausible patients and the VPs (the KS
    statistic is the largest vertical gap of VP and target; its p-value, from the vpop `fit` table,
    in the title) and the plausible range (`ranges`: output → [lower, upper])."""
    ks_p = dict(zip(fit["output"], fit["ks_p"]))
    figure, axes = _grid(len(outputs), 3, 3.6, 2.8)
    for k, (ax, name) in enumerate(zip(axes.flat, outputs)):
        _ecdf(ax, plausible[name], color="0.6", linewidth=1, label="plausible")
        _ecdf(ax, target[name], color="black", linewidth=1.4, label="target")
        _ecdf(ax, vp[name], color="tab:blue", linewidth=1.2, label="VP")
        for bound in ranges.get(name, ()):
            ax.axvline(float(bound), color="tab:red", linestyle=":", linewidth=0.8)
        ax.set_title(f"{name} (KS p = {ks_p.get(name, math.nan):.3g})", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.legend(fontsize=7, frameon=False, loc="lower right")
    figure.supylabel("cumulative fraction", fontsize=8)
    return figure


def parameter_figure(plausible: pd.DataFrame, vp: pd.DataFrame, parameters: Sequence[str]) -> Figure:
    """Each varied parameter's distribution among the plausible patients and the VPs (densities,
    log₁₀ axis where all values are positive and span more than a decade): where the selection moved
    mass to fit the cohort."""
    figure, axes = _grid(len(parameters), 4, 2.8, 2.2, top=0.2)
    for k, (ax, name) in enumerate(zip(axes.flat, parameters)):
        both = pd.concat([plausible[name], vp[name]]).astype(float).dropna()
        logarithmic = bool(len(both)) and both.min() > 0 and both.max() / both.min() > 10
        transform = np.log10 if logarithmic else np.asarray
        values = transform(both.to_numpy())
        bins = np.linspace(values.min(), values.max(), 25) if values.size and np.ptp(values) > 0 else 10
        ax.hist(transform(plausible[name].dropna().to_numpy(dtype=float)), bins=bins, density=True, alpha=0.5,
                color="tab:gray", label="plausible")
        ax.hist(transform(vp[name].dropna().to_numpy(dtype=float)), bins=bins, density=True, histtype="step",
                color="tab:blue", label="VP")
        ax.set_xlabel(f"log₁₀ {name}" if logarithmic else name, fontsize=8)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.legend(fontsize=7, frameon=False)
    figure.supylabel("density", fontsize=8)
    return figure


def acceptance_figure(acceptance: pd.DataFrame) -> Figure:
    """Patients at each stage (candidates, plausible, VPs), each bar labelled with its count and
    share of the candidates."""
    figure = Figure(figsize=(5, 2.6), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    y = np.arange(len(acceptance))
    counts = acceptance["patients"].to_numpy(dtype=float)
    ax.barh(y, counts, color=["0.6", "tab:gray", "tab:blue"][: len(y)])
    for yi, count, share in zip(y, counts, acceptance["share of candidates"]):
        ax.annotate(f"{int(count)} ({100 * share:.3g} %)", (count, yi), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(y, acceptance["stage"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, counts.max() * 1.4)  # room for the labels
    ax.set_xlabel("patients", fontsize=8)
    ax.tick_params(labelsize=7)
    return figure
