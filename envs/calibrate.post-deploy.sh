#!/usr/bin/env bash
# PyNumero (Pyomo's bridge to Ipopt) into the environment, where qspflow.solvers looks for it.
set -euo pipefail
PYOMO_CONFIG_DIR="$CONDA_PREFIX/share/pyomo" pyomo build-extensions
