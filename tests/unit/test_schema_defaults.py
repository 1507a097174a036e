"""The defaults a study config gets from config/schema.yaml are the library's own defaults, so a key left
out of a config means the same in the workflow as in the CLI and the library."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from qspflow import data, infer
from qspflow.convert import convert_network
from qspflow.convert.options import DEFAULT_BOUNDS, PKPD_PARAMETERS, drug_options
from qspflow.steps import networks

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "schema.yaml").read_text())


def _defaults(section: str) -> dict[str, object]:
    return {key: sub.get("default") for key, sub in SCHEMA["properties"][section]["properties"].items()}


def _signature_defaults(function) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize(("section", "function", "renamed"), [
    ("prepare", data.prepare, {}),
    ("infer", infer.infer_networks, {}),
    ("convert", convert_network, {}),
], ids=["prepare", "infer", "convert"])
def test_schema_defaults_equal_the_library_signature(section, function, renamed) -> None:
    library = _signature_defaults(function)
    compared = 0
    for key, default in _defaults(section).items():
        name = renamed.get(key, key)
        if name not in library or key == "bounds":
            continue
        expected = library[name]
        assert (default or None) == (expected or None), f"{section}.{key}: schema {default!r}, library {expected!r}"
        compared += 1
    assert compared >= 4


def test_infer_max_networks_default_is_the_schema_default() -> None:
    assert _signature_defaults(networks.infer_from_data)["max_networks"] == _defaults("infer")["max_networks"]


def test_convert_bound_defaults_are_the_schema_defaults() -> None:
    schema_bounds = _defaults("convert")["bounds"] or {}
    kinds = SCHEMA["properties"]["convert"]["properties"]["bounds"]["properties"]
    assert {kind: tuple(sub["default"]) for kind, sub in kinds.items()} == DEFAULT_BOUNDS
    assert schema_bounds == {}


def test_pkpd_parameter_defaults_are_the_schema_defaults() -> None:
    parameters = SCHEMA["properties"]["drug"]["properties"]["parameters"]["properties"]
    assert {name: sub["default"] for name, sub in parameters.items()} == {
        name: spec[0] for name, spec in PKPD_PARAMETERS.items()}
    estimated = [name for name, spec in PKPD_PARAMETERS.items() if spec[5]]
    assert _defaults("drug")["estimate"] == estimated


def test_a_drug_section_of_schema_defaults_equals_one_that_gives_only_the_target() -> None:
    filled = {**_defaults("drug"), "target": "MEK"}
    assert drug_options(filled) == drug_options({"target": "MEK"})


def test_sensitivity_defaults_are_the_schema_defaults() -> None:
    from qspflow.sensitivity import DEFAULTS

    schema = _defaults("sensitivity")
    assert set(schema) == {"outputs", *DEFAULTS}
    assert {key: schema[key] for key in DEFAULTS} == DEFAULTS


def test_vpop_defaults_are_the_schema_defaults() -> None:
    from qspflow.steps.vpop import KEYS

    schema = _defaults("vpop")
    assert set(schema) == set(KEYS)
    library = {key: default for key, (default, _) in KEYS.items() if default is not None}
    assert {key: schema[key] for key in library} == library


def _integer_minimums(section: str) -> dict[str, int]:
    return {key: sub["minimum"] for key, sub in SCHEMA["properties"][section]["properties"].items()
            if sub.get("type") == "integer" and "minimum" in sub}


@pytest.mark.parametrize("section", ["sensitivity", "vpop"])
def test_schema_integer_minimums_are_the_library_minimums(section) -> None:
    """A value the schema lets through is one the library accepts, and one below it the library refuses too."""
    from qspflow.errors import ConfigError
    from qspflow.sensitivity import sensitivity_options
    from qspflow.steps.vpop import _algorithm, _sizes

    output = {"name": "y", "kind": "value", "of": "obs", "time": 1}

    def parse(key: str, value: int) -> None:
        if section == "vpop":
            _algorithm({key: value})
            _sizes({"chunks": 1, key: value})
        else:
            sensitivity_options({"outputs": [output], key: value})

    minimums = _integer_minimums(section)
    assert len(minimums) >= 4
    for key, minimum in minimums.items():
        parse(key, minimum)
        with pytest.raises(ConfigError, match=key):
            parse(key, minimum - 1)
