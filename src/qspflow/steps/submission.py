"""The `package` step and the `verify` and `audit` commands: the study's submission bundle and its checks.

A bundle is one deterministic archive whose single top folder holds the workflow (Snakefile, rules,
scripts, notebooks, the library source, configs, environments and the lock), the study's inputs and
every output, the resolved study config (`study.yaml`, every key explicit), the Workflow Run RO-Crate
and `MANIFEST.sha256` over all of it. Paths inside keep their place in the working directory, so the
audit re-runs the workflow from the unpacked bundle exactly as it ran.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

import qspflow
from qspflow.errors import AuditError
from qspflow.io import output_file, output_folder, write_text
from qspflow.provenance.audit import FileCheck, audit_json, audit_markdown, compare, passed
from qspflow.provenance.bundle import safe_extract, write_bundle
from qspflow.provenance.environment import run_environment
from qspflow.provenance.jobs import snakemake_jobs
from qspflow.provenance.manifest import manifest_text, read_manifest, sha256_file, verify

FilePath = str | os.PathLike[str]

MANIFEST = "MANIFEST.sha256"
CRATE = "ro-crate-metadata.json"
STUDY_CONFIG = "study.yaml"  # the resolved config the audit re-runs with
OUTPUTS = "results/"
FILES = {"manifest": MANIFEST, "crate": CRATE, "bundle": "{study}-submission.tar.gz"}

#: the workflow's own files, as globs from the working directory
WORKFLOW_GLOBS = ("Snakefile", "pyproject.toml", "README.md", "bin/*", "rules/*.smk", "scripts/*.py",
                  "notebooks/*.ipynb", "report/*", "config/*", "profiles/*/*", "envs/*")
#: config keys that name input files (data.petab: the problem's YAML and every file it names)
INPUT_KEYS = (("data", "measurements"), ("data", "experiments"), ("data", "pkn"), ("data", "petab"),
              ("vpop", "target"))


def workflow_files(root: Path) -> list[str]:
    """The workflow's files under `root` (no caches, no build or editor leftovers), sorted."""
    found = set()
    for pattern in WORKFLOW_GLOBS:
        for path in root.glob(pattern):
            rel = path.relative_to(root)
            if path.is_file() and not path.is_symlink() and "__pycache__" not in rel.parts \
                    and not rel.name.endswith((".pyc", "~")) and not any(p.endswith(".egg-info") for p in rel.parts):
                found.add(rel.as_posix())
    return sorted(found)


def library_files() -> dict[str, Path]:
    """The qspflow library that runs this step, bundle path (`src/qspflow/…`) → file: the package holds the code
    that ran, wherever it is installed (in a clone, its own src/)."""
    package = Path(qspflow.__file__).parent
    return {f"src/qspflow/{path.relative_to(package).as_posix()}": path for path in sorted(package.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc")}


def _inside(root: Path, path: str, key: str) -> str:
    """`path` (as the config gives it) as a POSIX path relative to `root`; refused when it lies outside."""
    resolved = (root / path).resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise AuditError(path, key=key, expected="an input inside the workflow folder",
                         message="a submission package holds only inputs under the workflow folder, so that the "
                                 "audit re-runs with the same paths: copy it there (e.g. resources/STUDY/) and "
                                 "name it relative to the folder") from None


def study_inputs(config: Mapping[str, Mapping[str, object]], root: Path) -> list[str]:
    """Every input file the study config names, relative to `root` (PEtab problems with all their files)."""
    from qspflow.petab.problem import problem_files  # here: the Snakefile calls this at start-up, petab takes 5 s

    root = root.resolve()
    found = set()
    for section, key in INPUT_KEYS:
        value = config.get(section, {}).get(key)
        if not value:
            continue
        name = f"{section}.{key}"
        rel = _inside(root, str(value), name)
        paths = problem_files(root / rel) if (section, key) == ("data", "petab") else [root / rel]
        found.update(_inside(root, str(p), name) for p in paths)
    return sorted(found)


def expand_outputs(outputs: Sequence[FilePath], root: Path) -> list[str]:
    """The output files, a directory output expanded to its files (without Snakemake's timestamp file)."""
    found = set()
    for output in outputs:
        path = root / output
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found.update(p.relative_to(root).as_posix() for p in files if p.name != ".snakemake_timestamp")
    return sorted(found)


def software_versions(requirements: Path) -> dict[str, str]:
    """Python's version and that of every top-level requirement of the lock's source (envs/requirements.in)."""
    versions = {"python": platform.python_version()}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name = re.split(r"[\s\[<>=!~;#]", line.strip(), maxsplit=1)[0]
        if name:
            try:
                versions[name.lower()] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name.lower()] = "not installed"
    return versions


def _resolved_config(config: Mapping[str, object]) -> str:
    """The config as YAML in its own key order: the re-run reads it back in that order, which reaches the
    reports (their options tables), so sorting it here would change them."""
    return "# The study config as the workflow ran it: every key explicit (defaults of config/schema.yaml filled).\n" \
        + yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True)


def _plain(value: object) -> object:
    """Snakemake's config objects as plain YAML types."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def package(*, study: str, config: Mapping[str, object], outputs: Sequence[FilePath], manifest: FilePath,
            crate: FilePath, bundle: FilePath, root: FilePath = ".") -> str:
    """Hash, describe and bundle the study (see the module docstring); returns the bundle's SHA-256."""
    from qspflow.provenance.crate import crate_json  # rocrate only where a crate is written

    root = Path(root)
    library = library_files()
    sources = {rel: root / rel for rel in workflow_files(root)} | library
    workflow = sorted(sources)
    inputs = [p for p in study_inputs(config, root) if p not in sources]
    results = expand_outputs(outputs, root)
    sources |= {rel: root / rel for rel in (*inputs, *results)}
    with tempfile.TemporaryDirectory(prefix=".qspflow-package.", dir=Path(bundle).parent) as tmp:
        tree = Path(tmp) / "tree"
        for rel, source in sources.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tree / rel)
            shutil.copymode(source, tree / rel)
        write_text(_resolved_config(config), tree / STUDY_CONFIG)
        hashes = {rel: sha256_file(tree / rel) for rel in (*workflow, *inputs, *results, STUDY_CONFIG)}
        jobs = snakemake_jobs(root, results)
        write_text(crate_json(study=study, workflow_files=workflow, inputs={p: hashes[p] for p in inputs},
                              outputs={p: hashes[p] for p in results}, jobs=jobs,
                              software=software_versions(root / "envs/requirements.in"), config_file=STUDY_CONFIG,
                              license=config["package"]["license"],
                              date_published=config["package"]["date_published"]),
                   tree / CRATE)
        members = sorted([*hashes, CRATE])
        write_text(manifest_text(tree, members), tree / MANIFEST)
        with output_file(manifest) as out:
            shutil.copyfile(tree / MANIFEST, out)
        with output_file(crate) as out:
            shutil.copyfile(tree / CRATE, out)
        return write_bundle(tree, [*members, MANIFEST], Path(bundle), f"{study}-submission")  # atomic itself


# ---------------------------------------------------------------------------------------- verify, audit


def _unpacked(bundle: Path, dest: Path) -> tuple[Path, dict[str, str]]:
    """The bundle unpacked safely into `dest` (or the folder itself) and its manifest's entries."""
    top = bundle if bundle.is_dir() else safe_extract(bundle, dest)
    if not (top / MANIFEST).is_file():
        raise AuditError(bundle, expected=f"a submission bundle with {MANIFEST} in its top folder",
                         message="no manifest found")
    return top, read_manifest(top / MANIFEST)


def verify_bundle(bundle: FilePath) -> list[FileCheck]:
    """Every file of a bundle (archive or unpacked folder) checked against its manifest."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise AuditError(bundle, expected="a submission bundle (.tar.gz) or its unpacked folder",
                         message="it does not exist")
    with tempfile.TemporaryDirectory(prefix="qspflow-verify.") as tmp:
        top, entries = _unpacked(bundle, Path(tmp) / "bundle")
        return verify(top, entries, ignore={MANIFEST})


def _copy_for_rebuild(top: Path, dest: Path, entries: Mapping[str, str]) -> None:
    """The bundle's workflow, inputs and resolved config, without its outputs and provenance files."""
    for rel in entries:
        if rel.startswith(OUTPUTS) or rel == CRATE:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(top / rel, dest / rel)


def _rebuild(workdir: Path, cores: int, log: Path) -> int:
    """Snakemake run in `workdir` with the bundle's own library first on the path; its output goes to `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    env["PYTHONPATH"] = os.pathsep.join([str(workdir / "src"), *filter(None, [env.get("PYTHONPATH")])])
    with log.open("w", encoding="utf-8") as handle:
        return subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile",
                               STUDY_CONFIG], cwd=workdir, env=env, stdout=handle, stderr=subprocess.STDOUT,
                              check=False).returncode


def audit(*, bundle: FilePath, out: FilePath, cores: int = 2, force: bool = False) -> bool:
    """Unpack and verify the bundle, re-run its workflow from its inputs and code, compare every output and
    the re-made package byte for byte; writes audit.json and audit.md into `out`. True when all is identical.

    A bundle that does not verify is not re-run: its differing files are the finding. A re-run that fails
    leaves outputs missing, which the comparison names (rebuild.log holds Snakemake's account)."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise AuditError(bundle, expected="a submission bundle (.tar.gz)", message="it does not exist or is not a file")
    digest = sha256_file(bundle)
    with output_folder(out, force=force) as staging:
        top, entries = _unpacked(bundle, staging / "bundle")
        checks = verify(top, entries, ignore={MANIFEST})
        meta = {"bundle": bundle.name, "bundle_sha256": digest, "cores": cores, "stage": "verify"}
        if all(c.status == "identical" for c in checks):
            rebuild = staging / "rebuild"
            _copy_for_rebuild(top, rebuild, entries)
            status = _rebuild(rebuild, cores, staging / "rebuild.log")
            meta |= {"stage": "rebuild", "snakemake_exit_status": status} | run_environment(rebuild)
            outputs = {rel: h for rel, h in entries.items() if rel.startswith(OUTPUTS)}
            checks = compare(outputs, rebuild, [OUTPUTS])
            study = top.name.removesuffix("-submission")
            made = {"package/" + MANIFEST: (sha256_file(top / MANIFEST), rebuild / "package" / MANIFEST),
                    "package/" + CRATE: (entries[CRATE], rebuild / "package" / CRATE),
                    f"package/{study}-submission.tar.gz": (digest, rebuild / "package" / f"{study}-submission.tar.gz")}
            for rel, (expected, path) in made.items():
                actual = sha256_file(path) if path.is_file() else None
                state = "missing" if actual is None else "identical" if actual == expected else "different"
                checks.append(FileCheck(rel, state, expected, actual))
        write_text(audit_json(checks, meta), staging / "audit.json")
        write_text(audit_markdown(checks, meta), staging / "audit.md")
    return passed(checks)
