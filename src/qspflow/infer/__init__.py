"""Boolean-network inference from binarized data against a prior knowledge network (PKN).

Two kinds of data, two exact methods; both return a ranked ensemble (`InferenceResult`).

Steady-state perturbation data (CellNOpt style)
-----------------------------------------------
Stimuli and inhibitors, readouts at one time after stimulation. A candidate model gives each
node an OR of AND-terms ("hyperedges"); a term is a conjunction of up to `max_inputs` signed PKN
parents (`x` for an activating edge, `!x` for an inhibiting one), as CellNOptR's expansion makes
them. The PKN is first cut to the nodes that are both controllable (reachable from a stimulus or
an inhibitor) and observable (reaching a readout), keeping every measured, stimulated and
inhibited node (CellNOptR's `cutNONC`).

Semantics of a model under an experiment: stimulus nodes are inputs clamped to 1 (stimulated)
or 0; inhibited nodes are forced to 0; every other node starts at 0. The model is updated
synchronously (clamps held) for `horizon` steps, one more than the number of non-input nodes of
the compressed PKN, which is enough for every acyclic model (and every model without negative
literals) to settle. If the last two states differ the model reaches no fixpoint from there (it
oscillates or is still moving) and every readout of that experiment counts as mismatched.

A mismatch is an (experiment, readout) pair where the model's fixpoint differs from the
binarized datum. The score is `mismatches + size_penalty × size`, size being the number of
literals over all terms. With the default `size_penalty` of 1e-4 the penalty of any realistic
model stays below one mismatch, so fit comes first and size breaks ties, as CellNOptR's small
default size factor does. The optimum is found and proven by clingo (answer set programming with
optimization, after caspo: Guziolowski et al. 2013, Videla et al. 2015); every optimal model is
enumerated (`optN`). With `tolerance` > 0 the ensemble also holds the models with at most
`tolerance` more mismatches than the optimum and no more literals than it (caspo's fit and size
tolerances, size tolerance 0). A node's terms never contain one another, so a rule is the set of
prime implicants of a unate function: two models are logically equivalent exactly when they
have the same terms, and each appears once.

A self-loop in the PKN (autoregulation) makes the node a parent of itself like any other: `A`
in A's term keeps A on once another term turned it on, `!A` makes A oscillate unless another
term holds it on (every readout of that experiment then counts as mismatched).

Time series (best-fit extension)
--------------------------------
Binarized states of every PKN node at consecutive times. For each node, every regulator set of
at most `max_inputs` of its PKN parents and every Boolean function on it that depends on each
regulator is scored by its inconsistency, the number of transitions t → t+1 it contradicts
(Lähdesmäki et al. 2003; BoolNet's `reconstructNetwork(method="bestfit")`). Every function at
the minimum over all regulator sets is kept. With `respect_signs` the function must also be
monotone in each regulator with the PKN edge's sign; a self-loop makes the node's own value a
candidate regulator. Nodes without PKN parents are inputs. The ensemble is the product of the
nodes' optimal functions, of which the `max_models` smallest (by literals of their minimal DNF)
are kept.

Ranking: by score, then size, then the `.bnet` text; ids `net_1`, `net_2`, ... in that order.
A network's `missed` lists what it gets wrong: `experiment:readout` (steady state) or
`experiment:node@time`, the time of the state it mispredicts (time series).

Modules: `observations` (reading and checking binarized data, `SteadyStateData`,
`TimeSeriesData`), `steady_state` (ASP), `time_series` (best-fit), `ensemble` (rules from terms,
ranking, `InferenceResult`, the index and network texts). `infer_networks` below picks the method.
"""

from __future__ import annotations

import logging

import pandas as pd

from qspflow import options
from qspflow.boolean import Pkn
from qspflow.errors import ConfigError
from qspflow.infer.ensemble import INDEX_COLUMNS, InferenceResult, dnf_rule, ensemble_texts
from qspflow.infer.observations import (
    BINARIZED_COLUMNS,
    Experiment,
    SteadyStateData,
    TimeSeriesData,
    check_binarized,
    check_nodes,
    read_binarized,
    steady_state_data,
    time_series_data,
)
from qspflow.infer.steady_state import (
    LogicSpace,
    compress_pkn,
    infer_steady_state,
    logic_space,
    network_mismatches,
    steady_state,
)
from qspflow.infer.time_series import MAX_TIME_SERIES_INPUTS, FittedFunction, best_fit, infer_time_series

log = logging.getLogger("qspflow.infer")

METHODS = ("auto", "steady_state", "time_series")


def infer_networks(
    pkn: Pkn,
    binarized: pd.DataFrame,
    experiments: pd.DataFrame,
    *,
    method: str = "auto",
    time: float | None = None,
    max_inputs: int = 3,
    size_penalty: float = 1e-4,
    tolerance: int = 0,
    respect_signs: bool = True,
    max_models: int = 10000,
    drug_target: str | None = None,
    inhibiting_dose: float | None = None,
    pkn_source: str | None = None,
    binarized_source: str | None = None,
    experiments_source: str | None = None,
) -> InferenceResult:
    """Infer a ranked ensemble from prepared data (`binarized`, `experiments`) against `pkn`.

    `method="auto"` takes the time-series route when every PKN node is observed at two or more
    times, else the steady-state route at `time`. `drug_target` is the node every `dose:` column's
    drug inhibits at `inhibiting_dose` or more. Options are checked first (`ConfigError`), then
    the data's nodes against the PKN (`DataError` naming the file and column).
    """
    check_options(method=method, time=time, max_inputs=max_inputs, size_penalty=size_penalty, tolerance=tolerance,
                  respect_signs=respect_signs, max_models=max_models, inhibiting_dose=inhibiting_dose)
    check_binarized(binarized, binarized_source)
    check_nodes(pkn, binarized["observable"].unique(), binarized_source, "observable")
    for column in experiments.columns:
        kind, _, node = str(column).partition(":")
        if kind in ("stimulus", "inhibitor"):
            check_nodes(pkn, [node], experiments_source, str(column))
    doses = [str(c).split(":", 1)[1] for c in experiments.columns if str(c).startswith("dose:")]
    drug_targets = {}
    if drug_target:
        if drug_target not in pkn.nodes:
            raise ConfigError(None, key="drug.target", expected=f"a node of the PKN {pkn_source or ''}".rstrip(),
                              found=drug_target)
        if len(doses) > 1:
            raise ConfigError(None, key="drug.target", expected="one drug per study",
                              message=f"{experiments_source or 'the experiment table'} has dose columns "
                                      f"for {', '.join(doses)}")
        drug_targets = {d: drug_target for d in doses}
    if method == "auto":
        observed = set(binarized["observable"])
        repeated = binarized.groupby("experiment")["time"].nunique().max() >= 2
        method = "time_series" if observed >= set(pkn.nodes) and repeated else "steady_state"
        log.info("inference method: %s", method)
    log.info("PKN %s: %d nodes, %d edges", pkn_source or "(in memory)", len(pkn.nodes), len(pkn.edges))
    if method == "time_series":
        data = time_series_data(binarized, pkn.nodes, experiments, drug_targets=drug_targets,
                                inhibiting_dose=inhibiting_dose, binarized_source=binarized_source,
                                experiments_source=experiments_source)
        return infer_time_series(pkn, data, max_inputs=max_inputs, respect_signs=respect_signs,
                                 size_penalty=size_penalty, max_models=max_models)
    data = steady_state_data(binarized, experiments, time=time, drug_targets=drug_targets,
                             inhibiting_dose=inhibiting_dose, binarized_source=binarized_source,
                             experiments_source=experiments_source)
    return infer_steady_state(pkn, data, max_inputs=max_inputs, size_penalty=size_penalty, tolerance=tolerance,
                              max_models=max_models)


def check_options(*, method: str = "auto", time: float | None = None, max_inputs: int = 3,
                  size_penalty: float = 1e-4, tolerance: int = 0, respect_signs: bool = True,
                  max_models: int = 10000, drug_target: str | None = None,
                  inhibiting_dose: float | None = None) -> None:
    """Raise `ConfigError` for an inference option out of range (before any data is read);
    options that only the data can judge (`time`, `drug_target`) are checked against it later."""
    options.choice("infer.method", method, METHODS)
    if time is not None:
        options.number("infer.time", time, minimum=0)
    options.integer("infer.max_inputs", max_inputs, 1)
    if method == "time_series" and max_inputs > MAX_TIME_SERIES_INPUTS:
        raise ConfigError(None, key="infer.max_inputs", found=max_inputs,
                          expected=f"1 to {MAX_TIME_SERIES_INPUTS} for time-series inference")
    options.number("infer.size_penalty", size_penalty, positive=True)
    options.integer("infer.tolerance", tolerance, 0)
    options.flag("infer.respect_signs", respect_signs)
    options.integer("infer.max_models", max_models, 1)
    if inhibiting_dose is not None:
        options.number("infer.inhibiting_dose", inhibiting_dose, positive=True)


__all__ = [
    "BINARIZED_COLUMNS",
    "INDEX_COLUMNS",
    "MAX_TIME_SERIES_INPUTS",
    "METHODS",
    "Experiment",
    "FittedFunction",
    "InferenceResult",
    "LogicSpace",
    "SteadyStateData",
    "TimeSeriesData",
    "best_fit",
    "check_options",
    "compress_pkn",
    "dnf_rule",
    "ensemble_texts",
    "infer_networks",
    "infer_steady_state",
    "infer_time_series",
    "logic_space",
    "network_mismatches",
    "read_binarized",
    "steady_state",
    "steady_state_data",
    "time_series_data",
]
