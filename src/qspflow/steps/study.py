"""The study config, checked at workflow start-up so that a bad study fails at `snakemake -n`, before any job."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from qspflow.convert import check_config
from qspflow.errors import ConfigError, DataError
from qspflow.io import read_user_text
from qspflow.options import validated_config


def study_config(config: Mapping[str, object], schema: Mapping[str, object], source: str) -> dict[str, object]:
    """The config with the schema's defaults filled in, checked as far as can be without running a step:
    the schema, the study's route (data.pkn with data.measurements, or data.petab), the PEtab problem
    of the mechanistic route (loaded and linted), the Boolean route's `convert:` and `drug:` sections
    (bounds, starting values) and its drug target when the design doses a drug."""
    checked = validated_config(config, schema, source)
    data = checked["data"]
    if not data["pkn"] and not data["petab"]:
        raise ConfigError(source, key="data", expected="data.pkn (the Boolean route: measurements and a prior "
                          "knowledge network) or data.petab (the mechanistic route: a PEtab problem)")
    if data["petab"]:
        from qspflow.petab import load_problem  # loads sympy, libsbml and petab: only for this route

        load_problem(data["petab"])
    else:
        if not data["measurements"]:
            raise ConfigError(source, key="data.measurements",
                              expected="the measurements the Boolean route infers its networks from "
                                       "(data.pkn is given)")
        check_config(checked["convert"], checked["drug"], source=source)
        _check_drug_target(checked, source)
    return checked


def _check_drug_target(config: Mapping[str, object], source: str) -> None:
    """A design that doses a drug needs `drug.target`: the node the drug acts on."""
    table = config["data"]["experiments"]
    if config["drug"]["target"] or not table or not Path(table).is_file():
        return  # a missing table is Snakemake's to report, as a missing input of `prepare`
    header = read_user_text(table, DataError, place="row").split("\n", 1)[0]
    doses = [column for column in re.split(r"[\t,;]", header) if column.strip().startswith("dose:")]
    if doses:
        raise ConfigError(source, key="drug.target", expected=f"the node the drug acts on ({table} has "
                          f"column '{doses[0].strip()}')", found="")
