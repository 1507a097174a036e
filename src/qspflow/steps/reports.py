"""The `report` step: one parameterized notebook of `notebooks/` executed into a byte-stable notebook and HTML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from qspflow.report.notebook import run_notebook

FilePath = str | os.PathLike[str]

#: report step → its page title
TITLES = {
    "data": "Data quality control",
    "networks": "Inferred Boolean networks",
    "models": "ODE models",
    "calibration": "Calibration and model selection",
    "sensitivity": "Global sensitivity analysis",
    "vpop": "Virtual population",
    "summary": "Study summary",
}


def report(*, step: str, notebook: FilePath, parameters: Mapping[str, object], ipynb: FilePath, html: FilePath) -> None:
    """Execute `notebook` with `parameters` (study, files, options) from the working directory, whose relative
    paths the parameters use."""
    run_notebook(Path(notebook), dict(parameters), Path(ipynb), Path(html), cwd=Path.cwd(),
                 title=f"{parameters['study']}: {TITLES[step]}")
