"""The reports open in a real browser, headless Chromium without network: every image decodes, the
page fetches nothing and logs nothing to the console. A screenshot of each report is kept for a
person to look at (the folder is printed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from checks import CHROMIUM, NO_CHROMIUM, open_in_chromium, screenshot

from qspflow import steps
from qspflow.io import write_table, write_text
from qspflow.report.notebook import run_notebook

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]


def _tiny_run(folder: Path) -> dict[str, tuple[dict, dict]]:
    """The example study's prepare, infer and convert steps, and small selection, sensitivity and
    vpop tables: the notebook parameters (files, options) of the data, networks, models and summary
    reports, paths relative to `folder`."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    example = ROOT / "resources" / "example"
    prepared = {name: f"prepared/{name}.tsv" for name in ("measurements", "binarized", "thresholds", "experiments")}
    steps.prepare(data=example / "measurements.tsv", experiments=example / "experiments.tsv", pkn=example / "pkn.sif",
                  **{k: folder / v for k, v in prepared.items() if k != "experiments"},
                  design=folder / prepared["experiments"], qc=folder / "prepared/qc.png", **config["prepare"])
    steps.infer(binarized=folder / prepared["binarized"], experiments=folder / prepared["experiments"],
                pkn=example / "pkn.sif", networks=folder / "networks", drug_target=config["drug"]["target"],
                **{**config["infer"], "max_networks": 2})
    nets = pd.read_csv(folder / "networks/index.tsv", sep="\t")["network"].tolist()
    models = {}
    for net in nets:
        paths = {"pysb": f"models/{net}/model.py", "sbml": f"models/{net}/model.sbml",
                 "equations": f"models/{net}/equations.md", "problem": f"models/{net}/petab/problem.yaml"}
        steps.convert(network=folder / f"networks/{net}.bnet", measurements=folder / prepared["measurements"],
                      experiments=folder / prepared["experiments"], **{k: folder / v for k, v in paths.items()},
                      drug=config["drug"], **config["convert"])
        models[net] = {k: paths[k] for k in ("equations", "sbml", "problem")}
    write_table(pd.DataFrame({"model": nets, "llh": [10.0 - k for k in range(len(nets))], "n_params": 30,
                              "n_data": 882, "aicc": [40.0 + 2 * k for k in range(len(nets))],
                              "delta_aicc": [2.0 * k for k in range(len(nets))], "weight": 1.0 / len(nets),
                              "rank_aicc": range(1, len(nets) + 1), "bic": 0.0, "delta_bic": 0.0,
                              "rank_bic": range(1, len(nets) + 1)}), folder / "selection/ranking.tsv")
    write_text(f"{nets[0]}\n", folder / "selection/best.txt")
    write_table(pd.DataFrame({"parameter": ["k_MEK_ERK", "tau_ERK"], "estimate": [0.5, 1.4], "lower_95": [0.1, None],
                              "upper_95": [0.6, None], "identifiable": ["True", ""]}), folder / "selection/estimates.tsv")
    write_table(pd.DataFrame({"output": "erk_8h", "parameter": ["pk_cl", "pk_cl", "tau_ERK", "tau_ERK"],
                              "index": ["S1", "ST", "S1", "ST"], "value": [0.6, 0.7, 0.2, 0.3],
                              "ci_low": [0.5, 0.6, 0.1, 0.2], "ci_high": [0.7, 0.8, 0.3, 0.4]}),
                folder / "sensitivity/sobol.tsv")
    reports = {step: f"reports/{step}.html" for step in ("data", "networks", "models")}
    return {
        "data": (prepared, {"prepare": config["prepare"]}),
        "networks": ({"index": "networks/index.tsv", "networks": {n: f"networks/{n}.bnet" for n in nets},
                      "binarized": prepared["binarized"], "experiments": prepared["experiments"],
                      "pkn": str(example / "pkn.sif")}, {"infer": config["infer"], "drug": config["drug"]}),
        "models": ({"models": models}, {"convert": config["convert"], "drug": config["drug"]}),
        "summary": ({"ranking": "selection/ranking.tsv", "best": "selection/best.txt",
                     "estimates": "selection/estimates.tsv", "sobol": "sensitivity/sobol.tsv",
                     "measurements": prepared["measurements"], "reports": reports}, config),
    }


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The data, networks, models and summary reports of a tiny run of the example study."""
    folder = tmp_path_factory.mktemp("run")
    for step, (files, options) in _tiny_run(folder).items():
        run_notebook(ROOT / "notebooks" / f"{step}.ipynb", {"study": "example", "files": files, "options": options},
                     folder / f"reports/{step}.ipynb", folder / f"reports/{step}.html", cwd=folder,
                     title=f"example: {step}")
    return {step: folder / f"reports/{step}.html" for step in ("data", "networks", "models", "summary")}


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nreport screenshots: {folder}")
    return folder


@pytest.mark.parametrize("step", ["data", "networks", "models", "summary"])
def test_report_opens_offline_with_every_image_decoded_and_a_quiet_console(reports, screenshots, step):
    found, console = open_in_chromium(reports[step], screenshots)
    assert found["fetched"] == [], "the page requested resources"
    assert found["broken"] == 0, f"{found['broken']} of {found['images']} images did not decode"
    assert found["images"] >= {"data": 2, "networks": 4, "models": 0, "summary": 0}[step]
    assert console == []
    shot = screenshots / f"{step}.png"
    screenshot(reports[step], shot)
    assert shot.stat().st_size > 10_000
