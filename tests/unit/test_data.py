"""qspflow.data: MIDAS import, tidy reading, normalization, binarization and canonical output."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans

from qspflow import plots, steps
from qspflow.data import (
    binarize,
    binarize_kmeans,
    kmeans_1d,
    normalize,
    prepare,
    read_experiments,
    read_measurements,
)
from qspflow.errors import ConfigError

OUTPUTS = ["binarized.tsv", "experiments.tsv", "measurements.tsv", "qc.png", "thresholds.tsv"]


def write(path, text: str):
    """Write `text` byte for byte (no newline translation)."""
    path.write_bytes(text.encode("utf-8"))
    return path


def value_of(frame: pd.DataFrame, experiment: str, observable: str, time: float) -> float:
    hit = frame[(frame["experiment"] == experiment) & (frame["observable"] == observable) & (frame["time"] == time)]
    assert len(hit) == 1
    return float(hit["value"].iloc[0])


# --------------------------------------------------------------------------- MIDAS


@pytest.fixture(scope="module")
def toy(cases):
    return cases / "cellnopt_toy" / "ToyDataMMB.csv"


def test_toy_midas_gives_9_conditions_7_readouts_at_two_times(toy):
    tidy, experiments = read_measurements(toy)
    assert len(tidy) == 126
    assert tidy["experiment"].nunique() == 9
    assert sorted(tidy["observable"].unique()) == sorted(["Akt", "Hsp27", "NFkB", "Erk", "p90RSK", "Jnk", "cJun"])
    assert sorted(tidy["time"].unique()) == [0.0, 10.0]
    assert tidy.groupby(["experiment", "observable"]).size().eq(2).all()
    assert tidy["sd"].isna().all()
    # first row of the file: EGF only; Erk 0.8, Akt 0.91, Hsp27 0 at t=10
    assert value_of(tidy, "c01", "Erk", 10) == 0.8
    assert value_of(tidy, "c01", "Akt", 10) == 0.91
    assert value_of(tidy, "c01", "Hsp27", 10) == 0.0
    # row 8: TNFa + PI3K inhibitor; Akt is blocked (0), NFkB 0.9, cJun 0.4
    assert value_of(tidy, "c08", "Akt", 10) == 0.0
    assert value_of(tidy, "c08", "NFkB", 10) == 0.9
    assert value_of(tidy, "c08", "cJun", 10) == 0.4
    assert (tidy.loc[tidy["time"] == 0, "value"] == 0).all()


def test_toy_midas_treatments_become_stimulus_and_inhibitor_columns(toy):
    _, experiments = read_measurements(toy)
    assert list(experiments.columns) == ["experiment", "stimulus:EGF", "stimulus:TNFa", "inhibitor:Raf", "inhibitor:PI3K"]
    table = experiments.set_index("experiment")
    assert table.loc["c01"].tolist() == [1, 0, 0, 0]
    assert table.loc["c04"].tolist() == [1, 0, 1, 0]  # EGF + Raf inhibitor
    assert table.loc["c09"].tolist() == [1, 1, 0, 1]  # EGF + TNFa + PI3K inhibitor
    assert table["inhibitor:Raf"].sum() == 3
    assert table["inhibitor:PI3K"].sum() == 3


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_midas_line_endings_give_identical_tables(toy, tmp_path, ending):
    original, original_experiments = read_measurements(toy)
    converted = write(tmp_path / "toy.csv", toy.read_bytes().decode().replace("\r", ending))
    tidy, experiments = read_measurements(converted)
    pd.testing.assert_frame_equal(tidy, original)
    pd.testing.assert_frame_equal(experiments, original_experiments)


def test_midas_untreated_t0_row_is_shared_and_each_readout_uses_its_own_time(tmp_path):
    path = write(
        tmp_path / "m.csv",
        "TR:x:CellLine,TR:EGF,TR:Rafi,DA:Erk,DA:Akt,DV:Erk,DV:Akt\n"
        "1,0,0,0,0,0.1,0.2\n"  # untreated t=0 baseline
        "1,1,0,10,10,0.9,0.8\n"
        "1,1,1,10,5,0.2,0.7\n"  # Erk at t=10, Akt at t=5
        "1,1,1,0,0,0.05,0.15\n",  # EGF + Rafi has its own t=0 row
    )
    tidy, experiments = read_measurements(path)
    got = {(e, o, t): v for e, o, t, v in zip(tidy["experiment"], tidy["observable"], tidy["time"], tidy["value"])}
    assert got == {
        ("c01", "Erk", 0): 0.1, ("c01", "Akt", 0): 0.2, ("c01", "Erk", 10): 0.9, ("c01", "Akt", 10): 0.8,
        ("c02", "Erk", 0): 0.05, ("c02", "Akt", 0): 0.15, ("c02", "Erk", 10): 0.2, ("c02", "Akt", 5): 0.7,
    }
    assert experiments.to_dict("list") == {"experiment": ["c01", "c02"], "stimulus:EGF": [1.0, 1.0], "inhibitor:Raf": [0.0, 1.0]}


def test_midas_suffixes_da_all_and_untreated_condition(tmp_path):
    path = write(
        tmp_path / "m.csv",
        "TR:EGF:Stimuli,TR:Raf:Inhibitors,TR:PI3Ki,DA:ALL,DV:Erk\n"
        "0,0,0,0,0.1\n"
        "0,0,0,10,0.2\n"  # the untreated condition measured later: a condition of its own
        "1,0,1,10,\n",  # a missing value
    )
    tidy, experiments = read_measurements(path)
    assert list(experiments.columns) == ["experiment", "stimulus:EGF", "inhibitor:Raf", "inhibitor:PI3K"]
    assert experiments["experiment"].tolist() == ["c01", "c02"]
    assert experiments.iloc[0, 1:].tolist() == [0, 0, 0]
    assert value_of(tidy, "c01", "Erk", 0) == 0.1 and value_of(tidy, "c02", "Erk", 0) == 0.1
    assert value_of(tidy, "c01", "Erk", 10) == 0.2
    assert math.isnan(value_of(tidy, "c02", "Erk", 10))


def test_prepare_on_toy_binarizes_every_value_at_the_cluster_midpoint(toy):
    prepared = prepare(toy, known_nodes=["Akt", "Hsp27", "NFkB", "Erk", "p90RSK", "Jnk", "cJun", "EGF", "TNFa", "Raf", "PI3K"])
    assert len(prepared.binarized) == 126
    states = prepared.binarized.set_index(["experiment", "observable", "time"])["state"]
    assert states[("c01", "Erk", 10.0)] == 1 and states[("c04", "Erk", 10.0)] == 0  # Raf inhibitor blocks Erk
    assert (prepared.binarized.loc[prepared.binarized["time"] == 0, "state"] == 0).all()
    akt = prepared.thresholds.set_index("observable").loc["Akt"]
    # Akt at t=10: 0.91 (normalized 1) and 0.82 (0.82/0.91) against 0 → centres 0 and their mean
    high = (6 * 1.0 + 3 * 0.82 / 0.91) / 9
    assert akt["low_centre"] == 0 and akt["high_centre"] == pytest.approx(high)
    assert akt["threshold"] == pytest.approx(high / 2)
    assert akt["n_values"] == 18


# --------------------------------------------------------------------------- tidy data


def test_tidy_csv_tsv_and_sniffed_txt_read_the_same(tmp_path):
    rows = [["experiment", "time", "observable", "value", "sd"], ["e1", "0", "A", "1.5", "0.1"], ["e1", "10", "A", "", ""]]
    frames = [
        read_measurements(write(tmp_path / name, "".join(sep.join(r) + "\n" for r in rows)))[0]
        for name, sep in [("d.csv", ","), ("d.tsv", "\t"), ("d.txt", "\t"), ("e.txt", ";")]
    ]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])
    assert frames[0]["value"].tolist()[0] == 1.5 and math.isnan(frames[0]["value"].tolist()[1])
    assert frames[0]["sd"].tolist()[0] == 0.1


def test_unknown_extra_columns_are_ignored_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "d.csv", "experiment,time,observable,value,unit,note\ne1,0,A,1,nM,x\ne1,5,A,2,nM,y\n")
    with caplog.at_level(logging.WARNING, logger="qspflow.data"):
        tidy, experiments = read_measurements(path)
    assert "unit, note" in caplog.text
    assert list(tidy.columns) == ["experiment", "time", "observable", "value", "sd"]
    assert experiments is None


def test_unknown_observables_warn_policy_drops_them(tmp_path, caplog):
    path = write(tmp_path / "d.csv", "experiment,time,observable,value\ne1,0,A,0\ne1,5,A,1\ne1,0,Bogus,3\ne1,5,Bogus,4\n")
    with caplog.at_level(logging.WARNING, logger="qspflow.data"):
        prepared = prepare(path, known_nodes={"A", "B"}, unknown_observables="warn")
    assert "Bogus" in caplog.text and "dropping 2 rows" in caplog.text
    assert prepared.measurements["observable"].unique().tolist() == ["A"]
    assert prepared.thresholds["observable"].tolist() == ["A"]


def test_experiment_table_is_read_and_sorted(tmp_path):
    write(tmp_path / "d.csv", "experiment,time,observable,value\nz_2,0,A,0\nctrl,0,A,1\n")
    write(tmp_path / "x.tsv", "experiment\tstimulus:EGF\tinhibitor:Raf\tdose:drug\nz_2\t1\t1\t2.5\nctrl\t0\t0\t0\n")
    assert read_experiments(tmp_path / "x.tsv")["dose:drug"].tolist() == [2.5, 0.0]
    prepared = prepare(tmp_path / "d.csv", experiments_path=tmp_path / "x.tsv")
    assert prepared.experiments.to_dict("list") == {
        "experiment": ["ctrl", "z_2"], "stimulus:EGF": [0.0, 1.0], "inhibitor:Raf": [0.0, 1.0], "dose:drug": [0.0, 2.5]
    }


# --------------------------------------------------------------------------- normalization


def tidy_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["experiment", "time", "observable", "value"])
    return frame.assign(time=frame["time"].astype(float), value=frame["value"].astype(float), sd=np.nan)


def test_minmax_scales_each_observable_to_unit_range(caplog):
    frame = tidy_frame([("e1", 0, "A", 2), ("e1", 5, "A", 4), ("e1", 9, "A", 6), ("e2", 0, "A", np.nan),
                        ("e1", 0, "B", 3), ("e2", 0, "B", 3), ("e1", 0, "C", -1), ("e1", 5, "C", 3)])
    with caplog.at_level(logging.WARNING, logger="qspflow.data"):
        out = normalize(frame, "minmax")
    assert out["normalized"].tolist()[:3] == [0.0, 0.5, 1.0]
    assert math.isnan(out["normalized"].iloc[3])
    assert out["normalized"].tolist()[4:] == [0.0, 0.0, 0.0, 1.0]
    assert "'B' is constant" in caplog.text
    assert "normalized" not in frame.columns  # the input is not modified


def test_fold_change_divides_by_mean_control_at_same_time_then_rescales():
    frame = tidy_frame([("c1", 0, "A", 2), ("c1", 10, "A", 4), ("c2", 0, "A", 2), ("c2", 10, "A", 6),
                        ("t", 0, "A", 2), ("t", 10, "A", 15)])
    out = normalize(frame, "fold_change", controls=["c1", "c2"])
    fold = np.array([1, 0.8, 1, 1.2, 1, 3])  # control means: 2 at t=0, 5 at t=10
    np.testing.assert_allclose(out["normalized"], (fold - 0.8) / (3 - 0.8))


def test_fold_change_default_controls_are_the_all_zero_experiments(tmp_path):
    write(tmp_path / "d.csv", "experiment,time,observable,value\nctrl,0,A,2\nctrl,10,A,4\nt,0,A,2\nt,10,A,12\n")
    write(tmp_path / "x.csv", "experiment,stimulus:EGF\nctrl,0\nt,1\n")
    prepared = prepare(tmp_path / "d.csv", experiments_path=tmp_path / "x.csv", normalization="fold_change")
    got = prepared.measurements.set_index(["experiment", "time"])["normalized"]
    # fold changes 1, 1, 1, 3 → 0, 0, 0, 1
    assert got.to_dict() == {("ctrl", 0.0): 0.0, ("ctrl", 10.0): 0.0, ("t", 0.0): 0.0, ("t", 10.0): 1.0}


# --------------------------------------------------------------------------- binarization


def test_kmeans_finds_constructed_clusters_with_threshold_near_half():
    rng = np.random.default_rng(7)
    low = 0.1 + 0.03 * rng.standard_normal(25)
    high = 0.9 + 0.03 * rng.standard_normal(15)
    values = pd.Series(np.concatenate([low, high]), name="X")
    result = binarize_kmeans(values, seed=0)
    assert result.threshold == pytest.approx(0.5, abs=0.03)
    assert result.low_centre == pytest.approx(low.mean()) and result.high_centre == pytest.approx(high.mean())
    assert result.states.tolist() == [0] * 25 + [1] * 15


@pytest.mark.parametrize("seed", range(6))
def test_exact_1d_two_means_matches_sklearn_kmeans(seed):
    rng = np.random.default_rng(seed)
    x = rng.random(60) if seed % 2 else np.concatenate([rng.normal(0.3, 0.15, 30), rng.normal(0.7, 0.2, 25)])
    low, high = kmeans_1d(x)
    ours = x > (low + high) / 2
    fit = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(x.reshape(-1, 1))
    theirs = fit.labels_ == np.argmax(fit.cluster_centers_.ravel())
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(sorted(fit.cluster_centers_.ravel()), [low, high])


def test_kmeans_on_equal_values_gives_all_zero_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="qspflow.data"):
        result = binarize_kmeans(pd.Series([0.4, 0.4, np.nan, 0.4], name="Flat"))
    assert result.threshold == 0.4 and result.states.tolist() == [0, 0, 0]
    assert "'Flat'" in caplog.text and "equal" in caplog.text


def test_fixed_threshold_binarization_and_missing_rows_are_omitted():
    frame = tidy_frame([("e1", 0, "A", 0), ("e1", 5, "A", 1), ("e1", 9, "A", np.nan), ("e2", 0, "A", 0.7)])
    frame["normalized"] = [0.0, 1.0, np.nan, 0.5]
    binarized, thresholds = binarize(frame, "threshold", threshold=0.5)
    assert binarized.to_dict("list") == {"experiment": ["e1", "e1", "e2"], "time": [0.0, 5.0, 0.0],
                                         "observable": ["A", "A", "A"], "state": [0, 1, 0]}
    row = thresholds.iloc[0]
    assert (row["method"], row["threshold"], row["n_values"]) == ("threshold", 0.5, 3)
    assert math.isnan(row["low_centre"]) and math.isnan(row["high_centre"])


@pytest.mark.parametrize(
    ("option", "key"),
    [({"normalization": "zscore"}, "prepare.normalization"), ({"binarization": "otsu"}, "prepare.binarization"),
     ({"unknown_observables": "ignore"}, "prepare.unknown_observables"), ({"fmt": "xlsx"}, "data.format"),
     ({"threshold": 2.0}, "prepare.threshold")],
)
def test_unknown_options_are_config_errors_naming_the_config_key(toy, option, key):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        prepare(toy, **option)


# --------------------------------------------------------------------------- output


def prepare_step(data, out, **options) -> None:
    """The `prepare` step with its outputs under their default names in folder `out`."""
    steps.prepare(data=data, **steps.in_folder(out, steps.files("prepare")), **options)


def test_prepare_step_writes_canonical_tables(tmp_path):
    write(tmp_path / "d.csv", "experiment,time,observable,value\ne1,0,A,1\ne1,10,A,3\ne2,0,A,\ne2,10,A,2\n")
    prepare_step(tmp_path / "d.csv", tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    assert (out / "measurements.tsv").read_text() == (
        "experiment\ttime\tobservable\tvalue\tsd\tnormalized\n"
        "e1\t0\tA\t1\t\t0\ne1\t10\tA\t3\t\t1\ne2\t0\tA\t\t\t\ne2\t10\tA\t2\t\t0.5\n"
    )
    # normalized 0, 1, 0.5: best split {0} | {0.5, 1}, centres 0 and 0.75
    assert (out / "thresholds.tsv").read_text() == (
        "observable\tmethod\tthreshold\tlow_centre\thigh_centre\tn_values\nA\tkmeans\t0.375\t0\t0.75\t3\n"
    )
    assert (out / "binarized.tsv").read_text() == (
        "experiment\ttime\tobservable\tstate\ne1\t0\tA\t0\ne1\t10\tA\t1\ne2\t10\tA\t1\n"
    )
    assert (out / "experiments.tsv").read_text() == "experiment\ne1\ne2\n"
    assert (out / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prepare_step_twice_gives_identical_bytes(toy, tmp_path):
    prepare_step(toy, tmp_path / "a")
    prepare_step(toy, tmp_path / "b")
    for name in OUTPUTS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_prepare_step_writes_nothing_when_rendering_fails(toy, tmp_path, monkeypatch):
    def broken(*_):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(plots, "qc_figure", broken)
    with pytest.raises(RuntimeError):
        prepare_step(toy, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_data_and_inference_libraries_load_without_matplotlib():
    code = "import sys, qspflow.data, qspflow.infer, qspflow.boolean; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
