"""The bad-input corpus: every `qspflow` command and the workflow, given malformed or awkward input,
answers with one line naming the file and place and what was expected, exits 2, and leaves no file
behind outside the outputs it owns.

The cases are tables (`cases_*.yaml` beside this file), one mapping per case:

    id:        a name for the case
    files:     {path: text | {copy: SRC, sub: [[old, new], ...], append: TEXT, bytes_hex: HEX, folder: true}}
               files made in the case's working folder before the run (`{ex}`, `{boehm}`, `{toy}`,
               `{cases}`, `{root}` expand to the example study, Boehm's PEtab problem, CellNOpt's toy
               case, ../shared/cases and the repository)
    readonly:  [folder, ...] made read-only; the command then runs as user `nobody`, since root writes anyway
    run:       qspflow arguments (kind cli, the default), or snakemake arguments (kind workflow: run in a
               copy of the workflow, with the case's files inside it)
    exit:      expected exit status (default 2)
    words:     words the error message (stderr) must contain
    stdout:    words stdout must contain
    lines:     most lines the error message may have (default 1; the workflow: 3 lines of qspflow's message)
    outputs:   glob patterns of the files the command may create or change (default: none)
    quiet:     true when stderr must be empty (no warning nobody asked for)
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "report", "envs", "profiles", "notebooks", "resources")


def _load() -> list[dict]:
    cases = []
    for table in sorted(HERE.glob("cases_*.yaml")):
        for case in yaml.safe_load(table.read_text(encoding="utf-8")):
            case.setdefault("kind", "workflow" if table.stem == "cases_workflow" else "cli")
            cases.append(case)
    return cases


CASES = _load()


def _places(cases_dir: Path, work: Path) -> dict[str, str]:
    return {"ex": str(ROOT / "resources" / "example"), "boehm": str(cases_dir / "petab" / "Boehm_JProteomeRes2014"),
            "toy": str(cases_dir / "cellnopt_toy"), "cases": str(cases_dir), "root": str(ROOT), "work": str(work)}


def _expand(text: str, places: dict[str, str]) -> str:
    for name, value in places.items():
        text = text.replace("{" + name + "}", value)
    return text


def _make(work: Path, files: dict, places: dict[str, str]) -> None:
    for name, spec in files.items():
        path = work / _expand(name, places)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, str):
            path.write_text(_expand(spec, places), encoding="utf-8")
        elif spec.get("folder"):
            path.mkdir(exist_ok=True)
        elif "bytes_hex" in spec:
            path.write_bytes(bytes.fromhex(spec["bytes_hex"]))
        else:
            text = Path(_expand(spec["copy"], places)).read_text(encoding="utf-8") if "copy" in spec else ""
            for old, new in spec.get("sub", []):
                assert old in text, f"case file {name}: '{old}' not in the copied file"
                text = text.replace(old, _expand(new, places))
            text += _expand(spec.get("append", ""), places)
            path.write_text(text, encoding="utf-8")


def _snapshot(work: Path) -> dict[str, bytes | None]:
    """Every file and folder under `work` with its content (None for a folder)."""
    found = {}
    for path in work.rglob("*"):
        if any(part in (".snakemake", "__pycache__") for part in path.relative_to(work).parts):
            continue
        found[path.relative_to(work).as_posix()] = None if path.is_dir() else path.read_bytes()
    return found


def _command(case: dict, places: dict[str, str]) -> list[str]:
    args = [_expand(str(a), places) for a in case["run"]]
    if case["kind"] == "workflow":
        return [sys.executable, "-m", "snakemake", *args]
    return [sys.executable, "-m", "qspflow.cli", *args]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=[pytest.mark.slow] if c["kind"] == "workflow"
                                               else []) for c in CASES])
def test_bad_input_is_named_and_leaves_nothing_behind(case: dict, tmp_path: Path, cases: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     request: pytest.FixtureRequest) -> None:
    readonly_case = bool(case.get("readonly"))
    if readonly_case:
        tmp_path = _world_readable_folder(tmp_path)
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    work = tmp_path / "work"
    if case["kind"] == "workflow":
        work.mkdir()
        for part in WORKFLOW_PARTS:
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / part)
    else:
        work.mkdir()
    places = _places(cases, work)
    _make(work, case.get("files", {}), places)
    before = _snapshot(work)
    command = _command(case, places)
    readonly = [work / _expand(p, places) for p in case.get("readonly", [])]
    if readonly:
        for path in [work, *(p for p in work.rglob("*"))]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        for path in readonly:
            os.chmod(path, 0o555)
        command = [*AS_NOBODY, *command]
    if case["kind"] == "cli" and not readonly:
        proc = _in_process(command[3:], work, capsys)
    else:
        env = {**os.environ, "QSPFLOW_CACHE": str(tmp_path / "cache")} if readonly else None
        proc = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600, env=env)
    for path in readonly:
        os.chmod(path, 0o755)

    expected_exit = case.get("exit", 2)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == expected_exit, report
    assert "Traceback" not in proc.stderr + proc.stdout, report
    message = _message(case, proc.stderr if case["kind"] == "cli" else proc.stdout + proc.stderr)
    said = message if case["kind"] == "cli" else proc.stdout + proc.stderr  # Snakemake lists missing files below
    for word in case.get("words", []):
        assert _expand(str(word), places) in said, report
    for word in case.get("stdout", []):
        assert _expand(str(word), places) in proc.stdout + (proc.stderr if case["kind"] == "workflow" else ""), \
            report
    if expected_exit != 0:
        assert 0 < len(message.splitlines()) <= case.get("lines", 1 if case["kind"] == "cli" else 3), report
    if case.get("quiet"):
        assert proc.stderr == "", report

    after = _snapshot(work)
    touched = sorted(name for name in after if name not in before or before[name] != after[name])
    touched += sorted(f"{name} (removed)" for name in before if name not in after)
    allowed = [_expand(p, places) for p in case.get("outputs", [])]
    stray = [name for name in touched if not any(fnmatch.fnmatch(name, p) for p in allowed)
             and not (case["kind"] == "workflow" and name.split("/")[0] in ("logs", "benchmarks"))]
    assert stray == [], f"files touched outside the expected outputs: {stray}\n{report}"


AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _world_readable_folder(tmp_path: Path) -> Path:
    """A folder user `nobody` can reach (pytest's own are private to root), or a skip where `nobody`
    cannot run qspflow at all (a checkout or interpreter in a private folder)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("read-only cases run the command as user nobody, which needs root and setpriv")
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import qspflow.cli"], cwd="/", capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user nobody cannot import qspflow from this checkout (it lies in a private folder)")
    folder = Path(tempfile.mkdtemp(prefix="qspflow-badinput-", dir="/tmp"))
    folder.chmod(0o755)
    return folder


def _in_process(argv: list[str], work: Path, capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess:
    """`qspflow ARGV` run by `qspflow.cli.main` in this process (the corpus is too large for a process per case):
    the same exit status and output, and any exception but a user error fails the test with its traceback."""
    from qspflow.cli import main

    capsys.readouterr()
    cwd = Path.cwd()
    os.chdir(work)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def _message(case: dict, output: str) -> str:
    """The part of the output that is the user's message: stderr but warnings for the CLI; qspflow's lines
    (and what Snakemake says about a missing input) for the workflow, without Snakemake's own preamble."""
    lines = [line for line in output.splitlines() if line.strip()]
    if case["kind"] == "cli":
        return "\n".join(line for line in lines if not line.startswith("WARNING"))
    keep = [line for line in lines if line.startswith(("qspflow", "MissingInputException", "Missing input"))
            or "qspflow:" in line]
    return "\n".join(keep or lines[-3:])
