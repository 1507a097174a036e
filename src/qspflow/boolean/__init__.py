"""Boolean networks: logic expressions, `.bnet`/SBML-qual/SIF formats, dynamics and attractors.

- `expressions`: Var/Const/Not/And/Or, the safe rule parser (never `eval`), formatting, truth tables.
- `network`: `BooleanNetwork` (one rule per node; an input's rule is itself), the signed `Pkn`,
  random networks.
- `formats`: BoolNet `.bnet`, SBML-qual (as GINsim, bioLQM and CellCollective write it) and
  signed SIF: readers of a user's file and canonical text renderers.
- `dynamics`: synchronous and asynchronous attractors, steady states (clingo).
"""

from qspflow.boolean.dynamics import (
    MAX_ASYNCHRONOUS_NODES,
    MAX_SYNCHRONOUS_NODES,
    Attractor,
    attractors,
    attractors_table,
    steady_states,
)
from qspflow.boolean.expressions import (
    FALSE,
    MAX_DEPTH,
    NAME_EXPECTED,
    NAME_PATTERN,
    TRUE,
    And,
    Const,
    Expr,
    Not,
    Or,
    Var,
    evaluate,
    format_expression,
    parse_expression,
    sign_of,
    truth_table,
    variables,
)
from qspflow.boolean.formats import (
    SBML_ID_PATTERN,
    bnet_text,
    parse_bnet,
    parse_sbml_qual,
    read_bnet,
    read_sbml_qual,
    read_sif,
    sbml_qual_text,
    sif_text,
)
from qspflow.boolean.network import BooleanNetwork, Pkn, random_network

__all__ = [
    "FALSE",
    "MAX_ASYNCHRONOUS_NODES",
    "MAX_DEPTH",
    "MAX_SYNCHRONOUS_NODES",
    "NAME_EXPECTED",
    "NAME_PATTERN",
    "SBML_ID_PATTERN",
    "TRUE",
    "And",
    "Attractor",
    "BooleanNetwork",
    "Const",
    "Expr",
    "Not",
    "Or",
    "Pkn",
    "Var",
    "attractors",
    "attractors_table",
    "bnet_text",
    "evaluate",
    "format_expression",
    "parse_bnet",
    "parse_expression",
    "parse_sbml_qual",
    "random_network",
    "read_bnet",
    "read_sbml_qual",
    "read_sif",
    "sbml_qual_text",
    "sif_text",
    "sign_of",
    "steady_states",
    "truth_table",
    "variables",
]
