"""Per-step conda environments, the pip lock and the Containerfile pin the same stack."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# conda-forge names that differ from the PyPI names in the lock
CONDA_TO_PIP = {"matplotlib-base": "matplotlib"}
NOT_IN_LOCK = {"python", "pip"}


def _lock_versions(root: Path) -> dict[str, str]:
    text = (root / "envs" / "requirements.lock").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", text, re.M)}


def test_lock_pins_every_top_level_requirement_with_hashes(root: Path) -> None:
    lock = _lock_versions(root)
    text = (root / "envs" / "requirements.lock").read_text()
    for line in (root / "envs" / "requirements.in").read_text().splitlines():
        name = re.split(r"[\[<>=!\s#]", line.strip(), maxsplit=1)[0].lower()
        if name:
            assert name in lock, f"{name} is in requirements.in but not pinned in requirements.lock"
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)


def test_conda_envs_pin_the_lock_versions(root: Path) -> None:
    lock = _lock_versions(root)
    envs = sorted((root / "envs").glob("*.yaml"))
    assert envs, "no conda environment files in envs/"
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        for dep in spec["dependencies"]:
            if not isinstance(dep, str):
                continue
            name, _, version = dep.partition("=")
            if name in NOT_IN_LOCK:
                continue
            pip_name = CONDA_TO_PIP.get(name, name).lower()
            assert version, f"{env.name}: {name} is not pinned"
            assert lock.get(pip_name) == version.lstrip("="), f"{env.name}: {name}={version}, lock has {lock.get(pip_name)}"


def test_every_rule_names_an_existing_conda_env(root: Path) -> None:
    for smk in (root / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name} names missing env {env}"


def test_containerfile_builds_from_the_lock_through_bin_setup(root: Path) -> None:
    text = (root / "envs" / "Containerfile").read_text()
    assert "bin/setup" in text
    assert "requirements.lock" in (root / "bin" / "setup").read_text()
