"""The SLURM profile names the workflow's rules as they are."""

from __future__ import annotations

import re
from pathlib import Path

import yaml


def _rules(root: Path) -> set[str]:
    return {m for smk in (root / "rules").glob("*.smk")
            for m in re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), re.M)}


def test_the_job_array_rules_exist_and_are_the_fan_out_ones(root: Path) -> None:
    profile = yaml.safe_load((root / "profiles" / "slurm" / "config.yaml").read_text())
    arrays = {name.strip() for name in profile["slurm-array-jobs"].split(",")}
    assert arrays <= _rules(root), arrays - _rules(root)  # a renamed rule would silently lose its arrays
    assert arrays == {"calibrate_start", "profile", "sensitivity_simulate", "vpop_candidates", "report"}


def test_every_rule_names_its_runtime_and_memory(root: Path) -> None:
    checked = set()
    for smk in (root / "rules").glob("*.smk"):
        for name, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), re.M):
            assert "runtime=" in body and "mem_mb=" in body, f"{smk.name}: rule {name} leaves runtime or mem_mb out"
            checked.add(name)
    assert checked == _rules(root)
