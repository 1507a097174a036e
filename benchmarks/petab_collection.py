"""The PEtab benchmark collection: `qspflow petab-llh` against libroadrunner, problem by problem.

For each problem of ``../shared/cases/petab-collection/`` (34), it times the log-likelihood at the
nominal parameters by qspflow (``qspflow.steps.petab_llh``: loading, linting and the reference
simulation, in this process) and by an independent libroadrunner (CVODE) evaluation written here
(``roadrunner_llh``), and compares both with AMICI's published reference where there is one
(``REFERENCES``, from the collection's README). A problem *matches* when qspflow gives the
reference (≤ 1e-3 absolute or 1e-6 relative; Crauste: 5e-3, see the README) or, without one,
agrees with libroadrunner to 1e-4 relative; it is *refused* when qspflow stops with an error.
``speedup`` is libroadrunner's time over qspflow's (> 1: qspflow is faster).

``roadrunner_llh`` does not import qspflow. It follows PEtab 1: the parameter table's nominal values
set the SBML parameters' initial values (initial assignments are re-evaluated, as roadrunner's
``resetAll`` does); a condition sets parameters, compartment sizes and species' initial values
(concentrations, or amounts for species with only substance units); a preequilibration runs to
steady state (integration over growing horizons until no rate moves a state), and the simulation
condition starts from its states (its own species columns overriding); observable and noise
formulas read species as concentrations (amounts with only substance units), other ids as their
values, with the measurement row's placeholders. SBML events are roadrunner's own.

Output: one line per problem (``problem``, ``llh`` by qspflow, ``roadrunner``, ``reference``,
``status``, seconds of each, ``speedup``), then
``problems=P matched=M refused=R median_speedup=S`` (median over the problems both evaluated).

    PYTHONPATH=src .venv/bin/python benchmarks/petab_collection.py [--problems NAME ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import libsbml
import numpy as np
import petab.v1 as petab
import roadrunner
import sympy
from petab.v1 import C
from petab.v1.math import sympify_petab

COLLECTION = Path(__file__).resolve().parents[1].parent / "shared" / "cases" / "petab-collection"
# AMICI's published log-likelihoods at the nominal parameters (the collection's README). All are
# log-likelihoods without the objective priors: Isensee's too (qspflow's log-likelihood gives it to
# 6e-8; the log-posterior is 4.45 lower), though the README says it includes them.
REFERENCES = {
    "Bachmann_MSB2011": 418.40573341425295,
    "Beer_MolBioSystems2014": 58622.9145631413,
    "Boehm_JProteomeRes2014": -138.22199693517703,
    "Borghans_BiophysChem1997": 83.3237191357272,
    "Brannmark_JBC2010": -141.889113770537,
    "Bruno_JExpBot2016": 46.688176988431806,
    # The published −115700.1192629893 is stale: AMICI 1.0.1 on these files gives this (rtol 1e-8, atol 1e-10),
    # and qspflow −130591.75297525529.
    "Chen_MSB2009": -130591.75311867769,
    "Crauste_CellSystems2017": -190.96521897435176,
    "Elowitz_Nature2000": 63.20279991419332,
    "Fiedler_BMCSystBiol2016": 58.58390161681,
    "Fujita_SciSignal2010": 53.08377736998929,
    "Isensee_JCB2018": -3949.375966548649,
    "Lucarelli_CellSystems2018": -1681.6059879426584,
    "Schwen_PONE2014": -943.9992988598723,
    "Smith_BMCSystBiol2013": -888198.436541014,
    "Sneyd_PNAS2002": 319.79177818768756,
    "Weber_BMC2015": -296.2017922646865,
    "Zheng_PNAS2012": 278.33353271001477,
}
# `roadrunner_llh` of the problems without an AMICI reference (libroadrunner 2.10.0, 10 significant
# digits; Liu has events): the collection test compares with these instead of re-running the oracle
# (about 10 min), which `main` does each time.
ROADRUNNER = {
    "Alkan_SciSignal2018": -281515999.4,
    "Armistead_CellDeathDis2024": 301.9161818,
    "Bertozzi_PNAS2020": -158.8642679,
    "Blasi_CellSystems2016": 642.8268966,
    "Giordano_Nature2020": -287.6277614,
    "Lang_PLOSComputBiol2024": 2741.696427,
    "Laske_PLOSComputBiol2019": -315.9059106,
    "Liu_IFACPapersOnLine2025": -723.3574914,
    "Okuonghae_ChaosSolitonsFractals2020": -470490.6045,
    "Oliveira_NatCommun2021": -9623391.797,
    "Perelson_Science1996": -432.0385498,
    "Rahman_MBS2016": -21.15348998,
    "Raia_CancerResearch2011": -346.0897814,
    "Raimundez_PCB2020": -550.0366435,
    "SalazarCavazos_MBoC2020": -367.1876132,
    "Zhao_QuantBiol2020": -777.3442301,
}
# Crauste: AMICI's reference and libroadrunner differ by 1.2e-3 (the README's note).
TOLERANCES = {"Crauste_CellSystems2017": 5e-3}
ABS, REL, ROADRUNNER_REL = 1e-3, 1e-6, 1e-4
RTOL, ATOL = 1e-10, 1e-12
STEADY_TOLERANCE = 1e-8


def problem_yaml(name: str) -> Path:
    """A problem's YAML in the collection (the one named after the folder, else the only one)."""
    folder = COLLECTION / name
    own = folder / f"{name}.yaml"
    return own if own.exists() else next(folder.glob("*.yaml"))


def matches(name: str, llh: float, roadrunner_value: float | None) -> bool:
    """qspflow's log-likelihood agrees with AMICI's reference, or without one with libroadrunner's."""
    if name in REFERENCES:
        return abs(llh - REFERENCES[name]) <= max(TOLERANCES.get(name, ABS), REL * abs(REFERENCES[name]))
    return roadrunner_value is not None and abs(llh - roadrunner_value) <= ROADRUNNER_REL * abs(roadrunner_value)


# ----------------------------------------------------------------------------- libroadrunner


class _Model:
    """The SBML model with the parameter table's values; one roadrunner per set of initial values."""

    def __init__(self, sbml: Path, parameters: dict[str, float]) -> None:
        self.document = libsbml.readSBMLFromFile(str(sbml))
        model = self.document.getModel()
        self.amount_only = {s.getId() for s in model.getListOfSpecies() if s.getHasOnlySubstanceUnits()}
        self.species = [s.getId() for s in model.getListOfSpecies()]
        self.compartments = {c.getId() for c in model.getListOfCompartments()}
        self.parameters = {p.getId() for p in model.getListOfParameters()}
        self.rate_rules = [r.getVariable() for r in model.getListOfRules() if r.isRate()
                           and r.getVariable() not in self.species]
        self._set(self.document, {k: v for k, v in parameters.items() if k in self.parameters})

    def _set(self, document: libsbml.SBMLDocument, values: dict[str, float]) -> None:
        """Initial values into an SBML document: an initial assignment to the same id is dropped."""
        model = document.getModel()
        for sid, value in values.items():
            model.removeInitialAssignment(sid)
            if sid in self.species:
                species = model.getSpecies(sid)
                if sid in self.amount_only:
                    species.setInitialAmount(value)
                else:
                    species.setInitialConcentration(value)
            elif sid in self.compartments:
                model.getCompartment(sid).setSize(value)
            else:
                model.getParameter(sid).setValue(value)

    def runner(self, values: dict[str, float]) -> roadrunner.RoadRunner:
        """roadrunner on the model with these initial values (parameters, compartments, species)."""
        document = self.document.clone()
        self._set(document, values)
        rr = roadrunner.RoadRunner(libsbml.writeSBMLToString(document))
        rr.integrator.relative_tolerance = RTOL
        rr.integrator.absolute_tolerance = ATOL
        rr.integrator.maximum_num_steps = 1_000_000
        return rr

    def selection(self, sid: str) -> str:
        """How roadrunner names an id's value as PEtab formulas read it."""
        return f"[{sid}]" if sid in self.species and sid not in self.amount_only else sid

    def state(self, rr: roadrunner.RoadRunner) -> dict[str, float]:
        """The current amounts of floating species and values of rate-rule variables."""
        return {s: rr[s] for s in [*rr.model.getFloatingSpeciesIds(), *self.rate_rules]}

    @staticmethod
    def steady(rr: roadrunner.RoadRunner) -> None:
        """Integrate from the current state until no rate moves a state (horizons 1, 10, …, 1e12)."""
        t = 0.0
        floating = rr.model.getFloatingSpeciesIds()
        for end in 10.0 ** np.arange(13):
            rr.simulate(t, end, 2)
            t = end
            x = np.array([rr[s] for s in floating])
            rates = np.asarray(rr.getRatesOfChange())
            if np.all(np.abs(rates) * t <= STEADY_TOLERANCE * (np.abs(x) + ATOL)):
                return
        raise RuntimeError("no steady state by t = 1e12")


def roadrunner_llh(yaml_path: Path) -> float:
    """The log-likelihood of a PEtab 1 problem at its nominal parameters by libroadrunner."""
    problem = petab.Problem.from_yaml(yaml_path)
    config = petab.yaml.load_yaml(yaml_path)
    parameters = problem.parameter_df[C.NOMINAL_VALUE].astype(float).to_dict()
    model = _Model(Path(yaml_path).parent / config[C.PROBLEMS][0][C.SBML_FILES][0], parameters)
    conditions = problem.condition_df.drop(columns=[C.CONDITION_NAME], errors="ignore")
    observables = {oid: (sympify_petab(row[C.OBSERVABLE_FORMULA]), sympify_petab(row[C.NOISE_FORMULA]),
                         row.get(C.OBSERVABLE_TRANSFORMATION, C.LIN), row.get(C.NOISE_DISTRIBUTION, C.NORMAL))
                   for oid, row in problem.observable_df.iterrows()}
    measurements = problem.measurement_df.copy()
    if C.PREEQUILIBRATION_CONDITION_ID not in measurements:
        measurements[C.PREEQUILIBRATION_CONDITION_ID] = ""
    measurements[C.PREEQUILIBRATION_CONDITION_ID] = measurements[C.PREEQUILIBRATION_CONDITION_ID].fillna("")

    def number(raw: object) -> float:
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                return parameters[raw]
        return float(raw)

    def condition(cid: str) -> dict[str, float]:
        return {k: number(v) for k, v in conditions.loc[cid].items()
                if not (isinstance(v, float) and math.isnan(v))}

    def start(cid: str, state: dict[str, float] | None) -> roadrunner.RoadRunner:
        """roadrunner at t = 0 of condition `cid`, from the preequilibrated `state` if given."""
        values = condition(cid)
        rr = model.runner(values if state is None else {k: v for k, v in values.items() if k not in model.species})
        if state is not None:
            for sid, value in state.items():
                rr.setValue(sid, value)
            for sid, value in values.items():  # the condition's own species columns override
                if sid in model.species:
                    rr.setValue(model.selection(sid), value)
        return rr

    total = 0.0
    steady_states: dict[str, dict[str, float]] = {}
    for (pre, sim), rows in measurements.groupby([C.PREEQUILIBRATION_CONDITION_ID, C.SIMULATION_CONDITION_ID],
                                                 sort=False):
        state = None
        if pre:
            if pre not in steady_states:
                rr = start(pre, None)
                model.steady(rr)
                steady_states[pre] = model.state(rr)
            state = steady_states[pre]
        rr = start(sim, state)
        ids = sorted({s.name for oid in rows[C.OBSERVABLE_ID].unique() for f in observables[oid][:2]
                      for s in f.free_symbols if s.name in model.compartments | set(model.species) | set(
                          rr.model.getGlobalParameterIds())})
        times = np.array(sorted(set(rows[C.TIME].astype(float)) | {0.0}))
        finite = times[np.isfinite(times)]
        selections = ["time", *(model.selection(s) for s in ids)]
        values: dict[float, dict[str, float]] = {0.0: {s: rr[model.selection(s)] for s in ids}}
        if len(finite) > 1:
            result = rr.simulate(times=finite, selections=selections)
            values = {float(t): dict(zip(ids, row[1:])) for t, row in zip(finite, np.asarray(result))}
        if np.isinf(times).any():
            rr = start(sim, state)
            model.steady(rr)
            values[math.inf] = {s: rr[model.selection(s)] for s in ids}
        for _, row in rows.iterrows():
            formula, noise, transformation, distribution = observables[row[C.OBSERVABLE_ID]]
            t = float(row[C.TIME])
            env = {**parameters, **values[t], "time": t}
            for column, prefix in ((C.OBSERVABLE_PARAMETERS, "observableParameter"),
                                   (C.NOISE_PARAMETERS, "noiseParameter")):
                for n, entry in enumerate(petab.split_parameter_replacement_list(row.get(column, math.nan)), 1):
                    env[f"{prefix}{n}_{row[C.OBSERVABLE_ID]}"] = number(entry)
            y, sigma = (float(f.xreplace({s: sympy.Float(float(env[s.name])) for s in f.free_symbols}))
                        for f in (formula, noise))
            m = float(row[C.MEASUREMENT])
            if transformation == C.LOG:
                r, jacobian = math.log(m) - math.log(y), math.log(m)
            elif transformation == C.LOG10:
                r, jacobian = math.log10(m) - math.log10(y), math.log(m * math.log(10))
            else:
                r, jacobian = m - y, 0.0
            if distribution == C.LAPLACE:
                total -= math.log(2 * sigma) + abs(r) / sigma + jacobian
            else:
                total -= 0.5 * math.log(2 * math.pi * sigma**2) + 0.5 * (r / sigma) ** 2 + jacobian
    return total


# --------------------------------------------------------------------------------------- run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", help="problem folders (default: all 34)")
    args = parser.parse_args(argv)
    from qspflow.errors import QspflowError
    from qspflow.steps.petab import petab_llh

    names = args.problems or sorted(p.name for p in COLLECTION.iterdir() if p.is_dir())
    matched = refused = 0
    speedups = []
    print("problem\tllh\troadrunner\treference\tstatus\tqspflow_s\troadrunner_s\tspeedup", flush=True)
    for name in names:
        path = problem_yaml(name)
        start = time.perf_counter()
        try:
            _, llh = petab_llh(problem=path)
            status = ""
        except QspflowError as error:
            llh = math.nan
            status = f"refused: {error}"
        ours = time.perf_counter() - start
        start = time.perf_counter()
        try:
            theirs = roadrunner_llh(path)
        except Exception as error:  # noqa: BLE001  (the oracle's own failure is reported, not fatal)
            theirs, status = None, status or f"roadrunner failed: {type(error).__name__}: {error}"
        rr_seconds = time.perf_counter() - start
        if status.startswith("refused"):
            refused += 1
        elif matches(name, llh, theirs):
            matched += 1
            status = "matched"
        else:
            status = status or "differs"
        speedup = rr_seconds / ours if not status.startswith("refused") and theirs is not None else math.nan
        if math.isfinite(speedup):
            speedups.append(speedup)
        print(f"{name}\t{llh:.10g}\t{theirs if theirs is None else format(theirs, '.10g')}\t"
              f"{REFERENCES.get(name, '')}\t{status}\t{ours:.2f}\t{rr_seconds:.2f}\t{speedup:.3g}", flush=True)
    median = statistics.median(speedups) if speedups else math.nan
    print(f"problems={len(names)} matched={matched} refused={refused} median_speedup={median:.3g}")


if __name__ == "__main__":
    sys.exit(main())
