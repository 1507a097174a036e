"""`snakemake` runs the example study through prepare, the infer checkpoint and convert for every network."""

from __future__ import annotations

from pathlib import Path

import pytest

from qspflow.boolean import read_bnet, truth_table

from .conftest import run_snakemake

NETWORKS = Path("results/example/networks")


def _outputs(workdir: Path) -> dict[str, bytes]:
    """Every file the checkpoint and the steps after it wrote, by path relative to the study's results."""
    study = workdir / "results/example"
    return {str(p.relative_to(study)): p.read_bytes() for p in sorted(study.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_workflow_infers_the_true_network_converts_it_and_is_byte_identical_across_core_counts(workflow_copy: Path) -> None:
    run_snakemake(workflow_copy, "--cores", "1", "models")
    first = _outputs(workflow_copy)
    run_snakemake(workflow_copy, "--cores", "2", "--forceall", "models")
    assert _outputs(workflow_copy) == first

    assert {"networks/index.tsv", "networks/net_1.bnet", "networks/net_1.sbml"} <= set(first)
    assert {"models/net_1/model.py", "models/net_1/model.sbml", "models/net_1/equations.md",
            "models/net_1/petab/problem.yaml"} <= set(first)
    best = read_bnet(workflow_copy / NETWORKS / "net_1.bnet")
    truth = read_bnet(workflow_copy / "resources/example/truth/network.bnet")
    assert set(best.nodes) == set(truth.nodes)
    for node in truth.nodes:
        names = sorted(set(truth.regulators(node)) | set(best.regulators(node)) | {node})
        assert list(truth_table(best.rules[node], names)) == list(truth_table(truth.rules[node], names)), node
    log = (workflow_copy / "logs/infer/example.log").read_text()
    assert "left out" in log and "Traceback" not in log
