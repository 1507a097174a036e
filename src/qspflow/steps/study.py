"""The study config, checked at workflow start-up so that a bad study fails at `snakemake -n`, before any job."""

from __future__ import annotations

from collections.abc import Mapping

from qspflow.errors import ConfigError
from qspflow.options import validated_config


def study_config(config: Mapping[str, object], schema: Mapping[str, object], source: str) -> dict[str, object]:
    """The config with the schema's defaults filled in, checked as far as can be without running a step:
    the schema, the study's route (data.pkn with data.measurements, or data.petab), and the PEtab
    problem of the mechanistic route (loaded and linted)."""
    checked = validated_config(config, schema, source)
    data = checked["data"]
    if not data["pkn"] and not data["petab"]:
        raise ConfigError(source, key="data", expected="data.pkn (the Boolean route: measurements and a prior "
                          "knowledge network) or data.petab (the mechanistic route: a PEtab problem)")
    if data["petab"]:
        from qspflow.petab import load_problem  # loads sympy, libsbml and petab: only for this route

        load_problem(data["petab"])
    elif not data["measurements"]:
        raise ConfigError(source, key="data.measurements",
                          expected="the measurements the Boolean route infers its networks from (data.pkn is given)")
    return checked
