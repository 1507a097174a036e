"""`snakemake` runs prepare and the infer checkpoint on the example study and fans out over the networks."""

from __future__ import annotations

from pathlib import Path

import pytest

from qspflow.boolean import read_bnet, truth_table

from .conftest import run_snakemake

NETWORKS = Path("results/example/networks")


def _outputs(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / NETWORKS).iterdir())}


@pytest.mark.slow
def test_workflow_infers_the_true_network_and_is_byte_identical_across_core_counts(workflow_copy: Path) -> None:
    run_snakemake(workflow_copy, "--cores", "1")
    first = _outputs(workflow_copy)
    run_snakemake(workflow_copy, "--cores", "2", "--forceall")
    assert _outputs(workflow_copy) == first

    assert {"index.tsv", "net_1.bnet", "net_1.sbml"} <= set(first)
    best = read_bnet(workflow_copy / NETWORKS / "net_1.bnet")
    truth = read_bnet(workflow_copy / "resources/example/truth/network.bnet")
    assert set(best.nodes) == set(truth.nodes)
    for node in truth.nodes:
        names = sorted(set(truth.regulators(node)) | set(best.regulators(node)) | {node})
        assert list(truth_table(best.rules[node], names)) == list(truth_table(truth.rules[node], names)), node
    log = (workflow_copy / "logs/infer/example.log").read_text()
    assert "left out" in log and "Traceback" not in log
