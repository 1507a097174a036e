"""The workflow's steps: one function per rule, taking every input and output path by name.

This layer is the only code that knows file names. It reads the inputs, calls the library
(plain data in, plain data out) and writes the outputs atomically; the rule scripts in
`scripts/` and the `qspflow` command both call these functions, nothing else. Each step module
has a `FILES` mapping (output name → file name in a folder), which the CLI uses with `in_folder`
to turn `--out DIR` into the same named outputs the rules give.

Step functions are imported on first use (`steps.calibrate` loads Pyomo, `steps.attractors`
does not), so a command or a rule pays only for the libraries it needs. `start_workers(threads)`,
called before a calibration step, starts the server its worker processes fork from
(`qspflow.workers`), so that the server imports the calibration while this process does.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

from qspflow import workers

#: step function → the module of `qspflow.steps` that defines it
_MODULES = {
    "example": "example_study",
    "prepare": "data",
    "infer": "networks",
    "infer_from_data": "networks",
    "attractors": "networks",
    "convert": "models",
    "convert_with_config": "models",
    "petab_simulate": "petab",
    "petab_llh": "petab",
    "calibrate_global": "calibration",
    "calibrate_start": "calibration",
    "calibrate": "calibration",
    "select": "calibration",
    "profile": "calibration",
    "calibrate_folder": "calibration",
    "sensitivity_sample": "sensitivity",
    "sensitivity_simulate": "sensitivity",
    "sensitivity_analyze": "sensitivity",
    "sensitivity_folder": "sensitivity",
    "vpop_candidates": "vpop",
    "vpop_select": "vpop",
    "vpop_folder": "vpop",
    "report": "reports",
    "package": "submission",
    "verify_bundle": "submission",
    "audit": "submission",
}


def in_folder(folder: str | os.PathLike[str], files: Mapping[str, str]) -> dict[str, Path]:
    """Every named output of a step, placed in `folder` under its default file name."""
    return {name: Path(folder) / file for name, file in files.items()}


def files(step: str) -> dict[str, str]:
    """The `FILES` mapping (output name → default file name) of the module that defines `step`."""
    return dict(importlib.import_module(f"qspflow.steps.{_MODULES[step]}").FILES)


def start_workers(threads: int) -> None:
    """Before a calibration step with `threads` > 1: start the server its worker processes fork from."""
    workers.start(threads)


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module 'qspflow.steps' has no attribute '{name}'")
    return getattr(importlib.import_module(f"qspflow.steps.{_MODULES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*_MODULES, "files", "in_folder", "start_workers"])


__all__ = sorted([*_MODULES, "files", "in_folder", "start_workers"])
