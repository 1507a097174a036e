"""The bundled example study end to end, run once with `--cores 2` (the module's fixture): the true network
is selected and its intervals hold the true values; every report renders in a real browser; the submission
package verifies, names any tampered file and validates as a Workflow Run RO-Crate. (The audit's rebuild with
`--cores 1`: test_container.py, on the small example.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from checks import CHROMIUM, HAS_VALIDATOR, NO_CHROMIUM, open_in_chromium, screenshot, validate_crate

from qspflow.calibrate import CONVERGED
from qspflow.provenance.bundle import safe_extract, write_bundle
from qspflow.provenance.manifest import read_manifest

from .conftest import configure, copy_workflow, run_snakemake

pytestmark = pytest.mark.slow

RESULTS = Path("results/example")
BUNDLE = Path("package/example-submission.tar.gz")
# Profiling all 33 parameters takes ~25 min on two cores; these (two Hill thresholds and the EC50 that
# the full example run found identifiable) keep the run to a few minutes.
PROFILED = ["k_Akt_Casp3", "k_MEK_ERK", "pd_ec50"]
QSPFLOW = str(Path(sys.executable).with_name("qspflow"))


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The example workflow run once: two candidates (the true network and the next best one), a smaller
    global budget and profiles of three parameters."""
    workdir = copy_workflow(tmp_path_factory.mktemp("example") / "wf")
    configure(workdir, "config.yaml", infer={"max_networks": 2},
              calibrate={"profile_parameters": PROFILED, "global_evaluations": 10000})
    proc = run_snakemake(workdir, "--cores", "2")
    assert "qspflow: submission bundle package/example-submission.tar.gz sha256 " in proc.stdout + proc.stderr
    return workdir


def _qspflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QSPFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=3600, check=False)


def test_example_true_network_is_selected_and_its_intervals_hold_the_true_values(example: Path) -> None:
    workflow_copy = example

    ranking = pd.read_csv(workflow_copy / RESULTS / "selection/ranking.tsv", sep="\t")
    assert list(ranking["model"]) == ["net_1", "net_2"]  # net_1 is the true network (test_infer)
    assert (workflow_copy / RESULTS / "selection/best.txt").read_text() == "net_1\n"
    assert ranking["delta_aicc"].iloc[1] > 100 and ranking["rank_bic"].iloc[0] == 1
    assert ranking["n_data"].eq(882).all()

    starts = pd.read_csv(workflow_copy / RESULTS / "calibration/net_1/starts.tsv", sep="\t")
    assert len(starts) == 2 and starts["status"].isin(CONVERGED).all()
    assert set(starts["method"]) <= {"shooting", "shooting+transcription"}
    # The true parameters have llh 1378.98 by simulation; the optimum must fit at least as well.
    assert ranking["llh"].iloc[0] > 1378.98

    truth = pd.read_csv(workflow_copy / "resources/example/truth/parameters.tsv", sep="\t").set_index("parameter")
    estimates = pd.read_csv(workflow_copy / RESULTS / "selection/estimates.tsv", sep="\t").set_index("parameter")
    profiled = estimates.loc[PROFILED]
    identifiable = profiled[profiled["identifiable"].astype(bool)]
    assert len(identifiable) == len(PROFILED)
    for name, row in identifiable.iterrows():
        assert row["lower_95"] <= truth.loc[name, "value"] <= row["upper_95"], name
    assert estimates.drop(PROFILED)[["lower_95", "upper_95"]].isna().all().all()

    profile_log = (workflow_copy / "logs/profile/example.log").read_text()
    assert f"profile {len(PROFILED)}/{len(PROFILED)}" in profile_log and "Traceback" not in profile_log
    start_log = (workflow_copy / "logs/calibrate_start/example/net_1/0.log").read_text()
    assert "local start 1/2" in start_log
    for name in ("waterfall.png", "fit.png", "simulation.tsv", "summary.tsv", "estimates.tsv"):
        assert (workflow_copy / RESULTS / "calibration/net_2" / name).is_file(), name

    # Sensitivity and the virtual population of the selected model (the example config defines both).
    summary = pd.read_csv(workflow_copy / RESULTS / "sensitivity/summary.tsv", sep="\t")
    assert summary["failed"].eq(0).all() and set(summary["method"]) == {"morris", "sobol"}
    sobol = pd.read_csv(workflow_copy / RESULTS / "sensitivity/sobol.tsv", sep="\t")
    total = sobol[(sobol["output"] == "erk_8h") & (sobol["index"] == "ST")].set_index("parameter")["value"]
    # ERK at 8 h under the MEK inhibitor is driven by the drug's effect and the MEK→ERK edge, not by NFkB's
    assert total.nlargest(4).index.isin(["pd_emax", "pd_ec50", "pd_hill", "k_MEK_ERK", "n_MEK_ERK"]).all()
    assert total.filter(like="NFkB").max() < 1e-6
    fit = pd.read_csv(workflow_copy / RESULTS / "vpop/fit.tsv", sep="\t").dropna(subset=["ks_p"])
    assert set(fit["output"]) == {"erk_8h", "casp3_1h", "ctrough_12h"}
    assert (fit["ks_p"] >= 0.05).all() and fit["matches"].eq("yes").all()
    assert len(pd.read_csv(workflow_copy / RESULTS / "vpop/vpop.tsv", sep="\t")) >= 900


REPORTS = ["data", "networks", "models", "calibration", "sensitivity", "vpop", "summary"]


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.parametrize("step", REPORTS)
def test_every_report_opens_offline_with_its_figures_decoded_and_a_quiet_console(example: Path, step: str,
                                                                                tmp_path: Path) -> None:
    html = example / RESULTS / "reports" / f"{step}.html"
    found, console = open_in_chromium(html, tmp_path)
    assert found["fetched"] == [] and console == []
    assert found["broken"] == 0 and found["images"] >= (0 if step in ("models", "summary") else 2)
    screenshot(html, tmp_path / f"{step}.png")
    print(f"screenshot: {tmp_path / f'{step}.png'}")


def test_snakemakes_own_report_carries_the_figures_and_the_reports(example: Path) -> None:
    run_snakemake(example, "--report", "report.html")
    text = (example / "report.html").read_text(encoding="utf-8")
    for name in ("qc.png", "waterfall.png", "profiles.png", "sobol.png", "vpop.png", "summary.html"):
        assert name in text, name


def test_the_package_verifies_and_holds_every_output_the_workflow_wrote(example: Path, tmp_path: Path) -> None:
    proc = _qspflow("verify", str(BUNDLE), cwd=example)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    top = safe_extract(example / BUNDLE, tmp_path / "bundle")
    entries = read_manifest(top / "MANIFEST.sha256")
    written = {p.relative_to(example).as_posix() for p in (example / "results").rglob("*")
               if p.is_file() and p.name != ".snakemake_timestamp"}
    assert {p for p in entries if p.startswith("results/")} == written
    for part in ("Snakefile", "rules/package.smk", "scripts/calibrate.py", "notebooks/summary.ipynb",
                 "src/qspflow/cli.py", "envs/requirements.lock", "envs/report.yaml", "config/config.yaml",
                 "study.yaml", "ro-crate-metadata.json", "resources/example/measurements.tsv",
                 "resources/example/vpop_target.tsv"):
        assert part in entries, part
    assert not any(p.startswith(("logs/", "benchmarks/", ".snakemake/")) or "__pycache__" in p for p in entries)
    check = subprocess.run(["sha256sum", "--check", "--quiet", "--strict", "MANIFEST.sha256"], cwd=top,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    crate = json.loads((top / "ro-crate-metadata.json").read_text(encoding="utf-8"))
    actions = [e for e in crate["@graph"] if e.get("@type") == "CreateAction"]
    assert {"prepare", "infer", "calibrate", "profile", "sensitivity", "vpop", "report"} <= \
        {a["name"].rsplit(" ", 1)[-1] for a in actions}
    if HAS_VALIDATOR:
        validate_crate(top, tmp_path, "workflow-run-crate-0.5")


@pytest.mark.parametrize("member", ["resources/example/measurements.tsv", "scripts/calibrate.py",
                                    "results/example/selection/ranking.tsv"])
def test_one_changed_byte_in_a_bundle_fails_verify_and_audit_naming_exactly_that_file(example: Path, tmp_path: Path,
                                                                                       member: str) -> None:
    top = safe_extract(example / BUNDLE, tmp_path / "unpacked")
    data = bytearray((top / member).read_bytes())
    data[len(data) // 2] ^= 0x01
    (top / member).write_bytes(bytes(data))
    members = sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file())
    tampered = tmp_path / "tampered.tar.gz"
    write_bundle(top, members, tampered, top.name)

    verify = _qspflow("verify", str(tampered), cwd=tmp_path)
    assert verify.returncode == 1 and verify.stdout.splitlines()[0] == f"different: {member}", verify.stdout
    assert sum(line.startswith(("different:", "missing:", "unexpected:")) for line in verify.stdout.splitlines()) == 1
    audit = _qspflow("audit", str(tampered), "--out", str(tmp_path / "audit"), cwd=tmp_path)
    assert audit.returncode == 1, audit.stdout + audit.stderr
    report = json.loads((tmp_path / "audit/audit.json").read_text(encoding="utf-8"))
    assert [f["path"] for f in report["files"] if f["status"] != "identical"] == [member]
    assert member in (tmp_path / "audit/audit.md").read_text(encoding="utf-8")
    assert not (tmp_path / "audit/rebuild").exists()  # a bundle that does not verify is not re-run

