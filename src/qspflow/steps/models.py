"""Step `convert` (`qspflow convert`): one Boolean network to its ODE model files and, with data,
its PEtab problem.

Outputs: `pysb` (model.py, readable PySB), `sbml` (model.sbml), `equations` (equations.md) and,
with measurements, `problem` (the PEtab problem.yaml), whose folder holds model.sbml,
conditions.tsv, measurements.tsv, observables.tsv and parameters.tsv and is replaced whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from qspflow import options as check
from qspflow.boolean import read_bnet
from qspflow.convert import CONVERT_KEYS, ConvertedModel, convert_network
from qspflow.data import read_experiments, read_measurements
from qspflow.errors import ConfigError, DataError, OutputError
from qspflow.io import atomic_folder, write_text
from qspflow.model.equations import equations_markdown
from qspflow.model.pysb import pysb_source
from qspflow.model.sbml import sbml_text
from qspflow.petab.export import MODEL_FILE, PROBLEM_FILES, write_problem
from qspflow.steps import in_folder

PathLike = str | os.PathLike[str]

FILES = {"pysb": "model.py", "sbml": "model.sbml", "equations": "equations.md", "problem": "petab/problem.yaml"}
#: the files beside problem.yaml, by the `convert` rule's output names (problem.yaml names them so)
PROBLEM_FOLDER_FILES = {
    "petab_model": MODEL_FILE,
    "conditions": PROBLEM_FILES["conditions"],
    "petab_measurements": PROBLEM_FILES["measurements"],
    "observables": PROBLEM_FILES["observables"],
    "parameters": PROBLEM_FILES["parameters"],
}


def convert(*, network: PathLike, pysb: PathLike, sbml: PathLike, equations: PathLike,
            problem: PathLike | None = None, petab_model: PathLike | None = None,
            conditions: PathLike | None = None, petab_measurements: PathLike | None = None,
            observables: PathLike | None = None, parameters: PathLike | None = None,
            measurements: PathLike | None = None, experiments: PathLike | None = None,
            method: str = "normalized-hillcube", drug: Mapping | None = None,
            values: Mapping[str, float] | None = None, **options: object) -> ConvertedModel:
    """Convert the `.bnet` `network` (`qspflow.convert.convert_network` with `method`, the
    config's `drug:` section, its `convert:` `options`: n, k, tau, bounds, observable_model,
    noise, and starting `values` by parameter name) and write `pysb`, `sbml`, `equations` and,
    from `measurements` (tidy or MIDAS) and `experiments`, the PEtab problem `problem`.

    `petab_model`, `conditions`, `petab_measurements`, `observables`, `parameters` are the files
    the problem's folder gets; given (as the rule gives them), each must be there under the name
    problem.yaml uses. Everything is rendered and the problem linted before any output is put in
    place, so a failure leaves earlier outputs as they were.
    """
    check.check_keys("convert", options, CONVERT_KEYS)
    beside = {"petab_model": petab_model, "conditions": conditions, "petab_measurements": petab_measurements,
              "observables": observables, "parameters": parameters}
    _check_problem_paths(problem, beside, [pysb, sbml, equations], measurements)
    table = design = None
    design_source = "experiment table"
    if measurements is not None:
        table, design, design_source = _read_study(measurements, experiments)
    elif experiments is not None:
        raise DataError(None, key="measurements", expected="measurements together with the experiment table")
    converted = convert_network(read_bnet(network), network, measurements=table, experiments=design,
                                experiments_source=design_source, method=method, drug=drug, values=values,
                                **options)
    texts = {
        Path(pysb): pysb_source(converted.model, converted.formulas, description=converted.description),
        Path(sbml): sbml_text(converted.model),
        Path(equations): equations_markdown(converted.model, converted.formulas, description=converted.description),
    }
    if converted.problem is not None:
        problem = Path(problem)
        with atomic_folder(problem.parent) as staging:
            write_problem(converted.problem, converted.model, staging, yaml_name=problem.name, source=problem)
    for path, text in texts.items():
        write_text(text, path)
    return converted


def convert_with_config(*, network: PathLike, out: PathLike, method: str | None = None,
                        measurements: PathLike | None = None, experiments: PathLike | None = None,
                        config: PathLike | None = None) -> ConvertedModel:
    """`qspflow convert`: `convert` with its files in folder `out` (`FILES`; petab/ only with
    `measurements`).

    `config`: a study configuration (YAML) whose `convert:` and `drug:` sections are used as in
    the workflow (absent keys take the defaults of `convert`); `method` overrides it. A config
    error names the file.
    """
    options: dict = {}
    drug = None
    if config is not None:
        try:
            study = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(config, expected="a YAML study configuration", message=str(exc)) from None
        options = dict(study.get("convert") or {})
        drug = study.get("drug")
    if method is not None:
        options["method"] = method
    paths = in_folder(out, FILES)
    if measurements is None:
        del paths["problem"]
    try:
        return convert(network=network, measurements=measurements, experiments=experiments, drug=drug,
                       **paths, **options)
    except ConfigError as err:
        if config is None or err.source is not None:
            raise
        raise ConfigError(config, key=err.key, element=err.element, expected=err.expected, found=err.found,
                          message=err.detail) from None


def _check_problem_paths(problem: PathLike | None, beside: Mapping[str, PathLike | None],
                         others: list[PathLike], measurements: PathLike | None) -> None:
    """The problem comes with the data; its folder (replaced whole) holds its files and no other output."""
    if (problem is None) != (measurements is None):
        raise ConfigError(None, key="problem" if problem is None else "measurements",
                          expected="a PEtab problem path together with measurements (the problem is made from them)")
    if problem is None:
        given = [key for key, path in beside.items() if path is not None]
        if given:
            raise ConfigError(None, key=given[0], expected="no PEtab problem file without `problem`")
        return
    folder = Path(problem).parent
    for key, path in beside.items():
        if path is not None and Path(path) != folder / PROBLEM_FOLDER_FILES[key]:
            raise OutputError(path, key=key, expected=f"'{folder / PROBLEM_FOLDER_FILES[key]}': problem.yaml names "
                              f"its {PROBLEM_FOLDER_FILES[key]} beside it")
    for path in others:
        if Path(path).parent == folder:
            raise OutputError(path, key="problem", expected=f"a file outside '{folder}', the problem's folder "
                              "(it is replaced whole)")


def _read_study(measurements: PathLike, experiments: PathLike | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The tidy measurement table, the experiment table, and the name of the experiment file."""
    table, design = read_measurements(measurements)
    if experiments is None:
        if design is None:
            raise DataError(None, key="experiments", expected="an experiment table for tidy measurements")
        return table, design, str(measurements)
    return table, read_experiments(experiments), str(experiments)
