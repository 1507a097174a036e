"""Step `example`: the bundled example study written into a folder (`qspflow example --out DIR`)."""

from __future__ import annotations

import os
from pathlib import Path

from qspflow.example import DEFAULT_SEED, example_files
from qspflow.io import write_text


def example(*, out: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> None:
    """Write the example study's inputs and ground truth (truth/) into folder `out`; README.md is not touched."""
    for name, text in example_files(seed=seed).items():
        write_text(text, Path(out) / name)
