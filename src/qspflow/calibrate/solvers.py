"""Where Pyomo finds the PyNumero library that its Ipopt (cyipopt) interface loads.

`bin/setup` builds PyNumero into `.venv/share/pyomo`; Pyomo reads `PYOMO_CONFIG_DIR` when it is
first imported, so call `configure_pyomo()` before `import pyomo`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def configure_pyomo() -> Path:
    """Point Pyomo at the environment's PyNumero build unless the user chose another place."""
    config_dir = os.environ.setdefault("PYOMO_CONFIG_DIR", str(Path(sys.prefix) / "share" / "pyomo"))
    return Path(config_dir)
