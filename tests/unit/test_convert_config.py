"""The `convert:` and `drug:` config sections checked before anything heavy: `check_config` (which the
workflow calls at start-up) names each key at fault, agrees with the model the sections build, and
`qspflow convert` rejects bad input before it loads sympy's model building or petab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qspflow.boolean import parse_bnet, read_bnet
from qspflow.convert import boolean_to_ode, couple_pkpd
from qspflow.convert.options import (
    DEFAULT_BOUNDS,
    PKPD_PARAMETERS,
    ROUTES,
    SCALES,
    check_config,
    default_scale,
    pk_states,
    pkpd_names,
)
from qspflow.convert.study import convert_network
from qspflow.errors import ConfigError
from qspflow.steps.models import PROBLEM_FOLDER_FILES, STUDY_SECTIONS
from qspflow.steps.study import study_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


@pytest.mark.parametrize("config", ["config.yaml", "boehm.yaml"])
def test_the_bundled_study_configs_pass(config):
    study = study_config(yaml.safe_load((ROOT / "config" / config).read_text()), SCHEMA, config)
    check_config(study["convert"], study["drug"])


def test_a_config_of_schema_defaults_passes():
    study = study_config({"study": "s", "data": {"pkn": "p.sif", "measurements": "m.tsv"}}, SCHEMA, "s.yaml")
    check_config(study["convert"], study["drug"])
    check_config({}, {})
    check_config(None, None)


@pytest.mark.parametrize(("convert", "drug", "key"), [
    ({"method": "squarecube"}, {}, "convert.method"),
    ({"hill": 2}, {}, "convert.hill"),
    ({"tau": 0}, {}, "convert.tau"),
    ({"n": True}, {}, "convert.n"),
    ({"noise": "poisson"}, {}, "convert.noise"),
    ({"observable_model": "affine"}, {}, "convert.observable_model"),
    ({"bounds": {"tau": [5.0, 1.0]}}, {}, "convert.bounds.tau"),
    ({"bounds": {"tau": [1.0, 1.0]}}, {}, "convert.bounds.tau"),
    ({"bounds": {"tau": [0.0, 1.0]}}, {}, "convert.bounds.tau"),  # log10
    ({"bounds": {"tau_ERK": [-1.0, 1.0]}}, {}, "convert.bounds.tau_ERK"),  # the scale of its kind
    ({"bounds": {"pd_ec50": [0.0, 10.0]}}, {"target": "MEK"}, "convert.bounds.pd_ec50"),  # its PK/PD scale
    ({"bounds": {"k": ["low", 1.0]}}, {}, "convert.bounds.k"),
    ({"bounds": {"k": [0.1, 1.0, "ln"]}}, {}, "convert.bounds.k"),
    ({"bounds": [0.1, 1.0]}, {}, "convert.bounds"),
    ({"bounds": {"k": [0.6, 0.9]}}, {}, "convert.k"),  # the starting value 0.5 is outside
    ({"n": 7.0}, {}, "convert.n"),  # outside the default bounds [1, 5]
    ({"bounds": {"k_Raf_MEK": [0.6, 0.9]}}, {}, "convert.bounds.k_Raf_MEK"),
    ({"bounds": {"pd_hill": [2.0, 5.0]}}, {"target": "MEK"}, "convert.bounds.pd_hill"),
    ({}, {"target": "MEK", "parameters": {"pk_f": 1.5}}, "drug.parameters.pk_f"),
    ({}, {"target": "MEK", "parameters": {"pk_x": 1.0}}, "drug.parameters.pk_x"),
    ({}, {"target": "MEK", "parameters": ["pk_ka"]}, "drug.parameters"),
    ({}, {"targt": "MEK"}, "drug.targt"),  # checked with no target too
    ({}, {"target": 3}, "drug.target"),
    ({}, {"target": "MEK", "route": "iv_infusion"}, "drug.infusion_duration"),
    ({}, {"target": "MEK", "estimate": "pd_emax"}, "drug.estimate"),
    ({}, [1, 2], "drug"),
    ([1, 2], {}, "convert"),
])
def test_each_bad_section_names_its_key(convert, drug, key):
    with pytest.raises(ConfigError, match=rf"^study\.yaml, key '{key}'"):
        check_config(convert, drug, source="study.yaml")


@pytest.mark.parametrize(("convert", "drug"), [
    ({"method": "boolecube", "k": 0.01, "n": 9.0}, {}),  # a BooleCube has no k or n
    ({"bounds": {"pd_ec50": [10.0, 100.0]}}, {}),  # no drug: no PK/PD parameters
    ({}, {"target": "MEK", "route": "iv_bolus", "parameters": {"pk_f": 1.5, "pk_ka": 1e6}}),  # unused by iv
    ({"bounds": {"tau": [0.0, 10.0, "lin"]}, "tau": 1.0}, {}),  # a linear scale may start at 0
])
def test_starting_values_are_checked_only_for_parameters_the_model_has(convert, drug):
    check_config(convert, drug)


def test_values_that_replace_the_starting_values_are_not_checked_against_them():
    check_config({"bounds": {"k_Raf_MEK": [0.6, 0.9]}}, {}, values={"k_Raf_MEK": 0.7})
    check_config({"bounds": {"tau": [2.0, 5.0]}}, {}, values={"tau_ERK": 3.0})


def test_the_config_check_agrees_with_the_model_it_would_build(example):
    """A section check_config passes converts; one it refuses for a starting value, convert_network
    refuses with the same key."""
    network = example / "truth" / "network.bnet"
    net = read_bnet(network)
    for bounds, key in [({"k": [0.6, 0.9]}, "convert.k"), ({"pd_ec50": [10.0, 100.0]}, "convert.bounds.pd_ec50")]:
        for check in (lambda: check_config({"bounds": bounds}, {"target": "MEK"}),
                      lambda: convert_network(net, network, bounds=bounds, drug={"target": "MEK"})):
            with pytest.raises(ConfigError, match=rf"key '{key}'"):
                check()
    check_config({"bounds": {"k": [0.4, 0.9]}}, {"target": "MEK"})
    convert_network(net, network, bounds={"k": [0.4, 0.9]}, drug={"target": "MEK"})


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("compartments", [1, 2])
def test_pk_states_and_parameters_are_those_the_coupled_model_has(route, compartments):
    net = parse_bnet("u, u\nX, u\n")
    model = couple_pkpd(boolean_to_ode(net), target="X", route=route, compartments=compartments, interval=24,
                        n_doses=1, infusion_duration=1.0 if route == "iv_infusion" else None)
    assert model.states == [*net.nodes, *pk_states(route, compartments)]
    assert sorted(p for p in model.parameters if p in PKPD_PARAMETERS) == sorted(pkpd_names(route, compartments))


def test_a_bound_without_a_scale_takes_the_scale_of_the_parameters_it_bounds():
    model = couple_pkpd(boolean_to_ode(parse_bnet("u, u\nX, u\n")), target="X", interval=24, n_doses=1)
    for name, parameter in model.parameters.items():
        if name.startswith(("tau_", "k_", "n_", "pk_", "pd_")):
            assert default_scale(name) == parameter.scale, name
    assert {kind: default_scale(kind) for kind in DEFAULT_BOUNDS} == {k: b[2] for k, b in DEFAULT_BOUNDS.items()}
    assert default_scale("input_u") == "lin"


def test_names_kept_here_to_stay_light_equal_their_sources():
    from qspflow.model import SCALES as MODEL_SCALES
    from qspflow.petab.export import MODEL_FILE, PROBLEM_FILES

    assert SCALES == MODEL_SCALES
    assert STUDY_SECTIONS == tuple(SCHEMA["properties"])
    assert PROBLEM_FOLDER_FILES == {"petab_model": MODEL_FILE, "conditions": PROBLEM_FILES["conditions"],
                                    "petab_measurements": PROBLEM_FILES["measurements"],
                                    "observables": PROBLEM_FILES["observables"],
                                    "parameters": PROBLEM_FILES["parameters"]}


HEAVY = ("sympy", "petab", "libsbml", "pandas", "qspflow.convert.study")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_check_config_loads_nothing_heavy():
    code = ("from qspflow.convert import check_config\n"
            "try:\n    check_config({'bounds': {'tau': [10, 1]}}, {'target': 'MEK'})\n"
            "except Exception as err:\n    assert 'convert.bounds.tau' in str(err)")
    assert _loaded_after(code) == []


def test_convert_rejects_a_bad_config_or_network_before_loading_model_building_or_petab(tmp_path):
    (tmp_path / "bad.yaml").write_text("convert:\n  bounds:\n    tau: [10, 1]\n")
    (tmp_path / "bad.bnet").write_text("A, A\nB, A &&& \n")
    for args in (["convert", "bad.bnet", "--out", "o"],
                 ["convert", "bad.bnet", "--config", "bad.yaml", "--out", "o"]):
        code = f"import os\nos.chdir({str(tmp_path)!r})\nfrom qspflow.cli import main\nassert main({args!r}) == 2"
        loaded = _loaded_after(code)
        assert "petab" not in loaded and "qspflow.convert.study" not in loaded
    assert not (tmp_path / "o").exists()
