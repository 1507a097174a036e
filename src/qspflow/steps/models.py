"""Step `convert` (`qspflow convert`): one Boolean network to its ODE model files and, with data,
its PEtab problem.

Outputs: `pysb` (model.py, readable PySB), `sbml` (model.sbml), `equations` (equations.md) and,
with measurements, `problem` (the PEtab problem.yaml), whose folder holds model.sbml,
conditions.tsv, measurements.tsv, observables.tsv and parameters.tsv and is replaced whole.
The config, the network and the data are checked against each other before sympy builds the
model and before libSBML and petab are loaded, so a bad input is refused within a second.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from qspflow import options as check
from qspflow.convert.options import CONVERT_KEYS, check_config
from qspflow.errors import ConfigError, DataError, OutputError
from qspflow.io import atomic_folder, parse_user_yaml, write_text
from qspflow.steps import in_folder

if TYPE_CHECKING:
    import pandas as pd

    from qspflow.convert.study import ConvertedModel

PathLike = str | os.PathLike[str]

FILES = {"pysb": "model.py", "sbml": "model.sbml", "equations": "equations.md", "problem": "petab/problem.yaml"}
#: the files beside problem.yaml, by the `convert` rule's output names: problem.yaml names them so
#: (`qspflow.petab.export.MODEL_FILE` and `PROBLEM_FILES`, a test keeps them equal; that module loads petab)
PROBLEM_FOLDER_FILES = {
    "petab_model": "model.sbml",
    "conditions": "conditions.tsv",
    "petab_measurements": "measurements.tsv",
    "observables": "observables.tsv",
    "parameters": "parameters.tsv",
}
#: the top-level sections of a study config (`config/schema.yaml`; a test keeps them equal)
STUDY_SECTIONS = ("study", "seed", "data", "prepare", "drug", "infer", "convert", "calibrate", "sensitivity", "vpop",
                  "package")


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
    # Everything is checked before sympy, libSBML and petab are loaded: a bad input fails fast.
    check.check_keys("convert", options, CONVERT_KEYS)
    check_config({"method": method, **options}, drug, values=values)
    beside = {"petab_model": petab_model, "conditions": conditions, "petab_measurements": petab_measurements,
              "observables": observables, "parameters": parameters}
    _check_problem_paths(problem, beside, [pysb, sbml, equations], measurements)
    if experiments is not None and measurements is None:
        raise DataError(experiments, key="measurements",
                        expected="measurements (--measurements) together with the experiment table")
    from qspflow.boolean import read_bnet

    net = read_bnet(network)
    table = design = None
    design_source = "experiment table"
    if measurements is not None:
        table, design, design_source = _read_study(measurements, experiments)

    from qspflow.convert.study import convert_network
    from qspflow.model.equations import equations_markdown
    from qspflow.model.pysb import pysb_source
    from qspflow.model.sbml import sbml_text

    converted = convert_network(net, network, measurements=table, experiments=design,
                                experiments_source=design_source, measurements_source=str(measurements or ""),
                                method=method, drug=drug, values=values, **options)
    texts = {
        Path(pysb): pysb_source(converted.model, converted.formulas, description=converted.description),
        Path(sbml): sbml_text(converted.model),
        Path(equations): equations_markdown(converted.model, converted.formulas, description=converted.description),
    }
    if converted.problem is not None:
        from qspflow.petab.export import write_problem

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
    error names the file (and the line, for YAML that does not parse or carries a tag); other
    sections are not used, but a section the study config does not have is refused.
    """
    options: dict = {}
    drug = None
    if config is not None:
        study = _read_config(Path(config))
        options = dict(_section(study, "convert", config))
        drug = _section(study, "drug", config) or None
        check_config(options, drug, source=str(config))  # before its keys become arguments
    if method is not None:
        options["method"] = method
    paths = in_folder(out, FILES)
    if measurements is None:
        del paths["problem"]
    try:
        return convert(network=network, measurements=measurements, experiments=experiments, drug=drug,
                       **paths, **options)
    except ConfigError as err:
        if err.source is not None or not (err.key or "").startswith(("convert", "drug")):
            raise
        if config is None:  # e.g. a dose: column and no drug
            raise ConfigError(None, key=err.key, element=err.element, expected=err.expected, found=err.found,
                              message="set it in a study config given with --config") from None
        raise ConfigError(config, key=err.key, element=err.element, expected=err.expected, found=err.found,
                          message=err.detail) from None


def _read_config(path: Path) -> dict:
    """A study config (YAML) as a mapping of known sections; errors name the line and column."""
    expected = "a study configuration (YAML)"
    if path.is_dir():
        raise ConfigError(path, expected=expected, message="found a folder")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, expected=expected, message="the file does not exist") from None
    except OSError as exc:
        raise ConfigError(path, expected=expected, message=exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, line=exc.object[:exc.start].count(b"\n") + 1, expected="UTF-8 text",
                          message=f"found the byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
                                  "(save the file as UTF-8)") from None
    study = parse_user_yaml(text, path, ConfigError)
    if study is None:
        return {}
    if not isinstance(study, dict):
        raise ConfigError(path, expected=f"a mapping of the sections {', '.join(STUDY_SECTIONS)}",
                          found=f"a {type(study).__name__}" if isinstance(study, list) else study)
    unknown = sorted(str(key) for key in study if key not in STUDY_SECTIONS)
    if unknown:
        raise ConfigError(path, key=unknown[0], expected=f"one of the sections {', '.join(STUDY_SECTIONS)}")
    return study


def _section(study: Mapping, name: str, config: PathLike) -> Mapping:
    """A section of the study config: a mapping, or absent (empty)."""
    section = study.get(name)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(config, key=name, expected="a mapping of keys", found=section)
    return section


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
    from qspflow.data import read_experiments, read_measurements

    table, design = read_measurements(measurements)
    if experiments is None:
        if design is None:
            raise DataError(measurements, expected="an experiment table (--experiments) with tidy measurements; "
                            "only MIDAS carries its own")
        return table, design, str(measurements)
    if design is not None:
        raise DataError(experiments, message=f"{measurements} is MIDAS, which carries its own treatments; "
                                             "give no experiment table")
    design = read_experiments(experiments)
    unlisted = sorted(set(table["experiment"]) - set(design["experiment"]))
    if unlisted:
        raise DataError(experiments, column="experiment", expected=f"a row for experiment '{unlisted[0]}'",
                        message=f"{measurements} measures it")
    return table, design, str(experiments)
