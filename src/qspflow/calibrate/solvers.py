"""The set-up of the NLP solvers: where Pyomo finds the PyNumero library that its Ipopt (cyipopt)
interface loads, and the floating-point environment that a solve must leave as it found it.

`bin/setup` builds PyNumero into `.venv/share/pyomo`; Pyomo reads `PYOMO_CONFIG_DIR` when it is
first imported, so call `configure_pyomo()` before `import pyomo`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# The C library's fenv functions, from the symbols the interpreter has loaded (libm on Linux).
_LIBC = ctypes.CDLL(None)
_FENV_BYTES = 64  # larger than any platform's fenv_t (32 bytes on x86-64 glibc)


def configure_pyomo() -> Path:
    """Point Pyomo at the environment's PyNumero build unless the user chose another place."""
    config_dir = os.environ.setdefault("PYOMO_CONFIG_DIR", str(Path(sys.prefix) / "share" / "pyomo"))
    return Path(config_dir)


def _environment() -> ctypes.Array:
    saved = ctypes.create_string_buffer(_FENV_BYTES)
    if _LIBC.fegetenv(saved) != 0:
        raise OSError("fegetenv failed: the floating-point environment cannot be saved")
    return saved


# The process's environment as qspflow found it, which a worker process (forked from a server that only
# imported) has too.
_STARTUP = _environment()


@contextlib.contextmanager
def startup_floating_point_environment() -> Iterator[None]:
    """Run the block in the floating-point environment (x87 and SSE control words: rounding, precision,
    exception masks) the process had when qspflow was imported, and give the caller's back after it.

    An Ipopt solve (cyipopt-wheels: Ipopt 3.14, MUMPS, gfortran) sets the x87 precision control from
    extended to double (control word 0x37f → 0x27f) and leaves it so; NumPy's LAPACK then returns other
    last bits (`numpy.linalg.eigh`, which fides' trust-region step uses), so a calibration in a process
    that had run Ipopt before ended elsewhere in the last digits than one in a new process.
    """
    caller = _environment()
    _LIBC.fesetenv(_STARTUP)
    try:
        yield
    finally:
        _LIBC.fesetenv(caller)
