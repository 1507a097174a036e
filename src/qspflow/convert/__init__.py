"""Boolean network → ODE model (Odefy), a drug's PK/PD and inhibitors: the `convert` step's library.

- `odefy`: `boolean_to_ode` (BooleCube, HillCube, normalized HillCube; Krumsiek et al. 2010)
  and `add_inhibitors` (production × (1 − inh_<node>)).
- `pkpd`: `couple_pkpd`, a one- or two-compartment PK whose concentration scales the production
  of one node (Emax inhibition or activation).
- `options`: the study config's `convert:` and `drug:` sections checked (`check_config`, light
  enough for the workflow's start-up); parameter bounds.
- `study`: `convert_network`, one network of a study to its model, readable formulas and (with
  data) PEtab tables.

Every model keeps its named quantities in `OdeModel.expressions` (fully substituted, as the
model contract says): `hill_<source>_<target>` per HillCube edge, `production_<node>` per
non-input node, and with a drug `drug_input` (oral and infusion), `A_c` (iv bolus) and
`drug_effect`. The same formulas written over each other's names are a
`qspflow.model.formulas.Formulas`, from which `qspflow.model.pysb.pysb_source` and
`qspflow.model.equations.equations_markdown` write the readable model files. Reading the
network and data files and writing the outputs is `qspflow.steps.models`.
"""

import importlib

#: public name → the module that defines it (imported on first use: `check_config` and the
#: constants load nothing heavy, the converters load sympy, `convert_network` also petab)
_MODULES = {
    **dict.fromkeys(["CONVERT_KEYS", "DEFAULT_BOUNDS", "DRUG_KEYS", "EFFECTS", "METHODS", "METHOD_TITLES",
                     "PKPD_PARAMETERS", "ROUTES", "check_config"], "qspflow.convert.options"),
    **dict.fromkeys(["add_inhibitors", "boolean_to_ode"], "qspflow.convert.odefy"),
    **dict.fromkeys(["CONCENTRATION", "DRUG_EFFECT", "DRUG_INPUT", "couple_pkpd"], "qspflow.convert.pkpd"),
    **dict.fromkeys(["ConvertedModel", "convert_network"], "qspflow.convert.study"),
    "equations_markdown": "qspflow.model.equations",
    **dict.fromkeys(["Formulas", "valid_id"], "qspflow.model.formulas"),
    "pysb_source": "qspflow.model.pysb",
}


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module 'qspflow.convert' has no attribute '{name}'")
    return getattr(importlib.import_module(_MODULES[name]), name)


def __dir__() -> list[str]:
    return sorted(_MODULES)


__all__ = sorted(_MODULES)
