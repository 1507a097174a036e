"""Every figure qspflow draws, as PNG bytes that are the same on every run.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot state, no display);
PNGs carry no software tag or timestamp. Functions take plain tables, never files: `qspflow.steps`
decides where the bytes go. matplotlib is imported here only, so the rest of the library loads
without it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def png_bytes(figure: Figure) -> bytes:
    """The figure as byte-stable PNG (Agg, no metadata that varies)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def qc_figure(measurements: pd.DataFrame, thresholds: pd.DataFrame) -> Figure:
    """Normalized value over time per observable and experiment, with the binarization threshold."""
    observables = sorted(measurements["observable"].unique())
    experiments = sorted(measurements["experiment"].unique())
    colour = {e: f"C{i % 10}" for i, e in enumerate(experiments)}
    threshold = dict(zip(thresholds["observable"], thresholds["threshold"], strict=True))
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
        ax.axhline(threshold[observable], linestyle="--", linewidth=0.8, color="0.3")
        ax.set_title(observable, fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(observables):]:
        ax.set_visible(False)
    fig.supxlabel("time", fontsize=7)
    fig.supylabel("normalized value", fontsize=7)
    if len(experiments) <= 12:  # beyond that a legend hides the data
        axes[0, 0].legend(fontsize=5, frameon=False)
    return fig


def waterfall_figure(starts: pd.DataFrame, converged: Collection[str]) -> Figure:
    """Distance of every start's final log-likelihood from the best, best first (symlog axis, so
    that starts at the optimum sit on 0); starts whose `status` is in `converged` filled."""
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    ordered = starts[np.isfinite(starts["llh"])].sort_values(["llh", "start"], ascending=[False, True])
    rank = np.arange(1, len(ordered) + 1)
    gap = (ordered["llh"].max() - ordered["llh"]).to_numpy()
    ok = ordered["status"].isin(converged).to_numpy()
    ax.plot(rank, gap, color="0.6", linewidth=0.8)
    ax.scatter(rank[ok], gap[ok], color="tab:blue", label="converged", zorder=3)
    ax.scatter(rank[~ok], gap[~ok], facecolor="none", edgecolor="tab:red", label="not converged", zorder=3)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("start (sorted by log-likelihood)")
    ax.set_ylabel("best log-likelihood − log-likelihood")
    ax.set_title(f"Waterfall of {len(starts)} local starts (best llh {ordered['llh'].max():.6f})", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left")
    figure.tight_layout()
    return figure


def fit_figure(fit: pd.DataFrame) -> Figure:
    """Simulated against measured value, one panel per observable, with the identity line."""
    observables = sorted(fit["observableId"].unique())
    columns = min(3, len(observables))
    rows = math.ceil(len(observables) / columns)
    figure = Figure(figsize=(4 * columns, 3.6 * rows))
    for k, observable in enumerate(observables):
        ax = figure.add_subplot(rows, columns, k + 1)
        part = fit[fit["observableId"] == observable]
        values = pd.concat([part["measurement"], part["simulation"]]).astype(float)
        low, high = float(values.min()), float(values.max())
        ax.plot([low, high], [low, high], color="0.6", linewidth=0.8)
        ax.scatter(part["measurement"], part["simulation"], s=8, color="tab:blue")
        ax.set_title(observable, fontsize=9)
        ax.set_xlabel("measured", fontsize=8)
        ax.set_ylabel("simulated", fontsize=8)
    figure.tight_layout()
    return figure


def profile_figure(profiles: pd.DataFrame, threshold: float) -> Figure:
    """Profile log-likelihood minus its optimum for each parameter, with the interval's threshold."""
    names = list(dict.fromkeys(profiles["parameter"]))
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(4 * columns, 3 * rows))
    if not names:
        figure.text(0.5, 0.5, "no profiles computed", ha="center", va="center")
        return figure
    top = profiles["llh"].max()
    for k, name in enumerate(names):
        ax = figure.add_subplot(rows, columns, k + 1)
        part = profiles[profiles["parameter"] == name]
        ax.plot(part["value"], part["llh"] - top, marker=".", color="tab:blue")
        ax.axhline(-threshold, color="tab:red", linestyle="--", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("value (parameter scale)", fontsize=8)
        ax.set_ylabel("Δ log-likelihood", fontsize=8)
    figure.tight_layout()
    return figure


def vpop_figure(vp: pd.DataFrame, target: pd.DataFrame, outputs: list[str]) -> Figure:
    """Virtual population against the target cohort: each output's histogram on the diagonal (VP
    and target, as densities), each pair of outputs as a scatter below it."""
    k = len(outputs)
    figure = Figure(figsize=(2.8 * k, 2.6 * k))
    for a, name_a in enumerate(outputs):
        for b, name_b in enumerate(outputs[: a + 1]):
            ax = figure.add_subplot(k, k, a * k + b + 1)
            if a == b:
                both = pd.concat([vp[name_a], target[name_a]]).astype(float).dropna()
                bins = np.linspace(float(both.min()), float(both.max()), 25) if len(both) else 10
                ax.hist(target[name_a].dropna(), bins=bins, density=True, alpha=0.5, color="tab:gray",
                        label="target")
                ax.hist(vp[name_a].dropna(), bins=bins, density=True, histtype="step", color="tab:blue",
                        label="VP")
                ax.set_title(name_a, fontsize=9)
                if a == 0:
                    ax.legend(fontsize=7, frameon=False)
            else:
                ax.scatter(target[name_b], target[name_a], s=4, color="tab:gray", alpha=0.6)
                ax.scatter(vp[name_b], vp[name_a], s=3, color="tab:blue", alpha=0.4)
            if a == k - 1:
                ax.set_xlabel(name_b, fontsize=8)
            if b == 0 and a != b:
                ax.set_ylabel(name_a, fontsize=8)
            ax.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def _output_panels(outputs: list[str], size: tuple[float, float, float], empty: str) -> tuple[Figure, list]:
    """A figure of one panel per output, three to a row (`size`: panel width, base height, row height), and
    the (axes, output) pairs; panels left over are hidden, and without outputs the figure says `empty`."""
    width, base, height = size
    figure = Figure(figsize=(width * max(1, min(3, len(outputs))), base + height * max(1, math.ceil(len(outputs) / 3))),
                    layout="constrained")
    FigureCanvasAgg(figure)
    if not outputs:
        figure.text(0.5, 0.5, empty, ha="center", va="center")
        return figure, []
    axes = figure.subplots(math.ceil(len(outputs) / 3), min(3, len(outputs)), squeeze=False)
    for ax in axes.flat[len(outputs):]:
        ax.set_visible(False)
    return figure, list(zip(axes.flat, outputs))


def sobol_figure(table: pd.DataFrame) -> Figure:
    """Sobol S1 and ST with their CIs, one panel per output (a `qspflow.sensitivity` table)."""
    rows = table[table["index"].isin(["S1", "ST"])]
    outputs = sorted(rows["output"].unique())
    figure, panels = _output_panels(outputs, (4.2, 0.9, 2.6), "Sobol analysis not run")
    for ax, output in panels:
        here = rows[rows["output"] == output]
        parameters = sorted(here["parameter"].unique())
        y = np.arange(len(parameters))
        for shift, (index, colour) in zip((-0.18, 0.18), (("S1", "tab:blue"), ("ST", "tab:orange"))):
            part = here[here["index"] == index].set_index("parameter").reindex(parameters)
            value = part["value"].to_numpy(dtype=float)
            error = np.vstack([value - part["ci_low"].to_numpy(dtype=float),
                               part["ci_high"].to_numpy(dtype=float) - value])
            ax.barh(y + shift, value, height=0.36, color=colour, label=index)
            ax.errorbar(value, y + shift, xerr=np.abs(np.nan_to_num(error)), fmt="none", ecolor="0.2", linewidth=0.8)
        ax.set_yticks(y, parameters, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(output, fontsize=9)
        ax.set_xlabel("Sobol index", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    return figure


def morris_figure(table: pd.DataFrame) -> Figure:
    """Morris μ* (with its CI) against σ, one panel per output, points labelled by parameter."""
    outputs = sorted(table["output"].unique())
    figure, panels = _output_panels(outputs, (4.0, 0.6, 3.2), "Morris screening not run")
    for ax, output in panels:
        here = table[table["output"] == output]
        star = here[here["index"] == "mu_star"].set_index("parameter").sort_index()
        sigma = here[here["index"] == "sigma"].set_index("parameter")["value"].reindex(star.index)
        x = star["value"].to_numpy(dtype=float)
        ax.errorbar(x, sigma.to_numpy(dtype=float),
                    xerr=np.abs(np.nan_to_num(np.vstack([x - star["ci_low"].to_numpy(dtype=float),
                                                         star["ci_high"].to_numpy(dtype=float) - x]))),
                    fmt="o", markersize=3, color="tab:blue", ecolor="0.6", linewidth=0.8)
        for name, xi, yi in zip(star.index, x, sigma.to_numpy(dtype=float)):
            ax.annotate(name, (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_title(output, fontsize=9)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("μ*", fontsize=8)
        ax.set_ylabel("σ", fontsize=8)
        ax.tick_params(labelsize=7)
    return figure
