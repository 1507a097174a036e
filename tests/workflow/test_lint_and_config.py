"""The workflow is lint-clean and its configuration is validated against the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, run_snakemake


def test_snakemake_lint_is_clean(workflow_copy: Path) -> None:
    proc = run_snakemake(workflow_copy, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "good condition" in proc.stdout + proc.stderr


def _walk_properties(schema: dict, path: str = ""):
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}{key}", sub
        if sub.get("type") == "object":
            yield from _walk_properties(sub, f"{path}{key}.")


def test_every_config_key_has_a_description_and_a_default_unless_required() -> None:
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    keys = list(_walk_properties(schema))
    assert len(keys) >= 10
    assert schema["required"] == ["study"]
    for key, sub in keys:
        assert sub.get("description"), f"{key} has no description"
        assert "default" in sub or key in schema["required"], f"{key} has no default"
    for obj_path, sub in [("", schema)] + [(k, s) for k, s in keys if s.get("type") == "object"]:
        assert sub.get("additionalProperties") is False, f"{obj_path or 'top level'} accepts unknown keys"


def test_config_readme_documents_every_key() -> None:
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    missing = [key for key, _ in _walk_properties(schema) if f"`{key}`" not in readme]
    assert not missing, f"config/README.md does not document {missing}"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["prepare"].update(binarisation="kmeans"), "binarisation"),
        (lambda c: c.update(studdy="x"), "studdy"),
        (lambda c: c["prepare"].update(normalization="zscore"), "zscore"),
        (lambda c: c.update(study="../escape"), "../escape"),
    ],
    ids=["misspelt-nested-key", "unknown-top-level-key", "value-not-in-enum", "study-name-with-path"],
)
def test_bad_config_is_rejected_naming_the_key(workflow_copy: Path, edit, expected: str) -> None:
    config_path = workflow_copy / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    edit(config)
    config_path.write_text(yaml.safe_dump(config))
    proc = run_snakemake(workflow_copy, "--dry-run", check=False)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr
    assert not (workflow_copy / "results").exists()
