"""Per-step conda environments, the pip lock and the Containerfile pin the same stack."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


def _envs_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "bin" / "envs"), "--check"], capture_output=True, text=True)


def test_the_env_files_are_what_bin_envs_writes_from_the_lock(root: Path) -> None:
    proc = _envs_check(root)
    assert proc.returncode == 0, proc.stderr


def test_bin_envs_names_an_env_file_that_drifted_from_the_lock(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "envs", tmp_path / "envs")
    (tmp_path / "bin").mkdir()
    shutil.copy2(root / "bin" / "envs", tmp_path / "bin" / "envs")
    lock = tmp_path / "envs" / "requirements.lock"
    lock.write_text(re.sub(r"^salib==\S+", "salib==9.9.9", lock.read_text(), flags=re.M | re.I))
    proc = _envs_check(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "envs/sensitivity.yaml differs from what bin/envs writes (envs/steps.in + envs/requirements.lock)"


def test_every_rule_uses_the_env_that_envs_steps_in_gives_it(root: Path) -> None:
    steps = yaml.safe_load((root / "envs" / "steps.in").read_text())
    env_of = {rule: step for step, spec in steps.items() for rule in spec["rules"]}
    found = {}
    for smk in (root / "rules").glob("*.smk"):
        for rule, env in re.findall(r'^(?:rule|checkpoint) (\w+):.*?conda:\s*\n\s*"\.\./envs/(\w+)\.yaml"',
                                    smk.read_text(), re.M | re.S):
            found[rule] = env
    assert found == env_of
