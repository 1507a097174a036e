"""Steps on Boolean networks: the `infer` checkpoint (`qspflow infer`) and `qspflow attractors`.

The checkpoint's output is one folder, `networks`: `index.tsv` (network, score, mismatches, size,
missed; best first) and `{network}.bnet` and `{network}.sbml` (SBML-qual) per network kept.
"""

from __future__ import annotations

import os

from qspflow import options
from qspflow.boolean import attractors as find_attractors
from qspflow.boolean import attractors_table, read_bnet, read_sif
from qspflow.data import prepare as prepare_measurements
from qspflow.data import read_experiments
from qspflow.infer import InferenceResult, check_options, ensemble_texts, infer_networks, read_binarized
from qspflow.io import atomic_folder, table_text, write_text

PathLike = str | os.PathLike[str]

FILES = {"networks": "networks"}  # a folder; `qspflow infer --out DIR` makes DIR that folder
INDEX = "index.tsv"


def infer(*, binarized: PathLike, experiments: PathLike, pkn: PathLike, networks: PathLike, max_networks: int,
          **infer_options) -> InferenceResult:
    """Infer a ranked ensemble from the prepare step's `binarized` states and `experiments` table
    against the SIF `pkn` (`qspflow.infer.infer_networks` with `infer_options`: method, time,
    max_inputs, size_penalty, tolerance, respect_signs, max_models, drug_target, inhibiting_dose),
    and replace folder `networks` with the best `max_networks` of it. Options are checked before
    any file is read."""
    options.integer("infer.max_networks", max_networks, 1)
    check_options(**infer_options)
    result = infer_networks(read_sif(pkn), read_binarized(binarized), read_experiments(experiments),
                            pkn_source=str(pkn), binarized_source=str(binarized),
                            experiments_source=str(experiments), **infer_options)
    _write_networks(result, networks, max_networks)
    return result


def infer_from_data(*, pkn: PathLike, data: PathLike, networks: PathLike, fmt: str = "auto",
                    experiments: PathLike | None = None, max_networks: int = 5, **infer_options) -> InferenceResult:
    """`infer` on raw measurements: `data` (with the optional `experiments` table) is binarized in
    memory with the prepare step's defaults, observables restricted to the nodes of `pkn`."""
    options.integer("infer.max_networks", max_networks, 1)
    check_options(**infer_options)
    network = read_sif(pkn)
    prepared = prepare_measurements(data, fmt=fmt, experiments_path=experiments, known_nodes=network.nodes)
    result = infer_networks(network, prepared.binarized, prepared.experiments, pkn_source=str(pkn),
                            binarized_source=str(data), experiments_source=str(experiments or data),
                            **infer_options)
    _write_networks(result, networks, max_networks)
    return result


def _write_networks(result: InferenceResult, folder: PathLike, max_networks: int) -> None:
    """Replace `folder` whole with the index and the best networks' files (rendered first)."""
    index, texts = ensemble_texts(result, max_networks)
    with atomic_folder(folder) as staging:
        write_text(index, staging / INDEX)
        for name, (bnet, sbml) in texts.items():
            write_text(bnet, staging / f"{name}.bnet")
            write_text(sbml, staging / f"{name}.sbml")


def attractors(*, network: PathLike, update: str = "synchronous") -> str:
    """The attractors of the `.bnet` file `network` as TSV text, one row per attractor: attractor,
    type, size, basin, states (bit strings) and nodes (the node of each bit, in order)."""
    net = read_bnet(network)
    return table_text(attractors_table(find_attractors(net, update=update, source=network), net))
