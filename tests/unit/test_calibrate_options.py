"""The calibration options: the library's defaults are the schema's and `qspflow calibrate`'s, and every
message names the key as a study config writes it (`calibrate.<key>`)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from qspflow.calibrate import CalibrationOptions
from qspflow.calibrate.options import calibration_options
from qspflow.cli import build_parser
from qspflow.errors import ConfigError

SCHEMA = Path(__file__).parents[2] / "config" / "schema.yaml"
NOT_CONFIG_KEYS = {"seed", "threads"}  # derived per rule from the study seed; given by the job's threads


def _schema_section() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))["properties"]["calibrate"]["properties"]


def test_schema_defaults_are_the_library_defaults():
    schema = {key: spec["default"] for key, spec in _schema_section().items()}
    library = {f.name: f.default for f in fields(CalibrationOptions) if f.name not in NOT_CONFIG_KEYS}
    assert set(schema) == set(library)
    for key, default in schema.items():
        expected = tuple(default) if isinstance(default, list) else default
        assert library[key] == expected and type(library[key]) in (type(expected), float), key


def test_schema_defaults_make_valid_options():
    defaults = {key: spec["default"] for key, spec in _schema_section().items()}
    assert calibration_options(defaults) == CalibrationOptions()


def test_the_cli_defaults_are_the_library_defaults():
    # The CLI spells its defaults out (it does not import the calibration stack to print its help).
    args = vars(build_parser().parse_args(["calibrate", "problem.yaml", "--out", "out"]))
    library = {f.name: f.default for f in fields(CalibrationOptions)}
    # --profile names parameters to profile (profile_parameters); whether to profile is --no-profile.
    shared = {key: args[key] for key in args if key in library and key != "profile"}
    assert len(shared) >= 9
    for key, default in shared.items():
        assert default == library[key], key
    assert (not args["no_polish"], args["local_phase"]) == (library["polish"], library["local_phase"])
    assert args["optimal_scalings"] == library["optimal_scalings"]
    assert (not args["no_profile"]) == library["profile"]


@pytest.mark.parametrize(("options", "message"), [
    ({"starts": 0}, "key 'calibrate.starts': expected an integer ≥ 1, found '0'"),
    ({"starts": True}, "key 'calibrate.starts': expected an integer ≥ 1"),
    ({"max_refinements": -1}, "key 'calibrate.max_refinements': expected an integer ≥ 0"),
    ({"local_box": 0}, "key 'calibrate.local_box': expected a number > 0, found '0'"),
    ({"global_time": "fast"}, "key 'calibrate.global_time': expected a number > 0"),
    ({"global_method": "cmaes"}, "key 'calibrate.global_method': expected one of \\['ess', 'de', 'none'\\]"),
    ({"solver": "snopt"}, "key 'calibrate.solver': expected one of \\['ipopt', 'ripopt'\\]"),
    ({"profile": "yes"}, "key 'calibrate.profile': expected true or false"),
    ({"local_phase": 1}, "key 'calibrate.local_phase': expected true or false"),
    ({"optimal_scalings": "yes"}, "key 'calibrate.optimal_scalings': expected true or false"),
    ({"profile_parameters": "k"}, "key 'calibrate.profile_parameters': expected a list of names"),
    ({"stars": 3}, "key 'calibrate.stars': expected one of the keys"),
])
def test_bad_options_are_config_errors_naming_the_config_key(options, message):
    with pytest.raises(ConfigError, match=message):
        calibration_options(options)


def test_profile_parameters_become_a_tuple():
    assert calibration_options({"profile_parameters": ["a", "b"]}).profile_parameters == ("a", "b")
