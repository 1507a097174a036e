"""Boolean network → ODE model (Odefy), a drug's PK/PD and inhibitors: the `convert` step's library.

- `odefy`: `boolean_to_ode` (BooleCube, HillCube, normalized HillCube; Krumsiek et al. 2010)
  and `add_inhibitors` (production × (1 − inh_<node>)).
- `pkpd`: `couple_pkpd`, a one- or two-compartment PK whose concentration scales the production
  of one node (Emax inhibition or activation).
- `options`: the study config's `convert:` and `drug:` sections checked; parameter bounds.
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

from qspflow.convert.odefy import DEFAULT_BOUNDS, METHOD_TITLES, METHODS, add_inhibitors, boolean_to_ode
from qspflow.convert.options import CONVERT_KEYS, DRUG_KEYS
from qspflow.convert.pkpd import (
    CONCENTRATION,
    DRUG_EFFECT,
    DRUG_INPUT,
    EFFECTS,
    PKPD_PARAMETERS,
    ROUTES,
    couple_pkpd,
)
from qspflow.convert.study import ConvertedModel, convert_network
from qspflow.model.equations import equations_markdown
from qspflow.model.formulas import Formulas, valid_id
from qspflow.model.pysb import pysb_source

__all__ = [
    "CONCENTRATION", "CONVERT_KEYS", "DEFAULT_BOUNDS", "DRUG_EFFECT", "DRUG_INPUT", "DRUG_KEYS", "EFFECTS",
    "METHODS", "METHOD_TITLES", "PKPD_PARAMETERS", "ROUTES", "ConvertedModel", "Formulas", "add_inhibitors",
    "boolean_to_ode", "convert_network", "couple_pkpd", "equations_markdown", "pysb_source", "valid_id",
]
