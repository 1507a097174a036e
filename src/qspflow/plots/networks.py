"""Figures of the report notebooks on data and networks: binarized data, network graphs, network fit.

Like every figure of `qspflow.plots` they take plain tables and mappings (not `BooleanNetwork`s:
`qspflow.report.tables` turns a network into its terms) and return a matplotlib `Figure` on the Agg
canvas. A network is drawn left to right in layers (`layered_layout`), so that signals run from the
inputs to the readouts, with no graphviz needed and the same picture on every run.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Arc, Patch, Rectangle

Literal = tuple[str, int]  # (node, sign): 1 activates, -1 inhibits, 0 either (a dual regulator)
Terms = Sequence[Sequence[Literal]]  # a node's rule: an OR of AND-terms of signed literals

ACTIVATES, INHIBITS, DUAL = "#2e7d32", "#c62828", "0.45"
STATE_COLOURS = ListedColormap(["#d9d9d9", "#3b6ea8"])  # 0, 1; white: not measured
STYLE_COLOURS = colormaps["tab20"]
KINDS = {"input": "#fde9b8", "readout": "#cfe3f5", "other": "white"}
SWEEPS = 4  # barycentre passes that reorder the nodes within their layers (fewer crossings)


def layered_layout(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Positions (x = layer, y) of a directed graph drawn left to right.

    A node's layer is the longest path to it from a node without parents, cycles counted as one
    node (the graph's condensation), so every edge outside a cycle points right. Within a layer
    nodes are ordered by the mean position of their neighbours in the layer before (then after),
    ties by name, and centred on y = 0, first node on top.
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(nodes))
    graph.add_edges_from(sorted((s, t) for s, t in edges if s != t))
    dag = nx.condensation(graph)
    depth: dict[int, int] = {}
    for component in nx.lexicographical_topological_sort(dag):
        depth[component] = max((depth[p] + 1 for p in dag.predecessors(component)), default=0)
    layer = {node: depth[dag.graph["mapping"][node]] for node in graph}
    layers = [sorted(n for n in graph if layer[n] == k) for k in range(max(layer.values(), default=-1) + 1)]
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        order = {n: i for members in layers for i, n in enumerate(members)}
        for k in range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1):
            side = k - 1 if downward else k + 1
            neighbours = graph.predecessors if downward else graph.successors

            def centre(node: str) -> float:
                near = [order[m] for m in neighbours(node) if layer[m] == side]
                return sum(near) / len(near) if near else order[node]

            layers[k] = sorted(layers[k], key=lambda n: (centre(n), order[n]))
            order.update({n: i for i, n in enumerate(layers[k])})
    return {n: (float(k), (len(members) - 1) / 2 - i)
            for k, members in enumerate(layers) for i, n in enumerate(members)}


def network_figure(rules: Mapping[str, Terms], *, inputs: Collection[str] = (), readouts: Collection[str] = (),
                   title: str = "") -> Figure:
    """A Boolean network as a graph: arrows activate, bars inhibit, and the literals of an AND-term
    meet in a small `&` gate before it acts on its node (several terms of a node are ORed).

    `rules` maps every node to its terms (an input or constant node: none). `inputs` (stimuli)
    and `readouts` (measured nodes) are filled in their own colours.
    """
    edges = [(s, t) for t, terms in rules.items() for term in terms for s, _ in term]
    position = layered_layout(list(rules), edges)
    width = max(x for x, _ in position.values()) + 1 if position else 1
    height = max((sum(1 for x, _ in position.values() if x == k) for k in range(int(width))), default=1)
    figure = Figure(figsize=(1.9 * width + 1.2, 0.75 * height + 1.3))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for target, terms in rules.items():
        tx, ty = position[target]
        gates = [term for term in terms if len(term) > 1]
        for term in terms:
            if len(term) == 1:
                (source, sign), = term
                _edge(ax, position[source], (tx, ty), sign, same=source == target)
        for k, term in enumerate(gates):
            gy = np.mean([position[s][1] for s, _ in term] + [ty]) + 0.3 * (k - (len(gates) - 1) / 2)
            gate = (tx - 0.35, gy)
            for source, sign in term:
                _edge(ax, position[source], gate, sign, to_gate=True)
            _edge(ax, gate, (tx, ty), 1, from_gate=True)
            ax.text(*gate, "&", ha="center", va="center", fontsize=7, zorder=4,
                    bbox={"boxstyle": "circle,pad=0.15", "facecolor": "white", "edgecolor": "0.3", "linewidth": 0.8})
    for node, (x, y) in position.items():
        kind = "input" if node in inputs else "readout" if node in readouts else "other"
        ax.text(x, y, node, ha="center", va="center", fontsize=8, zorder=5,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": KINDS[kind], "edgecolor": "0.2", "linewidth": 0.8})
    ys = [y for _, y in position.values()] or [0.0]
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.axis("off")
    handles = [Line2D([], [], color=ACTIVATES, marker=">", markersize=5, label="activates"),
               Line2D([], [], color=INHIBITS, marker="|", markersize=8, label="inhibits"),
               Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="none", label="& AND gate"),
               Patch(facecolor=KINDS["input"], edgecolor="0.2", label="input"),
               Patch(facecolor=KINDS["readout"], edgecolor="0.2", label="readout")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5, fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def _edge(ax, start: tuple[float, float], end: tuple[float, float], sign: int, *, same: bool = False,
          to_gate: bool = False, from_gate: bool = False) -> None:
    """One signed edge; a self-loop is an arc above its node, a backward edge a curve."""
    colour = {1: ACTIVATES, -1: INHIBITS}.get(sign, DUAL)
    if same:
        ax.add_patch(Arc((start[0], start[1] + 0.2), 0.28, 0.32, theta1=-50, theta2=230, color=colour, linewidth=1))
        return
    curved = end[0] <= start[0] and not from_gate
    ax.annotate("", xy=end, xytext=start, zorder=3 if from_gate else 2,
                arrowprops={"arrowstyle": "-|>" if sign >= 0 else "-[,widthB=0.5", "color": colour, "linewidth": 1,
                            "shrinkA": 7 if from_gate else 14, "shrinkB": 7 if to_gate else 14,
                            "connectionstyle": f"arc3,rad={0.35 if curved else 0.0}"})


def time_courses_figure(measurements: pd.DataFrame, thresholds: pd.DataFrame) -> Figure:
    """Each observable's normalized time courses, one line per experiment, with its binarization
    threshold dashed; unlike the prepare step's QC figure every experiment is named in the legend
    (20 colours, then a second marker), however many there are."""
    observables = sorted(measurements["observable"].unique())
    experiments = sorted(measurements["experiment"].unique())
    style = {e: (f"C{i % 10}" if len(experiments) <= 10 else STYLE_COLOURS(i % 20), "os^"[i // 20 % 3])
             for i, e in enumerate(experiments)}
    threshold = dict(zip(thresholds["observable"], thresholds["threshold"], strict=True))
    columns = min(3, len(observables))
    rows = math.ceil(len(observables) / columns)
    figure = Figure(figsize=(3.2 * columns + 2.0, 2.4 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    for ax, observable in zip(axes.flat, observables):
        part = measurements[measurements["observable"] == observable].dropna(subset=["normalized"])
        for experiment, series in part.groupby("experiment", sort=True):
            colour, marker = style[experiment]
            ax.plot(series["time"], series["normalized"], color=colour, marker=marker, markersize=3, linewidth=1)
        ax.axhline(threshold[observable], color="0.3", linestyle="--", linewidth=0.8)
        ax.set_title(observable, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(observables):]:
        ax.set_visible(False)
    figure.supxlabel("time", fontsize=8)
    figure.supylabel("normalized value", fontsize=8)
    handles = [Line2D([], [], color=c, marker=m, markersize=4, linewidth=1, label=e) for e, (c, m) in style.items()]
    handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=0.8, label="threshold"))
    figure.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    return figure


def binarized_figure(binarized: pd.DataFrame) -> Figure:
    """The binarized states as a heat map: one row per experiment, one block of columns per
    observable with its measured times in order; a state never measured is left blank."""
    observables = sorted(binarized["observable"].unique())
    experiments = sorted(binarized["experiment"].unique())
    times = {o: sorted(binarized.loc[binarized["observable"] == o, "time"].unique()) for o in observables}
    columns = [(o, t) for o in observables for t in times[o]]
    grid = (binarized.set_index(["experiment", "observable", "time"])["state"].astype(float)
            .unstack(["observable", "time"]).reindex(index=experiments, columns=pd.MultiIndex.from_tuples(columns)))
    figure = Figure(figsize=(min(2.5 + 0.16 * len(columns), 16), 1.6 + 0.22 * len(experiments)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    cmap = STATE_COLOURS.with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(grid.to_numpy()), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    start = 0
    for observable in observables:
        end = start + len(times[observable])
        ax.axvline(end - 0.5, color="0.2", linewidth=0.8)
        ax.text((start + end - 1) / 2, -0.8, observable, ha="center", va="bottom", fontsize=8)
        start = end
    ax.set_xticks(range(len(columns)), [f"{t:g}" for _, t in columns], fontsize=6, rotation=90)
    ax.set_yticks(range(len(experiments)), experiments, fontsize=7)
    ax.set_xlabel("time (within each observable)", fontsize=8)
    ax.legend(handles=[Patch(facecolor=STATE_COLOURS(0), edgecolor="0.5", label="0 (low)"),
                       Patch(facecolor=STATE_COLOURS(1), edgecolor="0.5", label="1 (high)"),
                       Patch(facecolor="white", edgecolor="0.5", label="not measured")],
              loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def network_fit_figure(fit: pd.DataFrame, title: str = "") -> Figure:
    """A network's predictions against the binarized data (a `qspflow.report.tables.network_fit`
    table), one row per experiment and one column per node.

    With one observation per cell (steady-state data) the cell is filled by the observed state and
    shows the predicted one, a mismatch framed and in red ('–': the network reaches no steady
    state there). With several (time series) the cell is shaded by the share of mismatched
    transitions and labelled `mismatched/observed`.
    """
    experiments = sorted(fit["experiment"].unique())
    nodes = sorted(fit["node"].unique())
    cells = fit.groupby(["experiment", "node"], sort=True)
    single = bool(cells.size().max() == 1)
    figure = Figure(figsize=(2.2 + 0.55 * len(nodes), 1.4 + 0.24 * len(experiments)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if single:
        shade = fit.pivot(index="experiment", columns="node", values="observed").astype(float)
        ax.imshow(shade.reindex(index=experiments, columns=nodes).to_numpy(), cmap=STATE_COLOURS, vmin=0, vmax=1,
                  aspect="auto")
    else:
        shade = 1 - cells["match"].mean().unstack()
        ax.imshow(shade.reindex(index=experiments, columns=nodes).to_numpy(dtype=float), cmap="Reds", vmin=0, vmax=1,
                  aspect="auto")
    for (experiment, node), rows in cells:
        i, j = experiments.index(experiment), nodes.index(node)
        wrong = int((~rows["match"]).sum())
        if single:
            predicted = rows["predicted"].iloc[0]
            label = "–" if pd.isna(predicted) else str(int(predicted))
            colour = INHIBITS if wrong else "white" if rows["observed"].iloc[0] == 1 else "0.2"
            if wrong:
                ax.add_patch(Rectangle((j - 0.45, i - 0.42), 0.9, 0.84, fill=False, edgecolor=INHIBITS, linewidth=1.5))
        else:
            label, colour = f"{wrong}/{len(rows)}", "0.1"
        ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour,
                fontweight="bold" if wrong else "normal")
    ax.set_xticks(range(len(nodes)), nodes, fontsize=7, rotation=45, ha="right")
    ax.set_yticks(range(len(experiments)), experiments, fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    if single:
        handles = [Patch(facecolor=STATE_COLOURS(0), edgecolor="0.5", label="observed 0"),
                   Patch(facecolor=STATE_COLOURS(1), edgecolor="0.5", label="observed 1"),
                   Patch(facecolor="none", edgecolor=INHIBITS, linewidth=1.5, label="mismatch (label: predicted)")]
    else:
        handles = [Patch(facecolor="#e57373", edgecolor="0.5", label="share of transitions mismatched")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 2.0 / (2 + len(experiments))),
              ncol=3, fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
