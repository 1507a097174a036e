"""The tables the report notebooks `data`, `networks`, `models` and `summary` show, shaped for a reader.

Each function takes step outputs (frames read from the file contract, or its paths) and returns a
small table, indexed by what a row is about, or plain text; `show` displays at most `MAX_ROWS` rows.
PEtab tables are read as the TSV files they are, by their column names, not through libpetab:
importing it takes seconds, which every report kernel would pay.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sympy
from IPython.display import Markdown, display

from qspflow.boolean import And, BooleanNetwork, Const, Expr, Not, Or, Var, evaluate, read_bnet, sign_of
from qspflow.errors import PetabError
from qspflow.infer import SteadyStateData, TimeSeriesData, steady_state, steady_state_data, time_series_data
from qspflow.io import parse_user_yaml, read_table, read_user_text
from qspflow.model.formulas import Formulas
from qspflow.model.sbml import read_sbml

PathLike = str | os.PathLike[str]

MAX_ROWS = 40
FIT_COLUMNS = ["experiment", "time", "node", "observed", "predicted", "match"]
PETAB_PARAMETER_COLUMNS = ["parameterId", "parameterScale", "lowerBound", "upperBound", "nominalValue", "estimate"]
PETAB_OBSERVABLE_COLUMNS = ["observableId", "observableFormula", "noiseFormula"]
ESTIMATE_COLUMNS = ["parameter", "estimate", "lower_95", "upper_95", "identifiable"]


def options_table(section: Mapping[str, object]) -> pd.DataFrame:
    """A config section as one row per option, nested sections as dotted keys (`bounds.tau`),
    other values as JSON, in the config's order."""
    rows: dict[str, str] = {}

    def add(key: str, value: object) -> None:
        if isinstance(value, Mapping) and value:
            for name, inner in value.items():
                add(f"{key}.{name}", inner)
        else:
            rows[key] = value if isinstance(value, str) else json.dumps(value)

    for key, value in section.items():
        add(key, value)
    return pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name="option"))


def show(frame: pd.DataFrame) -> None:
    """Display a table in the notebook: its first `MAX_ROWS` rows (a report shows a table, not a
    dump) with every cell in full, and how many more rows there are."""
    with pd.option_context("display.max_colwidth", None):
        display(frame.iloc[:MAX_ROWS])
    if len(frame) > MAX_ROWS:
        display(Markdown(f"… and {len(frame) - MAX_ROWS} more rows, not shown."))


# --- data -------------------------------------------------------------------------------------


def data_overview(measurements: pd.DataFrame, experiments: pd.DataFrame) -> pd.DataFrame:
    """How much data the study has: experiments, observables, time points, values measured and
    missing, replicates, and the perturbations of the experiment table."""
    keys = measurements.groupby(["experiment", "time", "observable"]).size()
    factors = [c for c in experiments.columns if c != "experiment"]
    rows = {
        "experiments": measurements["experiment"].nunique(),
        "observables": measurements["observable"].nunique(),
        "time points": measurements["time"].nunique(),
        "values measured": int(measurements["value"].notna().sum()),
        "values missing": int(measurements["value"].isna().sum()),
        "values per experiment, time and observable (replicates)": int(keys.max()) if len(keys) else 0,
        "perturbations (experiment table)": ", ".join(factors) or "none",
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=pd.Index(list(rows), name="quantity"))


def missing_values(measurements: pd.DataFrame) -> pd.DataFrame:
    """The missing values by experiment and observable: how many and at which times."""
    missing = measurements[measurements["value"].isna()]
    return missing.groupby(["experiment", "observable"], sort=True)["time"].agg(
        missing="size", times=lambda t: ", ".join(f"{x:g}" for x in sorted(t)))


# --- networks ---------------------------------------------------------------------------------


def read_networks(paths: Mapping[str, PathLike]) -> dict[str, BooleanNetwork]:
    """The `.bnet` files {network id: path} as networks, in the given order."""
    return {name: read_bnet(path) for name, path in paths.items()}


def _literal(expr: Expr) -> tuple[str, int] | None:
    match expr:
        case Var(name):
            return name, 1
        case Not(Var(name)):
            return name, -1
    return None


def _dnf_terms(expr: Expr) -> list[list[tuple[str, int]]] | None:
    """The AND-terms of a rule in disjunctive normal form (as inference writes rules), else None."""
    match expr:
        case Const():
            return []
        case Or(args):
            terms = [_dnf_terms(a) for a in args]
            return None if any(t is None or len(t) != 1 for t in terms) else [t[0] for t in terms]
        case And(args):
            literals = [_literal(a) for a in args]
            return None if None in literals else [literals]
    literal = _literal(expr)
    return None if literal is None else [[literal]]


def network_terms(net: BooleanNetwork) -> dict[str, list[list[tuple[str, int]]]]:
    """Each node's rule as AND-terms of signed literals, what `qspflow.plots.networks` draws; an
    input has none. A rule not in DNF is drawn by its signed regulators (sign 0: dual)."""
    inputs = set(net.inputs)
    terms = {}
    for node, rule in net.rules.items():
        dnf = [] if node in inputs else _dnf_terms(rule)
        terms[node] = dnf if dnf is not None else [[(r, sign_of(rule, r))] for r in net.regulators(node)]
    return terms


def inference_method(method: str, nodes: Collection[str], binarized: pd.DataFrame) -> str:
    """The method `infer.method` stands for, decided as `qspflow.infer.infer_networks` decides "auto":
    time series when every PKN node is observed at two or more times, else steady state."""
    if method != "auto":
        return method
    repeated = binarized.groupby("experiment")["time"].nunique().max() >= 2
    return "time_series" if set(binarized["observable"]) >= set(nodes) and repeated else "steady_state"


def observations(binarized: pd.DataFrame, experiments: pd.DataFrame, *, method: str, nodes: Collection[str] = (),
                 time: float | None = None, drug_target: str | None = None,
                 inhibiting_dose: float | None = None) -> SteadyStateData | TimeSeriesData:
    """The binarized data as inference used them: with `method` "steady_state" each experiment's
    clamps and its readouts at `time`, with "time_series" the transitions of every node of `nodes`
    (the PKN's). The perturbations and the drug (`drug_target`, `inhibiting_dose`) mean what they
    meant to inference."""
    doses = [str(c).split(":", 1)[1] for c in experiments.columns if str(c).startswith("dose:")]
    targets = {d: drug_target for d in doses} if drug_target else {}
    if method == "time_series":
        return time_series_data(binarized, list(nodes), experiments, drug_targets=targets,
                                inhibiting_dose=inhibiting_dose)
    return steady_state_data(binarized, experiments, time=time, drug_targets=targets, inhibiting_dose=inhibiting_dose)


def network_fit(net: BooleanNetwork, data: SteadyStateData | TimeSeriesData) -> pd.DataFrame:
    """What `net` predicts for every observation in `data`, beside the observation (`FIT_COLUMNS`).

    Steady-state data: the synchronous fixpoint from each experiment's clamps (`predicted` is
    missing where none is reached). Time series: each node's next state from the state before.
    """
    rows = []
    if isinstance(data, TimeSeriesData):
        for before, after, fitted, (experiment, at) in zip(data.before, data.after, data.fitted, data.labels):
            state = dict(zip(data.nodes, before.tolist()))
            rows += [(experiment, at, node, int(after[k]), int(evaluate(net.rules[node], state)))
                     for k, node in enumerate(data.nodes) if fitted[k]]
    else:
        horizon = len(net.nodes) - len(net.inputs) + 1  # as qspflow.infer.network_mismatches
        for experiment in data.experiments:
            state = steady_state(net, experiment.clamps, horizon)
            rows += [(experiment.name, data.time, node, value, pd.NA if state is None else state[node])
                     for node, value in sorted(experiment.observed.items())]
    fit = pd.DataFrame(rows, columns=FIT_COLUMNS[:-1]).astype({"observed": "int64", "predicted": "Int64"})
    fit["match"] = (fit["observed"] == fit["predicted"]).fillna(False).astype(bool)
    return fit.sort_values(FIT_COLUMNS[:3], ignore_index=True)


def mismatches(fit: pd.DataFrame) -> pd.DataFrame:
    """The observations a network gets wrong (a `network_fit` table's rows that do not match)."""
    return fit.loc[~fit["match"], FIT_COLUMNS[:-1]].set_index(["experiment", "time", "node"])


def ranking_with_fit(index: pd.DataFrame, fits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The inference index (score, mismatches, size, missed) with the mismatches recomputed here
    from each network's fit, which must agree with those inference reported."""
    table = index.set_index("network")
    table["recomputed"] = [int((~fits[n]["match"]).sum()) if n in fits else pd.NA for n in table.index]
    return table


# --- models -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelOverview:
    """One model as the models report shows it: counts, plain-text equations, PEtab tables."""

    name: str
    description: str
    counts: pd.DataFrame
    equations: str
    estimated: pd.DataFrame
    observables: pd.DataFrame


def petab_files(problem: PathLike) -> dict[str, Path]:
    """The SBML model, parameter, observable and measurement files a PEtab (v1) YAML names."""
    config = parse_user_yaml(read_user_text(problem, PetabError), problem, PetabError)
    folder = Path(problem).parent
    entry = config["problems"][0]
    return {"sbml": folder / entry["sbml_files"][0], "parameters": folder / config["parameter_file"],
            "observables": folder / entry["observable_files"][0],
            "measurements": folder / entry["measurement_files"][0]}


def equations_text(sbml: PathLike) -> str:
    """A model's ODEs as plain text (no LaTeX, so they read without MathJax): `d<state>/dt = …`
    per state, then each named quantity those use, over states, parameters and `time`."""
    model = read_sbml(sbml)
    formulas = Formulas.of(model)
    lines = [f"d{state}/dt = {sympy.sstr(formulas.rates[state])}" for state in model.states]
    used = {s.name for rate in formulas.rates.values() for s in sympy.sympify(rate).free_symbols}
    named = [f"{name} = {sympy.sstr(expr)}" for name, expr in formulas.quantities.items() if name in used]
    return "\n".join(lines + (["", "where", *named] if named else [])) + "\n"


def description(equations: PathLike) -> str:
    """The description paragraph of a convert step's `equations.md` (between its title and the first section)."""
    text = Path(equations).read_text(encoding="utf-8")
    found = re.search(r"^# .*?\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return found.group(1).strip() if found else ""


def model_overview(name: str, problem: PathLike, equations: PathLike | None = None) -> ModelOverview:
    """The model of PEtab problem `problem`: its equations from the SBML (through the model hub),
    its estimated parameters with their bounds and its observables; `equations` (a convert step's
    `equations.md`) adds its description."""
    files = petab_files(problem)
    model = read_sbml(files["sbml"])
    parameters = read_table(files["parameters"], required=PETAB_PARAMETER_COLUMNS)
    estimated = parameters[parameters["estimate"] == 1].set_index("parameterId")[PETAB_PARAMETER_COLUMNS[1:5]]
    observables = read_table(files["observables"], required=PETAB_OBSERVABLE_COLUMNS)
    measurements = read_table(files["measurements"])
    counts = {"states": len(model.states), "model parameters": len(model.parameters),
              "estimated parameters (PEtab)": len(estimated), "observables": len(observables),
              "measurements": len(measurements)}
    return ModelOverview(
        name=name,
        description=description(equations) if equations else "",
        counts=pd.DataFrame({"value": list(counts.values())}, index=pd.Index(list(counts), name="quantity")),
        equations=equations_text(files["sbml"]),
        estimated=estimated,
        observables=observables.set_index("observableId")[PETAB_OBSERVABLE_COLUMNS[1:]],
    )


# --- summary ----------------------------------------------------------------------------------


def study_overview(study: str, ranking: pd.DataFrame, best: str, *, seed: object = None,
                   measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """The study at a glance: its seed, its data (from the prepared measurements when there are
    any; always the calibration's data points), the candidate models and the one selected."""
    rows: dict[str, object] = {"study": study, "seed": seed}
    if measurements is not None:
        rows |= {"experiments": measurements["experiment"].nunique(),
                 "observables": measurements["observable"].nunique(),
                 "values measured": int(measurements["value"].notna().sum())}
    rows |= {"data points in calibration": int(ranking["n_data"].max()), "candidate models": len(ranking),
             "selected model": best}
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=pd.Index(list(rows), name="quantity"))


def evidence(ranking: pd.DataFrame) -> str:
    """One sentence on how strongly the data select the best model over the runner-up (ΔAICc,
    read with Burnham & Anderson's rule: above 10, essentially no support for the other)."""
    ordered = ranking.sort_values("rank_aicc")
    best = ordered.iloc[0]
    if len(ordered) == 1:
        return f"`{best['model']}` is the only candidate model: there is no alternative to weigh it against."
    second = ordered.iloc[1]
    delta = float(second["delta_aicc"])
    strength = ("essentially no support for" if delta > 10 else "considerably less support for" if delta > 4
                else "substantial support also for")
    return (f"`{best['model']}` is selected by AICc (Akaike weight {best['weight']:.3g}); the runner-up "
            f"`{second['model']}` has ΔAICc = {delta:.4g}: {strength} it (Burnham & Anderson).")


def ranking_table(ranking: pd.DataFrame) -> pd.DataFrame:
    """The candidate models by AICc: fit (log-likelihood), size, AICc and BIC differences, weight."""
    columns = ["llh", "n_params", "n_data", "aicc", "delta_aicc", "weight", "bic", "delta_bic"]
    return ranking.sort_values("rank_aicc").set_index("model")[columns]


def estimates_table(estimates: pd.DataFrame) -> pd.DataFrame:
    """Parameter estimates with their 95 % profile-likelihood intervals where profiled; profiled
    parameters first, then the others by name."""
    table = estimates.reindex(columns=ESTIMATE_COLUMNS)  # a calibration without profiles may lack the intervals
    table = table.assign(profiled=table["lower_95"].notna() | table["upper_95"].notna())
    table = table.sort_values(["profiled", "parameter"], ascending=[False, True]).drop(columns="profiled")
    return table.set_index("parameter")


def sensitivity_drivers(sobol: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """The `top` parameters of each output by total Sobol index ST, with S1 and ST's 95 % interval."""
    total = sobol[sobol["index"] == "ST"].dropna(subset=["value"])
    first = sobol[sobol["index"] == "S1"].set_index(["output", "parameter"])["value"]
    ranked = total.sort_values(["output", "value", "parameter"], ascending=[True, False, True])
    ranked = ranked.groupby("output", sort=True).head(top)
    table = ranked.set_index(["output", "parameter"])[["value", "ci_low", "ci_high"]]
    table.columns = ["ST", "ST low", "ST high"]
    table.insert(0, "S1", first.reindex(table.index))
    return table


def vpop_fit_table(fit: pd.DataFrame) -> pd.DataFrame:
    """Each output of the virtual population against its target: KS test and moments (the rows of
    output pairs, correlations, are left to the vpop report)."""
    single = fit[~fit["output"].astype(str).str.contains(":")]
    columns = ["n_vp", "n_target", "ks", "ks_p", "matches", "vp_mean", "target_mean", "vp_sd", "target_sd"]
    return single.set_index("output")[columns]


def report_links(reports: Mapping[str, PathLike]) -> str:
    """Markdown links to the other reports, which sit beside this one (`reports/{step}.html`)."""
    return "".join(f"- [{step}]({Path(path).name})\n" for step, path in reports.items())
